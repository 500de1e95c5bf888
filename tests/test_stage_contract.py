"""The stage contract: one ordered list of stages, one done-ness rule, and counters that reach the
report. The scripted teacher stands in for the model here; the real one runs in test_teacher_integration.py."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from conftest import job_yaml, write_jsonl
from scripted_teacher import scripted_factory

from distillery.pipeline.commands.inspect import connect
from distillery.pipeline.run_directory import RunDirectory, Units
from distillery.pipeline.runner import STAGES, run_job
from distillery.pipeline.stages.base import StageContext
from distillery.pipeline.stages.ingest import IngestStage
from distillery.schemas.job import load_job

SCRIPT = {
    "2 + 3": [["<think>\nadd\n</think>\n\n\\boxed{5}", "\\boxed{6}"]],
    "10 - 4": [["The answer is 7."], ["The answer is 6."]],
    "6 times 7": [["\\boxed{42}<TRUNCATED>"]],
    "9 + 1": [["#### 10"]],
}
ROWS = [
    {"id": "q1", "problem": "What is 2 + 3?", "answer": "5", "domain": "math"},
    {"id": "q2", "problem": "What is 10 - 4?", "answer": "6", "domain": "math"},
    {"id": "q3", "problem": "What is 6 times 7?", "answer": "42", "domain": "math"},
    {"id": "q5", "problem": "What is 9 + 1?", "answer": "10", "domain": "math"},
]


@pytest.fixture
def job(tmp_path: Path) -> Path:
    write_jsonl(tmp_path / "prompts.jsonl", ROWS)
    path = tmp_path / "job.yaml"
    path.write_text(job_yaml("prompts.jsonl", keep=1, max_rounds=2))
    return path


def test_stages_are_one_ordered_list_whose_numbers_the_modules_state() -> None:
    assert [s.name for s in STAGES] == ["ingest", "prompt_filter", "generate", "journey", "response_filter", "dataset"]
    for number, stage in enumerate(STAGES, start=1):
        module = importlib.import_module(type(stage).__module__)
        assert (module.__doc__ or "").startswith(f"Stage {number}, "), type(stage).__module__
        assert stage.reads, f"{stage.name} says what it reads"


def test_units_are_written_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "unit.parquet"

    class Unwritable:
        schema = None

    with pytest.raises((TypeError, AttributeError)):
        Units.commit(Unwritable(), target)  # type: ignore[arg-type]
    assert not Units.is_done(target) and list(tmp_path.iterdir()) == []
    Units.commit(pa.table({"x": [1]}), target)
    assert Units.is_done(target)


def test_a_stage_whose_unit_exists_is_skipped(job: Path, tmp_path: Path) -> None:
    loaded = load_job(job)
    run = RunDirectory(tmp_path / "run")
    run.bind(loaded)
    context = StageContext(loaded, run, tmp_path)
    first = IngestStage().run(context)
    # The unit (the manifest) exists: the stage reads its result back and never opens the source again.
    (tmp_path / "prompts.jsonl").unlink()
    again = IngestStage().run(context)
    assert again.report == first.report == {"prompts": 4, "dead_letter": 0}
    assert again.counters.as_list() == first.counters.as_list()


def test_a_stage_killed_before_its_commit_reruns(job: Path, tmp_path: Path, local_ray, monkeypatch) -> None:
    reference = run_job(job, str(tmp_path / "reference"), teacher_factory=scripted_factory(SCRIPT))
    out = tmp_path / "run"
    commit = Units.commit

    def dies_at_the_response_filter(table: pa.Table, path: Path) -> Path:
        if path.name == "dropped.parquet" and path.parent.name == "response_filter":
            raise KeyboardInterrupt("killed before the commit")
        return commit(table, path)

    monkeypatch.setattr(Units, "commit", staticmethod(dies_at_the_response_filter))
    with pytest.raises(KeyboardInterrupt):
        run_job(job, str(out), teacher_factory=scripted_factory(SCRIPT))
    assert not (out / "response_filter" / "dropped.parquet").exists() and not (out / "dataset").exists()
    monkeypatch.setattr(Units, "commit", staticmethod(commit))
    resumed = run_job(job, str(out), teacher_factory=scripted_factory(SCRIPT))
    assert resumed.report["generate"]["prompts_generated"] == 0  # generation was done: nothing redrawn
    con = duckdb.connect()
    rows = "SELECT id, sample_id FROM read_parquet('{}/dataset/reasoning/*.parquet') ORDER BY id"
    assert con.execute(rows.format(out)).fetchall() == con.execute(rows.format(reference.run_dir)).fetchall()


def test_stage_counters_hold_the_drops_the_samples_table_implies(job: Path, tmp_path: Path, local_ray) -> None:
    result = run_job(job, str(tmp_path / "run"), teacher_factory=scripted_factory(SCRIPT))
    report = json.loads((result.run_dir / "report.json").read_text())
    assert [report[s.name]["number"] for s in STAGES] == [1, 2, 3, 4, 5, 6]
    assert all(report[s.name]["wall_s"] >= 0 for s in STAGES)
    con, views = connect(result.run_dir)
    assert "stage_counters" in views
    counted = dict(
        con.execute(
            "SELECT operator, value FROM stage_counters WHERE stage = 'generate' AND counter = 'dropped' "
            "AND operator LIKE 'filter:%'"
        ).fetchall()
    )
    implied = dict(
        con.execute(
            "SELECT 'filter:' || f.filter, count(*) FILTER (WHERE NOT f.keep) FROM "
            "(SELECT unnest(filters) AS f FROM samples) GROUP BY ALL"
        ).fetchall()
    )
    assert counted == implied and counted["filter:truncation"] > 0
    verdicts = dict(
        con.execute(
            "SELECT 'verifier:' || v.verifier, count(*) FILTER (WHERE v.verdict = 'correct') FROM "
            "(SELECT unnest(verdicts) AS v FROM samples) GROUP BY ALL"
        ).fetchall()
    )
    kept = dict(
        con.execute(
            "SELECT operator, value FROM stage_counters WHERE operator LIKE 'verifier:%' AND counter = 'kept'"
        ).fetchall()
    )
    assert kept == verdicts
    selected = con.execute("SELECT count(*) FROM samples WHERE selected").fetchone()
    sampler = con.execute(
        "SELECT value FROM stage_counters WHERE operator = 'rejection_sampling' AND counter = 'kept'"
    ).fetchone()
    assert sampler == selected
