"""The adaptive sampling budget: each round's n from the pass rate seen and what is missing; easy
prompts cost fewer samples than hard ones; a prompt at 0 after its budget is given up; too easy
prompts are skipped (a teacher double with known pass rates, the real math verifier)."""

from __future__ import annotations

import asyncio
import random
import re

import pytest

from distillery.operators.filters.truncation import TruncationFilter
from distillery.operators.select.rejection import BUDGET_COUNTERS, RejectionSampler, SamplingPolicy
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


def _draws(pool: VerifierPool, budget: SamplingBudgetConfig | None, rate: float, prompts: int = 12) -> list[int]:
    sampler, _ = _sampler(pool, budget)
    outcomes = [asyncio.run(sampler.run(_prompt(rate, k))) for k in range(prompts)]
    return [len(o.samples) for o in outcomes]


def test_next_round_n_follows_the_pass_rate_and_what_is_missing():
    policy = SamplingPolicy(2, 4, SamplingBudgetConfig(max_samples_per_prompt=32, first_round_n=4))
    assert policy.round_n(16, drawn=0, accepted=0) == 4
    low, high = policy.round_n(16, drawn=4, accepted=1), policy.round_n(16, drawn=4, accepted=3)
    assert high == 0  # 3 of 4 accepted: enough for keep 2
    at_quarter = SamplingPolicy(3, 4, policy.budget).round_n(16, drawn=4, accepted=1)
    at_three_quarters = SamplingPolicy(5, 4, policy.budget).round_n(16, drawn=4, accepted=3)
    assert low < at_quarter  # more missing, more draws
    assert at_quarter > at_three_quarters  # two missing at 1/4 need more draws than two missing at 3/4
    assert policy.round_n(16, drawn=30, accepted=0) == 2  # never past the budget
    assert policy.round_n(16, drawn=32, accepted=0) == 0
    assert SamplingPolicy(2, 4).round_n(16, drawn=4, accepted=1) == 16  # no budget: the teacher's n


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


def test_samples_are_the_same_on_a_rerun(pool):
    budget = SamplingBudgetConfig(max_samples_per_prompt=16, first_round_n=2)
    first, _ = _sampler(pool, budget, keep=2)
    second, _ = _sampler(pool, budget, keep=2)
    a = asyncio.run(first.run(_prompt(0.3, 5)))
    b = asyncio.run(second.run(_prompt(0.3, 5)))
    assert len(a.samples) > 2
    assert [(s.id, s.seed, s.text, s.selected) for s in a.samples] == [
        (s.id, s.seed, s.text, s.selected) for s in b.samples
    ]
