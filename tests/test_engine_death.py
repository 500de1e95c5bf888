"""Failures split into transient (retried, never committed, never written off) and permanent
(dead-lettered with the reason). The scripted teacher checks the dispatch rules exactly; the last
test kills the real CPU engine (VLLM::EngineCore) mid-run and compares with an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import psutil
import pyarrow.parquet as pq
import pytest
from conftest import job_yaml, write_jsonl
from scripted_teacher import scripted_factory

from distillery.pipeline.commands.cli import EXIT_INCOMPLETE
from distillery.pipeline.runner import run_job
from distillery.pipeline.stages.generate import MAX_ATTEMPTS, GenerationIncomplete

SCRIPT = {"2 + 3": [["\\boxed{5}"]], "10 - 4": [["\\boxed{6}"]], "9 + 1": [["\\boxed{10}"]]}


def _rows(flaky: str, permanent: bool = False) -> list[dict]:
    return [
        {"id": "a", "problem": "What is 2 + 3?", "answer": "5", "domain": "math"},
        {"id": "b", "problem": f"What is 10 - 4? {flaky}", "answer": "6", "domain": "math"},
        {"id": "c", "problem": "What is 9 + 1?" + (" <FAIL>" if permanent else ""), "answer": "10", "domain": "math"},
    ]


def _job(tmp_path: Path, rows: list[dict]) -> Path:
    write_jsonl(tmp_path / "prompts.jsonl", rows)
    job = tmp_path / "job.yaml"
    job.write_text(job_yaml("prompts.jsonl", shard_size=1, max_rounds=1))
    return job


def _dead_letters(run: Path) -> list[dict]:
    files = sorted((run / "dead_letter").glob("generate-*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def test_transient_failure_is_retried_and_a_permanent_one_dead_lettered(tmp_path, local_ray):
    marker = tmp_path / "recovered"
    job = _job(tmp_path, _rows(f"<FLAKY:{marker}>", permanent=True))
    result = run_job(job, str(tmp_path / "run"), teacher_factory=scripted_factory(SCRIPT))
    assert marker.exists() and (tmp_path / "recovered.failures").read_text() == "1"
    samples = pq.read_table(result.run_dir / "samples").to_pylist()
    # the flaky prompt's unit was done again: its samples are there, and no dead letter speaks of it
    assert sorted({s["prompt_id"] for s in samples}) == sorted(
        {p["id"] for p in pq.read_table(result.run_dir / "prompts").to_pylist() if "9 + 1" not in p["problem"]}
    )
    dead = _dead_letters(result.run_dir)
    assert [(d["failure"], d["reason"].split(":")[0]) for d in dead] == [("permanent", "round 0")]
    assert "no script" in dead[0]["reason"]


def test_a_unit_that_keeps_failing_is_not_committed_and_a_rerun_retries_it(tmp_path, local_ray):
    marker = tmp_path / "recovered"
    job = _job(tmp_path, _rows(f"<FLAKY:{marker}:99>"))
    out = str(tmp_path / "run")
    with pytest.raises(GenerationIncomplete, match="1 of 3 unit") as failed:
        run_job(job, out, teacher_factory=scripted_factory(SCRIPT))
    assert (tmp_path / "recovered.failures").read_text() == str(MAX_ATTEMPTS)
    [unit] = failed.value.failed
    run = Path(out)
    assert not (run / "samples" / f"{unit}.parquet").exists()  # not done: nothing written off
    assert len(list((run / "samples").glob("*.parquet"))) == 2
    assert {(d["failure"], d["reason"]) for d in _dead_letters(run)} == {
        ("transient", "round 0: HTTP 503: server overloaded")
    }
    assert not (run / "dataset").exists()

    marker.touch()  # the server is back
    again = run_job(job, out, teacher_factory=scripted_factory(SCRIPT))
    assert again.report["generate"]["prompts_generated"] == 1
    assert len(list((run / "samples").glob("*.parquet"))) == 3
    assert _dead_letters(run) == []  # the transient letters gave way to the unit's result
    assert (run / "dataset").exists()


def test_the_cli_says_the_run_failed_and_exits_non_zero(tmp_path, local_ray, monkeypatch, capsys):
    from distillery.pipeline.commands import cli
    from distillery.pipeline.runner import run_job as real_run_job

    job = _job(tmp_path, _rows(f"<FLAKY:{tmp_path / 'never'}:99>"))
    monkeypatch.setattr(
        "distillery.pipeline.runner.run_job",
        lambda path, output, **options: real_run_job(path, output, scripted_factory(SCRIPT), **options),
    )
    code = cli.main(["run", str(job), "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_INCOMPLETE
    assert err[-1].startswith("error: generation incomplete: 1 of 3 unit(s) failed after 3 attempts")
    assert "Rerun the same command" in err[-1] and err[-2].startswith("failed: part-")


def test_vllm_errors_are_typed_by_whose_fault_they_are():
    from vllm.exceptions import VLLMValidationError
    from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

    from distillery.operators.teachers.vllm_engine import failure_kind

    too_long = VLLMValidationError("The decoder prompt (length 2000) is longer than the maximum model length of 1024.")
    assert failure_kind(too_long) == "permanent"
    assert failure_kind(EngineDeadError()) == "transient"
    assert failure_kind(EngineGenerateError()) == "transient"
    assert failure_kind(RuntimeError("anything else")) == "transient"


# The real engine: one prompt per shard and one shard in flight, so a kill lands between or inside
# requests, never after the last one.
REAL_ROWS = [
    {"id": "t1", "problem": "What is 2 + 3?", "answer": "5", "domain": "math"},
    {"id": "t2", "problem": "What is 6 times 7?", "answer": "42", "domain": "math"},
    {"id": "t3", "problem": "What is 10 - 4?", "answer": "6", "domain": "math"},
    {"id": "t4", "problem": "What is 9 + 1?", "answer": "10", "domain": "math"},
]


def _command(job: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "distillery.pipeline.commands.cli", "run", str(job), "--output", str(out)]


def _env() -> dict[str, str]:
    return {**os.environ, "DISTILLERY_RAY_DASHBOARD": "0", "RAY_DEDUP_LOGS": "0"}


def _engine_cores(root: int) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(root).children(recursive=True):
        try:
            if "VLLM::EngineCore" in child.name() or "VLLM::EngineCore" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def _samples(run: Path) -> list[tuple]:
    return (
        duckdb.connect()
        .execute(f"SELECT id, prompt_id, seed, text FROM read_parquet('{run}/samples/*.parquet') ORDER BY id")
        .fetchall()
    )


@pytest.mark.teacher
def test_killing_the_engine_mid_run_loses_nothing(tmp_path):
    write_jsonl(tmp_path / "prompts.jsonl", REAL_ROWS)
    job = tmp_path / "job.yaml"
    text = job_yaml(
        "prompts.jsonl", model="bundled:smollm2-135m", shard_size=1, max_rounds=1, keep=1, n=2, max_tokens=24
    )
    job.write_text(text.replace("shards_in_flight: 2", "shards_in_flight: 1"))
    reference = tmp_path / "reference"
    done = subprocess.run(_command(job, reference), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        _command(job, out), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((out / "samples").glob("part-*.parquet"))) >= 1:
                break
            time.sleep(0.1)
        assert proc.poll() is None, f"the run ended before the engine could be killed: {proc.communicate()[0][-3000:]}"
        [engine] = _engine_cores(proc.pid)
        engine.kill()
        log, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, log[-3000:]
    assert "an engine died; starting a new one" in log
    assert len(list((out / "samples").glob("part-*.parquet"))) == len(REAL_ROWS)
    assert _dead_letters(out) == []
    ours = _samples(out)
    assert len({r[0] for r in ours}) == len(ours)
    # Same prompts, sample ids and seeds as the uninterrupted run; texts are not compared (vLLM's CPU
    # kernels are not bitwise reproducible across engines, see test_teacher_integration).
    assert [r[:3] for r in ours] == [r[:3] for r in _samples(reference)] and all(r[3] for r in ours)
