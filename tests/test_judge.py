"""The LLM judge: its strict parse on recorded replies, and where it runs in the rejection-sampling
loop (with a scripted judge; the real CPU teacher judges in test_openai_teacher_live.py)."""

from __future__ import annotations

import asyncio

import pytest
from scripted_teacher import ScriptedTeacher

from distillery.operators.filters.registry import build_filters
from distillery.operators.select.general_policy import GeneralPolicy
from distillery.operators.select.rejection import RejectionSampler, SamplingPolicy
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.operators.verifiers.judge import (
    MATCH_SYSTEM,
    MATCH_VERSION,
    SCORE_VERSION,
    JudgeReplyError,
    LLMJudge,
    parse_score,
    parse_verdict,
    shorten,
)
from distillery.operators.verifiers.pool import VerifierPool
from distillery.schemas.filter_config import FiltersConfig
from distillery.schemas.general_config import GeneralConfig
from distillery.schemas.judge_config import JudgeConfig
from distillery.schemas.records import Prompt, prompt_id
from distillery.schemas.verifier_config import VerificationConfig

# Replies recorded from judges: SmolLM2-135M-Instruct (the bundled teacher) with and without the
# worked examples, and the reply shapes of larger models (bold markdown, a reason line, a think block).
MATCH_REPLIES = [
    ("VERDICT: CORRECT", "correct"),
    ("Verdict: INCORRECT.", "incorrect"),
    ("**VERDICT:** INVALID", "invalid"),
    ("The response says 0.5, which equals 1/2.\nVERDICT: CORRECT", "correct"),
    ("<think>\nThe reference is 12 and the response says 13.\n</think>\n\nVERDICT: INCORRECT", "incorrect"),
    ("Yes, the answer is CORRECT or VERDICT.", None),
    ("No, I do not match. Do not use the dagger tool.", None),
    ("Student's final answer: 13, not a correct answer.\nCorrection: 12", None),
    ("VERDICT: CORRECT\nVERDICT: INCORRECT", None),
    ("VERDICT: CORRECT or INCORRECT", None),
    ("<think>\nThe reference is 12 and the response says", None),
    ("I'm sorry for any confusion, but I'd be happy to help you with your assignment.", None),
    ("", None),
]
SCORE_REPLIES = [
    ("SCORE: 6", 6),
    ("SCORE: 1", 1),
    ("**Score:** 9/10", 9),
    ("The haiku is vivid but has five lines.\nSCORE: 4", 4),
    ("Hello! How can I help you today?\n\nYou are a helpful AI assistant. Reply in the form of\nSCORE: 1", 1),
    ("SLING!", None),
    ("Hello! How can I help you today?\nYour score is 0 (useless).\n\nExcellent.", None),
    ("SCORE: 11", None),
    ("SCORE: 0", None),
    ("SCORE: 7\nSCORE: 8", None),
    ("SCORE: seven", None),
]


@pytest.mark.parametrize(("reply", "expected"), MATCH_REPLIES)
def test_match_replies_parse_strictly(reply, expected):
    if expected is None:
        with pytest.raises(JudgeReplyError):
            parse_verdict(reply)
    else:
        assert parse_verdict(reply) == expected


@pytest.mark.parametrize(("reply", "expected"), SCORE_REPLIES)
def test_score_replies_parse_strictly(reply, expected):
    if expected is None:
        with pytest.raises(JudgeReplyError):
            parse_score(reply)
    else:
        assert parse_score(reply) == expected


def prompt(problem: str, answer: str | None, domain: str = "math") -> Prompt:
    return Prompt(id=prompt_id(problem, "s"), source="s", source_row=0, domain=domain, problem=problem, answer=answer)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def judge_with(script: dict[str, list[list[str]]], **config: object) -> tuple[LLMJudge, ScriptedTeacher]:
    teacher = ScriptedTeacher(script, n=1, name="judge")
    return LLMJudge(teacher, JudgeConfig(teacher="judge", **config), min_score=7), teacher  # type: ignore[arg-type]


def test_judge_verdicts_carry_model_and_prompt_version_and_errors_are_never_correct():
    judge, _ = judge_with({"final answer:\n12": [["VERDICT: CORRECT"]], "final answer:\n13": [["I think so."]]})
    p = prompt("What is 7 + 5?", "12")
    good = run(judge.match(p, "12", "s1"))
    assert (good.verdict, good.extracted) == ("correct", "CORRECT")
    assert good.verifier == f"llm_judge:scripted-model@{MATCH_VERSION}" and MATCH_VERSION.startswith("match-1.")
    bad = run(judge.match(p, "13", "s2"))
    assert bad.verdict == "error" and "unparseable judge reply" in bad.detail and "I think so." in bad.detail
    failed = run(judge.match(p, "<FAIL>", "s3"))
    assert failed.verdict == "error" and failed.detail.startswith("judge request failed")
    assert run(judge.match(prompt("q", None), "12", "s4")).verdict == "invalid"
    assert (judge.counters.kept, judge.counters.dropped) == (1, 3)


def test_judge_prompt_shows_question_reference_and_answer_and_says_not_to_solve():
    judge, _ = judge_with({})
    request = judge.match_request(prompt("What is 7 + 5?", "12"), "So it is \\boxed{12}.")
    assert request.messages[0] == {"role": "system", "content": MATCH_SYSTEM}
    assert "Do not solve the problem" in MATCH_SYSTEM
    assert request.messages[-1]["content"] == (
        "Question:\nWhat is 7 + 5?\n\nReference answer:\n12\n\nResponse's final answer:\nSo it is \\boxed{12}."
    )
    # the worked examples come first, as earlier turns
    assert [m["role"] for m in request.messages[1:-1]] == ["user", "assistant"] * 4
    long = shorten("start " + "x" * 10_000 + " the answer is 12", 400)
    assert len(long) < 500 and long.startswith("start") and long.endswith("the answer is 12")


def test_score_threshold():
    judge, _ = judge_with({"Answer:\nParis": [["SCORE: 8"]], "Answer:\nLyon": [["SCORE: 3"]]})
    p = prompt("What is the capital of France?", None, "general")
    high, low = run(judge.score(p, "Paris", "a")), run(judge.score(p, "Lyon", "b"))
    assert (high.verdict, high.extracted, low.verdict, low.extracted) == ("correct", "8", "incorrect", "3")
    assert high.verifier.endswith(SCORE_VERSION) and low.detail.startswith("score 3, needs 7")


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(VerificationConfig(workers=1, timeout_s=10)) as p:
        yield p


def sampler(script, judge: LLMJudge | None, pool, general: GeneralConfig | None = None, n: int = 2):  # type: ignore[no-untyped-def]
    teacher = ScriptedTeacher(script, n=n, name="gen")
    policy = GeneralPolicy(general or GeneralConfig())
    return RejectionSampler(
        teacher, pool, build_filters(FiltersConfig(), policy.answers_directly), SamplingPolicy(1, 1), ChatFormat(),
        judge=judge, general=policy,
    )


def test_domain_without_a_rule_verifier_is_judged_against_its_gold(pool):
    judge, jt = judge_with({"answer:\nThe gas is oxygen": [["VERDICT: CORRECT"]]}, domains=["science"])
    s = sampler({"Which gas": [["The gas is oxygen."]]}, judge, pool, n=1)
    out = run(s.run(prompt("Which gas do plants release?", "oxygen", "science")))
    (sample,) = out.samples
    assert sample.accepted and [v.verifier.split(":")[0] for v in sample.verdicts] == ["llm_judge"]
    assert jt.calls == {"answer:\nThe gas is oxygen": 1}


def test_unparseable_gold_goes_to_the_judge(pool):
    judge, _ = judge_with({"answer:\nThe triangle is obtuse": [["VERDICT: CORRECT"]]})
    s = sampler({"Classify": [["The triangle is obtuse."]]}, judge, pool, n=1)
    out = run(s.run(prompt("Classify the triangle with sides 2, 3, 4.", "It is an obtuse one.")))
    (sample,) = out.samples
    rule, verdict = sample.verdicts
    assert (rule.verdict, rule.gold_unparseable) == ("invalid", True)
    assert verdict.verdict == "correct" and sample.accepted

    off, _ = judge_with({"answer:\nThe triangle is obtuse": [["VERDICT: CORRECT"]]}, unparseable_gold=False)
    s = sampler({"Classify": [["The triangle is obtuse."]]}, off, pool, n=1)
    (sample,) = run(s.run(prompt("Classify the triangle with sides 2, 3, 4.", "It is an obtuse one."))).samples
    assert len(sample.verdicts) == 1 and not sample.accepted


def test_second_opinion_confirm_and_rescue(pool):
    script = {"2+3": [["The answer is \\boxed{5}.", "The answer is \\boxed{6}."]]}
    replies = {"answer:\nThe answer is \\boxed{5}": [["VERDICT: INCORRECT"]], "answer:\nThe answer is \\boxed{6}": [
        ["VERDICT: CORRECT"]]}
    confirm, jt = judge_with(replies, second_opinion="confirm")
    five, six = run(sampler(script, confirm, pool).run(prompt("2+3", "5"))).samples
    # the rules accept 5, the judge disagrees: rejected; 6 is wrong by rule and the judge is not asked
    assert [v.verdict for v in five.verdicts] == ["correct", "incorrect"] and not five.accepted
    assert five.rejection_reason.startswith("incorrect:llm_judge:")
    assert len(six.verdicts) == 1 and list(jt.calls) == ["answer:\nThe answer is \\boxed{5}"]

    rescue, _ = judge_with(replies, second_opinion="rescue")
    five, six = run(sampler(script, rescue, pool).run(prompt("2+3", "5"))).samples
    assert five.accepted and len(five.verdicts) == 1
    assert [v.verdict for v in six.verdicts] == ["incorrect", "correct"] and six.accepted


def test_unparseable_judge_reply_rejects(pool):
    judge, _ = judge_with({"answer:\nThe gas is oxygen": [["Yes, the answer is CORRECT or VERDICT."]]}, domains=["sci"])
    (sample,) = run(sampler({"Which gas": [["The gas is oxygen."]]}, judge, pool, n=1).run(
        prompt("Which gas?", "oxygen", "sci"))).samples
    assert not sample.accepted and sample.rejection_reason.startswith("error:llm_judge:")


def test_general_prompts_are_scored_and_filtered_samples_are_not_judged(pool):
    judge, jt = judge_with({"Answer:\nWaves fold": [["SCORE: 8"]], "Answer:\nfoam": [["SCORE: 2"]]})
    script = {"haiku": [["<think>\nShort poem.\n</think>\n\nWaves fold into foam", "foam foam<TRUNCATED>"]]}
    s = sampler(script, judge, pool)
    out = run(s.run(prompt("Write a haiku about the sea.", None, "general")))
    good, cut = out.samples
    assert good.accepted and good.verdicts[0].extracted == "8"
    assert cut.verdicts == [] and cut.rejection_reason.startswith("filter:truncation")
    assert jt.calls == {"Answer:\nWaves fold": 1}
    # the teacher was asked to think first, through a system prompt after its own
    assert s.messages(prompt("Write a haiku about the sea.", None, "general"))[0]["role"] == "system"


def test_without_a_judge_general_prompts_are_unverifiable(pool):
    s = sampler({"haiku": [["Waves fold into foam"]]}, None, pool, n=1)
    (sample,) = run(s.run(prompt("Write a haiku about the sea.", None, "general"))).samples
    assert not sample.accepted and sample.rejection_reason.startswith("invalid:none")


# "Master keys" (arXiv 2507.08794): replies with no content of their own that LLM judges often call
# correct. A judge scripted to say CORRECT to everything must never see them.
MASTER_KEYS = [
    "", "   ", ":", ".", ",", "...", "**:**", "—",
    "Thought process:", "**Thought process:**", "Let's solve this problem step by step.",
    "Let's solve this step by step.", "Let me think.", "Let's think step by step:", "Solution", "Solution:",
    "Answer:", "First,", "Analysis:", "To solve this problem step by step,", "解", "かいせつ", "Respuesta",
]
QUESTION = "Which gas do plants release during photosynthesis?"


def always_correct(**config: object) -> tuple[LLMJudge, ScriptedTeacher]:
    return judge_with({"": [["VERDICT: CORRECT"]]}, **config)


@pytest.mark.parametrize("answer", MASTER_KEYS)
def test_master_keys_never_reach_the_judge(answer: str) -> None:
    judge, jt = always_correct()
    verdict = run(judge.match(prompt(QUESTION, "oxygen", "science"), answer, "k"))
    assert verdict.verdict == "invalid" and verdict.detail.startswith("not judged: ")
    scorer, st = judge_with({"": [["SCORE: 10"]]})
    scored = run(scorer.score(prompt("Write a haiku about the sea.", None, "general"), answer, "k"))
    assert scored.verdict == "invalid"
    assert jt.calls == {} and st.calls == {}


@pytest.mark.parametrize(
    "answer",
    [QUESTION, f"**{QUESTION}**", "which gas do plants release", f"{QUESTION} Let's solve this step by step."],
)
def test_the_question_repeated_is_not_an_answer(answer: str) -> None:
    judge, jt = always_correct()
    verdict = run(judge.match(prompt(QUESTION, "oxygen", "science"), answer, "q"))
    assert (verdict.verdict, verdict.detail) == ("invalid", "not judged: the question repeated") and jt.calls == {}


def test_no_final_answer_where_the_question_asks_for_one() -> None:
    judge, jt = always_correct()
    p = prompt("What is 7 + 5? Put your final answer within \\boxed{}.", "12")
    assert run(judge.match(p, "7 plus 5 gives twelve", "a")).detail == (
        "not judged: no final answer, which the question asks for")
    assert jt.calls == {}
    assert run(judge.match(p, "7 + 5 = \\boxed{12}", "b")).verdict == "correct" and jt.calls == {"": 1}


@pytest.mark.parametrize(
    ("question", "answer"),
    [(QUESTION, "Oxygen."), (QUESTION, "The gas is oxygen."), ("Is 7 prime or composite?", "prime"),
     ("Which branch of mathematics studies limits?", "Analysis"), ("In which place did she finish?", "First"),
     ("What is 7 + 5?", "Let's solve this step by step. 7 + 5 = 12, so the answer is 12.")],
)
def test_answers_with_content_are_judged(question: str, answer: str) -> None:
    judge, jt = always_correct()
    assert run(judge.match(prompt(question, "x", "science"), answer, "c")).verdict == "correct"
    assert jt.calls == {"": 1}


def test_a_master_key_response_is_rejected_in_the_sampling_loop(pool):
    judge, jt = always_correct(domains=["science"])
    s = sampler({"Which gas": [["Thought process:"]]}, judge, pool, n=1)
    (sample,) = run(s.run(prompt(QUESTION, "oxygen", "science"))).samples
    assert not sample.accepted and jt.calls == {}
