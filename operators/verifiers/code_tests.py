"""Test cases for code prompts, read as public data sets write them, and output comparison.

Formats read (the prompt's `tests` field, JSON):
- APPS / TACO `input_output`: `{"inputs": [...], "outputs": [...]}`, stdin/stdout; with
  `"fn_name"` the inputs are argument lists of a function call (LeetCode-style `class Solution`
  methods included).
- LiveCodeBench: a list of `{"input", "output", "testtype": "stdin" | "functional"}`; functional
  inputs are one JSON value per line (the arguments), outputs one JSON value. The function is
  `fn_name` (or `func_name`) of a case, else the only public method of `class Solution`.
- HumanEval / MBPP: `{"test": "def check(candidate): ...", "entry_point": "name"}`, or
  `{"test_list": ["assert f(1) == 2", ...]}` (with optional `test_setup_code`, `test_imports`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from distillery.operators.verifiers.base import GoldError

Mode = Literal["stdio", "call", "assert"]

_INTEGER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True, slots=True)
class CodeTests:
    mode: Mode
    inputs: tuple[Any, ...] = ()
    """stdio: the stdin text of each case; call: the argument list of each case."""
    expected: tuple[Any, ...] = ()
    """stdio: the expected stdout of each case; call: the expected return value."""
    fn_name: str | None = None
    test_code: str = ""
    entry_point: str | None = None

    @property
    def size(self) -> int:
        return 1 if self.mode == "assert" else len(self.inputs)

    def harness_spec(self) -> dict[str, Any]:
        """What the sandbox gets: inputs and assertion programs, never the expected outputs."""
        if self.mode == "stdio":
            return {"mode": "stdio", "cases": [{"input": text} for text in self.inputs]}
        if self.mode == "call":
            return {"mode": "call", "fn_name": self.fn_name, "cases": [{"args": args} for args in self.inputs]}
        return {"mode": "assert", "test_code": self.test_code, "entry_point": self.entry_point}


def _text(value: Any, where: str) -> str:
    """APPS writes a stdin/stdout case as a string or as a list of lines."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value) + ("\n" if value else "")
    raise GoldError(f"{where} must be a string or a list of lines, got {type(value).__name__}")


def _apps(data: dict[str, Any]) -> CodeTests:
    inputs, outputs = data.get("inputs"), data.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise GoldError("tests: `inputs` and `outputs` must be lists")
    if len(inputs) != len(outputs):
        raise GoldError(f"tests: {len(inputs)} inputs but {len(outputs)} outputs")
    if not inputs:
        raise GoldError("tests: no test cases")
    fn_name = data.get("fn_name")
    if fn_name:
        if not isinstance(fn_name, str):
            raise GoldError("tests: `fn_name` must be a string")
        for index, args in enumerate(inputs):
            if not isinstance(args, list):
                raise GoldError(f"tests: inputs[{index}] of a call test must be a list of arguments")
        return CodeTests(mode="call", inputs=tuple(inputs), expected=tuple(outputs), fn_name=fn_name)
    return CodeTests(
        mode="stdio",
        inputs=tuple(_text(v, f"tests: inputs[{i}]") for i, v in enumerate(inputs)),
        expected=tuple(_text(v, f"tests: outputs[{i}]") for i, v in enumerate(outputs)),
    )


def _livecodebench(cases: list[Any]) -> CodeTests:
    if not cases:
        raise GoldError("tests: no test cases")
    kinds, fn_names = set(), set()
    for index, case in enumerate(cases):
        if not isinstance(case, dict) or not isinstance(case.get("input"), str) or "output" not in case:
            raise GoldError(f"tests[{index}]: each case needs a string `input` and an `output`")
        kinds.add(case.get("testtype", "stdin"))
        fn_names.add(case.get("fn_name") or case.get("func_name"))
    if len(kinds) != 1 or not kinds <= {"stdin", "functional"}:
        raise GoldError(f"tests: testtype must be all 'stdin' or all 'functional', got {sorted(map(str, kinds))}")
    if kinds == {"stdin"}:
        return CodeTests(
            mode="stdio",
            inputs=tuple(c["input"] for c in cases),
            expected=tuple(_text(c["output"], f"tests[{i}].output") for i, c in enumerate(cases)),
        )
    names = {n for n in fn_names if n}
    if len(names) > 1:
        raise GoldError(f"tests: cases name different functions {sorted(names)}")
    inputs, expected = [], []
    for index, case in enumerate(cases):
        try:
            inputs.append([json.loads(line) for line in case["input"].split("\n") if line.strip()])
            output = case["output"]
            expected.append(json.loads(output) if isinstance(output, str) else output)
        except json.JSONDecodeError as exc:
            raise GoldError(f"tests[{index}]: functional input/output is not JSON: {exc}") from None
    return CodeTests(mode="call", inputs=tuple(inputs), expected=tuple(expected), fn_name=next(iter(names), None))


def _assertions(data: dict[str, Any]) -> CodeTests:
    entry_point = data.get("entry_point")
    if entry_point is not None and not isinstance(entry_point, str):
        raise GoldError("tests: `entry_point` must be a string")
    if "test" in data:
        if not isinstance(data["test"], str) or not data["test"].strip():
            raise GoldError("tests: `test` must be a non-empty program")
        code = data["test"]
        if "def check" in code and not entry_point:
            raise GoldError("tests: a `check(candidate)` test needs `entry_point`")
    else:
        asserts = data["test_list"]
        if not isinstance(asserts, list) or not asserts or not all(isinstance(a, str) for a in asserts):
            raise GoldError("tests: `test_list` must be a non-empty list of assert statements")
        imports = data.get("test_imports") or []
        code = "\n".join([*imports, data.get("test_setup_code") or "", *asserts])
    try:
        compile(code, "tests.py", "exec")
    except SyntaxError as exc:
        raise GoldError(f"tests: the test program does not compile: {exc}") from None
    return CodeTests(mode="assert", test_code=code, entry_point=entry_point or None)


def parse_tests(tests: str | None) -> CodeTests:
    """Read a prompt's `tests`; GoldError says what is wrong with an unreadable value."""
    if tests is None or not str(tests).strip():
        raise GoldError("no tests")
    try:
        data = json.loads(tests)
    except json.JSONDecodeError as exc:
        raise GoldError(f"tests are not valid JSON: {exc}") from None
    if isinstance(data, dict) and "inputs" in data and "outputs" in data:
        return _apps(data)
    if isinstance(data, dict) and ("test" in data or "test_list" in data):
        return _assertions(data)
    if isinstance(data, list):
        return _livecodebench(data)
    keys = sorted(data) if isinstance(data, dict) else type(data).__name__
    raise GoldError(
        f"tests in an unknown format ({keys}); expected APPS {{inputs, outputs[, fn_name]}}, a LiveCodeBench "
        "list of {input, output, testtype}, or HumanEval {test, entry_point} / MBPP {test_list}"
    )


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _numbers_close(expected: str, actual: str, tolerance: float) -> bool:
    if _INTEGER.fullmatch(expected) and _INTEGER.fullmatch(actual):
        return int(expected) == int(actual)  # integers never get a tolerance
    try:
        e, a = float(expected), float(actual)
    except ValueError:
        return False
    if math.isnan(e) or math.isnan(a):
        return False
    return math.isclose(e, a, rel_tol=tolerance, abs_tol=tolerance)


def compare_stdout(expected: str, actual: str, tolerance: float) -> str | None:
    """None when the output matches: line by line after trimming trailing whitespace, the same
    number of lines, tokens that are numbers within `tolerance`. Else what differs."""
    want, got = _lines(expected), _lines(actual)
    if len(want) != len(got):
        return f"expected {len(want)} line(s), got {len(got)}"
    for number, (w, g) in enumerate(zip(want, got, strict=True), start=1):
        if w == g:
            continue
        w_tokens, g_tokens = w.split(), g.split()
        if len(w_tokens) == len(g_tokens) and all(
            x == y or _numbers_close(x, y, tolerance) for x, y in zip(w_tokens, g_tokens, strict=True)
        ):
            continue
        return f"line {number}: expected {w[:80]!r}, got {g[:80]!r}"
    return None


def _values_equal(expected: Any, actual: Any, tolerance: float) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual or (type(expected) is type(actual) and expected == actual)
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        if isinstance(expected, int) and isinstance(actual, int):
            return expected == actual
        return math.isclose(expected, actual, rel_tol=tolerance, abs_tol=tolerance)
    if isinstance(expected, list | tuple) and isinstance(actual, list | tuple):
        return len(expected) == len(actual) and all(
            _values_equal(e, a, tolerance) for e, a in zip(expected, actual, strict=True)
        )
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            _values_equal(v, actual[k], tolerance) for k, v in expected.items()
        )
    return type(expected) is type(actual) and expected == actual


def compare_result(expected: Any, actual: Any, tolerance: float) -> str | None:
    """None when a function's result matches the expected value. APPS wraps a call's expected
    result in a one-element list; either form is accepted, as APPS's own checker does."""
    if _values_equal(expected, actual, tolerance):
        return None
    if isinstance(expected, list) and len(expected) == 1 and _values_equal(expected[0], actual, tolerance):
        return None
    return f"expected {json.dumps(expected)[:80]}, got {json.dumps(actual)[:80]}"
