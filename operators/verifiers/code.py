"""Code answers: the Python program in the response, run against the prompt's tests in the sandbox.

Pass or fail is decided where the program cannot reach: outputs and function results are compared
on the host (assertion tests made of simple calls included, see `assertion_cases`), and any other
assertion test runs in the sandbox's harness process, which holds no candidate code. Results come
only from the harness's records on its private channel: a program that exits 0 before its tests
ran, prints "all tests passed", or returns an object that claims to equal anything has failed; so
has one that hit a whole-program limit (memory, processes) on the way.
"""

from __future__ import annotations

import re
from typing import Any

from distillery.operators.verifiers.answer_extraction import final_answer_region
from distillery.operators.verifiers.assertion_cases import AssertionCheck
from distillery.operators.verifiers.base import Verifier
from distillery.operators.verifiers.code_compare import compare_result, compare_stdout, short_repr
from distillery.operators.verifiers.code_tests import CodeTests, parse_tests
from distillery.operators.verifiers.sandbox import (
    Sandbox,
    SandboxLimits,
    SandboxRun,
    resolve_interpreter,
    resolve_mechanism,
)
from distillery.operators.verifiers.sandbox_cgroup import find_cgroup_host
from distillery.operators.verifiers.sandbox_harness import decode_plain
from distillery.schemas.records import VerdictLabel
from distillery.schemas.verifier_config import CodeVerifierConfig

# A fence opens with ``` or ~~~ (optionally a language tag) at the start of a line; the block ends
# at the next fence line of the same kind.
_FENCE = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+#.-]*)[^\n]*\n(?P<body>.*?)^[ \t]*(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3"}

DEADLINE_MARGIN_S = 5.0


def extract_code(response: str, mode: str = "last_block") -> str | None:
    """The program in a response: the last (or first) fenced block tagged Python or untagged, or
    the whole answer. None when there is none (an unclosed block does not count)."""
    region = final_answer_region(response)
    if region is None:
        return None
    if mode == "whole":
        return region.strip() or None
    blocks = [m.group("body") for m in _FENCE.finditer(region) if m.group("lang").lower() in _PYTHON_TAGS]
    blocks = [b for b in blocks if b.strip()]
    if not blocks:
        return None
    return blocks[-1] if mode == "last_block" else blocks[0]


class CodeVerifier(Verifier):
    name = "code"
    version = "2"

    def __init__(self, config: CodeVerifierConfig | None = None) -> None:
        self.config = config or CodeVerifierConfig()
        c = self.config
        self.interpreter = resolve_interpreter(c.python, c.site_packages)
        self.mechanism = resolve_mechanism(c.sandbox, self.interpreter, c.cgroup_parent)
        self.limits = SandboxLimits.of(c)
        self.sandbox = Sandbox(self.mechanism, self.interpreter, self.limits, find_cgroup_host(c.cgroup_parent))

    @property
    def deadline_s(self) -> float:
        """The pool's hard deadline: the sandbox's own, plus time to start it and read the results."""
        return self.config.timeout_s + DEADLINE_MARGIN_S

    def prepare_gold(self, answer: str | None, tests: str | None) -> CodeTests:
        return parse_tests(tests)

    def _judge_case(self, tests: CodeTests, record: dict[str, Any]) -> str | None:
        """None if one case record passed, else why it failed."""
        status = record.get("status")
        if status == "timeout":
            return f"time limit exceeded ({self.config.test_timeout_s:g}s)"
        if status == "output_limit":
            return f"output limit exceeded ({self.config.max_output_kb} KiB)"
        if status == "exit" and "returncode" in record:
            tail = (record.get("stderr") or "").strip().splitlines()
            return f"exit code {record.get('returncode')}" + (f": {tail[-1][:200]}" if tail else "")
        if status != "ok":
            return (record.get("error") or record.get("stderr") or str(status))[:300]
        index = record.get("i")
        if not isinstance(index, int) or not 0 <= index < tests.size:
            return f"result for an unknown test {index!r}"
        if tests.mode == "stdio":
            return compare_stdout(tests.expected[index], record.get("stdout", ""), self.config.float_tolerance)
        if tests.mode == "script":
            return None
        try:
            result = decode_plain(record.get("result"))
        except (ValueError, TypeError, RecursionError) as exc:
            return f"the result is not plain data ({str(exc)[:100]})"
        expected = tests.expected[index]
        if isinstance(expected, AssertionCheck):
            try:
                holds = expected.holds(result)
            except Exception as exc:  # the assertion raised on this result: it does not hold
                return f"{expected.source} raised {type(exc).__name__} on result {short_repr(result)}"
            return None if holds else f"{expected.source} failed: the function returned {short_repr(result)}"
        return compare_result(expected, result, self.config.float_tolerance, tests.unwrap_single)

    def check(self, gold: CodeTests, response: str) -> tuple[VerdictLabel, str | None, str]:
        code = extract_code(response, self.config.extract)
        if code is None:
            return "invalid", None, "no Python code block in the answer"
        failures: list[str] = []
        passed: set[int] = set()

        def on_record(record: dict[str, Any]) -> bool:
            if record.get("event") == "load" and not record.get("ok"):
                failures.append(f"the program failed to load: {record.get('error', '')[:300]}")
                return False
            if record.get("event") != "case":
                return True
            reason = self._judge_case(gold, record)
            if reason is None:
                passed.add(record["i"])
                return True
            failures.append(f"test {int(record.get('i', 0)) + 1}/{gold.size}: {reason}")
            return not self.config.stop_on_first_failure

        run = self.sandbox.run({**gold.harness_spec(), "code": code}, on_record)
        label, detail = self._verdict(gold, run, failures, passed)
        return label, code, detail

    def _verdict(self, gold: CodeTests, run: SandboxRun, failures: list[str],
                 passed: set[int]) -> tuple[VerdictLabel, str]:
        progress = f"{len(passed)}/{gold.size} tests passed"
        if "memory" in run.limits_hit:
            return "incorrect", (f"memory limit exceeded: the program's processes together may use "
                                 f"{self.config.memory_mb} MiB ({progress})")
        if "processes" in run.limits_hit:
            return "incorrect", (f"process limit exceeded: at most {self.config.max_processes} processes and "
                                 f"threads ({progress})")
        if failures:
            return "incorrect", f"{failures[0]} ({progress})"
        if run.stopped == "output_limit":
            return "incorrect", f"output limit exceeded ({self.config.max_output_kb} KiB per stream; {progress})"
        if run.stopped in ("result_limit", "protocol"):
            return "incorrect", f"the result channel carried more or other than the harness's records ({progress})"
        if run.stopped == "deadline":
            return "timeout", f"no result within {self.config.timeout_s:g}s ({progress})"
        if run.event("ready") is None:
            problem = run.stderr_tail.strip()[-300:]
            return "error", f"the sandbox did not start ({self.mechanism}, exit {run.returncode}): {problem}"
        if run.event("done") is None:
            return "incorrect", f"the program ended before its tests finished (exit {run.returncode}; {progress})"
        if len(passed) != gold.size:
            return "incorrect", f"results missing for some tests ({progress})"
        return "correct", progress
