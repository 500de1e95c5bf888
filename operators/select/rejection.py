"""Adaptive rejection sampling for one prompt: sample n, verify and filter, resample while fewer than
`keep_per_prompt` were accepted and rounds remain. Every sample is returned, accepted or not.

With a sampling budget the n of each round is sized from the pass rate seen so far, what is still
missing and the rounds left (`SamplingPolicy.round_n`); a prompt whose pass rate is confidently below
the budget's floor is given up early; a sample the engine cut for repetition is rejected unverified.

This is an operator: it knows a `Teacher`, a `VerifierPool` and filters, and nothing of Ray. Many
prompts run it concurrently on one event loop, so one prompt's verification overlaps the others'
decoding.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Literal

from distillery.operators.counters import CounterSet, OperatorCounters
from distillery.operators.filters.base import SampleFilter
from distillery.operators.select.general_policy import GENERAL_DOMAIN, GeneralPolicy
from distillery.operators.teachers.base import REPETITION_FINISH, Completion, Teacher
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.operators.teachers.think_split import split_think
from distillery.operators.verifiers.judge import LLMJudge
from distillery.operators.verifiers.pool import VerifierPool
from distillery.schemas.budget_config import SamplingBudgetConfig
from distillery.schemas.records import (
    FailureKind,
    FilterResult,
    Generation,
    Prompt,
    Verdict,
    generation_id,
    request_seed,
)

PRIOR_ACCEPTED = 0.5
PRIOR_DRAWN = 1.0
"""The pass-rate estimate after `a` of `d` accepted is (a + 0.5) / (d + 1) (the mean under Jeffreys'
prior): a prompt at 0/4 is still thought to pass now and then, so it gets further draws rather than
being dropped on no evidence."""


def at_least(k: int, n: int, rate: float) -> float:
    """P(at least k accepted among n draws at this pass rate): the binomial tail."""
    return 1.0 - sum(math.comb(n, i) * rate**i * (1.0 - rate) ** (n - i) for i in range(k))


def draws_for(missing: int, rate: float, confidence: float, cap: int) -> int:
    """The fewest draws (at most `cap`) that bring `missing` accepted samples with `confidence`."""
    for n in range(missing, cap + 1):
        if at_least(missing, n, rate) >= confidence:
            return n
    return cap


def round_confidence(confidence: float, rounds_left: int) -> float:
    """The chance one round must aim at so that `rounds_left` such rounds bring what is missing with
    `confidence`: 1 - (1 - confidence) ** (1 / rounds_left). Spreading the draws over the rounds left
    costs latency, not tokens (the samples of a prompt share its cached prefix), and a prompt that
    passes early stops before drawing the rest."""
    return 1.0 - (1.0 - confidence) ** (1.0 / rounds_left)


def confidently_below(drawn: int, accepted: int, floor: float, confidence: float) -> bool:
    """Whether `accepted` of `drawn` is confidently below a pass rate of `floor`: a prompt that truly
    passed at `floor` would accept this few with probability at most 1 - confidence (a one-sided
    binomial test)."""
    return drawn > 0 and at_least(accepted + 1, drawn, floor) >= confidence


@dataclass(frozen=True, slots=True)
class SamplingPolicy:
    keep_per_prompt: int
    max_rounds: int
    budget: SamplingBudgetConfig | None = None
    """Adaptive n per round; None: the teacher's n every round."""

    def round_n(self, fixed_n: int, drawn: int, accepted: int, round_: int) -> int:
        """Samples round `round_` (0-based) draws; 0 when the prompt has enough, its budget is spent
        or it is below the budget's floor."""
        missing = self.keep_per_prompt - accepted
        if missing <= 0:
            return 0
        if self.budget is None:
            return fixed_n
        left = self.budget.max_samples_per_prompt - drawn
        if left <= 0 or self.below_floor(drawn, accepted):
            return 0
        cap = min(left, self.budget.max_round_n, self._draws_to_floor(drawn, accepted))
        if drawn == 0:
            return min(self.budget.first_round_n, cap)
        rate = (accepted + PRIOR_ACCEPTED) / (drawn + PRIOR_DRAWN)
        rounds_left = max(self.max_rounds - round_, 1)
        return draws_for(missing, rate, round_confidence(self.budget.confidence, rounds_left), cap)

    def below_floor(self, drawn: int, accepted: int) -> bool:
        """The pass rate is confidently below the budget's `give_up_below_pass_rate` (never without one)."""
        budget = self.budget
        if budget is None or budget.give_up_below_pass_rate is None:
            return False
        return confidently_below(drawn, accepted, budget.give_up_below_pass_rate, budget.confidence)

    def _draws_to_floor(self, drawn: int, accepted: int) -> int:
        """Draws after which, with none of them accepted, the prompt would be below the floor: a round
        never draws past that point (the budget's maximum without a floor)."""
        assert self.budget is not None
        for more in range(1, self.budget.max_samples_per_prompt - drawn + 1):
            if self.below_floor(drawn + more, accepted):
                return more
        return self.budget.max_samples_per_prompt

    def too_easy(self, drawn: int, accepted: int) -> bool:
        """The first round passed more often than the budget's `skip_if_pass_rate_above`."""
        threshold = self.budget.skip_if_pass_rate_above if self.budget is not None else None
        return threshold is not None and drawn > 0 and accepted / drawn > threshold


PromptStatus = Literal["met", "too_easy", "partial", "given_up", "below_floor", "error"]


@dataclass(slots=True)
class PromptOutcome:
    prompt: Prompt
    samples: list[Generation] = field(default_factory=list)
    error: str | None = None
    """Set when a request failed; the samples drawn before it are kept."""
    failure: FailureKind | None = None
    """The kind of that failure: a transient one means this outcome must be drawn again."""
    counters: CounterSet = field(default_factory=CounterSet)
    """What the sampler, filters and verifiers decided about this prompt's samples."""
    status: PromptStatus = "met"
    """met: keep_per_prompt accepted; too_easy: skipped by its pass rate; partial: some accepted when
    the budget ran out; given_up: none accepted in the whole budget; below_floor: none accepted when
    its pass rate was confidently below the budget's `give_up_below_pass_rate`."""


SAMPLER_COUNTERS = "rejection_sampling"
BUDGET_COUNTERS = "sampling_budget"
"""Per prompt: kept when it met keep_per_prompt, else dropped as too_easy, partial, given_up or below_floor."""


def count_samples(samples: list[Generation]) -> CounterSet:
    """The counts of one prompt's decided samples: per filter, per verifier (judge included) and the
    sampler's selection, so that the counts of many prompts, made on many actors, add up with `+`."""
    counters = CounterSet()
    for sample in samples:
        for result in sample.filters:
            counter = counters.get(f"filter:{result.filter}")
            if result.keep:
                counter.keep()
            else:
                counter.drop(result.filter)
        for verdict in sample.verdicts:
            counter = counters.get(f"verifier:{verdict.verifier}")
            if verdict.verdict == "correct":
                counter.keep()
            else:
                counter.drop(verdict.verdict)
        sampler = counters.get(SAMPLER_COUNTERS)
        if sample.selected:
            sampler.keep()
        else:
            sampler.drop((sample.rejection_reason or "").split(":", 1)[0])
    return counters


def rejection_reason(verdicts: list[Verdict], filters: list[FilterResult]) -> str | None:
    """The first reason a sample is not accepted, or None when it is."""
    for result in filters:
        if not result.keep:
            return f"filter:{result.filter}: {result.reason}"
    if not verdicts:
        return "unverified: no verifier ran"
    for verdict in verdicts:
        if verdict.verdict != "correct":
            detail = f": {verdict.detail}" if verdict.detail else ""
            return f"{verdict.verdict}:{verdict.verifier}{detail}"
    return None


class RejectionSampler:
    def __init__(
        self,
        teacher: Teacher,
        verifiers: VerifierPool,
        filters: list[SampleFilter],
        policy: SamplingPolicy,
        chat: ChatFormat,
        *,
        judge: LLMJudge | None = None,
        general: GeneralPolicy | None = None,
    ) -> None:
        """`judge` decides where rules cannot (see JudgeConfig); `general` puts general-domain prompts
        to the teacher with or without a chain of thought."""
        self.teacher = teacher
        self.verifiers = verifiers
        self.filters = filters
        self.policy = policy
        self.chat = chat
        self.judge = judge
        self.general = general
        self.counters = OperatorCounters(SAMPLER_COUNTERS)
        self.completion_tokens = 0

    def generation(self, prompt: Prompt, round_: int, seed: int, prompt_tokens: int, out: Completion) -> Generation:
        """The record of one completion of a request of round `round_`, not yet assessed."""
        split = split_think(out.text)
        reasoning, answer, well_formed = split.reasoning, split.answer, split.well_formed
        if out.reasoning is not None:
            # The backend returned the chain of thought separately: the text is the answer.
            reasoning, answer, well_formed = out.reasoning.strip(), out.text.strip(), True
        return Generation(
            id=generation_id(prompt.id, round_, out.index),
            prompt_id=prompt.id,
            round=round_,
            index=out.index,
            source=prompt.source,
            domain=prompt.domain,
            teacher=self.teacher.name,
            model=self.teacher.model,
            sampling=self.teacher.sampling_json(),
            seed=seed,
            text=out.text,
            reasoning=reasoning,
            answer=answer,
            think_well_formed=well_formed,
            prompt_tokens=prompt_tokens,
            completion_tokens=out.completion_tokens,
            finish_reason=out.finish_reason,
        )

    async def assess(self, prompt: Prompt, sample: Generation) -> Generation:
        """The sample with its filter results and verdicts, accepted or with the reason it is not."""
        if sample.finish_reason == REPETITION_FINISH:
            # A cut loop is never an answer: no filter or verifier (nor a judge request) is spent on it.
            reason = f"repetition: the engine cut a loop after {sample.completion_tokens} tokens"
            return sample.model_copy(update={"accepted": False, "rejection_reason": reason})
        filters = [f.apply(prompt, sample) for f in self.filters]
        verdicts, deciding = await self._verify(prompt, sample, judge=all(f.keep for f in filters))
        reason = rejection_reason(deciding, filters)
        return sample.model_copy(
            update={"verdicts": verdicts, "filters": filters, "accepted": reason is None, "rejection_reason": reason}
        )

    def _judged_domain(self, domain: str) -> bool:
        """A domain the judge decides alone: no rule verifier, and general or listed for the judge."""
        if self.judge is None or self.verifiers.has_verifier(domain):
            return False
        return domain == GENERAL_DOMAIN or domain in self.judge.config.domains

    async def _verify(self, prompt: Prompt, sample: Generation, judge: bool) -> tuple[list[Verdict], list[Verdict]]:
        """(every verdict, the verdicts that decide acceptance). The judge is asked only about
        samples the filters kept: each question costs a teacher request."""
        if self._judged_domain(prompt.domain):
            assert self.judge is not None
            if not judge:
                return [], []
            if prompt.domain == GENERAL_DOMAIN:
                verdict = await self.judge.score(prompt, sample.answer, sample.id)
            else:
                verdict = await self.judge.match(prompt, sample.answer, sample.id)
            return [verdict], [verdict]
        rule = await self.verifiers.verify(prompt.domain, prompt.answer, prompt.tests, sample.answer)
        if self.judge is None or not judge:
            return [rule], [rule]
        config = self.judge.config
        if config.unparseable_gold and rule.gold_unparseable:
            verdict = await self.judge.match(prompt, sample.answer, sample.id)
            return [rule, verdict], [verdict]
        if config.second_opinion == "confirm" and rule.verdict == "correct":
            verdict = await self.judge.match(prompt, sample.answer, sample.id)
            return [rule, verdict], [rule, verdict]
        if config.second_opinion == "rescue" and rule.verdict == "incorrect":
            verdict = await self.judge.match(prompt, sample.answer, sample.id)
            return [rule, verdict], [verdict]
        return [rule], [rule]

    def messages(self, prompt: Prompt) -> list[dict[str, str]]:
        """The teacher's chat for a prompt; general prompts as the general policy puts them."""
        if self.general is not None and self.general.applies(prompt):
            return self.general.chat(self.chat, prompt).messages(prompt)
        return self.chat.messages(prompt)

    async def run(self, prompt: Prompt) -> PromptOutcome:
        outcome = PromptOutcome(prompt)
        messages = self.messages(prompt)
        policy = self.policy
        drawn = accepted = 0
        for round_ in range(policy.max_rounds):
            n = policy.round_n(self.teacher.sampling.n, drawn, accepted, round_)
            if n == 0:
                break
            seed = request_seed(self.teacher.sampling.seed, prompt.id, round_)
            response = await self.teacher.sample(messages, n=n, seed=seed, request_id=f"{prompt.id}-r{round_}")
            if response.error is not None:
                outcome.error = f"round {round_}: {response.error}"
                outcome.failure = response.failure
                break
            drawn_now = [
                self.generation(prompt, round_, seed, response.prompt_tokens, c) for c in response.completions
            ]
            self.completion_tokens += sum(s.completion_tokens for s in drawn_now)
            judged = await asyncio.gather(*(self.assess(prompt, s) for s in drawn_now))
            outcome.samples.extend(judged)
            drawn += len(judged)
            accepted += sum(s.accepted for s in judged)
            if round_ == 0 and policy.too_easy(drawn, accepted):
                outcome.status = "too_easy"
                break
        if outcome.status != "too_easy":
            outcome.status = self._status(outcome, drawn, accepted)
        outcome.samples = self._select(outcome.samples, outcome.status == "too_easy", drawn, accepted)
        outcome.counters = count_samples(outcome.samples)
        if policy.budget is not None:
            budget = outcome.counters.get(BUDGET_COUNTERS)
            if outcome.status == "met":
                budget.keep()
            else:
                budget.drop(outcome.status)
        self.counters = self.counters + outcome.counters.get(SAMPLER_COUNTERS)
        return outcome

    def _status(self, outcome: PromptOutcome, drawn: int, accepted: int) -> PromptStatus:
        if accepted >= self.policy.keep_per_prompt:
            return "met"
        if outcome.error is not None:
            return "error"
        if accepted:
            return "partial"
        return "below_floor" if self.policy.below_floor(drawn, accepted) else "given_up"

    def _select(self, samples: list[Generation], too_easy: bool, drawn: int, accepted: int) -> list[Generation]:
        """Mark the first `keep_per_prompt` accepted samples (in round, index order) as selected;
        none of a prompt that is too easy."""
        selected = 0
        marked = []
        for sample in sorted(samples, key=lambda s: (s.round, s.index)):
            if sample.accepted and too_easy:
                reason = f"too_easy: {accepted} of {drawn} passed the first round"
                sample = sample.model_copy(update={"rejection_reason": reason})
            elif sample.accepted and selected < self.policy.keep_per_prompt:
                selected += 1
                sample = sample.model_copy(update={"selected": True})
            elif sample.accepted:
                sample = sample.model_copy(update={"rejection_reason": "surplus: keep_per_prompt reached"})
            marked.append(sample)
        return marked
