"""Journey traces: steps, locating the first wrong step (compare and critic), reflections, the plan,
and the builder's splice, continue and rewrite paths with scripted teacher replies and the real
math verifier. The real CPU teacher runs the same paths in test_journey_teacher.py."""

from __future__ import annotations

import asyncio

import pytest
from conftest import job_yaml, write_jsonl
from test_openai_teacher import Reply, body, server, teacher  # noqa: F401 - `server` is a fixture

from distillery.operators.filters.registry import build_filters
from distillery.operators.journey.builder import (
    JourneyBuilder,
    JourneyTeacherError,
    journey_id,
    keeps_the_error,
)
from distillery.operators.journey.claims import equations
from distillery.operators.journey.locate import locate_by_comparison, parse_critic_reply
from distillery.operators.journey.plan import PromptPool, is_wrong_attempt, journey_budget, plan_quotas, prompt_pools
from distillery.operators.journey.reflect import OPENINGS, opening_of, reflection
from distillery.operators.journey.rows import journey_record
from distillery.operators.journey.steps import split_steps
from distillery.operators.teachers.base import Completion, Teacher, TeacherCapabilityError, TeacherResponse
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.operators.verifiers.pool import VerifierPool
from distillery.schemas.filter_config import FiltersConfig
from distillery.schemas.job import JobFileError, load_job
from distillery.schemas.journey_config import JourneyConfig
from distillery.schemas.records import FilterResult, Generation, Prompt, Verdict
from distillery.schemas.teacher_config import SamplingConfig
from distillery.schemas.verifier_config import VerificationConfig

PROMPT = Prompt(
    id="p1",
    source="s",
    source_row=0,
    domain="math",
    problem="Tom buys 7 bags of 8 apples and eats 4. How many are left?",
    answer="52",
)
WRONG_TEXT = (
    "Tom buys 7 bags with 8 apples each.\n\n"
    "So he has 7 \\times 8 = 54 apples.\n\n"
    "He eats 4, so 54 - 4 = 50 apples are left.\n\n"
    "The answer is \\boxed{50}."
)
RIGHT_TEXT = (
    "There are 7 bags of 8 apples.\n\n"
    "That makes 7 \\times 8 = 56 apples.\n\n"
    "After eating 4: 56 - 4 = 52.\n\n"
    "The answer is \\boxed{52}."
)


def sample(
    sid: str, text: str, *, accepted: bool, verdict: str = "incorrect", extracted: str | None = None, **extra: object
) -> Generation:
    fields: dict[str, object] = dict(
        id=sid,
        prompt_id=PROMPT.id,
        round=0,
        index=int(sid[-1]),
        source="s",
        domain="math",
        teacher="t",
        model="m",
        sampling="{}",
        seed=1,
        text=text,
        reasoning="",
        answer=text,
        think_well_formed=False,
        prompt_tokens=10,
        completion_tokens=len(text) // 4,
        finish_reason="stop",
        verdicts=[Verdict(verifier="math@1", verdict="correct" if accepted else verdict, extracted=extracted)],
        filters=[FilterResult(filter="truncation", keep=True)],
        accepted=accepted,
        selected=accepted,
    )
    fields.update(extra)
    return Generation.model_validate(fields)


WRONG = sample("p1-r0-0", WRONG_TEXT, accepted=False, extracted="50")
RIGHT = sample("p1-r0-1", RIGHT_TEXT, accepted=True)


class ReplyTeacher(Teacher):
    """Scripted replies by request kind (critic, continue, rewrite); a reply of None fails the request."""

    def __init__(self, replies: dict[str, str | None], failure: str = "transient") -> None:
        self.name, self.model = "t", "scripted"
        self.sampling = SamplingConfig(n=1, max_tokens=64)
        self.replies = replies
        self.failure = failure
        self.prefills: list[str] = []
        self.requests: list[list[dict[str, str]]] = []

    def _answer(self, kind: str) -> TeacherResponse:
        text = self.replies[kind]
        if text is None:
            return TeacherResponse.failed("scripted failure", self.failure)  # type: ignore[arg-type]
        return TeacherResponse(prompt_tokens=5, completions=[Completion(0, text, len(text.split()), "stop")])

    async def sample(self, messages, *, n, seed, request_id):  # type: ignore[no-untyped-def]
        self.requests.append(messages)
        return self._answer("critic" if "-critic" in request_id else "rewrite")

    async def continue_turn(self, messages, prefill, *, seed, request_id):  # type: ignore[no-untyped-def]
        self.prefills.append(prefill)
        return self._answer("continue")


@pytest.fixture(scope="module")
def verifiers():
    with VerifierPool(VerificationConfig(workers=1, timeout_s=10, domains={"math": {"type": "math"}})) as pool:
        yield pool


def builder(verifiers: VerifierPool, teacher: Teacher | None = None, **config: object) -> JourneyBuilder:
    return JourneyBuilder(
        JourneyConfig(enabled=True, **config), verifiers, build_filters(FiltersConfig()), {"t": ChatFormat()}, teacher
    )


def build(b: JourneyBuilder, wrong: Generation = WRONG, correct: Generation | None = RIGHT):  # type: ignore[no-untyped-def]
    return asyncio.run(b.build(PROMPT, wrong, correct))


# --- steps and claims ---------------------------------------------------------------------------


def test_steps_are_paragraphs_or_sentences_of_long_paragraphs_verbatim():
    steps = split_steps(WRONG_TEXT, max_step_chars=600)
    assert [s.number for s in steps] == [1, 2, 3, 4]
    assert all(WRONG_TEXT[s.start : s.end] == s.text for s in steps)
    long = "First we add 2 and 3. Then 5 \\times 2 = 10. So the answer is 10."
    assert [s.text for s in split_steps(long, max_step_chars=50)] == [
        "First we add 2 and 3.",
        "Then 5 \\times 2 = 10.",
        "So the answer is 10.",
    ]
    assert split_steps("  \n\n  ", 600) == []


def test_claims_read_only_checkable_arithmetic():
    assert [(e.expression, e.stated, e.holds) for e in equations("so 7 \\times 8 = 54 apples")] == [
        ("7 * 8", "54", False)
    ]
    for unreadable in ("2x + 3 = 5", "f(2) = 4", "1/2 = 50%", "x - 3 = 5", "2 + 3 = 5x"):
        assert equations(unreadable) == [], unreadable
    assert all(e.holds for e in equations(r"\frac{1}{3} = 0.33 and 1,000 + 2,000 = 3,000 and 3 + 4 = 7 + 2 = 9"))


# --- locate: compare ------------------------------------------------------------------------------


def test_compare_locates_the_first_false_arithmetic_step():
    steps = split_steps(WRONG_TEXT, 600)
    found = locate_by_comparison(steps, problem=PROMPT.problem, reference=RIGHT_TEXT, gold="52", wrong_answer="50")
    assert found is not None and found.step.number == 2
    assert found.statement == "7 × 8 is 56, not 54" and (found.claim, found.correction) == ("54", "56")


def test_compare_against_the_correct_sample_and_against_the_gold():
    wrong = "Let x be the number of apples.\n\nThen x = 54.\n\nSo the answer is 50."
    right = "Let x be the number of apples.\n\nThen x = 56.\n\nSo 52."
    steps = split_steps(wrong, 600)
    found = locate_by_comparison(steps, problem=PROMPT.problem, reference=right, gold="52", wrong_answer="50")
    assert found is not None and found.step.number == 2 and found.statement == "x should be 56, not 54"
    # No correct sample: the gold decides; the first step that produces the wrong final value.
    found = locate_by_comparison(steps, problem=PROMPT.problem, reference=None, gold="52", wrong_answer="50")
    assert found is not None and found.step.number == 3 and found.claim == "50" and found.correction is None


def test_compare_locates_nothing_it_cannot_check():
    steps = split_steps("I think about it.\n\nThe answer is \\boxed{7}.", 600)
    # The wrong value 7 is in the problem: it locates nothing.
    assert (
        locate_by_comparison(steps, problem=PROMPT.problem, reference=RIGHT_TEXT, gold="52", wrong_answer="7") is None
    )


# --- locate: critic (strict parse) ----------------------------------------------------------------


def test_critic_reply_parse_is_strict():
    steps = split_steps(WRONG_TEXT, 600)
    found = parse_critic_reply("STEP 2: 7 times 8 is 56, not 54.", steps)
    assert found is not None and found.step.number == 2 and found.locator == "critic"
    assert (found.claim, found.correction) == ("54", "56")
    for unclear in (
        "The error is in step 2.",
        "STEP 2: 7 times 8 is 56. Also step 3 is wrong.",
        "STEP 9: wrong",
        "STEP 2: wrong\nSTEP 3: also wrong",
        "STEP two: the product",
        "STEP 2:",
        "",
    ):
        assert parse_critic_reply(unclear, steps) is None, unclear


# --- reflection ------------------------------------------------------------------------------------


def test_reflections_vary_by_id_and_are_deterministic():
    steps = split_steps(WRONG_TEXT, 600)
    found = locate_by_comparison(steps, problem=PROMPT.problem, reference=RIGHT_TEXT, gold="52", wrong_answer="50")
    assert found is not None
    ids = [f"trace-{k}" for k in range(60)]
    assert len({opening_of(i) for i in ids}) >= len(OPENINGS) - 2
    text = reflection(found, "trace-1", "splice")
    assert text == reflection(found, "trace-1", "splice") and "7 × 8 is 56, not 54" in text
    assert text.startswith(opening_of("trace-1"))


# --- eligibility and plan --------------------------------------------------------------------------


def test_only_rule_verified_wrong_answers_are_wrong_attempts():
    assert is_wrong_attempt(WRONG) and not is_wrong_attempt(RIGHT)
    assert not is_wrong_attempt(WRONG.model_copy(update={"finish_reason": "length"}))
    assert not is_wrong_attempt(WRONG.model_copy(update={"filters": [FilterResult(filter="length", keep=False)]}))
    for label in ("invalid", "timeout", "error"):
        assert not is_wrong_attempt(sample("p1-r0-2", "x", accepted=False, verdict=label))
    judged = WRONG.model_copy(update={"verdicts": [Verdict(verifier="llm_judge:m@1", verdict="incorrect")]})
    assert not is_wrong_attempt(judged)


def test_plan_orders_hardest_first_and_spends_the_share_budget():
    pools = [
        PromptPool("easy", 4, 3, 1),
        PromptPool("hard", 4, 1, 3),
        PromptPool("none", 4, 0, 4),
        PromptPool("all", 4, 4, 0),
    ]
    assert journey_budget(9, 0.25) == 3
    splice = JourneyConfig(enabled=True, share=0.25, max_per_prompt=2)
    assert plan_quotas(pools, splice, shortcut_rows=9) == {"hard": 2, "easy": 1}
    # continue needs no correct sample: pass rate 0 is eligible, and hardest.
    cont = JourneyConfig(enabled=True, share=0.25, max_per_prompt=2, bridge="continue")
    assert plan_quotas(pools, cont, shortcut_rows=9) == {"none": 2, "hard": 1}
    shuffled = JourneyConfig(enabled=True, share=0.5, order="random", seed=3)
    assert plan_quotas(pools, shuffled, 100) == plan_quotas(pools, shuffled, 100)
    assert [p.prompt_id for p in prompt_pools([WRONG, RIGHT])] == ["p1"]


# --- builder: splice + compare ------------------------------------------------------------------------


def test_splice_trace_is_wrong_prefix_reflection_correct_working_and_verified(verifiers):
    trace = build(builder(verifiers))
    assert trace is not None and trace.accepted and trace.selected and trace.verdicts[0].verdict == "correct"
    info = trace.journey
    assert (info.wrong_sample_id, info.correct_sample_id, info.error_step) == (WRONG.id, RIGHT.id, 2)
    # A teacher without think tags: the wrong prefix and reflection think; the correct text answers.
    prefix = "Tom buys 7 bags with 8 apples each.\n\nSo he has 7 \\times 8 = 54 apples."
    assert trace.reasoning == f"{prefix}\n\n{info.reflection}" and trace.answer == RIGHT_TEXT
    assert "54 - 4" not in trace.reasoning
    assert trace.id == journey_id(WRONG.id, RIGHT.id, JourneyConfig(enabled=True)) == build(builder(verifiers)).id
    record = journey_record(PROMPT, trace, ChatFormat(), 0.5, "h")
    assert record.kind == "journey" and record.journey == info
    assert record.messages[-1].content.startswith(f"<think>\n{prefix}")


def test_splice_keeps_the_correct_reasoning_of_a_thinking_teacher(verifiers):
    wrong = WRONG.model_copy(update={"reasoning": WRONG_TEXT, "answer": "\\boxed{50}", "think_well_formed": True})
    right = RIGHT.model_copy(update={"reasoning": RIGHT_TEXT, "answer": "The answer is \\boxed{52}."})
    trace = build(builder(verifiers), wrong, right)
    assert trace is not None and trace.accepted
    assert trace.reasoning.endswith(f"{trace.journey.reflection}\n\n{RIGHT_TEXT}") and trace.answer == right.answer


def test_a_wrong_attempt_whose_error_is_not_located_builds_nothing_and_is_counted(verifiers):
    vague = sample("p1-r0-3", "I think it is about seven.\n\nThe answer is \\boxed{7}.", accepted=False, extracted="7")
    b = builder(verifiers)
    assert build(b, vague) is None
    assert b.counters.reasons["not_located"] == 1 and b.counters.kept == 0


def test_a_trace_whose_final_answer_fails_is_rejected_and_kept_with_its_reason(verifiers):
    broken = RIGHT.model_copy(update={"answer": "The answer is \\boxed{51}."})
    trace = build(builder(verifiers), WRONG, broken)
    assert trace is not None and not trace.accepted and not trace.selected
    assert trace.rejection_reason.startswith("incorrect:")
    with pytest.raises(ValueError, match="never shipped"):
        journey_record(PROMPT, trace, ChatFormat(), 0.5, "h")


# --- builder: critic -------------------------------------------------------------------------------------


def test_critic_locates_the_step_it_names(verifiers):
    teacher = ReplyTeacher({"critic": "STEP 2: 7 times 8 is 56, not 54."})
    trace = build(builder(verifiers, teacher, locate="critic"))
    assert trace is not None and trace.accepted and trace.journey.error_step == 2
    assert trace.journey.locator == "critic" and "7 times 8 is 56, not 54" in trace.journey.reflection
    (messages,) = teacher.requests
    assert "[2] So he has 7 \\times 8 = 54 apples." in messages[-1]["content"] and "52" in messages[-1]["content"]


def test_an_unclear_critic_reply_locates_nothing(verifiers):
    b = builder(verifiers, ReplyTeacher({"critic": "I think step 2 might be wrong, or maybe step 3."}), locate="critic")
    assert build(b) is None and b.counters.reasons["critic_unclear"] == 1


def test_a_failed_critic_request_is_retried_not_written_off(verifiers):
    b = builder(verifiers, ReplyTeacher({"critic": None}), locate="critic")
    with pytest.raises(JourneyTeacherError):
        build(b)
    permanent = builder(verifiers, ReplyTeacher({"critic": None}, failure="permanent"), locate="critic")
    assert build(permanent) is None and permanent.counters.reasons["critic_failed"] == 1


# --- builder: continue ---------------------------------------------------------------------------------


def test_continue_prefills_the_wrong_prefix_and_reflection(verifiers):
    teacher = ReplyTeacher({"continue": " So 7 × 8 = 56, and 56 - 4 = 52. The answer is \\boxed{52}."})
    trace = build(builder(verifiers, teacher, bridge="continue"), WRONG, None)
    assert trace is not None and trace.accepted and trace.journey.correct_sample_id is None
    (prefill,) = teacher.prefills
    assert prefill.startswith("Tom buys 7 bags") and prefill.endswith(trace.journey.reflection)
    assert trace.answer == "So 7 × 8 = 56, and 56 - 4 = 52. The answer is \\boxed{52}."


def test_continue_with_a_thinking_teacher_continues_inside_the_think_block(verifiers):
    wrong = WRONG.model_copy(update={"reasoning": WRONG_TEXT, "answer": "\\boxed{50}", "think_well_formed": True})
    teacher = ReplyTeacher({"continue": "\nSo 56 - 4 = 52.\n</think>\n\nThe answer is \\boxed{52}."})
    trace = build(builder(verifiers, teacher, bridge="continue"), wrong, None)
    assert teacher.prefills[0].startswith("<think>\nTom buys")
    assert trace is not None and trace.accepted and trace.think_well_formed
    assert trace.reasoning.endswith("So 56 - 4 = 52.") and trace.answer == "The answer is \\boxed{52}."


def test_a_continuation_with_broken_think_tags_is_rejected_by_the_filters(verifiers):
    wrong = WRONG.model_copy(update={"reasoning": WRONG_TEXT, "answer": "\\boxed{50}", "think_well_formed": True})
    teacher = ReplyTeacher({"continue": "\n<think>again</think>\n\nThe answer is \\boxed{52}."})
    trace = build(builder(verifiers, teacher, bridge="continue"), wrong, None)
    assert trace is not None and not trace.accepted and not trace.think_well_formed
    assert trace.rejection_reason.startswith("filter:") and trace.text.count("<think>") == 2


def test_a_continuation_that_ends_wrong_is_rejected_with_its_reason(verifiers):
    teacher = ReplyTeacher({"continue": " So 56 - 4 = 51. The answer is \\boxed{51}."})
    trace = build(builder(verifiers, teacher, bridge="continue"), WRONG, None)
    assert trace is not None and not trace.accepted and trace.rejection_reason.startswith("incorrect:")


# --- builder: rewrite ----------------------------------------------------------------------------------


def test_a_rewrite_that_keeps_the_error_and_the_fix_is_used(verifiers):
    smooth = "Tom has 7 bags of 8. I get 7 × 8 = 54 apples... no, 7 × 8 is 56, not 54, so I start over."
    teacher = ReplyTeacher({"rewrite": smooth})
    trace = build(builder(verifiers, teacher, rewrite=True))
    assert trace is not None and trace.journey.rewritten and trace.reasoning == smooth and trace.accepted


def test_a_rewrite_that_drops_the_error_falls_back_to_the_unrewritten_trace(verifiers):
    teacher = ReplyTeacher({"rewrite": "Tom has 7 bags of 8 apples, so 56 apples."})
    b = builder(verifiers, teacher, rewrite=True)
    trace = build(b)
    assert trace is not None and not trace.journey.rewritten and "= 54 apples" in trace.reasoning
    assert b.rewrites.reasons["lost_error_or_correction"] == 1


def test_rewrite_check():
    steps = split_steps(WRONG_TEXT, 600)
    found = locate_by_comparison(steps, problem=PROMPT.problem, reference=RIGHT_TEXT, gold="52", wrong_answer="50")
    assert found is not None
    assert keeps_the_error("7 × 8 = 54? No: 56.", found)
    assert not keeps_the_error("7 × 8 = 56.", found) and not keeps_the_error("It is 54.", found)


def test_a_job_needing_a_teacher_refuses_to_build_without_one(verifiers):
    with pytest.raises(ValueError, match="need a teacher"):
        builder(verifiers, None, bridge="continue")


# --- the teachers' continuation of a prefilled assistant turn ------------------------------------------


def test_an_openai_compatible_teacher_asks_the_server_to_continue_the_turn(server):  # noqa: F811
    server.replies = [Reply(payload=body([" 56 - 4 = 52. The answer is \\boxed{52}."]))]
    remote = teacher(server.url, sampling={"n": 1, "max_tokens": 64, "seed": 0})

    async def go():  # type: ignore[no-untyped-def]
        try:
            return await remote.continue_turn(
                [{"role": "user", "content": "q"}], "So 7 × 8 = 56.", seed=1, request_id="c"
            )
        finally:
            await remote.aclose()

    response = asyncio.run(go())
    assert response.completions[0].text == " 56 - 4 = 52. The answer is \\boxed{52}."
    (request,) = server.requests
    assert request["messages"][-1] == {"role": "assistant", "content": "So 7 × 8 = 56."}
    assert request["continue_final_message"] is True and request["add_generation_prompt"] is False


class SampleOnlyTeacher(Teacher):
    name, model, sampling = "plain", "m", SamplingConfig(n=1)

    async def sample(self, messages, *, n, seed, request_id):  # type: ignore[no-untyped-def]
        return TeacherResponse()


def test_a_teacher_that_cannot_continue_says_so():
    with pytest.raises(TeacherCapabilityError, match="cannot continue a prefilled assistant turn"):
        asyncio.run(SampleOnlyTeacher().continue_turn([], "x", seed=0, request_id="r"))


def test_the_job_file_journey_section_is_checked_before_anything_loads(tmp_path):
    write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "problem": "1 + 1?", "answer": "2", "domain": "math"}])
    job = tmp_path / "job.yaml"
    job.write_text(job_yaml("p.jsonl", extra="journey: {enabled: true, locate: critic, teacher: critc}\n"))
    with pytest.raises(JobFileError, match=r"journey\.teacher: unknown teacher 'critc'"):
        load_job(job)
    job.write_text(job_yaml("p.jsonl", extra="journey: {enabled: true, share: 1.0}\n"))
    with pytest.raises(JobFileError, match=r"journey\.share"):
        load_job(job)
    job.write_text(job_yaml("p.jsonl", extra="journey: {enabled: true, bridge: restart}\n"))
    with pytest.raises(JobFileError, match=r"journey\.bridge"):
        load_job(job)
