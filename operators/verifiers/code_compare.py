"""Comparing a program's output with the expected one, strictly: a near miss is `incorrect`.

stdout: only `\\r\\n` is read as a newline besides `\\n` (a lone CR is text); trailing spaces and
tabs of a line and trailing empty lines are ignored; a line splits into tokens on ASCII spaces and
tabs only. Tokens match when they are the same text, or when the expected token is a decimal
number with a fraction or exponent and the output's token is an ASCII number within the
tolerance. An expected integer needs that integer, written the same way: no float, no `+`, no
leading zeros, no `_`, no digits of other scripts.

Function results: the same types as the expected JSON value (a tuple stands for a list; an int
for an expected float, within the tolerance; never a bool for a number); an expected one-element
list is unwrapped only where the data set's convention says so (APPS, not LiveCodeBench).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?=[eE]))(?:[eE][+-]?[0-9]+)?", re.ASCII)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_SEPARATORS = re.compile(r"[ \t]+")


def _lines(text: str) -> list[str]:
    lines = [line.rstrip(" \t") for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _tokens(line: str) -> list[str]:
    return [token for token in _SEPARATORS.split(line) if token]


def _close(expected: float, actual: float, tolerance: float) -> bool:
    if not (math.isfinite(expected) and math.isfinite(actual)):
        return False
    return math.isclose(expected, actual, rel_tol=tolerance, abs_tol=tolerance)


def _token_matches(expected: str, actual: str, tolerance: float) -> bool:
    if expected == actual:
        return True
    if not _DECIMAL.fullmatch(expected) or not _NUMBER.fullmatch(actual):
        return False
    return _close(float(expected), float(actual), tolerance)


def compare_stdout(expected: str, actual: str, tolerance: float) -> str | None:
    """None when the output matches, else what differs."""
    want, got = _lines(expected), _lines(actual)
    if len(want) != len(got):
        return f"expected {len(want)} line(s), got {len(got)}"
    for number, (w, g) in enumerate(zip(want, got, strict=True), start=1):
        if w == g:
            continue
        w_tokens, g_tokens = _tokens(w), _tokens(g)
        if len(w_tokens) == len(g_tokens) and all(
            _token_matches(x, y, tolerance) for x, y in zip(w_tokens, g_tokens, strict=True)
        ):
            continue
        return f"line {number}: expected {w[:80]!r}, got {g[:80]!r}"
    return None


def _values_equal(expected: Any, actual: Any, tolerance: float) -> bool:
    kind = type(expected)
    if kind is bool or type(actual) is bool:
        return kind is type(actual) and expected == actual
    if kind is int:
        return type(actual) is int and expected == actual
    if kind is float:
        return type(actual) in (int, float) and (expected == actual or _close(expected, float(actual), tolerance))
    if kind is list:
        return type(actual) in (list, tuple) and len(expected) == len(actual) and all(
            _values_equal(e, a, tolerance) for e, a in zip(expected, actual, strict=True)
        )
    if kind is dict:
        return type(actual) is dict and expected.keys() == actual.keys() and all(
            _values_equal(v, actual[k], tolerance) for k, v in expected.items()
        )
    return kind is type(actual) and expected == actual


def compare_result(expected: Any, actual: Any, tolerance: float, unwrap_single: bool = False) -> str | None:
    """None when a function's result matches the expected (JSON) value, else what differs.
    `unwrap_single`: APPS writes a call's expected result as a one-element list of it."""
    if _values_equal(expected, actual, tolerance):
        return None
    unwrapped = unwrap_single and type(expected) is list and len(expected) == 1
    if unwrapped and _values_equal(expected[0], actual, tolerance):
        return None
    return f"expected {json.dumps(expected)[:80]}, got {short_repr(actual)}"


def short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int past Python's digit limit for decimal text
        return f"a {type(value).__name__} too large to show"
    return text if len(text) <= 80 else text[:77] + "..."
