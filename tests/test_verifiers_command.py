"""`distillery verify INPUT --out OUTPUT [--job JOB.yaml]` on JSONL and Parquet files."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import MATH_ROWS, job_yaml, write_jsonl

from distillery.pipeline.commands.cli import main

ROWS = [
    {"id": "m1", "domain": "math", "response": "<think>1/2?</think>The answer is $\\frac{1}{2}$.", "gold": "0.5"},
    {"id": "m2", "domain": "math", "response": "I think 5, no, 6. So \\boxed{6}.", "gold": 5},
    {"id": "m3", "domain": "math", "response": "It is 5, I think.", "gold": "5"},
    {"id": "c1", "domain": "code", "response": "```python\ndef add(a, b):\n    return a + b\n```",
     "tests": {"test": "def check(candidate):\n    assert candidate(1, 2) == 3\n", "entry_point": "add"}},
    {"id": "q1", "domain": "choice", "response": "The answer is (B).", "gold": "B"},
    {"id": "e1", "domain": "exact", "response": "Paris", "gold": ["Paris", "Paris, France"]},
    {"id": "x1", "domain": "poetry", "response": "roses", "gold": "x"},
    {"domain": "math", "response": "\\boxed{1}", "gold": "1"},
    {"id": "c2", "domain": "code", "response": "```python\nprint(1)\n```"},
]
EXPECTED = [
    ("m1", "correct"), ("m2", "incorrect"), ("m3", "invalid"), ("c1", "correct"), ("q1", "correct"),
    ("e1", "correct"), ("x1", "invalid"), (None, "invalid"), ("c2", "invalid"), (None, "invalid"),
]


def _input(tmp_path: Path) -> Path:
    path = write_jsonl(tmp_path / "responses.jsonl", ROWS)
    with path.open("a") as handle:
        handle.write("this line is not JSON\n")
    return path


def test_jsonl_to_parquet_with_default_verifiers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "verdicts.parquet"
    assert main(["verify", str(_input(tmp_path)), "--out", str(out)]) == 0
    rows = pq.read_table(out).to_pylist()
    assert [(r["id"], r["verdict"]) for r in rows] == EXPECTED
    assert set(rows[0]) == {"row", "id", "verdict", "verifier", "extracted", "detail", "elapsed_ms"}
    assert (rows[0]["verifier"], rows[0]["extracted"]) == ("math@3", r"\frac{1}{2}")
    by_id = {r["id"]: r for r in rows if r["id"]}
    assert by_id["x1"]["detail"].startswith("row 6: no verifier for domain 'poetry'")
    assert by_id["c2"]["detail"] == "row 8: domain 'code' (code) needs field 'tests'"
    assert rows[7]["detail"] == "row 7: missing field 'id'"
    assert rows[9]["detail"].startswith("row 9 (line 10): not valid JSON")
    assert "verified 10 row(s): correct 4, incorrect 1, invalid 5" in capsys.readouterr().out


def test_parquet_to_jsonl_with_a_job_file(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "prompts.jsonl", MATH_ROWS)
    job = tmp_path / "job.yaml"
    job.write_text(job_yaml("prompts.jsonl") + "  domains:\n    algebra: {type: math}\n")
    source = tmp_path / "responses.parquet"
    pq.write_table(pa.Table.from_pylist([
        {"id": "a", "domain": "algebra", "response": r"\boxed{x = 4}", "gold": "4"},
        {"id": "b", "domain": "math", "response": r"\boxed{4}", "gold": "4"},
    ]), source)
    out = tmp_path / "out" / "verdicts.jsonl"
    assert main(["verify", str(source), "--out", str(out), "--job", str(job), "--workers", "1"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["verdict"]) for r in rows] == [("a", "correct"), ("b", "invalid")]
    assert "no verifier for domain 'math' (known: ['algebra'])" in rows[1]["detail"]


@pytest.mark.parametrize(
    ("source", "out", "message"),
    [("missing.jsonl", "out.jsonl", "missing.jsonl: no such file"),
     ("responses.jsonl", "out.csv", "unknown format '.csv'")],
)
def test_unusable_files_are_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, out: str,
                                   message: str) -> None:
    write_jsonl(tmp_path / "responses.jsonl", ROWS[:1])
    assert main(["verify", str(tmp_path / source), "--out", str(tmp_path / out)]) == 2
    assert message in capsys.readouterr().err
