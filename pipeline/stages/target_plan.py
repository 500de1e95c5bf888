"""A run with `targets`: its batches of prompts in visit order, what has been accepted per target
group, and the goals generation stops at (the selection rules are in operators/select/mix.py).

Batches are cut from each group's visit order (`visit_order`), `shard_size` prompts each, and written
once to `RUN/batches/` when first planned. The order depends only on the prompts and the targets'
seed, so the batches of a rerun are the batches of the first run: a raised target continues with the
next batch, and every finished batch is reused. Prompts that earlier runs without targets sampled
(ingest-shard units) keep their samples and are not batched again.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillery.operators.select.mix import (
    Candidate,
    MixSelection,
    TargetGroup,
    choose_rows,
    goal,
    group_of,
    target_groups,
    visit_order,
)
from distillery.pipeline.run_directory import BATCH_PATTERN, RunDirectory
from distillery.schemas.job import JobConfig
from distillery.schemas.targets_config import TargetsConfig


@dataclass(frozen=True, slots=True)
class Batch:
    name: str
    group: str
    prompt_ids: tuple[str, ...]


@dataclass
class TargetPlan:
    targets: TargetsConfig
    groups: list[TargetGroup]
    ranks: dict[str, int]
    """Prompt id -> its place in the visit order (over all prompts of the run)."""
    batches: list[Batch]
    """Every batch, groups interleaved (each group's k-th batch before any group's k+1-th)."""
    prompt_shards: dict[str, str] = field(default_factory=dict)
    """Prompt id -> the ingest shard it is in."""

    @classmethod
    def build(cls, job: JobConfig, run: RunDirectory, excluded: set[str]) -> TargetPlan:
        assert job.targets is not None
        index = _prompt_index(run, excluded)
        ids, sources, domains = index["id"], index["source"], index["domain"]
        order = visit_order(ids, sources, domains, job.targets.seed)
        groups = target_groups(job.targets, domains)
        sampled = _sampled_by_shard_units(run)
        members: dict[str, list[str]] = {g.name: [] for g in groups}
        for position in order:
            group = group_of(groups, domains[position])
            if group is not None and ids[position] not in sampled:
                members[group.name].append(ids[position])
        size = job.generation.shard_size
        per_group = {
            name: [
                Batch(run.batch_name(name, k), name, tuple(p[start : start + size]))
                for k, start in enumerate(range(0, len(p), size))
            ]
            for name, p in members.items()
        }
        names = [b.name for bs in per_group.values() for b in bs]
        if len(set(names)) != len(names):
            raise ValueError(f"two target groups have the same file name once sanitized: {sorted(per_group)}")
        depth = max((len(bs) for bs in per_group.values()), default=0)
        batches = [bs[k] for k in range(depth) for bs in per_group.values() if k < len(bs)]
        return cls(
            job.targets,
            groups,
            {ids[p]: rank for rank, p in enumerate(order)},
            batches,
            dict(zip(ids, index["shard"], strict=True)),
        )

    def group(self, name: str) -> TargetGroup:
        return next(g for g in self.groups if g.name == name)

    def materialize(self, run: RunDirectory) -> None:
        """Write the prompts of every batch not written yet (one pass over the ingest shards)."""
        missing = [b for b in self.batches if not run.units.is_done(run.batch_prompts(b.name))]
        if not missing:
            return
        wanted = {p for b in missing for p in b.prompt_ids}
        shards = sorted({self.prompt_shards[p] for p in wanted})
        table = pa.concat_tables(
            [
                pq.read_table(run.prompt_shard(s)).filter(pc.is_in(pc.field("id"), pa.array(sorted(wanted))))
                for s in shards
            ]
        )
        row_of = {pid: row for row, pid in enumerate(table.column("id").to_pylist())}
        for batch in missing:
            rows = pa.array([row_of[p] for p in batch.prompt_ids], pa.int64())
            run.units.commit(table.take(rows), run.batch_prompts(batch.name))

    def batch_done(self, run: RunDirectory, batch: Batch, teachers: set[str]) -> bool:
        return all(run.units.is_done(run.samples_unit(run.generation_unit(batch.name, t))) for t in teachers)

    def prompts_left(self, run: RunDirectory, teachers_of: dict[str, set[str]]) -> dict[str, int]:
        """Prompts per group in batches not done yet. `teachers_of`: batch name -> its teachers."""
        left: Counter[str] = Counter()
        for batch in self.batches:
            if not self.batch_done(run, batch, teachers_of[batch.name]):
                left[batch.group] += len(batch.prompt_ids)
        return dict(left)

    def goals(self, run: RunDirectory, accepted: dict[str, int]) -> dict[str, int]:
        """Accepted rows generation aims at per targeted group: the target plus the margin, scaled by
        the survival seen in the last selection; past the accepted count when that fell short."""
        last = last_outcomes(run)
        goals: dict[str, int] = {}
        for group in self.groups:
            if group.rows is None:
                continue
            outcome = last.get(group.name, {})
            survival = None
            if outcome.get("accepted"):
                survival = int(outcome.get("candidates", 0)) / int(outcome["accepted"])
            aim = goal(group.rows, self.targets.margin, survival)
            shortfall = int(outcome.get("shortfall", 0)) if outcome.get("target") == group.rows else 0
            if shortfall:
                aim = max(aim, accepted.get(group.name, 0) + shortfall)
            goals[group.name] = aim
        return goals

    def accepted_by_group(self, by_domain: dict[str, int]) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for domain, n in by_domain.items():
            group = group_of(self.groups, domain)
            if group is not None:
                counts[group.name] += n
        return dict(counts)


def accepted_by_domain(run: RunDirectory) -> dict[str, int]:
    """Selected samples (accepted rows before dedup and decontamination) per domain, over every unit."""
    counts: Counter[str] = Counter()
    for path in run.samples_files():
        table = pq.read_table(path, columns=["domain", "selected"])
        counts.update(selected_by_domain(table))
    return dict(counts)


def selected_by_domain(table: pa.Table) -> Counter[str]:
    """Selected samples per domain in one samples table."""
    picked = table.filter(pc.field("selected")).column("domain").to_pylist()
    return Counter(picked)


def last_outcomes(run: RunDirectory) -> dict[str, dict[str, object]]:
    """The last selection's outcome per group ({} before the first)."""
    if not run.units.is_done(run.targets_outcome):
        return {}
    return {o["group"]: o for o in json.loads(run.targets_outcome.read_text())["outcomes"]}


def teachers_of_batches(job: JobConfig, run: RunDirectory, plan: TargetPlan) -> dict[str, set[str]]:
    """The teachers each batch's prompts go to (a group spans domains with their own teachers)."""
    teachers = {g.name: {job.teacher_for(d) for d in g.domains} for g in plan.groups}
    return {b.name: teachers[b.group] for b in plan.batches}


def select_mix(
    job: JobConfig, run: RunDirectory, excluded_prompts: set[str], excluded_samples: set[str]
) -> MixSelection:
    """The dataset rows of a run with targets: exactly each target, earliest visited prompts first."""
    plan = TargetPlan.build(job, run, excluded_prompts)
    candidates: list[Candidate] = []
    accepted: Counter[str] = Counter()
    for path in run.samples_files():
        table = pq.read_table(path, columns=["id", "prompt_id", "domain", "round", "index", "selected"])
        table = table.filter(pc.field("selected"))
        accepted.update(table.column("domain").to_pylist())
        for sample_id, prompt, domain, round_, index in zip(
            *(table.column(c).to_pylist() for c in ("id", "prompt_id", "domain", "round", "index")), strict=True
        ):
            if sample_id in excluded_samples or prompt not in plan.ranks:
                continue
            candidates.append(Candidate(sample_id, domain, plan.ranks[prompt], round_, index))
        candidates += _journey_candidates(run, path.stem, plan.ranks, excluded_samples) if job.journey.enabled else []
    left = plan.prompts_left(run, teachers_of_batches(job, run, plan))
    share = job.journey.share if job.journey.enabled else 0.0
    return choose_rows(plan.groups, candidates, plan.accepted_by_group(dict(accepted)), left, share)


def _journey_candidates(run: RunDirectory, unit: str, ranks: dict[str, int], excluded: set[str]) -> list[Candidate]:
    """The accepted journey traces (stage 4) made from one generation unit."""
    path = run.journey_unit(unit)
    if not run.units.is_done(path):
        return []
    table = pq.read_table(path, columns=["id", "prompt_id", "domain", "round", "index", "accepted"])
    table = table.filter(pc.field("accepted"))
    return [
        Candidate(trace, domain, ranks[prompt], round_, index, journey=True)
        for trace, prompt, domain, round_, index in zip(
            *(table.column(c).to_pylist() for c in ("id", "prompt_id", "domain", "round", "index")), strict=True
        )
        if trace not in excluded and prompt in ranks
    ]


def is_batch_unit(unit: str) -> bool:
    return BATCH_PATTERN.match(unit) is not None


def _prompt_index(run: RunDirectory, excluded: set[str]) -> dict[str, list[str]]:
    index: dict[str, list[str]] = {"id": [], "source": [], "domain": [], "shard": []}
    for shard in run.prompt_shards():
        table = pq.read_table(run.prompt_shard(shard), columns=["id", "source", "domain"])
        for pid, source, domain in zip(*(table.column(c).to_pylist() for c in ("id", "source", "domain")), strict=True):
            if pid in excluded:
                continue
            index["id"].append(pid)
            index["source"].append(source)
            index["domain"].append(domain)
            index["shard"].append(shard)
    return index


def _sampled_by_shard_units(run: RunDirectory) -> set[str]:
    """Prompts that ingest-shard units (a run before targets were set) already sampled."""
    sampled: set[str] = set()
    for path in run.samples_files():
        if not is_batch_unit(path.stem):
            sampled.update(pq.read_table(path, columns=["prompt_id"]).column("prompt_id").to_pylist())
    return sampled


class TargetGate:
    """Generation's stop rule: a group's units are handed out while its accepted rows are below its
    goal; work already in flight finishes (and its rows count)."""

    def __init__(self, groups: list[TargetGroup], goals: dict[str, int], accepted: dict[str, int]) -> None:
        self.groups = groups
        self.goals = goals
        self.accepted = Counter(accepted)
        self.skipped: Counter[str] = Counter()

    @classmethod
    def open(cls) -> TargetGate:
        """No targets: every unit is handed out."""
        return cls([], {}, {})

    def admits(self, group: str | None) -> bool:
        if group is None or group not in self.goals:
            return True
        if self.accepted[group] < self.goals[group]:
            return True
        self.skipped[group] += 1
        return False

    def record(self, samples: pa.Table) -> None:
        for domain, n in selected_by_domain(samples.select(["domain", "selected"])).items():
            group = group_of(self.groups, domain)
            if group is not None:
                self.accepted[group.name] += n

    def as_report(self) -> dict[str, object]:
        return {
            g: {"goal": goal_rows, "accepted": self.accepted[g], "units_not_handed_out": self.skipped[g]}
            for g, goal_rows in sorted(self.goals.items())
        }
