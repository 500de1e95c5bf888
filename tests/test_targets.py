"""Building to a target: a run stops handing out work once each target's rows are accepted, the
dataset holds exactly the target mix, a rerun with raised targets continues and reuses every sample,
and a source too small for its target reports the shortfall (scripted teacher on local Ray)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import job_yaml, write_jsonl
from scripted_teacher import scripted_factory

from distillery.operators.select.mix import Candidate, choose_rows, target_groups, visit_order
from distillery.pipeline.runner import run_job
from distillery.schemas.job import load_job
from distillery.schemas.targets_config import SplitTarget, TargetsConfig

MATH = 30
ALGEBRA = 30
GENERAL = 10


def _rows() -> list[dict]:
    rows = []
    for i in range(MATH):
        problem = f"Problem m{i}: what is {i} + 2?"
        rows.append({"id": f"m{i}", "problem": problem, "answer": str(i + 2), "domain": "math"})
    for i in range(ALGEBRA):
        rows.append(
            {"id": f"a{i}", "problem": f"Problem a{i}: solve x - {i} = 1.", "answer": str(i + 1), "domain": "algebra"}
        )
    for i in range(GENERAL):
        rows.append({"id": f"g{i}", "problem": f"Problem g{i}: write a line about the sea.", "domain": "general"})
    return rows


def _script() -> dict[str, list[list[str]]]:
    # Judge turns quote the request, so their key comes first (the scripted teacher takes the first match).
    script: dict[str, list[list[str]]] = {"Request:\n": [["SCORE: 9"]]}
    for row in _rows():
        key = row["problem"].split(":")[0] + ":"
        if row["domain"] == "general":
            script[key] = [[f"<think>\nA calm line.\n</think>\n\nThe sea, {row['id']}, is calm."]]
        elif int(row["id"][1:]) % 3 == 2:
            script[key] = [["<think>\nguess\n</think>\n\n\\boxed{-1}"]]  # never right: the prompt is given up
        else:
            script[key] = [[f"<think>\nwork\n</think>\n\n\\boxed{{{row['answer']}}}"]]
    return script


TARGETS = """
targets:
  reasoning: {{rows: {reasoning}, mix: {{math: {math}, algebra: {algebra}}}}}
  general: {{rows: {general}}}
  margin: 0.25
  seed: 7
"""


def _job(folder: Path, reasoning: int, general: int) -> Path:
    write_jsonl(folder / "prompts.jsonl", _rows())
    text = job_yaml("prompts.jsonl", n=2, max_rounds=1, keep=1).replace(
        "    fields: {problem: problem, answer: answer, domain: domain, id: id}\n",
        "    fields: {problem: problem, answer: answer, domain: domain, id: id}\n    require_answer: false\n",
    )
    domains = "  domains: {math: {type: math}, algebra: {type: math}}\n"
    text = text.replace("  timeout_s: 10\n", "  timeout_s: 10\n" + domains)
    text += "judge: {teacher: t}\ndedup: {enabled: false}\ndecontamination: {enabled: false}\n"
    math_rows = reasoning * 2 // 3
    text += TARGETS.format(reasoning=reasoning, math=math_rows, algebra=reasoning - math_rows, general=general)
    job = folder / "job.yaml"
    job.write_text(text)
    return job


def _dataset_domains(run: Path) -> dict[str, int]:
    rows = duckdb.sql(f"SELECT domain, count(*) FROM '{run}/dataset/*/*.parquet' GROUP BY domain").fetchall()
    return dict(rows)


def _dataset_samples(run: Path) -> set[str]:
    return {r[0] for r in duckdb.sql(f"SELECT sample_id FROM '{run}/dataset/*/*.parquet'").fetchall()}


def _sampled_prompts(run: Path) -> int:
    return duckdb.sql(f"SELECT count(DISTINCT prompt_id) FROM '{run}/samples/*.parquet'").fetchall()[0][0]


def test_run_stops_at_its_targets_and_a_raised_target_continues(tmp_path, local_ray):
    job = _job(tmp_path, reasoning=12, general=4)
    out = tmp_path / "run"
    first = run_job(job, str(out), teacher_factory=scripted_factory(_script(), n=2))
    assert _dataset_domains(out) == {"math": 8, "algebra": 4, "general": 4}
    assert first.report["dataset"]["rows"] == {"reasoning": 12, "general": 4}
    assert all(o["status"] == "met" for o in first.report["dataset"]["outcomes"])
    # Stopped early: goals are 10 / 5 / 5 accepted rows (25% margin); 2 of 3 reasoning prompts pass.
    sampled = _sampled_prompts(out)
    assert sampled < (MATH + ALGEBRA + GENERAL) / 2
    card = (out / "dataset" / "README.md").read_text()
    assert "- math: 8 of 8 rows: met" in card and "- general: 4 of 4 rows: met" in card
    before = {p.name: pq.read_table(p) for p in (out / "samples").glob("*.parquet")}
    first_rows = _dataset_samples(out)

    # The same run directory takes the raised targets: the config hash leaves targets out.
    raised = _job(tmp_path, reasoning=24, general=8)
    assert load_job(raised).config_hash() == first.report["config_hash"]
    second = run_job(raised, str(out), teacher_factory=scripted_factory(_script(), n=2))
    assert _dataset_domains(out) == {"math": 16, "algebra": 8, "general": 8}
    after = {p.name: pq.read_table(p) for p in (out / "samples").glob("*.parquet")}
    assert set(before) < set(after)
    assert all(after[name].equals(table) for name, table in before.items())  # every sample reused as it was
    assert second.report["generate"]["prompts_already_done"] == sampled
    assert _sampled_prompts(out) < MATH + ALGEBRA + GENERAL
    # the response filter (one unit over all samples) ran again over the new samples
    filtered = (out / "response_filter" / "dropped.parquet").stat().st_mtime
    assert filtered >= max(p.stat().st_mtime for p in (out / "samples").glob("*.parquet"))
    # the rows of the first dataset are still there: the earliest visited prompts are taken first
    assert first_rows <= _dataset_samples(out)


def test_a_source_too_small_reports_its_shortfall(tmp_path, local_ray):
    job = _job(tmp_path, reasoning=6, general=25)
    out = tmp_path / "run"
    result = run_job(job, str(out), teacher_factory=scripted_factory(_script(), n=2))
    outcomes = {o["group"]: o for o in result.report["dataset"]["outcomes"]}
    assert outcomes["general"]["status"] == "short"
    assert outcomes["general"]["selected"] == GENERAL and outcomes["general"]["shortfall"] == 25 - GENERAL
    assert outcomes["general"]["reason"] == "sources ran out" and outcomes["general"]["prompts_left"] == 0
    assert outcomes["math"]["status"] == "met" and outcomes["algebra"]["status"] == "met"
    card = (out / "dataset" / "README.md").read_text()
    assert "general: 10 of 25 rows: short by 15 (sources ran out" in card
    saved = json.loads((out / "dataset" / "targets.json").read_text())
    assert saved["needs_more"] is False


def test_shares_round_to_the_row_count_and_counts_are_kept():
    shares = SplitTarget(rows=10, mix={"math": 0.55, "code": 0.3, "science": 0.15})
    assert shares.domain_rows() == {"math": 6, "code": 3, "science": 1}
    assert SplitTarget(rows=12, mix={"math": 8, "code": 4}).domain_rows() == {"math": 8, "code": 4}
    with pytest.raises(ValueError, match="shares that sum to 1"):
        SplitTarget(rows=12, mix={"math": 0.5, "code": 0.3})


def test_visit_order_is_seeded_and_interleaves_sources_in_proportion():
    ids = [f"a{i}" for i in range(30)] + [f"b{i}" for i in range(10)]
    sources = ["a"] * 30 + ["b"] * 10
    domains = ["math"] * 40
    order = visit_order(ids, sources, domains, seed=1)
    assert sorted(order) == list(range(40)) and order == visit_order(ids, sources, domains, seed=1)
    assert order != visit_order(ids, sources, domains, seed=2)
    first_eight = [sources[p] for p in order[:8]]
    assert first_eight.count("a") == 6 and first_eight.count("b") == 2  # 3:1, as the sources
    assert order[:6] != sorted(order[:6])  # shuffled within a source


def test_selection_takes_exactly_the_target_earliest_visited_first():
    targets = TargetsConfig(reasoning=SplitTarget(rows=3, mix={"math": 2, "code": 1}))
    groups = target_groups(targets, ["math", "code", "general", "logic"])
    assert [(g.name, g.rows) for g in groups] == [("code", 1), ("math", 2), ("general", None)]
    candidates = [Candidate(f"m{r}", "math", r, 0, 0) for r in (5, 1, 3)] + [
        Candidate("c", "code", 2, 0, 0),
        Candidate("l", "logic", 0, 0, 0),  # not in the mix: never selected
        Candidate("g1", "general", 9, 0, 0),
        Candidate("g2", "general", 8, 0, 0),
    ]
    selection = choose_rows(groups, candidates, accepted={"math": 3}, prompts_left={"code": 4})
    assert selection.chosen == {"m1", "m3", "c", "g1", "g2"}
    assert not selection.needs_more()


def test_the_r1_recipe_validates_without_loading_anything():
    import os
    import subprocess
    import sys

    recipe = Path(__file__).parents[1] / "jobs" / "r1_800k.yaml"
    # Offline, hub data that is not cached is an error; a machine that may download gets warnings.
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    command = [sys.executable, "-m", "distillery.pipeline.commands.cli", "validate", str(recipe)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "valid. job 'r1_800k'" in done.stdout
    job = load_job(recipe)
    assert job.targets is not None and job.targets.reasoning is not None
    assert job.targets.reasoning.domain_rows() == {"math": 330000, "code": 180000, "science": 90000}
    assert job.journey.share == job.targets.journey_share == 0.1
    r1 = job.teachers["r1"]
    assert r1.tensor_parallel_size == 8 and r1.replicas == 4 and r1.sampling.repetition_detection is not None
    assert job.filters.think_format.require_think == ["r1"]


def test_a_journey_share_of_a_reasoning_target_is_journey_traces():
    targets = TargetsConfig(reasoning=SplitTarget(rows=10))
    groups = target_groups(targets, ["math"])
    samples = [Candidate(f"s{r}", "math", r, 0, 0) for r in range(20)]
    traces = [Candidate(f"j{r}", "math", r, 0, 0, journey=True) for r in range(5)]
    selection = choose_rows(groups, samples + traces, accepted={}, prompts_left={}, journey_share=0.2)
    assert selection.chosen == {"j0", "j1"} | {f"s{r}" for r in range(8)}
    few = choose_rows(groups, samples + traces[:1], accepted={}, prompts_left={}, journey_share=0.2)
    assert few.chosen == {"j0"} | {f"s{r}" for r in range(9)}  # missing journey rows are made up by samples


def test_a_selection_short_after_decontamination_goes_back_for_more(tmp_path, local_ray, caplog):
    # A quarter of the math prompts leak into a benchmark: their accepted samples are dropped at stage 5
    # (prompt-side checks are off), so the first selection falls short and the run generates more.
    leaked = [r for r in _rows() if r["domain"] == "math" and int(r["id"][1:]) % 4 == 0]
    write_jsonl(tmp_path / "bench.jsonl", [{"id": r["id"], "problem": r["problem"]} for r in leaked])
    job = _job(tmp_path, reasoning=12, general=4)
    text = job.read_text().replace("decontamination: {enabled: false}\n", "")
    text += (
        "decontamination:\n  prompts: false\n  benchmarks: ['bench.jsonl:problem']\n"
        "  embedding: {enabled: false}\n  ngram: {n: 5}\n"
    )
    job.write_text(text)
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="distillery.pipeline.runner"):
        result = run_job(job, str(out), teacher_factory=scripted_factory(_script(), n=2))
    assert "targets fell short and prompts remain: back to generation" in caplog.text
    assert _dataset_domains(out) == {"math": 8, "algebra": 4, "general": 4}
    outcomes = {o["group"]: o for o in result.report["dataset"]["outcomes"]}
    assert outcomes["math"]["status"] == "met" and outcomes["math"]["candidates"] < outcomes["math"]["accepted"]
    contaminated = duckdb.sql(
        f"SELECT count(*) FROM '{out}/response_filter/dropped.parquet' WHERE reason = 'contaminated'"
    ).fetchall()[0][0]
    assert contaminated > 0
    # more math rows were accepted than the first pass aimed at (10: the target and its 25% margin)
    assert outcomes["math"]["accepted"] > 10
