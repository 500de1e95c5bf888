"""VerifierPool: worker processes with a hard deadline per sample, usable from any thread."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from distillery.operators.verifiers import pool as pool_module
from distillery.operators.verifiers.code import DEADLINE_MARGIN_S
from distillery.operators.verifiers.pool import VerifierPool, run_verification
from distillery.schemas.verifier_config import (
    ChoiceVerifierConfig,
    CodeVerifierConfig,
    MathVerifierConfig,
    VerificationConfig,
)

DEADLINE_S = 3.0
# A worker killed at its deadline comes back as `timeout` soon after it: the kill and the reply
# take a moment, the replacement worker starts in the background.
KILL_MARGIN_S = 3.0
HUMANEVAL = json.dumps({"test": "def check(candidate):\n    assert candidate(2) == 4\n", "entry_point": "double"})


@pytest.fixture(scope="module")
def pool() -> Iterator[VerifierPool]:
    config = VerificationConfig(
        workers=2,
        timeout_s=DEADLINE_S,
        domains={
            "math": MathVerifierConfig(),
            "mcq": ChoiceVerifierConfig(),
            "code": CodeVerifierConfig(test_timeout_s=5, timeout_s=10),
        },
    )
    with VerifierPool(config) as verifier_pool:
        yield verifier_pool


def test_verdicts_for_each_domain(pool: VerifierPool) -> None:
    math = pool.verify_blocking("math", "42", None, [r"\boxed{42}", r"\boxed{41}", "I guess 42"])
    assert [v.verdict for v in math] == ["correct", "incorrect", "invalid"]
    assert {v.verifier for v in math} == {"math@3"}
    assert pool.verify_blocking("mcq", "C", None, ["The answer is (C)."])[0].verdict == "correct"
    code = pool.verify_blocking("code", None, HUMANEVAL, ["```python\ndef double(x):\n    return 2 * x\n```"])
    assert code[0].verdict == "correct", code[0]


def test_unknown_domain_and_unusable_gold_are_invalid(pool: VerifierPool) -> None:
    assert not pool.has_verifier("poetry")
    (unknown,) = pool.verify_blocking("poetry", "x", None, ["x"])
    assert (unknown.verdict, unknown.detail) == ("invalid", "no verifier for domain 'poetry'")
    (bad_gold,) = pool.verify_blocking("math", r"\frac{}{}", None, [r"\boxed{1}"])
    assert bad_gold.verdict == "invalid" and bad_gold.gold_unparseable and bad_gold.detail.startswith("gold: ")
    (bad_tests,) = pool.verify_blocking("code", None, "{not json", ["```python\nprint(1)\n```"])
    assert (bad_tests.verdict, bad_tests.verifier) == ("invalid", "code@2")
    assert bad_tests.detail.startswith("gold: tests are not valid JSON")


@pytest.mark.parametrize(
    "answer", [r"\boxed{2^{2^{2^{2^{2^{2^{2}}}}}}}", r"\boxed{(10^{10})!}"], ids=["power-tower", "giant-factorial"]
)
def test_hanging_checks_time_out_at_the_deadline(pool: VerifierPool, answer: str) -> None:
    start = time.monotonic()
    (verdict,) = pool.verify_blocking("math", "5", None, [answer])
    assert verdict.verdict == "timeout", verdict
    assert time.monotonic() - start < DEADLINE_S + KILL_MARGIN_S
    # The killed worker was replaced: the pool carries on.
    assert pool.verify_blocking("math", "5", None, [r"\boxed{5}"])[0].verdict == "correct"


def test_code_gets_its_own_longer_deadline(pool: VerifierPool) -> None:
    assert pool.deadline_s("math") == DEADLINE_S
    assert pool.deadline_s("code") == 10 + DEADLINE_MARGIN_S


def test_works_from_threads_and_event_loops_in_threads(pool: VerifierPool) -> None:
    def blocking(n: int) -> list[str]:
        return [v.verdict for v in pool.verify_blocking("math", str(n), None, [f"\\boxed{{{n}}}", "\\boxed{-1}"])]

    with ThreadPoolExecutor(max_workers=4) as threads:
        results = list(threads.map(blocking, range(1, 9)))
    assert results == [["correct", "incorrect"]] * 8

    outcome: list[str] = []

    def loop_in_thread() -> None:
        async def main() -> None:
            verdicts = await pool.verify_many("math", "7", None, [r"\boxed{7}", r"\boxed{\frac{14}{2}}"])
            outcome.extend(v.verdict for v in verdicts)

        asyncio.run(main())

    thread = threading.Thread(target=loop_in_thread)
    thread.start()
    thread.join()
    assert outcome == ["correct", "correct"]


def test_gold_is_parsed_once_per_prompt() -> None:
    config_json = MathVerifierConfig().model_dump_json()
    pool_module._gold.cache_clear()
    run_verification(config_json, r"\frac{1}{2}", None, [r"\boxed{0.5}", r"\boxed{\frac{2}{4}}"])
    run_verification(config_json, r"\frac{1}{2}", None, [r"\boxed{1/2}"])
    run_verification(config_json, "3", None, [r"\boxed{3}"])
    info = pool_module._gold.cache_info()
    assert (info.misses, info.hits) == (2, 1)


def test_a_verifier_that_cannot_work_fails_the_pool_at_once() -> None:
    config = VerificationConfig(domains={"code": CodeVerifierConfig(python="/nonexistent/python3")})
    with pytest.raises(FileNotFoundError, match="/nonexistent/python3"):
        VerifierPool(config)
