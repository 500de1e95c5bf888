"""Decontamination and dedup with the real embedding model (the bundled all-MiniLM-L6-v2), through
the operators and through the `distillery decontam` / `distillery dedup` commands.

The benchmark, its paraphrases and the unrelated problems are all written here."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from distillery.operators.decontam.decontaminator import Decontaminator
from distillery.operators.dedup.embedder import shared_embedder
from distillery.pipeline.commands.cli import main
from distillery.pipeline.runtime.embedding_workers import embedder_key
from distillery.schemas.dedup_config import BenchmarkConfig, DecontaminationConfig, EmbedderConfig

BENCHMARK = [
    {
        "id": "b1",
        "problem": "A bakery sells 48 cupcakes in the morning and 36 in the afternoon. Each cupcake costs "
        "$3. How much money does the bakery make that day?",
    },
    {
        "id": "b2",
        "problem": "A rectangular garden is 12 meters long and 7 meters wide. A path 1 meter wide runs "
        "around the outside of the garden. What is the area of the path in square meters?",
    },
    {
        "id": "b3",
        "problem": "How many ways can 6 distinct books be arranged on a shelf so that two particular books "
        "are never next to each other?",
    },
    {"id": "b4", "problem": "The sum of two numbers is 50 and their difference is 14. What is the larger number?"},
    {
        "id": "b5",
        "problem": "A train travels 240 miles in 4 hours. At the same speed, how long will it take to "
        "travel 390 miles?",
    },
    {"id": "b6", "problem": "Find the remainder when $3^{100}$ is divided by $7$."},
]
# Same problems, other words: not one shared 8-gram.
PARAPHRASES = {
    "p1": (
        "b1",
        "In the morning a bakery sold 48 cupcakes, and in the afternoon it sold another 36. If every "
        "cupcake is priced at $3, what were the bakery's total earnings for the day?",
    ),
    "p2": (
        "b2",
        "Around a 12 m by 7 m rectangular garden there is a walkway that is 1 m wide. Find the walkway's "
        "area in square meters.",
    ),
    "p3": (
        "b5",
        "Moving at a steady pace, a train covers 240 miles in 4 hours. How many hours does it need for a "
        "390-mile trip?",
    ),
    "p4": ("b4", "Two numbers add up to 50 and differ by 14. Which is the bigger one?"),
}
# Same topics, different problems.
UNRELATED = {
    "u1": "A bakery bakes 120 loaves of bread and sells three quarters of them. How many loaves are left?",
    "u2": "A square garden has a perimeter of 36 meters. What is its area?",
    "u3": "A car uses 8 liters of fuel every 100 km. How much fuel does it need for 250 km?",
    "u4": "What is the greatest common divisor of 84 and 126?",
}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def benchmark_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("bench") / "toybench.jsonl", BENCHMARK)


def test_paraphrases_are_caught_by_embeddings_and_missed_by_ngrams(benchmark_file: Path):
    config = DecontaminationConfig(benchmarks=[BenchmarkConfig(path=str(benchmark_file), field="problem")])
    decontaminator = Decontaminator.from_config(config, encode=shared_embedder().encode)
    ids = list(PARAPHRASES) + list(UNRELATED)
    texts = [text for _, text in PARAPHRASES.values()] + list(UNRELATED.values())
    assert decontaminator.ngram_matches(texts) == [[] for _ in texts]
    decisions = decontaminator.check(texts, shared_embedder().encode(texts))
    flagged = {
        i: (d.match.benchmark, d.match.item_id, d.match.detector)
        for i, d in zip(ids, decisions, strict=True)
        if d.contaminated
    }
    assert flagged == {p: ("toybench", b, "embedding") for p, (b, _) in PARAPHRASES.items()}
    audit = decontaminator.audit_rows("test", ids, decisions, texts.__getitem__)
    assert sorted(r.item_id for r in audit) == sorted(PARAPHRASES)
    for row in audit:
        target, text = PARAPHRASES[row.item_id]
        assert row.benchmark_item == target and row.item_text == text
        assert row.benchmark_text == next(b["problem"] for b in BENCHMARK if b["id"] == target)
        assert row.score >= 0.75 and row.evidence.endswith("numbers agree 1.00")


def test_bfloat16_embedder_gives_unit_float32_vectors_close_to_float32_and_its_own_files(benchmark_file: Path):
    texts = [text for _, text in PARAPHRASES.values()] + list(UNRELATED.values())
    half = shared_embedder(EmbedderConfig(dtype="bfloat16"))
    full = shared_embedder().encode(texts)
    vectors = half.encode(texts)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.abs(vectors @ vectors.T - full @ full.T).max() < 0.01
    config = DecontaminationConfig(benchmarks=[BenchmarkConfig(path=str(benchmark_file), field="problem")])
    flagged = [d.contaminated for d in Decontaminator.from_config(config, encode=half.encode).check(texts, vectors)]
    assert flagged == [True] * len(PARAPHRASES) + [False] * len(UNRELATED)
    assert embedder_key(EmbedderConfig(dtype="bfloat16")) != embedder_key(EmbedderConfig())


def test_decontam_command_writes_one_row_per_input_and_an_audit(benchmark_file: Path, tmp_path: Path):
    rows = [{"id": p, "problem": text} for p, (_, text) in PARAPHRASES.items()]
    rows += [{"id": u, "problem": text} for u, text in UNRELATED.items()]
    rows.append({"id": "copy", "problem": "Quick one: " + BENCHMARK[2]["problem"]})
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out, audit = tmp_path / "out.parquet", tmp_path / "audit.parquet"
    code = main(
        ["decontam", str(source), "--benchmark", f"{benchmark_file}:problem", "--out", str(out), "--audit", str(audit)]
    )
    assert code == 0
    table = pq.read_table(out).to_pylist()
    assert [r["id"] for r in table] == [r["id"] for r in rows]
    result = {r["id"]: (r["contaminated"], r["detector"], r["match_id"]) for r in table}
    assert result["copy"] == (True, "ngram", "b3")
    assert all(result[p] == (True, "embedding", b) for p, (b, _) in PARAPHRASES.items())
    assert all(result[u] == (False, None, None) for u in UNRELATED)
    # The evidence is there to check in duckdb.
    evidence = duckdb.sql(
        f"SELECT item_id, detector, evidence FROM '{audit}' WHERE item_id = 'copy' AND detector = 'ngram'"
    ).fetchall()
    assert evidence == [("copy", "ngram", "'how many ways can 6 distinct books be' (16 of 16 8-grams shared)")]


def test_dedup_command_finds_exact_and_near_duplicates_deterministically(tmp_path: Path):
    rows = [
        {"id": "a", "problem": "A train travels 240 miles in 4 hours. How fast is it going?"},
        {"id": "b", "problem": "A  train travels 240 miles in 4 hours.   How fast is it going?"},
        {"id": "c", "problem": "A train travels 240 miles in 4 hours. How fast is the train going?"},
        {"id": "d", "problem": "A train travels 250 miles in 4 hours. How fast is it going?"},
        {"id": "e", "problem": "Find the remainder when $3^{100}$ is divided by $7$."},
        {"id": "f", "problem": "Find the remainder when 3^100 is divided by 7."},
    ]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    outputs = []
    for name in ("first.jsonl", "second.jsonl"):
        assert main(["dedup", str(source), "--out", str(tmp_path / name)]) == 0
        outputs.append((tmp_path / name).read_text())
    assert outputs[0] == outputs[1]
    result = {r["id"]: r for r in map(json.loads, outputs[0].splitlines())}
    assert {k: (r["duplicate"], r["reason"], r["duplicate_of"]) for k, r in result.items()} == {
        "a": (False, None, None),
        "b": (True, "exact_duplicate", "a"),
        "c": (True, "near_duplicate", "a"),
        "d": (False, None, None),
        "e": (False, None, None),
        "f": (True, "near_duplicate", "e"),
    }
    assert result["c"]["score"] >= 0.95
    # At cosine 0.9, only the numbers tell d (250 miles) from a (240 miles): the same template, another problem.
    for name, extra in (("strict.jsonl", []), ("loose.jsonl", ["--no-same-numbers"])):
        assert main(["dedup", str(source), "--out", str(tmp_path / name), "--threshold", "0.9", *extra]) == 0
    strict, loose = (
        {r["id"]: r for r in map(json.loads, (tmp_path / n).read_text().splitlines())}
        for n in ("strict.jsonl", "loose.jsonl")
    )
    assert strict["d"]["duplicate"] is False
    assert (loose["d"]["duplicate_of"], loose["d"]["reason"]) == ("a", "near_duplicate")


def test_commands_report_bad_input_by_row_and_field(tmp_path: Path, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "x", "problem": "ok"}, {"id": "y"}])
    assert main(["dedup", str(source), "--out", str(tmp_path / "o.jsonl"), "--exact-only"]) == 2
    assert "in.jsonl: row 1: missing field 'problem'" in capsys.readouterr().err
    assert main(["decontam", str(source), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "no benchmark to check against" in capsys.readouterr().err
