"""Test cases for code prompts, read as public data sets write them.

Formats read (the prompt's `tests` field, JSON):
- APPS / TACO `input_output`: `{"inputs": [...], "outputs": [...]}`, stdin/stdout; with
  `"fn_name"` the inputs are argument lists of a function call (LeetCode-style `class Solution`
  methods included), and an expected result may be wrapped in a one-element list.
- LiveCodeBench: a list of `{"input", "output", "testtype": "stdin" | "functional"}`; functional
  inputs are one JSON value per line (the arguments), outputs one JSON value. The function is
  `fn_name` (or `func_name`) of a case, else the only public method of `class Solution`.
- HumanEval / MBPP: `{"test": "def check(candidate): ...", "entry_point": "name"}`, or
  `{"test_list": ["assert f(1) == 2", ...]}` (with optional `test_setup_code`, `test_imports`):
  call cases where the test is simple assertions (`assertion_cases`), else a script test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from distillery.operators.verifiers.assertion_cases import CallCase, ScriptTest, call_cases, script_test
from distillery.operators.verifiers.base import GoldError

Mode = Literal["stdio", "call", "script"]


@dataclass(frozen=True, slots=True)
class CodeTests:
    mode: Mode
    inputs: tuple[Any, ...] = ()
    """stdio: the stdin text of each case; call: the `CallCase` of each case."""
    expected: tuple[Any, ...] = ()
    """stdio: the expected stdout of each case; call: the expected JSON value, or an `AssertionCheck`."""
    fn_name: str | None = None
    unwrap_single: bool = False
    """APPS's convention: an expected call result may be written as a one-element list of it."""
    script: ScriptTest | None = None

    @property
    def size(self) -> int:
        return 1 if self.mode == "script" else len(self.inputs)

    def harness_spec(self) -> dict[str, Any]:
        """What the sandbox gets: inputs and test programs, never the expected outputs."""
        if self.mode == "stdio":
            return {"mode": "stdio", "cases": [{"input": text} for text in self.inputs]}
        if self.mode == "call":
            cases = [{"fn": c.fn, "args": list(c.args), "kwargs": dict(c.kwargs)} for c in self.inputs]
            return {"mode": "call", "fn_name": self.fn_name, "cases": cases}
        assert self.script is not None
        return {"mode": "script", "test_code": self.script.code, "entry_point": self.script.entry_point,
                "proxied": list(self.script.proxied), "modules": list(self.script.modules)}


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
        return CodeTests(mode="call", inputs=tuple(CallCase(fn_name, tuple(args)) for args in inputs),
                         expected=tuple(outputs), fn_name=fn_name, unwrap_single=True)
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
    fn_name = next(iter(names), None)
    return CodeTests(mode="call", inputs=tuple(CallCase(fn_name, tuple(args)) for args in inputs),
                     expected=tuple(expected), fn_name=fn_name)


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
    entry_point = entry_point or None
    cases = call_cases(code, entry_point)
    if cases is not None:
        return CodeTests(mode="call", inputs=tuple(c for c, _ in cases), expected=tuple(a for _, a in cases))
    return CodeTests(mode="script", script=script_test(code, entry_point))


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
