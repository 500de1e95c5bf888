"""Hostile programs against the code sandbox (bubblewrap). Each must end in a failing verdict within
its deadline and leave the host as it was: no files outside the sandbox, no surviving processes,
nothing reaching a server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from distillery.operators.verifiers.code import DEADLINE_MARGIN_S, CodeVerifier
from distillery.schemas.verifier_config import CodeVerifierConfig

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bubblewrap is not installed (apt-get install -y bubblewrap)"
)

STDIO_TESTS = json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n4\n5\n"]})
CALL_TESTS = json.dumps({"fn_name": "f", "inputs": [[1]], "outputs": [[1]]})
TEST_TIMEOUT_S = 1.5
TIMEOUT_S = 4.0


@pytest.fixture(scope="module")
def verifier() -> CodeVerifier:
    config = CodeVerifierConfig(
        sandbox="bubblewrap", test_timeout_s=TEST_TIMEOUT_S, timeout_s=TIMEOUT_S, memory_mb=256,
        max_processes=16, max_output_kb=64,
    )
    return CodeVerifier(config)


@pytest.fixture
def token() -> str:
    """A word no other process on the machine has in its command line."""
    return f"distillery-hostile-{uuid.uuid4().hex}"


def survivors(token: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if token.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(entry)
            except OSError:
                continue
    return found


def judge(verifier: CodeVerifier, tests: str, code: str) -> tuple[str, str]:
    verdict = verifier.verdict(verifier.prepare_gold(None, tests), f"```python\n{code}\n```")
    # The kill at the deadline works: no run outlives it (plus the time to start and tear down).
    assert verdict.elapsed_ms < (TIMEOUT_S + DEADLINE_MARGIN_S) * 1000, verdict
    assert verdict.verdict in ("incorrect", "timeout"), verdict
    return verdict.verdict, verdict.detail


def in_python(token: str, program: str) -> str:
    """A program that re-executes itself with `token` in its command line, so it can be found."""
    return f"import os, sys\nos.execv(sys.executable, [sys.executable, '-c', {program!r}, {token!r}])"


def test_fork_bomb(verifier: CodeVerifier, token: str) -> None:
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    _, detail = judge(verifier, STDIO_TESTS, in_python(token, bomb))
    assert "time limit" in detail
    assert survivors(token) == []


@pytest.mark.parametrize(
    "bomb", ["x = bytearray(64 * 2**30)", "chunks = []\nwhile True:\n    chunks.append(bytearray(2**20))"],
    ids=["one-allocation", "growing"],
)
def test_memory_bomb(verifier: CodeVerifier, bomb: str) -> None:
    judge(verifier, STDIO_TESTS, bomb)


def test_infinite_loop(verifier: CodeVerifier) -> None:
    _, detail = judge(verifier, STDIO_TESTS, "while True:\n    pass")
    assert "time limit exceeded" in detail


def test_loop_that_swallows_exceptions_is_killed_at_the_test_limit(verifier: CodeVerifier) -> None:
    # The function runs in a process of its own, which the harness kills when the test's time is up.
    stubborn = "def f(x):\n    while True:\n        try:\n            while True:\n                pass\n" \
               "        except BaseException:\n            pass"
    _, detail = judge(verifier, CALL_TESTS, stubborn)
    assert "time limit exceeded" in detail


@pytest.mark.parametrize("program", ["while True:\n    print('x' * 10000)",
                                     "import sys\nwhile True:\n    sys.stderr.write('y' * 10000)"])
def test_output_flood(verifier: CodeVerifier, program: str) -> None:
    _, detail = judge(verifier, STDIO_TESTS, program)
    assert "output limit exceeded" in detail


def test_output_flood_from_a_function(verifier: CodeVerifier) -> None:
    _, detail = judge(verifier, CALL_TESTS, "def f(x):\n    while True:\n        print('z' * 10000)")
    assert "output limit exceeded" in detail


def test_writing_outside_the_sandbox(verifier: CodeVerifier, tmp_path: Path) -> None:
    targets = [tmp_path / "marker", Path("/tmp") / f"distillery-marker-{uuid.uuid4().hex}",
               Path(__file__).with_name(f"marker-{uuid.uuid4().hex}"), Path("/usr") / f"marker-{uuid.uuid4().hex}"]
    program = (
        "import os\n"
        f"for path in {[str(t) for t in targets]!r}:\n"
        "    try:\n"
        "        os.makedirs(os.path.dirname(path), exist_ok=True)\n"
        "        with open(path, 'w') as handle:\n"
        "            handle.write('escaped')\n"
        "    except OSError:\n"
        "        pass\n"
    )
    judge(verifier, STDIO_TESTS, program)
    assert [t for t in targets if t.exists()] == []


@contextlib.contextmanager
def recording(server: socket.socket) -> Iterator[list[object]]:
    """Accept connections on a listening `server` in a thread, recording each, until the block ends."""
    server.settimeout(0.2)
    seen: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, address = server.accept()
            except TimeoutError:
                continue
            seen.append(address)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()
        server.close()


@pytest.fixture
def loopback_server() -> Iterator[tuple[int, list[object]]]:
    """A TCP server on 127.0.0.1 that records every connection it accepts."""
    server = socket.create_server(("127.0.0.1", 0))
    with recording(server) as seen:
        yield server.getsockname()[1], seen


def test_network_is_unreachable(verifier: CodeVerifier, loopback_server: tuple[int, list[object]]) -> None:
    port, seen = loopback_server
    program = (
        "import socket\n"
        f"connection = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
        "print(3)\nprint(4)\nprint(5)\n"
    )
    judge(verifier, STDIO_TESTS, program)
    assert seen == []


def test_killing_the_parent(verifier: CodeVerifier) -> None:
    program = (
        "import os, signal\n"
        "for pid in (os.getppid(), 1, -1):\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGKILL)\n"
        "    except OSError:\n"
        "        pass\n"
        "print(3)\nprint(4)\nprint(5)\n"
    )
    judge(verifier, STDIO_TESTS, program)
    judge(verifier, CALL_TESTS, "import os, signal\ndef f(x):\n    os.kill(-1, signal.SIGKILL)\n    return [x]")


def test_detached_child_does_not_outlive_the_run(verifier: CodeVerifier, token: str, tmp_path: Path) -> None:
    marker = tmp_path / "late-marker"
    sleeper = f"import time\ntime.sleep(3)\nopen({str(marker)!r}, 'w').write('still here')"
    program = (
        "import os, sys\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        os.execv(sys.executable, [sys.executable, '-c', {sleeper!r}, {token!r}])\n"
        "    os._exit(0)\n"
        "print(3)\nprint(4)\n"
    )
    judge(verifier, STDIO_TESTS, program)
    assert survivors(token) == []
    assert not marker.exists()


@pytest.mark.parametrize("program", ["import sys\nsys.exit(0)", "import os\nos._exit(0)",
                                     "print('3\\n4\\n5 all tests passed')", "raise SystemExit(0)"])
def test_spoofing_success_by_exit_code(verifier: CodeVerifier, program: str) -> None:
    judge(verifier, STDIO_TESTS, program)
    judge(verifier, CALL_TESTS, program)


def test_printing_only_part_of_the_expected_output(verifier: CodeVerifier) -> None:
    _, detail = judge(verifier, STDIO_TESTS, "print(3)\nprint(4)")
    assert detail.startswith("test 1/1: expected 3 line(s), got 2")


def test_the_honest_program_passes_the_same_sandbox(verifier: CodeVerifier) -> None:
    gold = verifier.prepare_gold(None, STDIO_TESTS)
    assert verifier.check(gold, "```python\nprint(3)\nprint(4)\nprint(5)\n```")[0] == "correct"
