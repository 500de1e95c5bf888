"""Where bubblewrap is missing: the sandbox falls back to namespaces (unshare) with a read-only view of the
host's files and a private /tmp, says so in the log, and still has no network or host sockets, kills at
the deadline and leaves no process behind. With neither, `auto` refuses to run programs; only
`sandbox: unsafe` runs them."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_sandbox_hostile as hostile

from distillery.operators.verifiers import sandbox
from distillery.operators.verifiers.code import CodeVerifier
from distillery.schemas.verifier_config import CodeVerifierConfig

loopback_server = hostile.loopback_server
STDIO_TESTS = json.dumps({"inputs": ["1 2\n"], "outputs": ["3\n"]})


def _reachable_by_others(prefix: str) -> bool:
    """Every folder down to the interpreter can be entered by another user (the programs run as one)."""
    path = Path(prefix)
    return all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents])


def _interpreter() -> str | None:
    """The interpreter the fallback can run programs with on this machine (as root, one other users
    can reach, since programs run as an unprivileged user without a private view of the files)."""
    if os.geteuid() != 0 or _reachable_by_others(sys.base_prefix):
        return None
    if Path("/usr/bin/python3").exists():
        return "/usr/bin/python3"
    pytest.skip("no interpreter that an unprivileged user can run")


@pytest.fixture(scope="module")
def unshare_verifier() -> CodeVerifier:
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    config = CodeVerifierConfig(sandbox="unshare", python=_interpreter(), test_timeout_s=1.5, timeout_s=4,
                                memory_mb=256, max_processes=16)
    return CodeVerifier(config)


def test_auto_falls_back_with_a_warning(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    real_which = shutil.which
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None if name == "bwrap" else real_which(name))
    sandbox.resolve_mechanism.cache_clear()
    interpreter = sandbox.resolve_interpreter(_interpreter(), site_packages=False)
    try:
        with caplog.at_level(logging.WARNING, logger="distillery.operators.verifiers.sandbox"):
            assert sandbox.resolve_mechanism("auto", interpreter) == "unshare"
    finally:
        sandbox.resolve_mechanism.cache_clear()
    assert "bubblewrap unavailable (bubblewrap: `bwrap` not installed)" in caplog.text
    assert "apt-get install -y bubblewrap" in caplog.text


def test_an_explicit_sandbox_that_cannot_work_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    sandbox.resolve_mechanism.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=r"code sandbox 'bubblewrap' does not work here: .*not installed"):
            CodeVerifier(CodeVerifierConfig(sandbox="bubblewrap"))
    finally:
        sandbox.resolve_mechanism.cache_clear()


def test_fallback_runs_honest_programs(unshare_verifier: CodeVerifier) -> None:
    gold = unshare_verifier.prepare_gold(None, STDIO_TESTS)
    assert unshare_verifier.check(gold, "```python\nprint(sum(map(int, input().split())))\n```")[0] == "correct"


def test_fallback_has_no_network(unshare_verifier: CodeVerifier, loopback_server: tuple[int, list[object]]) -> None:
    port, seen = loopback_server
    program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\nprint(3)"
    assert unshare_verifier.check(unshare_verifier.prepare_gold(None, STDIO_TESTS), f"```python\n{program}\n```")[0] \
        == "incorrect"
    assert seen == []


def test_fallback_kills_loops_and_detached_children(unshare_verifier: CodeVerifier) -> None:
    token = f"distillery-fallback-{os.getpid()}"
    program = (
        "import os, sys\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        f"    os.execv(sys.executable, [sys.executable, '-c', 'while True: pass', {token!r}])\n"
        "while True:\n"
        "    pass\n"
    )
    verdict = unshare_verifier.verdict(unshare_verifier.prepare_gold(None, STDIO_TESTS), f"```python\n{program}\n```")
    assert verdict.verdict == "incorrect"
    assert "time limit exceeded" in verdict.detail
    assert hostile.survivors(token) == []


def test_auto_refuses_to_run_programs_without_isolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    sandbox.resolve_mechanism.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=r"Refusing to run untrusted programs without isolation.*unsafe"):
            CodeVerifier(CodeVerifierConfig(sandbox="auto", python=_interpreter()))
    finally:
        sandbox.resolve_mechanism.cache_clear()


def test_unsafe_runs_programs_only_when_asked() -> None:
    verifier = CodeVerifier(CodeVerifierConfig(sandbox="unsafe", python=_interpreter(), test_timeout_s=5, timeout_s=10))
    assert verifier.mechanism == "unsafe"
    gold = verifier.prepare_gold(None, STDIO_TESTS)
    assert verifier.check(gold, "```python\nprint(sum(map(int, input().split())))\n```")[0] == "correct"


@pytest.fixture
def host_socket() -> Iterator[tuple[str, list[object]]]:
    """A Unix socket any user may connect to, in the host's /tmp, recording each connection it accepts."""
    folder = tempfile.mkdtemp(prefix="distillery-socket-", dir="/tmp")
    os.chmod(folder, 0o777)
    path = os.path.join(folder, "daemon.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    os.chmod(path, 0o777)
    server.listen()
    with hostile.recording(server) as seen:
        yield path, seen
    shutil.rmtree(folder)


def test_fallback_isolates_the_file_system(unshare_verifier: CodeVerifier,
                                           host_socket: tuple[str, list[object]]) -> None:
    path, seen = host_socket
    markers = [Path(f) / f"distillery-marker-{uuid.uuid4().hex}" for f in ("/tmp", "/var/tmp", "/dev/shm")]
    program = (
        "import os, socket\n"
        f"for marker in {[str(m) for m in markers]!r}:\n"
        "    open(marker, 'w').write('escaped')\n"
        f"print(os.path.exists({os.path.dirname(path)!r}))\n"
        "try:\n"
        "    client = socket.socket(socket.AF_UNIX)\n"
        f"    client.connect({path!r})\n"
        "    print('connected')\n"
        "except OSError:\n"
        "    print('no host socket')\n"
    )
    tests = json.dumps({"inputs": ["\n"], "outputs": ["False\nno host socket\n"]})
    gold = unshare_verifier.prepare_gold(None, tests)
    label, _, detail = unshare_verifier.check(gold, f"```python\n{program}\n```")
    assert label == "correct", detail  # its own /tmp, /var/tmp and /dev/shm took the writes
    assert [m for m in markers if m.exists()] == []
    assert seen == []
