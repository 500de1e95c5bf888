from __future__ import annotations

import asyncio

import pytest
from scripted_teacher import ScriptedTeacher

from distillery.operators.filters.truncation import TruncationFilter
from distillery.operators.select.rejection import RejectionSampler, SamplingPolicy
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.operators.verifiers.pool import VerifierPool
from distillery.schemas.records import Prompt, prompt_id
from distillery.schemas.verifier_config import VerificationConfig


def prompt(problem: str, answer: str, domain: str = "math") -> Prompt:
    return Prompt(id=prompt_id(problem, "s"), source="s", source_row=0, domain=domain, problem=problem, answer=answer)


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(VerificationConfig(workers=1, timeout_s=10)) as p:
        yield p


def run(sampler: RejectionSampler, p: Prompt):
    return asyncio.run(sampler.run(p))


def sampler(script, pool, keep=1, rounds=3, n=4, template="{problem}"):
    teacher = ScriptedTeacher(script, n=n)
    return RejectionSampler(
        teacher, pool, [TruncationFilter()], SamplingPolicy(keep, rounds), ChatFormat(template)
    ), teacher


def test_resamples_until_enough_are_accepted(pool):
    script = {"2+3": [["The answer is 4."], ["<think>\nadd\n</think>\n\nThe answer is \\boxed{5}.", "\\boxed{6}"]]}
    s, teacher = sampler(script, pool, keep=2, rounds=3)
    out = run(s, prompt("2+3", "5"))
    assert teacher.calls["2+3"] == 2  # round 0 had no correct sample, round 1 had two: stop
    assert [x.id.rsplit("-", 2)[1:] for x in out.samples] == [["r0", str(i)] for i in range(4)] + [
        ["r1", str(i)] for i in range(4)
    ]
    assert [x.accepted for x in out.samples] == [False] * 4 + [True, False, True, False]
    assert [x.selected for x in out.samples] == [False] * 4 + [True, False, True, False]
    first = out.samples[4]
    assert (first.reasoning, first.answer, first.think_well_formed) == ("add", "The answer is \\boxed{5}.", True)
    assert first.verdicts[0].verdict == "correct" and first.verdicts[0].extracted == "5"
    assert out.samples[0].rejection_reason.startswith("incorrect:math@")
    assert s.counters.kept == 2 and s.counters.dropped == 6


def test_stops_at_max_rounds_and_marks_surplus(pool):
    s, teacher = sampler({"1+1": [["\\boxed{2}"]]}, pool, keep=1, rounds=3)
    out = run(s, prompt("1+1", "2"))
    assert teacher.calls["1+1"] == 1
    assert sum(x.selected for x in out.samples) == 1 and all(x.accepted for x in out.samples)
    assert [x.rejection_reason for x in out.samples if not x.selected] == ["surplus: keep_per_prompt reached"] * 3

    s, teacher = sampler({"9+9": [["\\boxed{17}"]]}, pool, keep=1, rounds=2)
    out = run(s, prompt("9+9", "18"))
    assert teacher.calls["9+9"] == 2 and len(out.samples) == 8 and not any(x.accepted for x in out.samples)


def test_truncated_samples_are_never_accepted(pool):
    s, _ = sampler({"2+2": [["\\boxed{4}<TRUNCATED>"]]}, pool, keep=1, rounds=1)
    out = run(s, prompt("2+2", "4"))
    assert all(x.finish_reason == "length" and not x.accepted for x in out.samples)
    assert out.samples[0].verdicts[0].verdict == "correct"  # verified, yet rejected by its filter
    assert out.samples[0].rejection_reason.startswith("filter:truncation")


def test_no_final_answer_is_invalid_not_incorrect(pool):
    s, _ = sampler({"3+3": [["3 + 3 = 6"]]}, pool, keep=1, rounds=1)
    out = run(s, prompt("3+3", "6"))
    assert {x.verdicts[0].verdict for x in out.samples} == {"invalid"}
    assert out.samples[0].think_well_formed is False and out.samples[0].reasoning == ""


def test_failed_request_is_an_outcome_error_not_an_exception(pool):
    s, _ = sampler({"x": [["\\boxed{1}"]]}, pool)
    out = run(s, prompt("<FAIL> x", "1"))
    assert out.samples == [] and "no script" in out.error


def test_template_braces_are_kept_and_seeds_are_deterministic(pool):
    s, _ = sampler({"5+5": [["\\boxed{10}"]]}, pool, template="{problem}\nPut it in \\boxed{}.")
    p = prompt("5+5", "10")
    assert s.chat.messages(p) == [{"role": "user", "content": "5+5\nPut it in \\boxed{}."}]
    a = run(s, p)
    s2, _ = sampler({"5+5": [["\\boxed{10}"]]}, pool)
    b = run(s2, p)
    assert [x.seed for x in a.samples] == [x.seed for x in b.samples]
    assert [x.id for x in a.samples] == [x.id for x in b.samples]
