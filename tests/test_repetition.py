"""The loop cut and the thinking budget in the teacher sections: defaults, validation, what the
default cuts and does not cut by vLLM's own check, and the pass-through to a `vllm serve` teacher's
request body (a server the test starts on 127.0.0.1); a sample the server finished as `repetition` is
rejected unverified. The real CPU engine's loop cut is in test_repetition_teacher.py."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError
from test_openai_teacher import Reply, body, server  # noqa: F401 - the fixture

from distillery.operators.filters.truncation import TruncationFilter
from distillery.operators.select.rejection import RejectionSampler, SamplingPolicy
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.operators.teachers.openai_compat import OpenAITeacher
from distillery.operators.verifiers.pool import VerifierPool
from distillery.schemas.records import Prompt, prompt_id
from distillery.schemas.teacher_config import OpenAITeacherConfig, SamplingConfig, VLLMTeacherConfig
from distillery.schemas.verifier_config import VerificationConfig

DETECTION = {"min_pattern_size": 8, "max_pattern_size": 128, "min_count": 4}


def _openai(url: str, **extra: object) -> OpenAITeacherConfig:
    return OpenAITeacherConfig(backend="openai", model="m", base_url=url, max_retries=0, **extra)


def test_loop_cut_is_on_by_default_and_the_thinking_budget_is_checked():
    assert SamplingConfig().repetition_detection is not None
    assert SamplingConfig().repetition_detection.model_dump() == DETECTION
    assert SamplingConfig(repetition_detection=None).repetition_detection is None
    with pytest.raises(ValidationError, match="must not exceed max_pattern_size"):
        SamplingConfig(repetition_detection={"min_pattern_size": 64, "max_pattern_size": 8})
    with pytest.raises(ValidationError, match="must be below max_tokens"):
        SamplingConfig(max_tokens=100, thinking_token_budget=100)
    with pytest.raises(ValidationError, match="reasoning_parser: deepseek_r1"):
        VLLMTeacherConfig(model="m", sampling={"max_tokens": 200, "thinking_token_budget": 100})
    budget = {"max_tokens": 200, "thinking_token_budget": 100}
    VLLMTeacherConfig(model="m", engine_kwargs={"reasoning_parser": "deepseek_r1"}, sampling=budget)
    with pytest.raises(ValidationError, match="set server: vllm"):
        _openai("http://127.0.0.1:1/v1", sampling={"max_tokens": 200, "thinking_token_budget": 100})


def _first_cut(tokens: list[int]) -> int | None:
    """The number of tokens after which vLLM's scheduler ends a request under the default loop cut
    (it checks after every token), or None."""
    from vllm.v1.core.sched.utils import check_sequence_repetition

    from distillery.operators.teachers.vllm_engine import repetition_detection

    params = repetition_detection(SamplingConfig())
    return next((t for t in range(1, len(tokens) + 1) if check_sequence_repetition(tokens[:t], params)), None)


def test_the_default_cuts_loops_and_spares_legitimate_repetition():
    sentence = list(range(100, 110))  # a 10-token sentence
    assert _first_cut(sentence * 3 + [7] * 5) is None  # said three times: not a loop yet
    assert _first_cut([1, 2, 3] + sentence * 6) == 3 + 40  # cut as its fourth time ends
    assert _first_cut([5] * 31) is None and _first_cut([5] * 40) == 32  # one token: a run of 32
    zeros = [0, 11] * 15  # "0 &" fifteen times (a row of a zero matrix): kept; sixteen: cut
    assert _first_cut([*zeros, 12]) is None and _first_cut([0, 11] * 20) == 32
    # Digits are tokens of their own: a number with many zeros is not a loop.
    assert _first_cut([1, 2, 4] + [0] * 12 + [13]) is None
    # What the small teacher does most when it rambles: near repeats with changing numbers (no cut;
    # they end at max_tokens and the truncation filter rejects them).
    steps = [t for k in range(12) for t in (200, 201, 300 + k, 202, 203, 204, 205, 206, 207)]
    assert _first_cut(steps) is None
    long_paragraph = list(range(1000, 1200))  # longer than max_pattern_size 128: not seen by the default
    assert _first_cut(long_paragraph * 4) is None


def test_a_vllm_server_gets_the_loop_cut_and_budget_and_a_cut_sample_is_rejected(server):  # noqa: F811
    reply = body(["1 1 1 1 1 1", "\\boxed{5}"])
    reply["choices"][0]["finish_reason"] = "repetition"
    server.replies = [Reply(payload=reply)]
    sampling = {"n": 2, "max_tokens": 64, "thinking_token_budget": 32}
    teacher = OpenAITeacher("t", _openai(server.url, server="vllm", sampling=sampling))
    prompt = Prompt(id=prompt_id("2+3", "s"), source="s", source_row=0, domain="math", problem="2+3", answer="5")
    with VerifierPool(VerificationConfig(workers=1, timeout_s=10)) as pool:
        sampler = RejectionSampler(teacher, pool, [TruncationFilter()], SamplingPolicy(1, 1), ChatFormat())
        outcome = asyncio.run(sampler.run(prompt))
    (request,) = server.requests
    assert request["repetition_detection"] == DETECTION and request["thinking_token_budget"] == 32
    cut, good = outcome.samples
    assert cut.finish_reason == "repetition" and not cut.accepted and not cut.verdicts
    assert cut.rejection_reason.startswith("repetition: the engine cut a loop")
    assert good.selected


def test_other_servers_are_not_sent_vllm_fields(server):  # noqa: F811
    server.replies = [Reply(payload=body(["\\boxed{5}"]))]
    teacher = OpenAITeacher("t", _openai(server.url, sampling={"n": 1}))
    response = asyncio.run(teacher.sample([{"role": "user", "content": "2+3"}], n=1, seed=1, request_id="r"))
    assert response.error is None
    assert "repetition_detection" not in server.requests[0] and "thinking_token_budget" not in server.requests[0]
