"""Stage 3, generate: sample, verify and filter on Ray.

A unit of work is (prompt shard, teacher): `samples/part-00003-<teacher>.parquet`. Units whose file
exists are done (`RunDirectory.units`); the others are queued and handed to the teacher's replicas, each holding up to
`shards_in_flight` units at once, so a slow shard never idles a replica. A replica that dies is
restarted by Ray and its units are queued again; their seeds are derived from sample ids, so the
retried samples are the ones the first attempt would have drawn.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
from ray.exceptions import ActorUnavailableError, OutOfMemoryError, RayActorError, WorkerCrashedError

from distillery.operators.counters import CounterSet
from distillery.operators.select.mix import group_of, split_of
from distillery.operators.select.rejection import SamplingPolicy
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.pipeline.run_directory import RunDirectory
from distillery.pipeline.runtime.placement import cluster_gpus, engine_overrides, release_placement, replica_options
from distillery.pipeline.runtime.progress import SAMPLE_COLUMNS, GenerationTally, RunProgress, YieldLedger
from distillery.pipeline.runtime.replica_health import ReplicaHealth
from distillery.pipeline.runtime.teacher_actor import ReplicaSpec, ShardResult, ShardTask, TeacherReplica
from distillery.pipeline.stages.base import Stage, StageContext, StageResult, TeacherFactoryBuilder
from distillery.pipeline.stages.target_plan import TargetGate, TargetPlan, accepted_by_domain
from distillery.schemas.job import JobConfig
from distillery.schemas.teacher_config import TeacherConfig

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
"""Tries per unit in one run: a unit that fails transiently this often (its replica died, its engine
died, its server kept failing) is left not done, the run goes on with the others and then fails,
and a rerun tries it again."""
ACTOR_MAX_CONCURRENCY = 1000
"""Calls an async replica accepts at once (its shards in flight plus stats polls); Ray's default is 1000."""
REPLICA_SHUTDOWN_SECONDS = 30
"""How long a replica may take to release its engine and workers before it is killed."""
DISPATCH_POLL_SECONDS = 1.0
"""How long the dispatch loop waits for a finished shard before it refreshes the progress display."""


class GenerationIncomplete(RuntimeError):
    """Units that still failed transiently after MAX_ATTEMPTS tries. Nothing of them was committed or
    written off: rerunning the same job retries exactly these."""

    def __init__(self, failed: dict[str, str], units: int) -> None:
        self.failed = failed
        first, reason = next(iter(failed.items()))
        super().__init__(
            f"generation incomplete: {len(failed)} of {units} unit(s) failed after {MAX_ATTEMPTS} attempts "
            f"(transient failures, none written off; e.g. {first}: {reason}). Rerun the same command to retry them."
        )


@dataclass(frozen=True, slots=True)
class WorkUnit:
    shard: str
    """An ingest shard, or a batch of a run with targets."""
    teacher: str
    prompts: Path
    """The file the unit's prompts are in (the replica reads them; the driver holds only ids)."""
    prompt_ids: tuple[str, ...]
    group: str | None = None
    """The target group of a batch (targets stop handing out a group's batches at its goal)."""

    @property
    def name(self) -> str:
        return RunDirectory.generation_unit(self.shard, self.teacher)

    @property
    def size(self) -> int:
        return len(self.prompt_ids)

    def task(self) -> ShardTask:
        return ShardTask(self.name, str(self.prompts), self.prompt_ids)


def plan_units(
    job: JobConfig, run: RunDirectory, excluded: set[str], plan: TargetPlan | None = None
) -> tuple[list[WorkUnit], int, int]:
    """(units still to do, prompts in them, prompts already done). With targets, the units are the
    plan's batches in visit order; else the ingest shards. Only ids and domains are read."""
    units, todo, done = [], 0, 0
    if plan is not None:
        plan.materialize(run)
        sources = [(b.name, run.batch_prompts(b.name), b.group) for b in plan.batches]
    else:
        sources = [(shard, run.prompt_shard(shard), None) for shard in run.prompt_shards()]
    for shard, path, group in sources:
        table = pq.read_table(path, columns=["id", "domain"])
        if excluded and plan is None:
            table = table.filter(pc.invert(pc.is_in(table["id"], pa.array(sorted(excluded), pa.string()))))
        by_teacher: dict[str, list[str]] = {}
        for prompt, domain in zip(table["id"].to_pylist(), table["domain"].to_pylist(), strict=True):
            by_teacher.setdefault(job.teacher_for(domain), []).append(prompt)
        for teacher in sorted(by_teacher):
            unit = WorkUnit(shard, teacher, path, tuple(by_teacher[teacher]), group)
            if run.units.is_done(run.samples_unit(unit.name)):
                done += unit.size
            else:
                units.append(unit)
                todo += unit.size
    return units, todo, done


def _baseline(run: RunDirectory) -> dict[str, int]:
    files = run.samples_files()
    if not files:
        return {}
    table = pa.concat_tables([pq.read_table(f, columns=["accepted", "completion_tokens"]) for f in files])
    return {"samples": table.num_rows, "accepted": int(pc.sum(table["accepted"]).as_py() or 0)}


def generation_counters(run: RunDirectory) -> CounterSet:
    """What the samplers counted, merged over every finished unit (this run's and earlier runs')."""
    merged = CounterSet()
    for path in run.generation_counter_files():
        merged = merged + CounterSet.from_list(json.loads(path.read_text()))
    return merged


def retract_stale_response_filter(run: RunDirectory) -> None:
    """The response filter is one unit over all samples: samples committed after it (a raised target,
    a top-up pass, or a run killed between the two) make it not done, so it runs again over them."""
    done = run.response_filter.dropped
    if not run.units.is_done(done):
        return
    finished = done.stat().st_mtime
    if any(path.stat().st_mtime >= finished for path in run.samples_files()):
        run.units.retract(done)


class GenerationStage(Stage):
    name = "generate"
    reads = ("prompts", "prompt_filter")

    def run(self, context: StageContext) -> StageResult:
        dispatch = GenerationDispatch(context.job, context.run, context.teacher_factory)
        report = dispatch.run(excluded_prompts=context.excluded_prompts)
        retract_stale_response_filter(context.run)
        return StageResult(generation_counters(context.run), report=report)


class GenerationDispatch:
    """The teacher replicas of one run and the loop that hands them units."""

    def __init__(self, job: JobConfig, run: RunDirectory, teacher_factory: TeacherFactoryBuilder) -> None:
        self.job = job
        self.run_dir = run
        self.teacher_factory = teacher_factory
        self.replicas: dict[str, list[ray.actor.ActorHandle]] = {}
        self.placements: list[dict[str, object]] = []
        self.health = ReplicaHealth(self.replicas)

    def _spec(self, name: str, config: TeacherConfig, gpus: float) -> ReplicaSpec:
        overrides = engine_overrides(config, gpus)
        if overrides:
            config = config.model_copy(update={"engine_kwargs": {**overrides, **config.engine_kwargs}})
        judge = self.job.judge
        judge_factory = None
        if judge is not None and judge.teacher != name:
            judge_factory = self.teacher_factory(judge.teacher, self.job.teachers[judge.teacher])
        return ReplicaSpec(
            teacher_factory=self.teacher_factory(name, config),
            verification=self.job.verification,
            filters=self.job.filters,
            policy=SamplingPolicy(
                self.job.generation.keep_per_prompt, self.job.generation.max_rounds, self.job.generation.sampling_budget
            ),
            chat=ChatFormat(prompt_template=config.prompt_template, system_prompt=config.system_prompt),
            judge=judge,
            judge_teacher_factory=judge_factory,
            general=self.job.general,
        )

    def _start_replicas(self, teachers: set[str]) -> None:
        gpus = cluster_gpus()
        actor_class = ray.remote(TeacherReplica)
        for name in sorted(teachers):
            config = self.job.teachers[name]
            spec = self._spec(name, config, gpus)
            handles = []
            for _ in range(config.replicas):
                options = replica_options(config, gpus)
                self.placements.append(options)
                handles.append(
                    actor_class.options(
                        max_restarts=MAX_ATTEMPTS, max_concurrency=ACTOR_MAX_CONCURRENCY, **options
                    ).remote(spec)
                )
            self.replicas[name] = handles
        # Wait for every engine to load before timing anything; a failed load raises here, clearly.
        for handle in (h for hs in self.replicas.values() for h in hs):
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    ray.get(handle.ready.remote())
                    break
                except (OutOfMemoryError, WorkerCrashedError) as exc:
                    # Killed while loading (not a load that failed): Ray restarts the actor; ask again.
                    if attempt == MAX_ATTEMPTS:
                        raise
                    log.warning("a replica was killed while it loaded (%s); waiting for its restart", exc)

    def run(self, excluded_prompts: set[str] | None = None) -> dict[str, object]:
        excluded = excluded_prompts or set()
        plan = TargetPlan.build(self.job, self.run_dir, excluded) if self.job.targets is not None else None
        units, todo, done = plan_units(self.job, self.run_dir, excluded, plan)
        gate = TargetGate.open()
        if plan is not None:
            accepted = plan.accepted_by_group(accepted_by_domain(self.run_dir))
            gate = TargetGate(plan.groups, plan.goals(self.run_dir, accepted), accepted)
            units = [u for u in units if gate.admits(u.group)]
            todo = sum(u.size for u in units)
        if not units:
            return {"prompts_generated": 0, "prompts_already_done": done, "targets": gate.as_report()}
        ledger = self._ledger(plan, gate)
        self._start_replicas({u.teacher for u in units})
        try:
            report = self._dispatch(units, todo, done, gate, ledger)
        finally:
            self.shutdown()
        return {**report, "targets": gate.as_report(), "tokens": ledger.totals()}

    def _ledger(self, plan: TargetPlan | None, gate: TargetGate) -> YieldLedger:
        """The live yield and cost per target group (per split without targets), from every finished unit."""
        prices = {name: t.price_per_million_tokens for name, t in self.job.teachers.items()}
        if plan is None:
            ledger = YieldLedger(split_of, {}, {"reasoning": None, "general": None}, prices)
        else:
            targets = {g.name: g.rows for g in plan.groups}
            ledger = YieldLedger(lambda d: getattr(group_of(plan.groups, d), "name", None), gate.goals, targets, prices)
        for path in self.run_dir.samples_files():
            ledger.add(pq.read_table(path, columns=list(SAMPLE_COLUMNS)), this_run=False)
        return ledger

    def _dispatch(
        self, units: list[WorkUnit], todo: int, done: int, gate: TargetGate, ledger: YieldLedger
    ) -> dict[str, int]:
        pending: dict[str, deque[WorkUnit]] = {t: deque() for t in self.replicas}
        for unit in units:
            pending[unit.teacher].append(unit)
        attempts: dict[str, int] = {}
        failed: dict[str, str] = {}
        in_flight: dict[ray.ObjectRef, tuple[WorkUnit, int, str]] = {}
        load = {(t, i): 0 for t, hs in self.replicas.items() for i in range(len(hs))}
        health = self.health
        tally = GenerationTally(baseline=_baseline(self.run_dir))
        stats_refs: dict[ray.ObjectRef, str] = {}
        finished = 0
        completion_tokens = 0
        started = time.perf_counter()
        capacity = self.job.generation.shards_in_flight

        def retry(unit: WorkUnit, reason: str, letters: pa.Table | None = None) -> None:
            attempts[unit.name] = attempts.get(unit.name, 0) + 1
            if attempts[unit.name] < MAX_ATTEMPTS:
                log.warning("shard %s failed (%s); retrying", unit.name, reason)
                pending[unit.teacher].appendleft(unit)
                return
            failed[unit.name] = reason
            if letters is not None:
                # Visible beside the other dead letters; the unit stays not done, so a rerun retries it.
                self.run_dir.units.commit(letters, self.run_dir.generation_dead_letter(unit.name))

        snapshot = (self.run_dir.progress, self.run_dir.units.commit_json)
        with RunProgress(todo + done, done, ledger, *snapshot) as progress:
            while any(pending.values()) or in_flight:
                health.poll()
                for teacher in health.lost_teachers([t for t, queue in pending.items() if queue]):
                    while pending[teacher]:
                        failed[pending[teacher].popleft().name] = f"every replica of teacher {teacher} is gone"
                for (teacher, i), count in sorted(load.items(), key=lambda kv: kv[1]):
                    if not health.serving(teacher, i):
                        continue
                    while count < capacity and pending[teacher]:
                        unit = pending[teacher].popleft()
                        if not gate.admits(unit.group):
                            continue
                        ref = self.replicas[teacher][i].process_shard.remote(unit.task(), self.run_dir)
                        in_flight[ref] = (unit, i, teacher)
                        count += 1
                    load[(teacher, i)] = count
                if not in_flight:
                    time.sleep(DISPATCH_POLL_SECONDS)  # every replica with work left is restarting
                    ready = []
                else:
                    ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=DISPATCH_POLL_SECONDS)
                for ref in ready:
                    unit, i, teacher = in_flight.pop(ref)
                    load[(teacher, i)] -= 1
                    try:
                        result: ShardResult = ray.get(ref)
                    except (RayActorError, ActorUnavailableError, OutOfMemoryError, WorkerCrashedError) as exc:
                        # The replica's process died (killed, out of memory, its node lost): Ray restarts it.
                        health.lost(teacher, i)
                        retry(unit, f"replica died: {exc}")
                        continue
                    if not result.complete:
                        first = result.transient.column("reason")[0].as_py()
                        reason = f"{result.transient.num_rows} prompt(s) failed transiently: {first}"
                        retry(unit, reason, result.transient)
                        continue
                    gate.record(result.summary)
                    ledger.add(result.summary)
                    finished += unit.size
                    completion_tokens += result.completion_tokens
                self._poll_stats(stats_refs, tally)
                progress.update(done + finished, tally)
            progress.update(done + finished, tally)
        if failed:
            raise GenerationIncomplete(failed, len(units))
        # Engine loading is excluded: replicas were ready before the clock started.
        seconds = time.perf_counter() - started
        return {
            "prompts_generated": finished,
            "prompts_already_done": done,
            "completion_tokens": completion_tokens,
            "seconds": round(seconds, 3),
            "tokens_per_second": round(completion_tokens / seconds, 2),
        }

    def _poll_stats(self, stats_refs: dict[ray.ObjectRef, str], tally: GenerationTally) -> None:
        if stats_refs:
            ready, _ = ray.wait(list(stats_refs), num_returns=len(stats_refs), timeout=0)
            for ref in ready:
                key = stats_refs.pop(ref)
                try:
                    tally.live[key] = ray.get(ref)
                except RayActorError:
                    continue
        if not stats_refs:
            for teacher, handles in self.replicas.items():
                for i, handle in enumerate(handles):
                    stats_refs[handle.stats.remote()] = f"{teacher}/{i}"

    def shutdown(self) -> None:
        for teacher, handles in self.replicas.items():
            for i, handle in enumerate(handles):
                try:
                    # One that died and is not back (its node lost) would only make this wait.
                    if self.health.serving(teacher, i):
                        ray.get(handle.shutdown.remote(), timeout=REPLICA_SHUTDOWN_SECONDS)
                except Exception:  # a replica already gone has nothing to release
                    log.debug("replica shutdown failed", exc_info=True)
                ray.kill(handle)
        self.replicas.clear()
        for options in self.placements:
            release_placement(options)
        self.placements.clear()
