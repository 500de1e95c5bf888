"""Source health at the end of ingest, `run --strict`, and the end-of-run dead-letter summary."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import MATH_ROWS, job_yaml, write_jsonl
from scripted_teacher import scripted_factory
from test_job_validation import cli_without_models

from distillery.pipeline.dead_letters import dead_letter_groups, run_summary
from distillery.pipeline.run_directory import RunDirectory
from distillery.pipeline.runner import run_job
from distillery.pipeline.stages.ingest import run_ingest
from distillery.schemas.arrow import to_table
from distillery.schemas.job import load_job
from distillery.schemas.records import DeadLetter

GARBAGE_ROWS = 51


def garbage(path: Path) -> Path:
    """Binary garbage: 51 lines of random bytes (none valid UTF-8 JSON)."""
    rng = random.Random(0)
    lines = [b"\xff" + rng.randbytes(60).replace(b"\n", b"\x00") for _ in range(GARBAGE_ROWS)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def source(name: str, path: str, extra: str = "") -> str:
    return f"  - name: {name}\n    format: jsonl\n    path: {path}\n{extra}"


def job_with(tmp_path: Path, *sources: str) -> Path:
    write_jsonl(tmp_path / "prompts.jsonl", MATH_ROWS)
    text = job_yaml("prompts.jsonl", model="bundled:smollm2-135m")
    if sources:
        text = text.replace("teachers:", "".join(sources) + "teachers:", 1)
    job = tmp_path / "job.yaml"
    job.write_text(text)
    return job


def ingest(job: Path, tmp_path: Path) -> dict:
    run = RunDirectory(tmp_path / "run")
    config = load_job(job)
    run.bind(config)
    run_ingest(config, job.parent, run)
    return json.loads(run.manifest.read_text())


def test_empty_and_garbage_sources_are_reported_with_their_reasons(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    garbage(tmp_path / "garbage.jsonl")
    job = job_with(tmp_path, source("empty", "empty.jsonl"), source("garbage", "garbage.jsonl"))
    health = {h["source"]: h for h in ingest(job, tmp_path)["source_health"]}
    assert set(health) == {"empty", "garbage"}
    assert health["empty"]["rows"] == 0
    bad = health["garbage"]
    assert (bad["rows"], bad["dead"]) == (GARBAGE_ROWS, GARBAGE_ROWS)
    assert bad["reasons"][0][1] == GARBAGE_ROWS and "undecodable text" in bad["reasons"][0][0]
    assert "check `format`" in bad["fix"]


def test_the_threshold_is_a_source_field(tmp_path):
    rows = [*MATH_ROWS[:2], {"id": "q9", "question": "What is 3 + 3?", "answer": "6"}]
    write_jsonl(tmp_path / "third_bad.jsonl", rows)
    fields = "    fields: {problem: problem, answer: answer, id: id}\n"
    lenient = job_with(tmp_path, source("mixed", "third_bad.jsonl", fields))
    assert ingest(lenient, tmp_path / "a")["source_health"] == []

    strict = job_with(tmp_path, source("mixed", "third_bad.jsonl", fields + "    max_dead_letter_share: 0.2\n"))
    (problem,) = ingest(strict, tmp_path / "b")["source_health"]
    assert (problem["source"], problem["dead"], problem["rows"]) == ("mixed", 1, 3)
    assert "missing problem" in problem["reasons"][0][0]
    assert problem["example"] == "row 2, whose columns are answer, id, question"
    assert "`fields` mapping" in problem["fix"]


def test_strict_run_stops_after_ingest_before_ray(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    garbage(tmp_path / "garbage.jsonl")
    job = job_with(tmp_path, source("empty", "empty.jsonl"), source("garbage", "garbage.jsonl"))
    ran = cli_without_models("run", str(job), "--output", str(tmp_path / "run"), "--strict")
    assert ran.returncode == 4, ran.stderr
    assert "ingest (--strict): 2 source(s) in bad health" in ran.stderr
    assert "source 'empty': no rows" in ran.stderr
    assert f"source 'garbage': {GARBAGE_ROWS} of {GARBAGE_ROWS} rows dead-lettered (100%, more than 50%)" in ran.stderr


def test_a_run_without_any_prompt_stops_after_ingest(tmp_path):
    garbage(tmp_path / "garbage.jsonl")
    job = tmp_path / "job.yaml"
    job.write_text(job_yaml("garbage.jsonl", model="bundled:smollm2-135m"))
    ran = cli_without_models("run", str(job), "--output", str(tmp_path / "run"))
    assert ran.returncode == 4, ran.stderr
    assert "ingest: no prompts: every source was empty or dead-lettered" in ran.stderr
    assert "source 'src': 51 of 51 rows dead-lettered (100%" in ran.stderr


def test_a_run_reports_bad_sources_and_summarises_dead_letters(tmp_path, local_ray):
    garbage(tmp_path / "garbage.jsonl")
    job = job_with(tmp_path, source("garbage", "garbage.jsonl"))
    script = {"What is": [["<think>Add them.</think> The answer is \\boxed{5}."]]}
    result = run_job(job, str(tmp_path / "run"), teacher_factory=scripted_factory(script))
    (problem,) = result.report["ingest"]["source_health"]
    assert problem["source"] == "garbage" and problem["dead"] == GARBAGE_ROWS
    summary = run_summary(result.run_dir, result.report)
    assert "warning: source 'garbage': 51 of 51 rows dead-lettered (100%" in summary
    assert "dead letters: 51: 51 permanent (bad input, not retried)" in summary
    assert "ingest     permanent        51  garbage.jsonl: undecodable text: 'utf-8' codec can't decode byte 0xff in " \
        "position N: invalid start byte" in summary


def test_summary_tells_permanent_from_transient(tmp_path):
    folder = tmp_path / "dead_letter"
    folder.mkdir()

    def letter(stage: str, reason: str, row: int, **extra: str) -> DeadLetter:
        return DeadLetter(id=f"{stage}{row}", stage=stage, source="src", row=row, reason=reason, **extra)

    ingest_rows = [letter("ingest", f"missing problem (column 'question') row {i}", i) for i in range(3)]
    pq.write_table(to_table(ingest_rows, DeadLetter), folder / "ingest.parquet")
    generate = [
        letter("generate", "EngineDeadError: engine died", 0, failure="transient"),
        letter("generate", "prompt of 3000 tokens is longer than max_model_len 2048", 1, failure="permanent"),
    ]
    pq.write_table(to_table(generate, DeadLetter), folder / "generate-part-00000-t.parquet")
    # A file from before dead letters said which kind they were.
    pq.write_table(pa.table({"stage": ["generate"], "reason": ["timeout"]}), folder / "generate-part-00001-t.parquet")

    groups = {(g.stage, g.failure, g.reason): g.count for g in dead_letter_groups(folder)}
    assert groups == {
        ("ingest", "permanent", "missing problem (column 'question') row N"): 3,
        ("generate", "transient", "EngineDeadError: engine died"): 1,
        ("generate", "permanent", "prompt of N tokens is longer than max_model_len N"): 1,
        ("generate", "unclassified", "timeout"): 1,
    }
    summary = run_summary(tmp_path, {})
    assert summary.startswith("dead letters: 6: 4 permanent (bad input, not retried), 1 transient")
