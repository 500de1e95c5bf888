"""Stage 2's matching as tasks: the driver reads no prompt texts but those of the prompts it drops
(and, when it embeds them itself, those of embedding units not yet written), and the judge still
hears the borderline matches the tasks find, on the same data as tests/test_dedup_stages.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from scripted_teacher import ScriptedTeacher
from test_dedup_stages import DECONTAM, PROMPTS, make_run, pid

from distillery.pipeline.stages import prompt_filter
from distillery.pipeline.stages.prompt_filter import run_prompt_filter
from distillery.schemas.job import load_job

BY_ROW = {p["id"]: pid(p["problem"]) for p in PROMPTS}


def dropped_rows(run_path: Path) -> dict[str, tuple]:
    table = pq.read_table(run_path / "prompt_filter" / "dropped.parquet").to_pylist()
    return {r["id"]: (r["reason"], r["duplicate_of"], r["benchmark_item"], r["detector"]) for r in table}


@pytest.mark.parametrize("actors", [0, 1], ids=["embedding-in-driver", "embedding-actor"])
def test_on_ray_the_driver_reads_only_the_dropped_prompts_texts(
    tmp_path: Path, local_ray, monkeypatch: pytest.MonkeyPatch, actors: int
):
    read_in_driver: list[int] = []
    reader = prompt_filter.shard_problems

    def recording(shard: str, positions: Sequence[int]) -> list[str]:
        read_in_driver.append(len(positions))
        return reader(shard, positions)

    # Only the driver's module is patched: the Ray workers that run the tasks import their own.
    monkeypatch.setattr(prompt_filter, "shard_problems", recording)
    run, job_path = make_run(tmp_path, DECONTAM + f"dedup:\n  embedder: {{actors: {actors}}}\n")
    job = load_job(job_path)
    run_prompt_filter(job, run, tmp_path)
    assert dropped_rows(run.path) == {
        BY_ROW["q2"]: ("exact_duplicate", BY_ROW["q1"], None, None),
        BY_ROW["q3"]: ("near_duplicate", BY_ROW["q1"], None, None),
        BY_ROW["q4"]: ("contaminated", None, "b1", "embedding"),
        BY_ROW["q5"]: ("contaminated", None, "b3", "ngram"),
    }
    # Shards of 3: embedded in the driver, one unit per shard (the 6 prompts left after exact
    # dedup); an actor reads its units' problems itself. Then the dropped prompts of shards 0 and 1
    # (q2, q3 and q4, q5): the matching read its texts elsewhere.
    assert read_in_driver == ([2, 3, 1] if actors == 0 else []) + [2, 2]

    first = pq.read_table(run.path / "prompt_filter" / "dropped.parquet")
    (run.path / "prompt_filter" / "dropped.parquet").unlink()
    read_in_driver.clear()
    run_prompt_filter(job, run, tmp_path)
    assert read_in_driver == [2, 2]  # the units are done: only the dropped prompts' problems
    assert pq.read_table(run.path / "prompt_filter" / "dropped.parquet").equals(first)


JUDGED = (
    DECONTAM
    + """  judge: {enabled: true, teacher: t, low: 0.3}
dedup:
  prompts: {threshold: 0.8, same_numbers: false}
"""
)


def test_the_judge_hears_the_borderline_matches_the_tasks_find(tmp_path: Path):
    run, job_path = make_run(tmp_path, JUDGED)
    judge = ScriptedTeacher({"train": [["SAME"]], "": [["DIFFERENT"]]}, n=1, name="judge")
    run_prompt_filter(load_job(job_path), run, tmp_path, judge_teacher=judge)
    # Below the embedding detector's own floor (0.75), only in the judge's band: the tasks must
    # return such matches for the driver's judge to see them.
    assert judge.calls == {"train": 1}
    dropped = dropped_rows(run.path)
    # q3 is q1 reworded: the judge (scripted to say SAME of any train problem) drops it.
    assert dropped[BY_ROW["q3"]] == ("contaminated", None, "b1", "judge")
    assert BY_ROW["q1"] not in dropped
    audit = pq.read_table(run.path / "decontam_audit" / "prompts.parquet").to_pylist()
    (judged,) = [r for r in audit if r["detector"] == "judge"]
    assert (judged["item_id"], judged["contaminated"]) == (BY_ROW["q3"], True)
    assert judged["item_text"] == PROMPTS[2]["problem"]
    assert judged["score"] < 0.75
