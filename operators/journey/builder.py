"""A journey trace from one wrong attempt: locate the first wrong step, reflect, bridge back, maybe
rewrite, then verify and filter like any sample.

The trace is `wrong prefix up to and including the wrong step` + `reflection` + `correction`, then
the final answer:
- splice (fresh restart): the correction is the correct sample's reasoning and the answer its answer;
- continue (fix and continue): the teacher continues the prefix and the reflection as its own
  unfinished turn, up to its final answer.
A teacher without think tags has its working in the answer text; the wrong prefix and the reflection
then form the think block, and the correct sample's (or the continuation's) text is the answer.

This is an operator: it knows a teacher, a verifier pool and filters, and nothing of Ray.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from distillery.operators.counters import OperatorCounters
from distillery.operators.filters.base import SampleFilter
from distillery.operators.journey.claims import numbers, same_number
from distillery.operators.journey.locate import (
    CRITIC_PROMPT_VERSION,
    Location,
    critic_messages,
    locate_by_comparison,
    parse_critic_reply,
)
from distillery.operators.journey.plan import is_wrong_attempt
from distillery.operators.journey.reflect import reflection
from distillery.operators.journey.steps import Step, attempt_of, split_steps
from distillery.operators.select.rejection import rejection_reason
from distillery.operators.teachers.base import Teacher, TeacherResponse
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.operators.teachers.think_split import THINK_OPEN, split_think
from distillery.operators.verifiers.pool import VerifierPool
from distillery.schemas.journey_config import JourneyConfig
from distillery.schemas.records import (
    Generation,
    JourneyInfo,
    JourneySample,
    Prompt,
    assistant_turn,
    request_seed,
    stable_hash,
)

REWRITE_PROMPT_VERSION = "journey-rewrite@1"
MAX_TRIES_PER_TRACE = 3
"""Wrong attempts tried per wanted trace of a prompt: an attempt whose error is not located costs a try."""
COUNTERS = "journey"
REWRITE_COUNTERS = "journey_rewrite"
_SEED_ROUND = {"critic": 1, "continue": 2, "rewrite": 3}


class JourneyTeacherError(RuntimeError):
    """The teacher failed for a transient reason: the unit is retried, never written without the trace."""


def journey_id(wrong_id: str, correct_id: str | None, config: JourneyConfig) -> str:
    """Derived from the trace's inputs and how it is built, so a rerun rebuilds the same ids."""
    recipe = f"{config.locate}/{config.bridge}/{config.rewrite}"
    return f"{wrong_id}-journey-{stable_hash('journey', wrong_id, correct_id or '', recipe, length=10)}"


def rewrite_messages(reasoning: str) -> list[dict[str, str]]:
    return [
        {
            "role": "user",
            "content": (
                "Below is a chain of thought that makes a mistake, notices it, and corrects it. Rewrite it into one "
                "natural, continuous chain of thought in the same first-person voice. Keep the mistaken step with its "
                "numbers as they are, keep the moment the mistake is noticed and what the right value is, and keep "
                "the corrected working. Smooth only the joins; add nothing else. Reply with the rewritten chain of "
                f"thought only.\n\n{reasoning}"
            ),
        }
    ]


def _holds(text: str, claim: str) -> bool:
    """The claim survives in the text: its numbers all appear there (a claim with none, verbatim)."""
    wanted = numbers(claim)
    if not wanted:
        return claim.strip().casefold() in text.casefold()
    present = numbers(text)
    return all(any(same_number(w, p) for p in present) for w in wanted)


def keeps_the_error(rewritten: str, location: Location) -> bool:
    """A rewrite is used only if it still states the wrong step's claim and the correction."""
    if not rewritten.strip() or not _holds(rewritten, location.claim):
        return False
    return location.correction is None or _holds(rewritten, location.correction)


@dataclass(frozen=True, slots=True)
class _Bridged:
    reasoning: str
    answer: str
    well_formed: bool
    finish_reason: str
    generated_tokens: int
    """Tokens the teacher generated for the part after the reflection."""
    raw: str | None = None
    """The text as the teacher wrote it, where it is not `<think>reasoning</think>answer` (a malformed
    continuation), so the think-format filter sees what was written."""


class JourneyBuilder:
    def __init__(
        self,
        config: JourneyConfig,
        verifiers: VerifierPool,
        filters: list[SampleFilter],
        chats: dict[str, ChatFormat],
        teacher: Teacher | None = None,
    ) -> None:
        """`chats`: how each generating teacher put prompts (the user turn the wrong attempt answered);
        `teacher`: for critic, continue and rewrite (None when the job needs none)."""
        if config.needs_teacher and teacher is None:
            raise ValueError("journey: locate critic, bridge continue and rewrite need a teacher")
        self.config = config
        self.verifiers = verifiers
        self.filters = filters
        self.chats = chats
        self.teacher = teacher
        self.counters = OperatorCounters(COUNTERS)
        self.rewrites = OperatorCounters(REWRITE_COUNTERS)
        """Rewrites kept, and rewrites dropped for the unrewritten trace (their reason)."""

    async def build_prompt(self, prompt: Prompt, samples: list[Generation], quota: int) -> list[JourneySample]:
        """Up to `quota` accepted traces from the prompt's wrong attempts (in round, index order);
        rejected traces are returned too, with their reason."""
        wrong = sorted((s for s in samples if is_wrong_attempt(s)), key=lambda s: (s.round, s.index))
        correct = sorted((s for s in samples if s.accepted), key=lambda s: (not s.selected, s.round, s.index))
        if self.config.bridge == "splice" and not correct:
            return []
        traces: list[JourneySample] = []
        for k, attempt in enumerate(wrong[: quota * MAX_TRIES_PER_TRACE]):
            if sum(t.accepted for t in traces) >= quota:
                break
            partner = correct[k % len(correct)] if correct else None
            trace = await self.build(prompt, attempt, partner)
            if trace is not None:
                traces.append(trace)
        return traces

    async def build(self, prompt: Prompt, wrong: Generation, correct: Generation | None) -> JourneySample | None:
        """One trace, or None (counted) when the error cannot be located. `correct` is the reference for
        compare and, for splice, the sample spliced in."""
        config = self.config
        attempt = attempt_of(wrong)
        steps = split_steps(attempt.text, config.max_step_chars)
        spliced = correct if config.bridge == "splice" else None
        trace_id = journey_id(wrong.id, spliced.id if spliced else None, config)
        if config.locate == "critic":
            location = await self._critic(prompt, steps, trace_id)
        else:
            reference = attempt_of(correct).text if correct is not None else None
            extracted = next((v.extracted for v in wrong.verdicts if v.verdict == "incorrect"), None)
            location = locate_by_comparison(
                steps, problem=prompt.problem, reference=reference, gold=prompt.answer, wrong_answer=extracted
            )
        if location is None:
            self.counters.drop("critic_unclear" if config.locate == "critic" else "not_located")
            return None
        reflection_text = reflection(location, trace_id, config.bridge)
        prefix = attempt.text[: location.step.end]
        opened = f"{prefix}\n\n{reflection_text}"
        if spliced is not None:
            correction = attempt_of(spliced)
            reasoning = f"{opened}\n\n{spliced.reasoning}" if correction.in_reasoning else opened
            bridged = _Bridged(reasoning, spliced.answer, True, spliced.finish_reason, spliced.completion_tokens)
        else:
            bridged = await self._continue(prompt, wrong, opened, attempt.in_reasoning, trace_id)
            if bridged is None:
                return None
        reasoning, rewritten = bridged.reasoning, False
        if config.rewrite:
            candidate = await self._rewrite(reasoning, trace_id)
            if candidate is not None and keeps_the_error(candidate, location):
                reasoning, rewritten = candidate, True
                self.rewrites.keep()
            elif candidate is not None:
                self.rewrites.drop("lost_error_or_correction")
        tokens_per_char = wrong.completion_tokens / max(1, len(wrong.text))
        trace = JourneySample(
            id=trace_id,
            prompt_id=prompt.id,
            round=wrong.round,
            index=wrong.index,
            source=wrong.source,
            domain=wrong.domain,
            teacher=wrong.teacher,
            model=wrong.model,
            sampling=wrong.sampling if spliced is not None else self._teacher().sampling_json(),
            seed=spliced.seed
            if spliced is not None
            else request_seed(self._teacher().sampling.seed, trace_id, _SEED_ROUND["continue"]),
            text=bridged.raw if bridged.raw is not None else assistant_turn(reasoning, bridged.answer),
            reasoning=reasoning,
            answer=bridged.answer,
            think_well_formed=bridged.well_formed,
            prompt_tokens=wrong.prompt_tokens,
            # What the teacher generated after the reflection is counted; the prefix and the reflection
            # are estimated at the wrong sample's tokens per character.
            completion_tokens=round(len(opened) * tokens_per_char) + bridged.generated_tokens,
            finish_reason=bridged.finish_reason,
            journey=JourneyInfo(
                wrong_sample_id=wrong.id,
                correct_sample_id=spliced.id if spliced is not None else None,
                error_step=location.step.number,
                locator=config.locate,
                bridge=config.bridge,
                reflection=reflection_text,
                rewritten=rewritten,
            ),
        )
        return await self._assess(prompt, trace)

    async def _assess(self, prompt: Prompt, trace: JourneySample) -> JourneySample:
        filters = [f.apply(prompt, trace) for f in self.filters]
        verdict = await self.verifiers.verify(prompt.domain, prompt.answer, prompt.tests, trace.answer)
        reason = rejection_reason([verdict], filters)
        if reason is None:
            self.counters.keep()
        else:
            # "filter:<name>", or the verdict label ("incorrect", "invalid", ...)
            parts = reason.split(":")
            self.counters.drop(":".join(parts[:2]) if parts[0] == "filter" else parts[0])
        return trace.model_copy(
            update={
                "verdicts": [verdict],
                "filters": filters,
                "accepted": reason is None,
                "selected": reason is None,
                "rejection_reason": reason,
            }
        )

    def _teacher(self) -> Teacher:
        assert self.teacher is not None
        return self.teacher

    def _reply(self, response: TeacherResponse, what: str, counters: OperatorCounters) -> str | None:
        """The reply's text; None for a permanent failure (counted); a transient one raises."""
        if response.error is None and response.completions:
            completion = response.completions[0]
            return split_think(completion.text).answer if THINK_OPEN in completion.text else completion.text
        if response.failure == "permanent":
            counters.drop(f"{what}_failed")
            return None
        raise JourneyTeacherError(f"journey {what}: teacher request failed: {response.error or 'no completion'}")

    async def _critic(self, prompt: Prompt, steps: list[Step], trace_id: str) -> Location | None:
        if not steps:
            return None
        teacher = self._teacher()
        response = await teacher.sample(
            critic_messages(prompt.problem, prompt.answer, steps),
            n=1,
            seed=request_seed(teacher.sampling.seed, trace_id, _SEED_ROUND["critic"]),
            request_id=f"{trace_id}-critic@{CRITIC_PROMPT_VERSION}",
        )
        reply = self._reply(response, "critic", self.counters)
        return parse_critic_reply(reply, steps) if reply is not None else None

    async def _continue(
        self, prompt: Prompt, wrong: Generation, opened: str, in_reasoning: bool, trace_id: str
    ) -> _Bridged | None:
        teacher = self._teacher()
        prefill = f"{THINK_OPEN}\n{opened}" if in_reasoning else opened
        response = await teacher.continue_turn(
            self.chats[wrong.teacher].messages(prompt),
            prefill,
            seed=request_seed(teacher.sampling.seed, trace_id, _SEED_ROUND["continue"]),
            request_id=f"{trace_id}-continue",
        )
        if response.error is not None or not response.completions:
            if response.failure == "permanent":
                self.counters.drop("continue_failed")
                return None
            raise JourneyTeacherError(f"journey continue: teacher request failed: {response.error or 'no completion'}")
        completion = response.completions[0]
        if in_reasoning:
            split = split_think(prefill + completion.text)
            reasoning, answer, well_formed = split.reasoning, split.answer, split.well_formed
        else:
            reasoning, answer, well_formed = opened, completion.text.strip(), True
        raw = None if well_formed else prefill + completion.text
        return _Bridged(reasoning, answer, well_formed, completion.finish_reason, completion.completion_tokens, raw)

    async def _rewrite(self, reasoning: str, trace_id: str) -> str | None:
        teacher = self._teacher()
        response = await teacher.sample(
            rewrite_messages(reasoning),
            n=1,
            seed=request_seed(teacher.sampling.seed, trace_id, _SEED_ROUND["rewrite"]),
            request_id=f"{trace_id}-rewrite@{REWRITE_PROMPT_VERSION}",
        )
        reply = self._reply(response, "rewrite", self.rewrites)
        return reply.strip() if reply is not None else None


async def build_unit(
    builder: JourneyBuilder, prompts: dict[str, Prompt], samples: list[Generation], quotas: dict[str, int]
) -> list[JourneySample]:
    """Every planned prompt of one samples unit, concurrently (one prompt's verification overlaps the
    others' teacher requests)."""
    by_prompt: dict[str, list[Generation]] = {}
    for sample in samples:
        if sample.prompt_id in quotas:
            by_prompt.setdefault(sample.prompt_id, []).append(sample)
    built = await asyncio.gather(
        *(builder.build_prompt(prompts[p], group, quotas[p]) for p, group in sorted(by_prompt.items()))
    )
    return [trace for traces in built for trace in traces]
