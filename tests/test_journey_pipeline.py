"""Stage 4 in a whole run on local Ray with scripted teachers: journey units beside the samples units,
journey rows in the reasoning split that duckdb joins to both their source samples, resume, and the
teacher path (critic and continue in the journey worker actor)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import duckdb
import ray.cloudpickle
from conftest import job_yaml, write_jsonl
from scripted_teacher import ScriptedTeacher

from distillery.operators.teachers.base import Completion, TeacherResponse
from distillery.pipeline.runner import run_job

WRONG = "Tom buys 7 bags with 8 apples each.\n\nSo he has 7 \\times 8 = 54 apples.\n\nThe answer is \\boxed{54}."
RIGHT = "There are 7 bags of 8 apples.\n\nThat makes 7 \\times 8 = 56 apples.\n\nThe answer is \\boxed{56}."
ROWS = [
    {"id": "a1", "problem": "Tom buys 7 bags of 8 apples. How many apples?", "answer": "56", "domain": "math"},
    {"id": "a2", "problem": "What is 2 + 3?", "answer": "5", "domain": "math"},
]
SCRIPT = {"7 bags": [[WRONG, RIGHT, RIGHT, "no idea"]], "2 + 3": [["\\boxed{5}"]]}
CONTINUATION = " So 7 × 8 = 56 apples. The answer is \\boxed{56}."
JOURNEY = """
journey:
  enabled: true
  share: 0.5
  locate: {locate}
  bridge: {bridge}
"""


class JourneyScriptedTeacher(ScriptedTeacher):
    """The scripted sampler, plus a critic that names step 2 and a continuation."""

    async def sample(self, messages, *, n, seed, request_id):  # type: ignore[no-untyped-def]
        if "Find the FIRST step" in messages[-1]["content"]:
            text = "STEP 2: 7 times 8 is 56, not 54."
            return TeacherResponse(prompt_tokens=5, completions=[Completion(0, text, 12, "stop")])
        return await super().sample(messages, n=n, seed=seed, request_id=request_id)

    async def continue_turn(self, messages, prefill, *, seed, request_id):  # type: ignore[no-untyped-def]
        return TeacherResponse(prompt_tokens=5, completions=[Completion(0, CONTINUATION, 12, "stop")])


class HeldUnitsTeacher(JourneyScriptedTeacher):
    """Records into `record` the most problems (one per unit here) whose critic requests overlap;
    each request waits, so units a worker starts together overlap."""

    def __init__(self, script, name: str, record: Path) -> None:  # type: ignore[no-untyped-def]
        super().__init__(script, n=4, name=name)
        self.record = record
        self.open: set[str] = set()

    async def sample(self, messages, *, n, seed, request_id):  # type: ignore[no-untyped-def]
        if "Find the FIRST step" not in messages[-1]["content"]:
            return await super().sample(messages, n=n, seed=seed, request_id=request_id)
        problem = next(k for k in self.script if k in messages[-1]["content"])
        self.open.add(problem)
        most = max(len(self.open), int(self.record.read_text()) if self.record.exists() else 0)
        self.record.write_text(str(most))
        await asyncio.sleep(0.3)
        self.open.discard(problem)
        return await super().sample(messages, n=n, seed=seed, request_id=request_id)


def journey_factory(name, config):  # type: ignore[no-untyped-def]
    return lambda: JourneyScriptedTeacher(SCRIPT, n=4, name=name)


# Ray workers cannot import test modules: ship this one by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _job(tmp_path, locate: str, bridge: str):  # type: ignore[no-untyped-def]
    write_jsonl(tmp_path / "prompts.jsonl", ROWS)
    job = tmp_path / "job.yaml"
    job.write_text(job_yaml("prompts.jsonl", max_rounds=1, keep=2, extra=JOURNEY.format(locate=locate, bridge=bridge)))
    return job


def test_splice_rows_join_to_both_source_samples_and_resume(tmp_path, local_ray):
    job = _job(tmp_path, "compare", "splice")
    out = str(tmp_path / "run")
    result = run_job(job, out, teacher_factory=journey_factory)
    report = result.report["journey"]
    assert report["eligible_prompts"] == 1 and report["accepted"] == 1 and report["units_built"] >= 1
    con = duckdb.connect()
    run = result.run_dir
    rows = con.execute(
        "SELECT d.kind, d.journey.error_step, d.journey.locator, d.journey.bridge, d.journey.reflection, "
        "w.text, c.text, d.reasoning, d.answer, d.verdicts[1].verdict "
        f"FROM read_parquet('{run}/dataset/reasoning/*.parquet') d "
        f"JOIN read_parquet('{run}/samples/*.parquet') w ON w.id = d.journey.wrong_sample_id "
        f"JOIN read_parquet('{run}/samples/*.parquet') c ON c.id = d.journey.correct_sample_id "
        "WHERE d.kind = 'journey'"
    ).fetchall()
    assert len(rows) == 1
    kind, step, locator, bridge, reflection, wrong, correct, reasoning, answer, verdict = rows[0]
    assert (kind, step, locator, bridge, verdict) == ("journey", 2, "compare", "splice", "correct")
    assert (wrong, correct) == (WRONG, RIGHT)
    assert reasoning.startswith("Tom buys 7 bags with 8 apples each.\n\nSo he has 7 \\times 8 = 54 apples.")
    assert reasoning.endswith(reflection) and "7 × 8 is 56, not 54" in reflection and answer == RIGHT
    shortcut = con.execute(
        f"SELECT count(*) FROM read_parquet('{run}/dataset/reasoning/*.parquet') WHERE kind = 'shortcut'"
    ).fetchone()
    assert shortcut == (2,)  # one per prompt: stage 5 drops the identical second samples
    # The journey table holds the Generation columns and the journey struct; nothing unverified ships.
    assert con.execute(
        f"SELECT count(*) FROM read_parquet('{run}/journey/*.parquet') j "
        f"JOIN read_parquet('{run}/dataset/*/*.parquet') d ON d.sample_id = j.id WHERE NOT j.accepted"
    ).fetchone() == (0,)
    again = run_job(job, out, teacher_factory=journey_factory)
    assert again.report["journey"]["units_built"] == 0 and again.report["journey"]["accepted"] == 1


def test_critic_and_continue_run_in_the_journey_worker(tmp_path, local_ray):
    job = _job(tmp_path, "critic", "continue")
    result = run_job(job, str(tmp_path / "run"), teacher_factory=journey_factory)
    run = result.run_dir
    rows = (
        duckdb.connect()
        .execute(
            "SELECT d.journey.error_step, d.journey.locator, d.journey.correct_sample_id, d.answer "
            f"FROM read_parquet('{run}/dataset/reasoning/*.parquet') d WHERE d.kind = 'journey'"
        )
        .fetchall()
    )
    assert rows == [(2, "critic", None, CONTINUATION.strip())]


def test_a_journey_worker_holds_at_most_shards_in_flight_units(tmp_path, local_ray):
    # One prompt per unit, each with a wrong and a right sample; numbers differ, so none is a duplicate.
    script, rows = {}, []
    for i, (bags, each) in enumerate([(3, 4), (5, 6), (7, 8), (9, 2)]):
        problem = f"A crate has {bags} bags of {each} apples. How many apples?"
        steps = f"{bags} bags of {each} apples.\n\nThat is {bags} \\times {each} = {{}}.\n\n\\boxed{{{{{{}}}}}}"
        right, wrong = steps.format(bags * each, bags * each), steps.format(bags * each + 1, bags * each + 1)
        script[problem] = [[wrong, right]]
        rows.append({"id": f"c{i}", "problem": problem, "answer": str(bags * each), "domain": "math"})
    write_jsonl(tmp_path / "prompts.jsonl", rows)
    job = tmp_path / "job.yaml"
    # No dedup: the embedding model is not what this test is about.
    journey = JOURNEY.format(locate="critic", bridge="splice") + "dedup: {enabled: false}\n"
    text = job_yaml("prompts.jsonl", shard_size=1, max_rounds=1, keep=2, extra=journey)
    job.write_text(text.replace("shards_in_flight: 2", "shards_in_flight: 1"))
    record = tmp_path / "held.txt"

    def factory(name, config):  # type: ignore[no-untyped-def]
        return lambda: HeldUnitsTeacher(script, name, record)

    result = run_job(job, str(tmp_path / "run"), teacher_factory=factory)
    report = result.report["journey"]
    assert report["planned_prompts"] == 4 and report["units_built"] == 4
    assert record.read_text() == "1"
