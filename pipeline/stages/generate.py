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

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from distillery.operators.counters import CounterSet
from distillery.operators.select.rejection import SamplingPolicy
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.pipeline.run_directory import RunDirectory
from distillery.pipeline.runtime.placement import cluster_gpus, engine_overrides, replica_options
from distillery.pipeline.runtime.progress import GenerationTally, RunProgress
from distillery.pipeline.runtime.teacher_actor import ReplicaSpec, ShardResult, TeacherReplica
from distillery.pipeline.stages.base import Stage, StageContext, StageResult, TeacherFactoryBuilder
from distillery.schemas.job import JobConfig
from distillery.schemas.teacher_config import TeacherConfig

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
"""Tries per unit: a replica that dies this often on one shard fails the run."""
ACTOR_MAX_CONCURRENCY = 1000
"""Calls an async replica accepts at once (its shards in flight plus stats polls); Ray's default is 1000."""
DISPATCH_POLL_SECONDS = 1.0
"""How long the dispatch loop waits for a finished shard before it refreshes the progress display."""


@dataclass(frozen=True, slots=True)
class WorkUnit:
    shard: str
    teacher: str
    prompts: pa.Table

    @property
    def name(self) -> str:
        return RunDirectory.generation_unit(self.shard, self.teacher)


def plan_units(job: JobConfig, run: RunDirectory, excluded: set[str]) -> tuple[list[WorkUnit], int, int]:
    """(units still to do, prompts in them, prompts already done)."""
    units, todo, done = [], 0, 0
    for shard in run.prompt_shards():
        table = pq.read_table(run.prompt_shard(shard))
        if excluded:
            table = table.filter(pc.invert(pc.is_in(table["id"], pa.array(sorted(excluded), pa.string()))))
        teachers = [job.teacher_for(d) for d in table["domain"].to_pylist()]
        for teacher in sorted(set(teachers)):
            mask = pa.array([t == teacher for t in teachers])
            unit = WorkUnit(shard, teacher, table.filter(mask))
            if run.units.is_done(run.samples_unit(unit.name)):
                done += unit.prompts.num_rows
            else:
                units.append(unit)
                todo += unit.prompts.num_rows
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


class GenerationStage(Stage):
    name = "generate"
    reads = ("prompts", "prompt_filter")

    def run(self, context: StageContext) -> StageResult:
        dispatch = GenerationDispatch(context.job, context.run, context.teacher_factory)
        report = dispatch.run(excluded_prompts=context.excluded_prompts)
        return StageResult(generation_counters(context.run), report=report)


class GenerationDispatch:
    """The teacher replicas of one run and the loop that hands them units."""

    def __init__(self, job: JobConfig, run: RunDirectory, teacher_factory: TeacherFactoryBuilder) -> None:
        self.job = job
        self.run_dir = run
        self.teacher_factory = teacher_factory
        self.replicas: dict[str, list[ray.actor.ActorHandle]] = {}

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
            policy=SamplingPolicy(self.job.generation.keep_per_prompt, self.job.generation.max_rounds),
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
                handles.append(
                    actor_class.options(
                        max_restarts=MAX_ATTEMPTS, max_concurrency=ACTOR_MAX_CONCURRENCY, **options
                    ).remote(spec)
                )
            self.replicas[name] = handles
        # Wait for every engine to load before timing anything; a failed load raises here, clearly.
        ray.get([h.ready.remote() for hs in self.replicas.values() for h in hs])

    def run(self, excluded_prompts: set[str] | None = None) -> dict[str, int]:
        units, todo, done = plan_units(self.job, self.run_dir, excluded_prompts or set())
        if not units:
            return {"prompts_generated": 0, "prompts_already_done": done}
        self._start_replicas({u.teacher for u in units})
        try:
            return self._dispatch(units, todo, done)
        finally:
            self.shutdown()

    def _dispatch(self, units: list[WorkUnit], todo: int, done: int) -> dict[str, int]:
        pending: dict[str, deque[WorkUnit]] = {t: deque() for t in self.replicas}
        for unit in units:
            pending[unit.teacher].append(unit)
        attempts: dict[str, int] = {}
        in_flight: dict[ray.ObjectRef, tuple[WorkUnit, int, str]] = {}
        load = {(t, i): 0 for t, hs in self.replicas.items() for i in range(len(hs))}
        tally = GenerationTally(baseline=_baseline(self.run_dir))
        stats_refs: dict[ray.ObjectRef, str] = {}
        finished = 0
        completion_tokens = 0
        started = time.perf_counter()
        capacity = self.job.generation.shards_in_flight
        with RunProgress(todo + done, done) as progress:
            while any(pending.values()) or in_flight:
                for (teacher, i), count in sorted(load.items(), key=lambda kv: kv[1]):
                    while count < capacity and pending[teacher]:
                        unit = pending[teacher].popleft()
                        ref = self.replicas[teacher][i].process_shard.remote(unit.prompts)
                        in_flight[ref] = (unit, i, teacher)
                        count += 1
                    load[(teacher, i)] = count
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=DISPATCH_POLL_SECONDS)
                for ref in ready:
                    unit, i, teacher = in_flight.pop(ref)
                    load[(teacher, i)] -= 1
                    try:
                        result: ShardResult = ray.get(ref)
                    except (RayActorError, ActorDiedError, ActorUnavailableError) as exc:
                        attempts[unit.name] = attempts.get(unit.name, 0) + 1
                        if attempts[unit.name] >= MAX_ATTEMPTS:
                            raise RuntimeError(f"shard {unit.name} failed {MAX_ATTEMPTS} times: {exc}") from exc
                        log.warning("replica died on shard %s (%s); retrying", unit.name, exc)
                        pending[teacher].appendleft(unit)
                        continue
                    self._write(unit, result)
                    finished += unit.prompts.num_rows
                    completion_tokens += result.completion_tokens
                self._poll_stats(stats_refs, tally)
                progress.update(done + finished, tally)
            progress.update(done + finished, tally)
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

    def _write(self, unit: WorkUnit, result: ShardResult) -> None:
        # Companions first: the samples file marks the unit done, so it must come last.
        run = self.run_dir
        run.units.commit(result.dead_letter, run.generation_dead_letter(unit.name))
        run.units.commit_json(result.counters.as_list(), run.generation_counters(unit.name))
        run.units.commit(result.samples, run.samples_unit(unit.name))

    def shutdown(self) -> None:
        for handles in self.replicas.values():
            for handle in handles:
                try:
                    ray.get(handle.shutdown.remote(), timeout=30)
                except Exception:  # a replica already gone has nothing to release
                    log.debug("replica shutdown failed", exc_info=True)
                ray.kill(handle)
        self.replicas.clear()
