"""A teacher replica as a Ray actor: one engine, its verifier worker processes, and the rejection
sampling loop of every prompt it is given.

The actor is async: all prompts of all shards it holds run concurrently on its event loop, so the
engine always has work while some prompts wait on verification.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from distillery.operators.counters import CounterSet
from distillery.operators.filters.registry import build_filters
from distillery.operators.select.general_policy import GeneralPolicy
from distillery.operators.select.rejection import PromptOutcome, RejectionSampler, SamplingPolicy
from distillery.operators.sources.rows import dead_letter
from distillery.operators.teachers.base import Teacher
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.operators.verifiers.judge import LLMJudge
from distillery.operators.verifiers.pool import VerifierPool
from distillery.schemas.arrow import from_table, to_table
from distillery.schemas.filter_config import FiltersConfig
from distillery.schemas.general_config import GeneralConfig
from distillery.schemas.judge_config import JudgeConfig
from distillery.schemas.records import DeadLetter, Generation, Prompt
from distillery.schemas.verifier_config import VerificationConfig


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
class ShardResult:
    samples: pa.Table
    dead_letter: pa.Table
    counters: CounterSet
    """What the sampler, filters and verifiers counted for this shard's prompts."""
    completion_tokens: int


class TeacherReplica:
    def __init__(self, spec: ReplicaSpec) -> None:
        self.teacher = spec.teacher_factory()
        self.judge_teacher = spec.judge_teacher_factory() if spec.judge_teacher_factory is not None else None
        self.verifiers = VerifierPool(spec.verification)
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
        self.prompts_done = 0
        self.samples = 0
        self.accepted = 0

    def ready(self) -> str:
        return self.teacher.model

    async def process_shard(self, prompts: pa.Table) -> ShardResult:
        outcomes = await asyncio.gather(*(self._run(p) for p in from_table(prompts, Prompt)))
        samples = [s for o in outcomes for s in o.samples]
        dead = []
        for outcome in outcomes:
            if outcome.error is not None:
                letter = dead_letter(
                    "generate",
                    outcome.prompt.source,
                    outcome.prompt.source_row,
                    outcome.error,
                    {"prompt_id": outcome.prompt.id},
                )
                dead.append(letter.model_copy(update={"prompt_id": outcome.prompt.id}))
        return ShardResult(
            samples=to_table(samples, Generation),
            dead_letter=to_table(dead, DeadLetter),
            counters=sum((o.counters for o in outcomes), CounterSet()),
            # Summed from this shard's own samples: other shards decode concurrently on this actor.
            completion_tokens=sum(s.completion_tokens for s in samples),
        )

    async def _run(self, prompt: Prompt) -> PromptOutcome:
        outcome = await self.sampler.run(prompt)
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
            "completion_tokens": self.sampler.completion_tokens,
        }

    def shutdown(self) -> None:
        self.verifiers.close()
        self.teacher.close()
        if self.judge_teacher is not None:
            self.judge_teacher.close()
