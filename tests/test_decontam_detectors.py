"""Decontamination pieces that need no embedding model: benchmark specs and loading, the n-gram
detector, the judge's prompt and parse, and the decision rules (with a scripted teacher double;
the real teacher runs the judge in test_decontam_judge_teacher.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError
from scripted_teacher import ScriptedTeacher

from distillery.operators.decontam.benchmarks import BenchmarkItem, BenchmarkLoadError, load_benchmark, load_benchmarks
from distillery.operators.decontam.decontaminator import Decontaminator
from distillery.operators.decontam.embedding import EmbeddingDetector
from distillery.operators.decontam.judge import JUDGE_PROMPT_VERSION, ContaminationJudge, parse_judge_reply
from distillery.operators.decontam.ngram import NgramDetector
from distillery.schemas.dedup_config import BenchmarkConfig, DecontaminationConfig, parse_benchmark_spec

# Benchmark-like problems written for these tests.
BENCH = [
    BenchmarkItem(
        "toy",
        "b1",
        "A farmer plants 14 rows of corn with 23 plants in each row. How many corn plants does he plant in all?",
    ),
    BenchmarkItem(
        "toy", "b2", "Find the smallest positive integer $n$ such that $n^2$ ends in the digits $44$ and $n > 12$."
    ),
    BenchmarkItem("toy", "b3", "What is $2+2$?"),
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_benchmark_specs_parse_into_files_and_hub_names(tmp_path: Path):
    local = write_jsonl(tmp_path / "aime.jsonl", [{"id": 1, "problem": "p"}])
    assert parse_benchmark_spec(f"{local}:problem") == {"path": str(local), "field": "problem"}
    assert parse_benchmark_spec(str(local)) == {"path": str(local), "field": None}
    assert parse_benchmark_spec("openai/gsm8k#main@test:question") == {
        "dataset": "openai/gsm8k",
        "subset": "main",
        "split": "test",
        "field": "question",
    }
    assert parse_benchmark_spec("HuggingFaceH4/MATH-500") == {"dataset": "HuggingFaceH4/MATH-500", "field": None}
    config = BenchmarkConfig.model_validate("aime.jsonl:problem", context={"base_dir": str(tmp_path)})
    assert (config.path, config.field, config.label) == ("aime.jsonl", "problem", "aime")
    with pytest.raises(ValidationError, match="benchmark file not found"):
        BenchmarkConfig.model_validate("missing.jsonl:problem", context={"base_dir": str(tmp_path)})
    with pytest.raises(ValidationError, match="not an existing file and not a dataset name"):
        BenchmarkConfig.model_validate("no such thing!")


def test_benchmarks_load_from_jsonl_parquet_and_the_hub_loader(tmp_path: Path):
    write_jsonl(tmp_path / "a.jsonl", [{"idx": 7, "question": "Q seven"}, {"idx": 8, "question": "Q eight"}])
    pq.write_table(pa.table({"problem": ["P zero", "P one"]}), tmp_path / "b.parquet")
    hub_folder = tmp_path / "hub"
    hub_folder.mkdir()
    write_jsonl(hub_folder / "test.jsonl", [{"id": "h1", "prompt": "H one"}])
    configs = [
        BenchmarkConfig.model_validate(spec, context={"base_dir": str(tmp_path)})
        for spec in ["a.jsonl", "b.parquet", f"hf:{hub_folder}@test"]
    ]
    items = load_benchmarks(configs, base_dir=tmp_path)
    assert [(i.benchmark, i.item_id, i.text) for i in items] == [
        ("a", "7", "Q seven"),
        ("a", "8", "Q eight"),
        ("b", "0", "P zero"),
        ("b", "1", "P one"),
        (str(hub_folder), "h1", "H one"),
    ]


def test_bad_benchmarks_are_errors_that_name_the_row_and_field(tmp_path: Path):
    def config(name: str) -> BenchmarkConfig:
        return BenchmarkConfig.model_validate({"path": name}, context={"base_dir": str(tmp_path)})

    write_jsonl(tmp_path / "a.jsonl", [{"problem": "fine"}, {"problem": None}])
    with pytest.raises(BenchmarkLoadError, match=r"a\.jsonl: row 1: field 'problem' is empty"):
        load_benchmark(config("a.jsonl"), base_dir=tmp_path)
    write_jsonl(tmp_path / "c.jsonl", [{"text": "x"}])
    with pytest.raises(BenchmarkLoadError, match=r"no text field one of \['problem', 'question', 'prompt'\]"):
        load_benchmark(config("c.jsonl"), base_dir=tmp_path)
    (tmp_path / "d.jsonl").write_text('{"problem": "ok"}\nnot json\n')
    with pytest.raises(BenchmarkLoadError, match=r"d\.jsonl: line 2: not valid JSON"):
        load_benchmark(config("d.jsonl"), base_dir=tmp_path)
    with pytest.raises(BenchmarkLoadError, match="names must be unique"):
        load_benchmarks([config("a.jsonl"), config("a.jsonl")], base_dir=tmp_path)


def test_ngram_detector_finds_shared_8grams_and_shows_them():
    detector = NgramDetector(BENCH)
    copied = "Homework: a farmer plants 14 rows of corn with 23 plants in each row. Explain your steps."
    (match,) = detector.matches(copied)
    assert (match.benchmark, match.item_id, match.detector) == ("toy", "b1", "ngram")
    assert match.evidence.startswith("'a farmer plants 14 rows of corn with'")
    assert 0 < match.score < 1
    # LaTeX spacing and case do not hide a copy.
    assert detector.matches(r"FIND the smallest positive integer $n$ such that $n ^ 2$ ends in the digits $44$")
    # Short items match only as a whole.
    assert [m.item_id for m in detector.matches("what is $2 + 2$?")] == ["b3"]
    assert detector.matches("What is 2+2 plus 3?") == []
    assert detector.matches("A gardener plants rows of tomatoes; how many plants are there?") == []
    strict = NgramDetector(BENCH, min_share=0.4)  # copied shares 5 of its 12 8-grams
    assert strict.matches(copied)
    assert strict.matches("a farmer plants 14 rows of corn with 23 plants") == []


def test_judge_reply_parse_is_strict():
    assert parse_judge_reply("SAME") == "same"
    assert parse_judge_reply("<think>numbers match</think>\n\n**Different**.") == "different"
    assert parse_judge_reply("They look the same to me") == "invalid"
    assert parse_judge_reply("") == "invalid"


def test_borderline_embedding_matches_go_to_the_judge_and_every_match_is_audited():
    # Three benchmark directions; our texts sit at chosen cosines from them.
    items = [BenchmarkItem("toy", f"b{k}", f"benchmark problem {name} with 5 apples") for k, name in enumerate("ABC")]
    item_vectors = np.eye(3, 8, dtype=np.float32)

    def at(cosine: float, axis: int) -> np.ndarray:
        v = np.zeros(8, dtype=np.float32)
        v[axis], v[7] = cosine, np.sqrt(1 - cosine**2)
        return v

    texts = ["first, with 5 apples", "second, with 9 pears", "third, with 9 pears", "fourth, with 5 apples"]
    vectors = np.stack([at(0.95, 0), at(0.80, 1), at(0.70, 2), at(0.78, 0)])
    config = DecontaminationConfig(judge={"enabled": True, "teacher": "t", "low": 0.65})
    teacher = ScriptedTeacher({"second": [["SAME"]], "third": [["maybe?"]]}, n=1)
    decontaminator = Decontaminator(
        items,
        ngram=None,
        embedding=EmbeddingDetector(items, item_vectors, config.embedding, floor=config.judge.low),
        judge=ContaminationJudge(teacher),
    )
    decisions = decontaminator.check(texts, vectors)
    # 0: cosine 0.95 >= threshold. 1: 0.80 with other numbers -> judged SAME. 2: judged invalid ->
    # stays clean. 3: 0.78 >= numbers_threshold and the numbers agree.
    assert [d.contaminated for d in decisions] == [True, True, False, True]
    assert [d.match.detector if d.match else None for d in decisions] == ["embedding", "judge", None, "embedding"]
    assert teacher.calls == {"second": 1, "third": 1}
    rows = decontaminator.audit_rows("test", ["i0", "i1", "i2", "i3"], decisions, texts.__getitem__)
    by_item = {r.item_id: r for r in rows}
    assert set(by_item) == {"i0", "i1", "i2", "i3"}
    assert by_item["i1"].judge_prompt == JUDGE_PROMPT_VERSION and by_item["i1"].evidence == "same: SAME"
    assert by_item["i2"].contaminated is False and by_item["i2"].evidence.startswith("invalid")
    assert by_item["i3"].evidence == "cosine 0.780, numbers agree 1.00"
    assert by_item["i0"].benchmark_text == items[0].text and by_item["i0"].item_text == texts[0]
    assert decontaminator.counters.as_dict()["dropped"] == 3
