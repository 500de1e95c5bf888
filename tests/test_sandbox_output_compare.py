"""The strict output comparator: each near miss a lenient checker would accept is `incorrect`."""

from __future__ import annotations

import json

import pytest

from distillery.operators.verifiers.code import CodeVerifier
from distillery.operators.verifiers.code_compare import compare_result, compare_stdout
from distillery.schemas.verifier_config import CodeVerifierConfig

NEAR_MISSES = [
    # (expected stdout, output): a float for an expected integer
    ("1000000007\n", "1e9\n"),
    ("1000000007\n", "1000000007.0\n"),
    ("0\n", "9e-7\n"),
    ("5\n", "5.4\n"),
    ("5\n", "5.0\n"),
    # integers not written in ASCII digits, or not as the integer
    ("12\n", "\u0661\u0662\n"),
    ("12\n", "\uff11\uff12\n"),
    ("10\n", "1_0\n"),
    ("4\n", "+0004\n"),
    ("4\n", "04\n"),
    ("0\n", "-0\n"),
    # separators other than ASCII space and tab, and a lone CR as a newline
    ("1 2\n", "1\x0b2\n"),
    ("1 2\n", "1\x0c2\n"),
    ("1 2\n", "1\x1c2\n"),
    ("1 2\n", "1\u00a02\n"),
    ("1 2\n", "1\u30002\n"),
    ("1\n2\n", "1\r2\n"),
    ("1\n2\n", "1\r2\r"),
    # floats: only ASCII numbers within the tolerance
    ("0.5\n", "0.50001\n"),
    ("0.5\n", "\u0660.\u0665\n"),
    ("1.5\n", "1_5\n"),
    ("1.5\n", "nan\n"),
    ("1e308\n", "inf\n"),
    ("2.5\n", "2,5\n"),
]

MATCHES = [
    ("3\n", "3"),
    ("1 2 3\n4\n", "1 2 3 \t\n4\n\n\n"),
    ("1 2\n", "1 \t 2\n"),
    ("a\r\nb\r\n", "a\nb\n"),
    ("a\nb\n", "a\r\nb\r\n"),
    ("0.333333\n", "0.3333333333\n"),
    ("1.0\n", "1\n"),
    ("2.50\n", "2.5\n"),
    ("1e9\n", "1000000000\n"),
    ("\n", ""),
]


@pytest.mark.parametrize(("expected", "actual"), NEAR_MISSES, ids=[repr(a) for _, a in NEAR_MISSES])
def test_near_misses_do_not_match(expected: str, actual: str) -> None:
    assert compare_stdout(expected, actual, 1e-6) is not None


@pytest.mark.parametrize(("expected", "actual"), MATCHES, ids=[repr(a) for _, a in MATCHES])
def test_equivalent_outputs_match(expected: str, actual: str) -> None:
    assert compare_stdout(expected, actual, 1e-6) is None


@pytest.mark.parametrize(
    ("expected", "actual"),
    [(5, 5.0), (5, 5.0000001), (5, True), (0, False), (1.5, True), ([1], {1}),
     ({"a": 1}, {"a": 1.0}), ("1", 1), (None, 0), ([3], 3)],
)
def test_result_near_misses_do_not_match(expected: object, actual: object) -> None:
    assert compare_result(expected, actual, 1e-6) is not None


@pytest.fixture(scope="module")
def verifier() -> CodeVerifier:
    return CodeVerifier(CodeVerifierConfig(test_timeout_s=10, timeout_s=30))


@pytest.mark.parametrize(("expected", "printed"), NEAR_MISSES[:12], ids=[repr(a) for _, a in NEAR_MISSES[:12]])
def test_a_program_printing_a_near_miss_is_incorrect(verifier: CodeVerifier, expected: str, printed: str) -> None:
    gold = verifier.prepare_gold(None, json.dumps({"inputs": ["\n"], "outputs": [expected]}))
    label, _, detail = verifier.check(gold, f"```python\nimport sys\nsys.stdout.write({printed!r})\n```")
    assert label == "incorrect", detail


def test_one_element_lists_are_unwrapped_for_apps_only(verifier: CodeVerifier) -> None:
    program = "```python\ndef f(x):\n    return x\n```"
    apps = verifier.prepare_gold(None, json.dumps({"fn_name": "f", "inputs": [[1]], "outputs": [[1]]}))
    assert verifier.check(apps, program)[0] == "correct"
    livecodebench = verifier.prepare_gold(None, json.dumps([{"input": "1", "output": "[1]", "testtype": "functional",
                                                             "fn_name": "f"}]))
    label, _, detail = verifier.check(livecodebench, program)
    assert (label, detail) == ("incorrect", "test 1/1: expected [1], got 1 (0/1 tests passed)")
