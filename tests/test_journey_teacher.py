"""Journey traces with the real thing: the bundled SmolLM2 teacher on vLLM's CPU backend continues a
prefilled assistant turn, rewrites a trace and acts as critic. A 135M model decides nothing reliably,
so this checks the paths (the engine continues the prefix, every trace is verified, every drop is
counted); test_journey.py checks the decisions with scripted replies."""

from __future__ import annotations

import asyncio

import pytest
from test_journey import PROMPT, RIGHT, WRONG

from distillery.operators.filters.registry import build_filters
from distillery.operators.journey.builder import JourneyBuilder
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.operators.verifiers.pool import VerifierPool
from distillery.schemas.filter_config import FiltersConfig
from distillery.schemas.journey_config import JourneyConfig
from distillery.schemas.teacher_config import VLLMTeacherConfig
from distillery.schemas.verifier_config import VerificationConfig

pytestmark = pytest.mark.teacher

CHAT = ChatFormat(prompt_template="{problem}\nPut your final answer within \\boxed{}.")


def test_continue_rewrite_and_critic_with_the_real_teacher():
    from distillery.operators.teachers.vllm_engine import VLLMTeacher

    config = VLLMTeacherConfig(
        model="bundled:smollm2-135m",
        dtype="bfloat16",
        max_model_len=1024,
        gpu_memory_utilization=0.1,  # a small KV cache: the test sends one request at a time
        enforce_eager=True,
        device="cpu",
        sampling={"n": 1, "temperature": 0.0, "max_tokens": 48},
    )
    teacher = VLLMTeacher("t", config)
    try:
        # The chat template leaves a prefilled assistant turn open: the engine continues that text.
        prefill = "So he has 7 \\times 8 = 54 apples.\n\nWait: 7 × 8 is 56, not 54."
        rendered = teacher.render([*CHAT.messages(PROMPT), {"role": "assistant", "content": prefill}])
        assert rendered.endswith(prefill)
        filters = build_filters(FiltersConfig())
        with VerifierPool(VerificationConfig(workers=1, timeout_s=10, domains={"math": {"type": "math"}})) as pool:
            journey = JourneyConfig(enabled=True, locate="compare", bridge="continue", rewrite=True)
            builder = JourneyBuilder(journey, pool, filters, {"t": CHAT}, teacher)
            critic = JourneyBuilder(JourneyConfig(enabled=True, locate="critic"), pool, filters, {"t": CHAT}, teacher)

            async def both():  # type: ignore[no-untyped-def]
                # One event loop: vLLM's async engine belongs to the loop it first served.
                return await builder.build(PROMPT, WRONG, None), await critic.build(PROMPT, WRONG, RIGHT)

            trace, criticised = asyncio.run(both())
    finally:
        teacher.close()
    assert trace is not None and trace.journey.error_step == 2 and trace.journey.correct_sample_id is None
    if not trace.journey.rewritten:
        assert trace.reasoning == f"{WRONG.answer.split(chr(10) * 2 + 'He eats')[0]}\n\n{trace.journey.reflection}"
    assert trace.completion_tokens > 0 and trace.finish_reason in ("stop", "length")
    (verdict,) = trace.verdicts
    assert trace.accepted == (verdict.verdict == "correct" and all(f.keep for f in trace.filters))
    assert trace.accepted or trace.rejection_reason
    assert builder.rewrites.seen == 1  # the rewrite came back, and was kept or dropped with its reason
    # The critic's reply is parsed strictly: a step of the attempt, or nothing (counted as unclear).
    if criticised is None:
        assert critic.counters.reasons["critic_unclear"] == 1
    else:
        assert 1 <= criticised.journey.error_step <= 4 and criticised.journey.locator == "critic"
