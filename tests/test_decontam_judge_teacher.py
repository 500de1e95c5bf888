"""The judge on the real thing: the bundled SmolLM2 teacher on vLLM's CPU backend. A 135M model is
no judge of sameness, so this checks the path (prompt, request, strict parse, audit row), not the
verdict; test_decontam_detectors.py checks the decisions with a scripted teacher."""

from __future__ import annotations

import numpy as np
import pytest

from distillery.operators.decontam.benchmarks import BenchmarkItem
from distillery.operators.decontam.decontaminator import Decontaminator
from distillery.operators.decontam.embedding import EmbeddingDetector
from distillery.operators.decontam.judge import JUDGE_PROMPT_VERSION, ContaminationJudge, parse_judge_reply
from distillery.schemas.dedup_config import EmbeddingDetectorConfig
from distillery.schemas.teacher_config import VLLMTeacherConfig

pytestmark = pytest.mark.teacher


def test_borderline_matches_are_judged_by_the_real_teacher():
    from distillery.operators.teachers.vllm_engine import VLLMTeacher

    config = VLLMTeacherConfig(
        model="bundled:smollm2-135m",
        dtype="bfloat16",
        max_model_len=1024,
        gpu_memory_utilization=0.3,
        enforce_eager=True,
        device="cpu",
        sampling={"n": 1, "temperature": 0.0, "max_tokens": 8},
    )
    teacher = VLLMTeacher("judge", config)
    try:
        items = [BenchmarkItem("toy", "b1", "Two numbers add up to 50 and differ by 14. What is the larger one?")]
        detector = EmbeddingDetector(items, np.eye(1, 4, dtype=np.float32), EmbeddingDetectorConfig(), floor=0.6)
        decontaminator = Decontaminator(items, ngram=None, embedding=detector, judge=ContaminationJudge(teacher))
        texts = ["The sum of two numbers is 50 and their difference is 14. What is the larger number?"]
        decisions = decontaminator.check(texts, np.array([[0.7, 0.714, 0.0, 0.0]], dtype=np.float32))
    finally:
        teacher.close()
    (judged,) = decisions[0].evidence
    label, _, reply = judged.evidence.partition(": ")
    assert judged.detector == "judge" and reply
    assert label == parse_judge_reply(reply)
    assert decisions[0].contaminated == (label == "same")
    (row,) = decontaminator.audit_rows("test", ["ours"], decisions, texts.__getitem__)
    assert row.judge_prompt == JUDGE_PROMPT_VERSION and row.evidence == judged.evidence
