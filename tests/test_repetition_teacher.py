"""Loops cut while decoding, on the real thing: the bundled SmolLM2 teacher on vLLM's CPU backend,
prompted into a loop, finishes such samples with reason `repetition` under the default (conservative)
repetition detection; the sampler rejects them unverified, and the same request without detection
has nothing cut."""

from __future__ import annotations

import asyncio

import pytest

from distillery.operators.filters.truncation import TruncationFilter
from distillery.operators.select.rejection import SAMPLER_COUNTERS, RejectionSampler, SamplingPolicy
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.operators.verifiers.pool import VerifierPool
from distillery.schemas.records import Prompt, prompt_id
from distillery.schemas.teacher_config import RepetitionDetectionConfig, VLLMTeacherConfig
from distillery.schemas.verifier_config import VerificationConfig

pytestmark = pytest.mark.teacher

LOOP = " ".join(["apple"] * 24)
MAX_TOKENS = 200
LOOP_TEMPERATURE = 0.3
"""Low: at 0.7 a CI machine's CPU once sampled eight samples that all stopped on their own."""


def _config(detection: bool) -> VLLMTeacherConfig:
    return VLLMTeacherConfig(
        model="bundled:smollm2-135m",
        dtype="bfloat16",
        max_model_len=1024,
        gpu_memory_utilization=0.1,  # the KV cache of 16 short requests
        enforce_eager=True,
        device="cpu",
        sampling={
            "n": 16,
            "temperature": LOOP_TEMPERATURE,
            "max_tokens": MAX_TOKENS,
            "seed": 3,
            "repetition_detection": RepetitionDetectionConfig().model_dump() if detection else None,
        },
    )


def test_a_looping_sample_is_cut_by_the_engine_and_rejected():
    from distillery.operators.teachers.vllm_engine import VLLMTeacher

    assert _config(True).sampling.repetition_detection == RepetitionDetectionConfig()  # the default is on
    prompt = Prompt(id=prompt_id(LOOP, "s"), source="s", source_row=0, domain="math", problem=LOOP, answer="1")
    teacher = VLLMTeacher("t", _config(True))

    async def cut_then_uncut():  # one event loop: the async engine belongs to the loop of its first request
        outcome = await sampler.run(prompt)
        seed = outcome.samples[0].seed
        teacher.sampling = _config(False).sampling  # the same request without the loop cut
        return outcome, await teacher.sample(sampler.messages(prompt), n=16, seed=seed, request_id="uncut")

    with VerifierPool(VerificationConfig(workers=1, timeout_s=10)) as pool:
        try:
            sampler = RejectionSampler(teacher, pool, [TruncationFilter()], SamplingPolicy(1, 1), ChatFormat())
            outcome, uncut = asyncio.run(cut_then_uncut())
        finally:
            teacher.close()
    cut = [s for s in outcome.samples if s.finish_reason == "repetition"]
    assert cut, [(s.finish_reason, s.completion_tokens) for s in outcome.samples]
    for sample in cut:
        assert not sample.accepted and not sample.selected and not sample.verdicts
        assert sample.rejection_reason == f"repetition: the engine cut a loop after {sample.completion_tokens} tokens"
        assert sample.completion_tokens < MAX_TOKENS
    assert outcome.counters.get(SAMPLER_COUNTERS).reasons["repetition"] == len(cut)
    # The same request without the loop cut: nothing is cut. Its token counts are not compared with the
    # cut ones: on the CPU backend a rerun with the same seed need not follow the same path.
    assert uncut.error is None and len(uncut.completions) == 16
    assert all(c.finish_reason in ("stop", "length") for c in uncut.completions)
