"""The real thing: `distillery run` with the bundled SmolLM2 teacher on vLLM's CPU backend, on local
Ray, checked with duckdb; and a run killed part-way (the whole process group, SIGKILL) then resumed,
compared with an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from conftest import job_yaml, write_jsonl

pytestmark = pytest.mark.teacher

ROWS = [
    {"id": "t1", "problem": "What is 2 + 3?", "answer": "5", "domain": "math"},
    {
        "id": "t2",
        "problem": "Tom has 3 apples and buys 2 more. How many apples does he have now?",
        "answer": "5",
        "domain": "math",
    },
    {"id": "t3", "problem": "What is 6 times 7?", "answer": "42", "domain": "math"},
    {"id": "t4", "problem": "What is the sum of the first 20 positive odd numbers?", "answer": "400", "domain": "math"},
    {"id": "t5", "problem": "What is 10 - 4?", "answer": "6", "domain": "math"},
]
GENERAL = [
    {"id": "g1", "prompt": "Hello!", "domain": "general"},
    {"id": "g2", "prompt": "What is the capital of Japan?", "domain": "general"},
]
SHARDS = len(ROWS) + len(GENERAL)
GENERAL_SOURCE = """\
  - name: chat
    format: jsonl
    path: general.jsonl
    fields: {problem: prompt, answer: null, domain: domain, id: id}
    require_answer: false
"""
JUDGE = """
judge:
  teacher: t
general:
  min_score: 1
"""


def _env() -> dict[str, str]:
    return {**os.environ, "DISTILLERY_RAY_DASHBOARD": "0", "RAY_DEDUP_LOGS": "0"}


def _command(job: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "distillery.pipeline.commands.cli", "run", str(job), "--output", str(out)]


@pytest.fixture(scope="module")
def real_job(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("teacher")
    write_jsonl(folder / "prompts.jsonl", ROWS)
    write_jsonl(folder / "general.jsonl", GENERAL)
    job = folder / "job.yaml"
    text = job_yaml(
        "prompts.jsonl",
        model="bundled:smollm2-135m",
        shard_size=1,
        max_rounds=1,
        keep=2,
        n=3,
        max_tokens=48,
        extra=JUDGE,
    )
    # One prompt per shard and one shard in flight: shards finish one by one, so a kill lands between them.
    text = text.replace("shards_in_flight: 2", "shards_in_flight: 1")
    job.write_text(text.replace("teachers:\n", GENERAL_SOURCE + "teachers:\n", 1))
    return job


@pytest.fixture(scope="module")
def reference_run(real_job: Path) -> Path:
    out = real_job.parent / "reference"
    proc = subprocess.run(_command(real_job, out), env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dataset:" in proc.stdout
    return out


def test_real_teacher_run_outputs(reference_run: Path):
    con = duckdb.connect()
    samples = f"read_parquet('{reference_run}/samples/*.parquet')"
    assert con.execute(f"SELECT count(*) FROM read_parquet('{reference_run}/prompts/*.parquet')").fetchone() == (
        SHARDS,
    )
    total, distinct, teachers, models = con.execute(
        f"SELECT count(*), count(DISTINCT id), any_value(teacher), any_value(model) FROM {samples}"
    ).fetchone()
    assert (total, distinct) == (SHARDS * 3, SHARDS * 3)
    assert (teachers, models) == ("t", "bundled:smollm2-135m")
    # real text, token counts and finish reasons from the engine; every sample verified
    assert con.execute(
        f"SELECT min(length(text)), min(completion_tokens), min(prompt_tokens) FROM {samples}"
    ).fetchone() > (0, 0, 5)
    assert {r[0] for r in con.execute(f"SELECT DISTINCT finish_reason FROM {samples}").fetchall()} <= {"stop", "length"}
    assert con.execute(f"SELECT count(*) FROM {samples} WHERE len(verdicts) = 0").fetchone() == (0,)
    assert con.execute(f"SELECT count(*) FROM {samples} WHERE finish_reason = 'length' AND accepted").fetchone() == (0,)
    assert con.execute(
        f"SELECT count(*) FROM {samples} WHERE NOT accepted AND rejection_reason IS NULL"
    ).fetchone() == (0,)
    sampling = con.execute(
        "SELECT DISTINCT json_extract(sampling, '$.n')::int, json_extract(sampling, '$.max_tokens')::int "
        f"FROM {samples}"
    ).fetchall()
    assert sampling == [(3, 48)]
    # both splits are written; dataset rows are exactly the selected samples, in R1's format, ...
    for split in ("reasoning", "general"):
        assert list((reference_run / "dataset" / split).glob("*.parquet")), f"no {split} split"
    # ... less the near-duplicate answers stage 5 dropped (the tiny teacher repeats itself)
    selected = con.execute(
        f"SELECT count(*) FROM {samples} WHERE selected AND id NOT IN "
        f"(SELECT id FROM read_parquet('{reference_run}/response_filter/dropped.parquet'))"
    ).fetchone()[0]
    rows = con.execute(
        "SELECT d.messages[2].content, s.reasoning, d.reasoning, s.answer, d.pass_rate, p.problem = d.problem, "
        f"d.kind, s.domain FROM read_parquet('{reference_run}/dataset/*/*.parquet') d "
        f"JOIN {samples} s ON s.id = d.sample_id "
        f"JOIN read_parquet('{reference_run}/prompts/*.parquet') p ON p.id = d.prompt_id"
    ).fetchall()
    assert len(rows) == selected
    for content, sample_reasoning, reasoning, answer, rate, same_prompt, kind, domain in rows:
        assert content == f"<think>\n{reasoning}\n</think>\n\n{answer}" and 0 < rate <= 1 and same_prompt
        assert kind == ("shortcut" if domain == "math" else ("no_cot" if not reasoning else "general"))
        assert reasoning == sample_reasoning or kind == "no_cot"
    general = con.execute(f"SELECT count(*) FROM read_parquet('{reference_run}/dataset/general/*.parquet')").fetchone()[
        0
    ]
    assert general >= 1  # the judge (the teacher itself, min_score 1) let general answers through
    judged = con.execute(
        f"SELECT count(*) FROM {samples} WHERE domain = 'general' "
        "AND len(list_filter(verdicts, lambda v: starts_with(v.verifier, 'llm_judge'))) > 0"
    ).fetchone()[0]
    assert judged == 3 * len(GENERAL)


def _sample_rows(run: Path) -> list[tuple]:
    return (
        duckdb.connect()
        .execute(f"SELECT id, prompt_id, seed, text, accepted FROM read_parquet('{run}/samples/*.parquet') ORDER BY id")
        .fetchall()
    )


def test_killed_run_resumes_to_the_same_result(real_job: Path, reference_run: Path):
    out = real_job.parent / "killed"
    proc = subprocess.Popen(
        _command(real_job, out),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    samples = out / "samples"
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and proc.poll() is None:
        if samples.exists() and len(list(samples.glob("part-*.parquet"))) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    committed = {path.name: path.read_bytes() for path in samples.glob("part-*.parquet")}
    assert 2 <= len(committed) < SHARDS, "the kill must land part-way"
    assert not (out / "dataset").exists()

    resumed = subprocess.run(_command(real_job, out), env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len(list(samples.glob("part-*.parquet"))) == SHARDS
    assert not list(out.rglob(".*.tmp"))

    ours, reference = _sample_rows(out), _sample_rows(reference_run)
    assert len({r[0] for r in ours}) == len(ours)  # nothing twice
    assert [r[:3] for r in ours] == [r[:3] for r in reference]  # same prompts, sample ids and seeds
    # Units done before the kill are kept as they were, not drawn again. Texts are not compared with the
    # uninterrupted run: vLLM's CPU kernels are not bitwise reproducible across processes, and at a bf16
    # near-tie one sample of seven prompts took the other branch after 25 tokens, either way round.
    assert {name: (samples / name).read_bytes() for name in committed} == committed
    assert all(r[3] for r in ours)
    con = duckdb.connect()
    count = "SELECT count(*) FROM read_parquet('{}/prompts/*.parquet')"
    assert con.execute(count.format(out)).fetchone() == con.execute(count.format(reference_run)).fetchone()
