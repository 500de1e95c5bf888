"""A teacher replica as a Ray actor: one engine, its verifier worker processes, and the rejection
sampling loop of every prompt it is given.

The actor is async: all prompts of all shards it holds run concurrently on its event loop, so the
engine always has work while some prompts wait on verification. It reads its unit's prompts from the
run directory and commits the unit there itself: prompt and sample texts never pass through the
driver, which gets a per-sample summary without texts (`SAMPLE_COLUMNS`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillery.operators.counters import CounterSet
from distillery.operators.filters.registry import build_filters
from distillery.operators.select.general_policy import GeneralPolicy
from distillery.operators.select.rejection import PromptOutcome, RejectionSampler, SamplingPolicy
from distillery.operators.sources.rows import dead_letter
from distillery.operators.teachers.base import Teacher
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.operators.verifiers.judge import LLMJudge
from distillery.operators.verifiers.pool import VerifierPool
from distillery.pipeline.run_directory import RunDirectory
from distillery.pipeline.runtime.progress import SAMPLE_COLUMNS
from distillery.schemas.arrow import from_table, to_table
from distillery.schemas.filter_config import FiltersConfig
from distillery.schemas.general_config import GeneralConfig
from distillery.schemas.judge_config import JudgeConfig
from distillery.schemas.records import DeadLetter, Generation, Prompt
from distillery.schemas.verifier_config import VerificationConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReplicaSpec:
    """Everything a replica needs, picklable so Ray can ship it (and restart the actor from it)."""

    teacher_factory: Callable[[], Teacher]
    verification: VerificationConfig
    filters: FiltersConfig
    policy: SamplingPolicy
    chat: ChatFormat
    judge: JudgeConfig | None = None
    judge_teacher_factory: Callable[[], Teacher] | None = None
    """The judge's own teacher; None when the judge is this replica's teacher (one engine serves both)."""
    general: GeneralConfig = field(default_factory=GeneralConfig)


@dataclass(frozen=True, slots=True)
class ShardTask:
    """One unit of work as the driver hands it out: where its prompts are and which of them, by id."""

    unit: str
    prompts: str
    """The prompt shard (or target batch) file the prompts are read from."""
    prompt_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ShardResult:
    summary: pa.Table
    """`SAMPLE_COLUMNS` of every sample the unit committed (empty when it was not committed)."""
    completion_tokens: int
    transient: pa.Table
    """Dead letters of prompts that failed transiently (an engine died, a server kept failing): while
    there are any, the unit is not committed but done again."""

    @property
    def complete(self) -> bool:
        return self.transient.num_rows == 0


class TeacherReplica:
    def __init__(self, spec: ReplicaSpec) -> None:
        self.spec = spec
        self.verifiers = VerifierPool(spec.verification)
        self._build_sampler()
        self._serving = asyncio.Event()
        self._serving.set()
        self._restart_lock = asyncio.Lock()
        self.engine_restarts = 0
        self.prompts_done = 0
        self.samples = 0
        self.accepted = 0
        self._tokens_of_dead_engines = 0

    def _build_sampler(self) -> None:
        spec = self.spec
        self.teacher = spec.teacher_factory()
        self.judge_teacher = spec.judge_teacher_factory() if spec.judge_teacher_factory is not None else None
        general = GeneralPolicy(spec.general)
        judge = None
        if spec.judge is not None:
            judge = LLMJudge(self.judge_teacher or self.teacher, spec.judge, min_score=spec.general.min_score)
        self.sampler = RejectionSampler(
            self.teacher,
            self.verifiers,
            build_filters(spec.filters, general.answers_directly),
            spec.policy,
            spec.chat,
            judge=judge,
            general=general,
        )

    def _teachers(self) -> list[Teacher]:
        return [self.teacher] + ([self.judge_teacher] if self.judge_teacher is not None else [])

    def ready(self) -> str:
        return self.teacher.model

    async def process_shard(self, task: ShardTask, run: RunDirectory) -> ShardResult:
        await self._serving.wait()  # not while a dead engine is being replaced
        sampler, teachers = self.sampler, self._teachers()
        table = pq.read_table(task.prompts)
        table = table.filter(pc.is_in(table["id"], pa.array(task.prompt_ids, pa.string())))
        outcomes = await asyncio.gather(*(self._run(sampler, p) for p in from_table(table, Prompt)))
        engine_died = not all(t.healthy() for t in teachers)
        if engine_died:
            await self._restart(sampler)
        samples = to_table([s for o in outcomes for s in o.samples], Generation)
        dead: list[DeadLetter] = []
        transient: list[DeadLetter] = []
        for outcome in outcomes:
            reason, failure = outcome.error, outcome.failure
            judged_error = any(v.verdict == "error" for s in outcome.samples for v in s.verdicts)
            if reason is None and engine_died and judged_error:
                # A judge on the engine that died said `error`: that is the engine's failure, not the sample's.
                reason, failure = "an engine died while this prompt was judged", "transient"
            if reason is None:
                continue
            letter = dead_letter("generate", outcome.prompt.source, outcome.prompt.source_row, reason, {
                "prompt_id": outcome.prompt.id
            })
            letter = letter.model_copy(update={"prompt_id": outcome.prompt.id, "failure": failure or "transient"})
            (transient if letter.failure == "transient" else dead).append(letter)
        result = ShardResult(
            summary=samples.select(list(SAMPLE_COLUMNS)),
            # Summed from this shard's own samples: other shards decode concurrently on this actor.
            completion_tokens=int(pc.sum(samples["completion_tokens"]).as_py() or 0),
            transient=to_table(transient, DeadLetter),
        )
        if not result.complete:
            return ShardResult(result.summary.slice(0, 0), result.completion_tokens, result.transient)
        # Companions first: the samples file marks the unit done, so it must come last.
        counters = sum((o.counters for o in outcomes), CounterSet())
        run.units.commit(to_table(dead, DeadLetter), run.generation_dead_letter(task.unit))
        run.units.commit_json(counters.as_list(), run.generation_counters(task.unit))
        run.units.commit(samples, run.samples_unit(task.unit))
        return result

    async def _restart(self, dead: RejectionSampler) -> None:
        """Replace the engines after one died; the shards that ran on it are retried by the caller."""
        async with self._restart_lock:
            if self.sampler is not dead:
                return  # another shard on this replica restarted it already
            self._serving.clear()
            log.warning("teacher %s: an engine died; starting a new one", self.teacher.name)
            self._tokens_of_dead_engines += dead.completion_tokens
            self._close_teachers()
            try:
                self._build_sampler()
            except Exception:
                # No engine here any more: end this process, so that Ray restarts the whole actor and
                # the dispatcher retries every shard it held.
                log.exception("teacher %s: the new engine failed to start; restarting the replica", self.teacher.name)
                os._exit(1)
            self.engine_restarts += 1
            self._serving.set()

    async def _run(self, sampler: RejectionSampler, prompt: Prompt) -> PromptOutcome:
        outcome = await sampler.run(prompt)
        self.prompts_done += 1
        self.samples += len(outcome.samples)
        self.accepted += sum(s.accepted for s in outcome.samples)
        return outcome

    def stats(self) -> dict[str, int]:
        """Live counters for the progress display (since this actor started)."""
        return {
            "prompts": self.prompts_done,
            "samples": self.samples,
            "accepted": self.accepted,
            "completion_tokens": self._tokens_of_dead_engines + self.sampler.completion_tokens,
            "engine_restarts": self.engine_restarts,
        }

    def _close_teachers(self) -> None:
        for teacher in self._teachers():
            try:
                teacher.close()
            except Exception:  # a dead engine may fail to shut down; its process is gone anyway
                log.debug("closing teacher %s failed", teacher.name, exc_info=True)

    def shutdown(self) -> None:
        self.verifiers.close()
        self._close_teachers()
