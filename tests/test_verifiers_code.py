"""CodeVerifier: test formats as public data sets write them, output comparison, program extraction,
and whole runs in the real sandbox (pass/fail only from the harness's records and the host's comparisons)."""

from __future__ import annotations

import json

import pytest

from distillery.operators.verifiers.assertion_cases import CallCase
from distillery.operators.verifiers.base import GoldError
from distillery.operators.verifiers.code import CodeVerifier, extract_code
from distillery.operators.verifiers.code_compare import compare_result, compare_stdout
from distillery.operators.verifiers.code_tests import parse_tests
from distillery.schemas.verifier_config import CodeVerifierConfig

APPS_STDIO = json.dumps({"inputs": ["1 2\n", "10 -3\n"], "outputs": ["3\n", "7\n"]})
APPS_CALL = json.dumps({"fn_name": "add", "inputs": [[1, 2], [10, -3]], "outputs": [[3], [7]]})
LCB_STDIN = json.dumps([{"input": "2\n3 4\n", "output": "7\n", "testtype": "stdin"},
                        {"input": "1\n5\n", "output": "5\n", "testtype": "stdin"}])
LCB_FUNCTIONAL = json.dumps([{"input": "[1, 2, 3]\n2", "output": "[2, 4, 6]", "testtype": "functional"},
                             {"input": "[]\n5", "output": "[]", "testtype": "functional"}])
HUMANEVAL = json.dumps({
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(0, 0) == 0\n",
    "entry_point": "add",
})
MBPP = json.dumps({"test_list": ["assert add(2, 3) == 5", "assert add(-1, 1) == 0"], "test_imports": ["import math"]})

ADD_STDIO = "a, b = map(int, input().split())\nprint(a + b)"
ADD_FUNCTION = "def add(a, b):\n    return a + b"


def fenced(code: str) -> str:
    return f"Here is my solution.\n\n```python\n{code}\n```\n\nIt runs in O(1)."


# -- formats ---------------------------------------------------------------------------------------

def test_apps_stdio_and_call() -> None:
    stdio = parse_tests(APPS_STDIO)
    assert (stdio.mode, stdio.inputs, stdio.expected) == ("stdio", ("1 2\n", "10 -3\n"), ("3\n", "7\n"))
    call = parse_tests(APPS_CALL)
    assert (call.mode, call.fn_name, call.inputs[1]) == ("call", "add", CallCase("add", (10, -3)))
    assert call.expected[1] == [7]
    assert call.unwrap_single


def test_apps_lines_lists_are_joined() -> None:
    tests = parse_tests(json.dumps({"inputs": [["3", "1 2 3"]], "outputs": [["6"]]}))
    assert tests.inputs == ("3\n1 2 3\n",)
    assert tests.expected == ("6\n",)


def test_livecodebench_stdin_and_functional() -> None:
    assert parse_tests(LCB_STDIN).mode == "stdio"
    functional = parse_tests(LCB_FUNCTIONAL)
    assert (functional.mode, functional.inputs[0], functional.expected[0]) == \
        ("call", CallCase(None, ([1, 2, 3], 2)), [2, 4, 6])
    assert not functional.unwrap_single


def test_simple_assertions_become_call_cases() -> None:
    humaneval = parse_tests(HUMANEVAL)
    assert (humaneval.mode, humaneval.inputs) == ("call", (CallCase("add", (2, 3)), CallCase("add", (0, 0))))
    assert [check.holds(5) for check in humaneval.expected] == [True, False]
    mbpp = parse_tests(MBPP)
    assert (mbpp.mode, mbpp.inputs[1]) == ("call", CallCase("add", (-1, 1)))


def test_other_assertion_tests_run_as_scripts() -> None:
    loop = json.dumps({"test": "import math\ndef check(candidate):\n    for x in range(3):\n"
                               "        assert candidate(x, 1) == helper(x) + 1\n", "entry_point": "add"})
    tests = parse_tests(loop)
    assert tests.mode == "script"
    assert tests.script is not None
    assert (tests.script.proxied, tests.script.modules, tests.script.entry_point) == (("helper",), (), "add")


def test_the_sandbox_never_gets_expected_outputs() -> None:
    spec = parse_tests(APPS_STDIO).harness_spec()
    assert "7\n" not in json.dumps(spec)
    assert "outputs" not in json.dumps(parse_tests(APPS_CALL).harness_spec())
    secret = json.dumps({"test": "def check(candidate):\n    assert candidate(2, 3) == 123454321\n",
                         "entry_point": "f"})
    assert "123454321" not in json.dumps(parse_tests(secret).harness_spec())


@pytest.mark.parametrize(
    ("tests", "why"),
    [
        (None, "no tests"),
        ("{not json", "not valid JSON"),
        (json.dumps({"inputs": ["1"], "outputs": []}), "1 inputs but 0 outputs"),
        (json.dumps({"inputs": [], "outputs": []}), "no test cases"),
        (json.dumps({"fn_name": "f", "inputs": ["1"], "outputs": [1]}), "must be a list of arguments"),
        (json.dumps({"cases": []}), "unknown format"),
        (json.dumps([{"input": "1", "output": "1", "testtype": "stdin"},
                     {"input": "1", "output": "1", "testtype": "functional"}]), "all 'stdin' or all 'functional'"),
        (json.dumps([{"input": "not json", "output": "1", "testtype": "functional"}]), "not JSON"),
        (json.dumps([{"output": "1"}]), "string `input`"),
        (json.dumps({"test": "def check(candidate):\n    assert candidate(1)\n"}), "needs `entry_point`"),
        (json.dumps({"test": "def check(candidate)\n", "entry_point": "f"}), "does not compile"),
        (json.dumps(42), "unknown format"),
    ],
)
def test_unreadable_tests_say_why(tests: str | None, why: str) -> None:
    with pytest.raises(GoldError, match=why):
        parse_tests(tests)


# -- comparison ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("expected", "actual", "same"),
    [
        ("3\n", "3", True),
        ("1 2 3\n4\n", "1 2 3   \n4\n\n\n", True),
        ("a\r\nb\r\n", "a\nb\n", True),
        ("0.333333\n", "0.3333333333\n", True),
        ("1.0\n", "1\n", True),
        ("100000000000000001\n", "100000000000000000\n", False),
        ("1\n2\n3\n", "1\n2\n", False),
        ("1 2\n", "1  2\n", True),
        ("1 2\n", "12\n", False),
        ("YES\n", "yes\n", False),
        ("\n", "", True),
    ],
)
def test_compare_stdout(expected: str, actual: str, same: bool) -> None:
    assert (compare_stdout(expected, actual, 1e-6) is None) is same


def test_compare_stdout_says_what_differs() -> None:
    assert compare_stdout("1\n2\n3\n", "1\n2\n", 1e-6) == "expected 3 line(s), got 2"
    assert compare_stdout("1\n2\n", "1\n5\n", 1e-6) == "line 2: expected '2', got '5'"


@pytest.mark.parametrize(
    ("expected", "actual", "same"),
    [
        ([1, 2], [1, 2], True),
        ([1, 2], (1, 2), True),
        (0.1 + 0.2, 0.3, True),
        (2.0, 2, True),
        ({"a": [1.0]}, {"a": [1.0000000001]}, True),
        (True, 1, False),
        (1, True, False),
        (5, 5.0000001, False),
        ([1, 2], [2, 1], False),
        ("1", 1, False),
        (None, None, True),
        ([3], 3, False),
    ],
)
def test_compare_result(expected: object, actual: object, same: bool) -> None:
    assert (compare_result(expected, actual, 1e-6) is None) is same


def test_one_element_lists_unwrap_only_by_convention() -> None:
    assert compare_result([3], 3, 1e-6, unwrap_single=True) is None
    assert compare_result([3], 3, 1e-6) == "expected [3], got 3"


# -- extraction ------------------------------------------------------------------------------------

def test_extract_code_takes_the_last_python_block() -> None:
    response = (
        "```python\nprint(1)\n```\nThen output:\n```text\n1\n```\nBetter:\n```py\nprint(2)\n```\n```bash\nls\n```"
    )
    assert extract_code(response) == "print(2)\n"
    assert extract_code(response, "first_block") == "print(1)\n"


def test_extract_code_modes_and_missing_code() -> None:
    assert extract_code("<think>```python\nprint(0)\n```</think>\n```\nprint(1)\n```") == "print(1)\n"
    assert extract_code("print(3)", "whole") == "print(3)"
    assert extract_code("No code here.") is None
    assert extract_code("```python\nprint(1)\n") is None  # cut off before the block closed


# -- whole runs in the sandbox ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def verifier() -> CodeVerifier:
    # Generous limits: other jobs share this machine's two cores.
    return CodeVerifier(CodeVerifierConfig(test_timeout_s=10, timeout_s=30))


@pytest.mark.parametrize(
    ("tests", "right", "wrong"),
    [
        (APPS_STDIO, ADD_STDIO, "a, b = map(int, input().split())\nprint(a * b)"),
        (APPS_CALL, ADD_FUNCTION, "def add(a, b):\n    return a - b"),
        (APPS_CALL, "class Solution:\n    def add(self, a, b):\n        return a + b",
         "def plus(a, b):\n    return a + b"),
        (LCB_STDIN, "input()\nprint(sum(map(int, input().split())))", "input()\nprint(0)"),
        (LCB_FUNCTIONAL, "class Solution:\n    def scale(self, xs, k):\n        return [x * k for x in xs]",
         "class Solution:\n    def scale(self, xs, k):\n        return xs"),
        (HUMANEVAL, ADD_FUNCTION, "def add(a, b):\n    return 5"),
        (MBPP, ADD_FUNCTION, "def add(a, b):\n    return abs(a) + b"),
    ],
    ids=["apps-stdio", "apps-call", "apps-leetcode-class", "lcb-stdin", "lcb-functional", "humaneval", "mbpp"],
)
def test_right_and_wrong_programs(verifier: CodeVerifier, tests: str, right: str, wrong: str) -> None:
    gold = verifier.prepare_gold(None, tests)
    label, extracted, detail = verifier.check(gold, fenced(right))
    assert (label, extracted) == ("correct", right + "\n"), detail
    label, _, detail = verifier.check(gold, fenced(wrong))
    assert label == "incorrect", detail


def test_no_code_is_invalid(verifier: CodeVerifier) -> None:
    assert verifier.check(verifier.prepare_gold(None, HUMANEVAL), "def add(a, b): return a + b")[0] == "invalid"


@pytest.mark.parametrize(
    "spoof",
    [
        "import sys\nsys.exit(0)",
        "import os\nos._exit(0)",
        "print('All tests passed!')\nraise SystemExit(0)",
        "class Anything:\n    def __eq__(self, other):\n        return True\n\ndef add(a, b):\n    return Anything()",
        "def add(a, b):\n    raise SystemExit(0)",
        "import atexit, os\natexit.register(lambda: os.write(1, b'OK'))\ndef add(a, b):\n    return None",
    ],
    ids=["sys-exit", "os-exit", "print-pass", "always-equal", "exit-in-call", "atexit"],
)
def test_spoofed_success_fails(verifier: CodeVerifier, spoof: str) -> None:
    label, _, detail = verifier.check(verifier.prepare_gold(None, HUMANEVAL), fenced(spoof))
    assert label == "incorrect", detail


def test_the_program_has_no_result_channel(verifier: CodeVerifier) -> None:
    forge = (
        "import os\n"
        "written = 0\n"
        "for fd in range(5, 1024):\n"
        "    try:\n"
        "        os.write(fd, b'0123456789abcdef0123456789abcdef {\"event\": \"done\"}\\n')\n"
        "        written += 1\n"
        "    except OSError:\n"
        "        pass\n"
        "def add(a, b):\n"
        "    return written\n"
    )
    run = verifier.sandbox.run({**parse_tests(HUMANEVAL).harness_spec(), "code": forge})
    assert run.stopped is None
    assert [r["event"] for r in run.records] == ["ready", "load", "case", "case", "done"]
    # Nothing but stdin, stdout, stderr and its own request and response pipes (3, 4) was open to it.
    assert [r.get("result") for r in run.records if r["event"] == "case"] == ["0", "0"]
    assert verifier.check(verifier.prepare_gold(None, HUMANEVAL), fenced(forge))[0] == "incorrect"


def test_stdout_noise_does_not_change_a_call_result(verifier: CodeVerifier) -> None:
    noisy = "def add(a, b):\n    print('debug', a, b)\n    return a + b"
    assert verifier.check(verifier.prepare_gold(None, APPS_CALL), fenced(noisy))[0] == "correct"


def test_stop_at_first_failure_or_run_all() -> None:
    tests = json.dumps({"inputs": ["1\n", "2\n", "3\n"], "outputs": ["1\n", "0\n", "0\n"]})
    echo = fenced("print(input())")
    first = CodeVerifier(CodeVerifierConfig(test_timeout_s=10, timeout_s=30))
    every = CodeVerifier(CodeVerifierConfig(test_timeout_s=10, timeout_s=30, stop_on_first_failure=False))
    assert first.check(first.prepare_gold(None, tests), echo)[2] == "test 2/3: line 1: expected '0', got '2' " \
                                                                     "(1/3 tests passed)"
    assert every.check(every.prepare_gold(None, tests), echo)[2].endswith("(1/3 tests passed)")
