"""Stage 4, journey: wrong-then-corrected traces built from a prompt's rejected and accepted samples.

```
RUN/journey/part-00000-<teacher>.parquet     JourneySample rows made from that samples unit (accepted
                                             and rejected traces; an empty file when none was planned)
RUN/counters/journey/part-00000-<teacher>.json   what the unit's builder counted (written first)
```

The plan (which prompts, how many traces) is a pure function of the samples table and the job, so a
resumed run plans the same and only builds the units whose file is missing. The work runs in Ray
actors (`JourneyWorker`), one per teacher when critic, continue or rewrite need a model, else one
without a model; each holds the verifier pool and the filters every trace goes through.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
from ray.exceptions import RayTaskError

from distillery.operators.counters import CounterSet
from distillery.operators.filters.registry import build_filters
from distillery.operators.journey.builder import JourneyBuilder, JourneyTeacherError, build_unit
from distillery.operators.journey.plan import PromptPool, eligible, plan_quotas, prompt_pools
from distillery.operators.select.general_policy import GENERAL_DOMAIN, GeneralPolicy
from distillery.operators.teachers.base import Teacher
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.operators.verifiers.pool import VerifierPool
from distillery.pipeline.run_directory import SHARD_PATTERN, RunDirectory, Units
from distillery.pipeline.runtime.cpu_tasks import run_tasks, shared
from distillery.pipeline.runtime.placement import cluster_gpus, engine_overrides, replica_options
from distillery.pipeline.stages.base import Stage, StageContext, StageResult
from distillery.schemas.arrow import from_table, to_table
from distillery.schemas.filter_config import FiltersConfig
from distillery.schemas.general_config import GeneralConfig
from distillery.schemas.job import JobConfig
from distillery.schemas.journey_config import JourneyConfig
from distillery.schemas.records import Generation, JourneySample, Prompt
from distillery.schemas.verifier_config import VerificationConfig

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
"""Tries per unit when its teacher fails transiently or its worker dies."""
WORKER_CPUS = 1.0
"""CPUs of a worker without a model (its verifier processes do the work)."""


@dataclass(frozen=True, slots=True)
class JourneyWorkerSpec:
    config: JourneyConfig
    verification: VerificationConfig
    filters: FiltersConfig
    general: GeneralConfig
    chats: dict[str, ChatFormat]
    teacher_factory: Callable[[], Teacher] | None


@dataclass(frozen=True, slots=True)
class JourneyUnitFiles:
    """Where one unit's outputs go; whoever builds the unit commits them, so traces never pass
    through the driver."""

    counters: Path
    traces: Path

    def commit(self, traces: pa.Table, counters: CounterSet) -> None:
        # The counters first: the traces file marks the unit done.
        Units.commit_json(counters.as_list(), self.counters)
        Units.commit(traces, self.traces)


class JourneyWorker:
    """One Ray actor: a teacher (when the job needs one), the verifier pool and the filters."""

    def __init__(self, spec: JourneyWorkerSpec) -> None:
        self.spec = spec
        self.teacher = spec.teacher_factory() if spec.teacher_factory is not None else None
        self.verifiers = VerifierPool(spec.verification)
        self.general = GeneralPolicy(spec.general)

    def ready(self) -> bool:
        return True

    async def process_unit(
        self, prompts_path: str, samples_path: str, quotas: dict[str, int], files: JourneyUnitFiles
    ) -> int:
        """Builds and commits one samples unit's traces; the number built. The actor reads the
        unit's planned samples and their prompts itself and writes the traces itself, so no text
        passes through the driver."""
        wanted = pa.array(sorted(quotas), pa.string())
        samples = pq.read_table(samples_path).filter(pc.is_in(pc.field("prompt_id"), wanted))
        prompts = pq.read_table(prompts_path).filter(pc.is_in(pc.field("id"), wanted))
        builder = JourneyBuilder(
            self.spec.config,
            self.verifiers,
            build_filters(self.spec.filters, self.general.answers_directly),
            self.spec.chats,
            self.teacher,
        )
        by_id = {p.id: p for p in from_table(prompts, Prompt)}
        traces = await build_unit(builder, by_id, from_table(samples, Generation), quotas)
        counted = [builder.counters, builder.rewrites] if self.spec.config.rewrite else [builder.counters]
        files.commit(to_table(traces, JourneySample), CounterSet(counted))
        return len(traces)

    def shutdown(self) -> None:
        self.verifiers.close()
        if self.teacher is not None:
            self.teacher.close()


def unit_teacher(unit: str) -> str:
    match = SHARD_PATTERN.match(unit)
    if match is None:
        raise ValueError(f"{unit!r} is not a samples unit name (part-NNNNN-<teacher>)")
    return match.group(2)


def _read_samples(path: str) -> list[Generation]:
    return from_table(pq.read_table(path), Generation)


@dataclass
class _Plan:
    quotas: dict[str, int]
    eligible_prompts: int
    shortcut_rows: int


def plan_unit(path: str, excluded_prompts: set[str]) -> tuple[list[PromptPool], int]:
    """Task: one samples file's prompt pools and shortcut rows (its texts never leave the task)."""
    samples = [s for s in _read_samples(path) if s.prompt_id not in excluded_prompts and s.domain != GENERAL_DOMAIN]
    return prompt_pools(samples), sum(s.selected for s in samples)


def plan_run(job: JobConfig, run: RunDirectory, excluded_prompts: set[str]) -> _Plan:
    excluded = shared(excluded_prompts)
    counts: dict[str, list[int]] = {}
    shortcut = 0
    # A prompt's samples from several teachers are in several files: its pool is the sum, in file order.
    for pools, selected in run_tasks(plan_unit, [(str(path), excluded) for path in run.samples_files()]):
        shortcut += selected
        for pool in pools:
            entry = counts.setdefault(pool.prompt_id, [0, 0, 0])
            entry[0] += pool.samples
            entry[1] += pool.accepted
            entry[2] += pool.wrong
    pools = [PromptPool(p, *c) for p, c in counts.items()]
    quotas = plan_quotas(pools, job.journey, shortcut)
    return _Plan(quotas, sum(eligible(p, job.journey) for p in pools), shortcut)


class JourneyStage(Stage):
    name = "journey"
    reads = ("samples", "prompts")

    def run(self, context: StageContext) -> StageResult:
        config = context.job.journey
        if not config.enabled:
            return StageResult(report={"enabled": False, "traces": 0})
        run = context.run
        plan = plan_run(context.job, run, context.excluded_prompts)
        units = [p.stem for p in run.samples_files()]
        todo = [u for u in units if not run.units.is_done(run.journey_unit(u))]
        if todo:
            JourneyDispatch(context, plan.quotas).run(todo)
        counters = CounterSet()
        for path in run.journey_counter_files():
            counters = counters + CounterSet.from_list(json.loads(path.read_text()))
        accepted = [pq.read_table(f, columns=["accepted"])["accepted"] for f in run.journey_files()]
        traces = pa.chunked_array([c for a in accepted for c in a.chunks], pa.bool_())
        return StageResult(
            counters,
            report={
                "enabled": True,
                "target_share": config.share,
                "shortcut_rows": plan.shortcut_rows,
                "eligible_prompts": plan.eligible_prompts,
                "planned_prompts": len(plan.quotas),
                "planned_traces": sum(plan.quotas.values()),
                "traces": len(traces),
                "accepted": int(pc.sum(traces).as_py() or 0),
                "units_built": len(todo),
            },
        )


class JourneyDispatch:
    def __init__(self, context: StageContext, quotas: dict[str, int]) -> None:
        self.context = context
        self.quotas = quotas
        self.workers: dict[str | None, ray.actor.ActorHandle] = {}

    def _worker_key(self, unit: str) -> str | None:
        """The teacher a unit's traces need (None: no model)."""
        config = self.context.job.journey
        if not config.needs_teacher:
            return None
        return config.teacher or unit_teacher(unit)

    def _start(self, key: str | None) -> ray.actor.ActorHandle:
        job = self.context.job
        chats = {
            name: ChatFormat(prompt_template=t.prompt_template, system_prompt=t.system_prompt)
            for name, t in job.teachers.items()
        }
        factory = None
        options: dict[str, object] = {"num_cpus": WORKER_CPUS, "num_gpus": 0}
        if key is not None:
            teacher = job.teachers[key]
            gpus = cluster_gpus()
            overrides = engine_overrides(teacher, gpus)
            if overrides:
                teacher = teacher.model_copy(update={"engine_kwargs": {**overrides, **teacher.engine_kwargs}})
            factory = self.context.teacher_factory(key, teacher)
            options = replica_options(teacher, gpus)
        spec = JourneyWorkerSpec(job.journey, job.verification, job.filters, job.general, chats, factory)
        handle = ray.remote(JourneyWorker).options(max_restarts=MAX_ATTEMPTS, **options).remote(spec)
        ray.get(handle.ready.remote())
        return handle

    def _submit(self, unit: str) -> ray.ObjectRef | None:
        """The unit's task, or None when none of its prompts is planned (its empty file is written here)."""
        run = self.context.run
        # Only the prompt ids: the worker reads the texts.
        prompt_ids = pq.read_table(run.samples_unit(unit), columns=["prompt_id"])["prompt_id"].to_pylist()
        quotas = {p: self.quotas[p] for p in set(prompt_ids) if p in self.quotas}
        files = JourneyUnitFiles(run.journey_counters(unit), run.journey_unit(unit))
        if not quotas:
            files.commit(to_table([], JourneySample), CounterSet())
            return None
        key = self._worker_key(unit)
        if key not in self.workers:
            self.workers[key] = self._start(key)
        return self.workers[key].process_unit.remote(
            str(run.prompts_of_unit(unit)), str(run.samples_unit(unit)), quotas, files
        )

    def run(self, units: list[str]) -> None:
        # A worker holds at most `shards_in_flight` units at once (as a generation replica does): an
        # async actor would otherwise start every submitted unit, and hold all their texts, at once.
        capacity = self.context.job.generation.shards_in_flight
        pending: dict[str | None, deque[str]] = {}
        for unit in units:
            pending.setdefault(self._worker_key(unit), deque()).append(unit)
        attempts = {u: 1 for u in units}
        in_flight: dict[ray.ObjectRef, tuple[str, str | None]] = {}
        held: Counter[str | None] = Counter()
        try:
            while any(pending.values()) or in_flight:
                for key, queue in pending.items():
                    while queue and held[key] < capacity:
                        unit = queue.popleft()
                        ref = self._submit(unit)
                        if ref is not None:
                            in_flight[ref] = (unit, key)
                            held[key] += 1
                if not in_flight:
                    continue
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                unit, key = in_flight.pop(ready[0])
                held[key] -= 1
                try:
                    ray.get(ready[0])
                except (RayTaskError, ray.exceptions.RayActorError) as exc:
                    transient = not isinstance(exc, RayTaskError) or isinstance(exc.cause, JourneyTeacherError)
                    if not transient or attempts[unit] >= MAX_ATTEMPTS:
                        raise RuntimeError(f"journey unit {unit} failed ({attempts[unit]} attempts): {exc}") from exc
                    log.warning("journey unit %s failed (%s); retrying", unit, exc)
                    attempts[unit] += 1
                    pending[key].appendleft(unit)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        for handle in self.workers.values():
            try:
                ray.get(handle.shutdown.remote(), timeout=30)
            except Exception:  # a worker already gone has nothing to release
                log.debug("journey worker shutdown failed", exc_info=True)
            ray.kill(handle)
        self.workers.clear()
