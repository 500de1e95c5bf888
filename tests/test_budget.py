"""The adaptive sampling budget: each round's n from the pass rate seen, what is missing and the
rounds left; easy prompts cost fewer samples than hard ones; a prompt at 0 after its budget is given
up, or earlier when a floor is set and its pass rate is confidently below it; too easy prompts are
skipped (a teacher double with known pass rates, the real math verifier)."""

from __future__ import annotations

import asyncio
import random
import re

import pytest
from pydantic import ValidationError

from distillery.operators.filters.truncation import TruncationFilter
from distillery.operators.select.rejection import (
    BUDGET_COUNTERS,
    PromptOutcome,
    RejectionSampler,
    SamplingPolicy,
    at_least,
    confidently_below,
    round_confidence,
)
from distillery.operators.teachers.base import Completion, Teacher, TeacherResponse
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.operators.verifiers.pool import VerifierPool
from distillery.schemas.budget_config import SamplingBudgetConfig
from distillery.schemas.records import Prompt, prompt_id
from distillery.schemas.teacher_config import SamplingConfig
from distillery.schemas.verifier_config import VerificationConfig


class PassRateTeacher(Teacher):
    """Each sample is right with the pass rate the prompt states ("rate 0.25: ..."), drawn from the
    request's seed: the same request always gives the same samples."""

    def __init__(self) -> None:
        self.name = "pass-rate"
        self.model = "pass-rate-model"
        self.sampling = SamplingConfig(n=16, max_tokens=64)
        self.requests: list[int] = []

    async def sample(self, messages: list[dict[str, str]], *, n: int, seed: int, request_id: str) -> TeacherResponse:
        user = messages[-1]["content"]
        rate = float(re.search(r"rate ([0-9.]+)", user).group(1))
        answer = re.search(r"answer (\d+)", user).group(1)
        self.requests.append(n)
        rng = random.Random(seed)
        texts = [f"\\boxed{{{answer if rng.random() < rate else int(answer) + 1}}}" for _ in range(n)]
        completions = [Completion(i, t, completion_tokens=20, finish_reason="stop") for i, t in enumerate(texts)]
        return TeacherResponse(prompt_tokens=10, completions=completions)


def _prompt(rate: float, k: int) -> Prompt:
    problem = f"rate {rate}: item {k}, answer {k + 3}"
    return Prompt(
        id=prompt_id(problem, "s"), source="s", source_row=k, domain="math", problem=problem, answer=str(k + 3)
    )


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(VerificationConfig(workers=1, timeout_s=10)) as p:
        yield p


def _sampler(pool: VerifierPool, budget: SamplingBudgetConfig | None, keep: int = 1, rounds: int = 6):
    teacher = PassRateTeacher()
    policy = SamplingPolicy(keep, rounds, budget)
    return RejectionSampler(teacher, pool, [TruncationFilter()], policy, ChatFormat("{problem}")), teacher


def _outcomes(
    pool: VerifierPool, budget: SamplingBudgetConfig | None, rate: float, prompts: int = 12, rounds: int = 6
) -> list[PromptOutcome]:
    sampler, _ = _sampler(pool, budget, rounds=rounds)
    return [asyncio.run(sampler.run(_prompt(rate, k))) for k in range(prompts)]


def _draws(pool: VerifierPool, budget: SamplingBudgetConfig | None, rate: float, prompts: int = 12) -> list[int]:
    return [len(o.samples) for o in _outcomes(pool, budget, rate, prompts)]


def test_next_round_n_follows_the_pass_rate_and_what_is_missing():
    policy = SamplingPolicy(2, 4, SamplingBudgetConfig(max_samples_per_prompt=32, first_round_n=4))
    assert policy.round_n(16, drawn=0, accepted=0, round_=0) == 4
    low, high = policy.round_n(16, drawn=4, accepted=1, round_=1), policy.round_n(16, drawn=4, accepted=3, round_=1)
    assert high == 0  # 3 of 4 accepted: enough for keep 2
    at_quarter = SamplingPolicy(3, 4, policy.budget).round_n(16, drawn=4, accepted=1, round_=1)
    at_three_quarters = SamplingPolicy(5, 4, policy.budget).round_n(16, drawn=4, accepted=3, round_=1)
    assert low < at_quarter  # more missing, more draws
    assert at_quarter > at_three_quarters  # two missing at 1/4 need more draws than two missing at 3/4
    assert policy.round_n(16, drawn=30, accepted=0, round_=2) == 2  # never past the budget
    assert policy.round_n(16, drawn=32, accepted=0, round_=2) == 0
    assert SamplingPolicy(2, 4).round_n(16, drawn=4, accepted=1, round_=1) == 16  # no budget: the teacher's n


def test_the_confidence_is_spread_over_the_rounds_left():
    budget = SamplingBudgetConfig(max_samples_per_prompt=16, first_round_n=4, confidence=0.8)
    assert round_confidence(0.8, 1) == pytest.approx(0.8)
    for rounds_left in (2, 3, 5):  # rounds_left rounds at this confidence fail together with 1 - 0.8
        assert (1 - round_confidence(0.8, rounds_left)) ** rounds_left == pytest.approx(0.2)
    # 0 of 4 (rate 0.1): with one round left the rest is drawn at once; with three, 6 (41.5% each).
    assert SamplingPolicy(1, 2, budget).round_n(16, drawn=4, accepted=0, round_=1) == 12
    assert SamplingPolicy(1, 4, budget).round_n(16, drawn=4, accepted=0, round_=1) == 6
    assert SamplingPolicy(1, 4, budget).round_n(16, drawn=10, accepted=0, round_=3) == 6  # the last round


def test_more_rounds_spend_fewer_samples_for_the_same_rows(pool):
    budget = SamplingBudgetConfig(max_samples_per_prompt=16, first_round_n=4)
    two, six = (_outcomes(pool, budget, 0.2, prompts=16, rounds=r) for r in (2, 6))
    met_two, met_six = (sum(o.status == "met" for o in out) for out in (two, six))
    drawn_two, drawn_six = (sum(len(o.samples) for o in out) for out in (two, six))
    assert met_six >= met_two - 1 and met_six >= 14  # 1 - 0.8 ** 16: 97% met either way
    assert drawn_six < 0.85 * drawn_two



def test_easy_prompts_draw_fewer_samples_than_hard_ones(pool):
    budget = SamplingBudgetConfig(max_samples_per_prompt=16, first_round_n=4)
    easy, hard = _draws(pool, budget, 0.9), _draws(pool, budget, 0.2)
    assert sum(easy) / len(easy) < sum(hard) / len(hard)
    assert max(easy) <= 16 and max(hard) <= 16
    assert sum(easy) < 5 * len(easy)  # almost always done in the first round
    fixed = _draws(pool, None, 0.9)
    assert all(d == 16 for d in fixed) and sum(easy) < sum(fixed) / 2


def test_a_prompt_at_zero_is_given_up_after_its_budget(pool):
    budget = SamplingBudgetConfig(max_samples_per_prompt=10, first_round_n=4)
    sampler, teacher = _sampler(pool, budget)
    outcome = asyncio.run(sampler.run(_prompt(0.0, 1)))
    assert outcome.status == "given_up" and len(outcome.samples) == 10 and sum(teacher.requests) == 10
    assert outcome.counters.get(BUDGET_COUNTERS).reasons == {"given_up": 1}
    assert not any(s.selected for s in outcome.samples)


def test_too_easy_prompts_are_skipped(pool):
    budget = SamplingBudgetConfig(max_samples_per_prompt=16, first_round_n=4, skip_if_pass_rate_above=0.9)
    sampler, _ = _sampler(pool, budget)
    outcome = asyncio.run(sampler.run(_prompt(1.0, 2)))
    assert outcome.status == "too_easy" and len(outcome.samples) == 4
    assert all(s.accepted and not s.selected for s in outcome.samples)
    assert all(s.rejection_reason == "too_easy: 4 of 4 passed the first round" for s in outcome.samples)


@pytest.mark.parametrize("floor", [None, 0.2])
def test_samples_are_the_same_on_a_rerun(pool, floor):
    budget = SamplingBudgetConfig(max_samples_per_prompt=16, first_round_n=2, give_up_below_pass_rate=floor)
    first, _ = _sampler(pool, budget, keep=2)
    second, _ = _sampler(pool, budget, keep=2)
    a = asyncio.run(first.run(_prompt(0.3, 5)))
    b = asyncio.run(second.run(_prompt(0.3, 5)))
    assert len(a.samples) > 2
    assert [(s.id, s.seed, s.text, s.selected) for s in a.samples] == [
        (s.id, s.seed, s.text, s.selected) for s in b.samples
    ]


def test_a_floor_gives_up_prompts_confidently_below_it():
    budget = SamplingBudgetConfig(max_samples_per_prompt=16, first_round_n=4, give_up_below_pass_rate=0.2)
    policy = SamplingPolicy(1, 4, budget)
    # 0 of 8 at a true rate of 0.2 happens 0.8 ** 8 = 17% of the time (< 1 - confidence): below.
    assert confidently_below(8, 0, 0.2, 0.8) and not confidently_below(7, 0, 0.2, 0.8)
    assert at_least(1, 8, 0.2) >= 0.8 > at_least(1, 7, 0.2)
    assert not confidently_below(8, 1, 0.2, 0.8)  # 1 of 8 is no evidence against 0.2
    assert policy.below_floor(8, 0) and not policy.below_floor(8, 1)
    assert not SamplingPolicy(1, 4, budget.model_copy(update={"give_up_below_pass_rate": None})).below_floor(15, 0)
    # A round never draws past the point of giving up: 0 of 4, then 4 more (not 6), then none.
    assert policy.round_n(16, drawn=4, accepted=0, round_=1) == 4
    assert policy.round_n(16, drawn=8, accepted=0, round_=2) == 0
    assert policy.round_n(16, drawn=8, accepted=1, round_=2) == 0  # met
    assert SamplingPolicy(2, 4, budget).round_n(16, drawn=8, accepted=1, round_=2) > 0  # at 1/8, not below
    with pytest.raises(ValidationError, match="give_up_below_pass_rate"):
        SamplingBudgetConfig(give_up_below_pass_rate=1.0)


def test_a_prompt_below_the_floor_costs_little_and_an_easy_one_is_kept(pool):
    budget = SamplingBudgetConfig(max_samples_per_prompt=16, first_round_n=4, give_up_below_pass_rate=0.2)
    sampler, teacher = _sampler(pool, budget, rounds=4)
    outcome = asyncio.run(sampler.run(_prompt(0.0, 3)))
    assert outcome.status == "below_floor" and len(outcome.samples) == 8 and teacher.requests == [4, 4]
    assert outcome.counters.get(BUDGET_COUNTERS).reasons == {"below_floor": 1}
    assert not any(s.selected for s in outcome.samples)
    easy = _outcomes(pool, budget, 0.6, prompts=16, rounds=4)
    assert sum(o.status == "met" for o in easy) >= 15  # 0 of 8 at 0.6: 0.4 ** 8 = 0.07%


def test_the_floor_halves_samples_per_row_on_a_mixed_pool(pool):
    """Half the prompts never pass (as for a small teacher on hard prompts), the rest at 0.1 .. 0.9:
    fixed n = 16 spends 16 samples on each; the budget with a floor gives up the hopeless ones early."""
    rates = [0.0] * 8 + [0.1, 0.3, 0.5, 0.7, 0.9, 0.1, 0.3, 0.5]
    floored = SamplingBudgetConfig(max_samples_per_prompt=16, first_round_n=4, give_up_below_pass_rate=0.2)

    def per_row(budget: SamplingBudgetConfig | None, rounds: int) -> tuple[float, int]:
        sampler, _ = _sampler(pool, budget, rounds=rounds)
        outcomes = [asyncio.run(sampler.run(_prompt(rate, k))) for k, rate in enumerate(rates)]
        rows = sum(s.selected for o in outcomes for s in o.samples)
        return sum(len(o.samples) for o in outcomes) / rows, rows

    fixed, fixed_rows = per_row(None, 1)
    adaptive, _ = per_row(SamplingBudgetConfig(max_samples_per_prompt=16, first_round_n=4), 4)
    cheap, cheap_rows = per_row(floored, 4)
    assert fixed_rows == 8 and cheap_rows >= 6  # the floor may lose a prompt at 0.1, not the easy ones
    assert cheap < adaptive < fixed and cheap <= 0.5 * fixed
