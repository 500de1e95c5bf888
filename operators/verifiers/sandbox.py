"""Running untrusted Python programs: bubblewrap where it works, the best isolation the machine allows
where it does not, and hard limits either way.

With bubblewrap the program sees a read-only /usr and Python installation, a private /proc, a
minimal /dev and a private size-limited /tmp; it has no network (its own empty network namespace),
its own PID namespace (every process of the run dies with it) and a new session. Inside, the
harness (`sandbox_harness.py`) sets rlimits (CPU, address space, processes, file size, open files)
and, when the host runs as root, becomes a random unprivileged user before any candidate code
runs. From outside, the host kills the whole process group and the PID namespace at the wall-clock
deadline, caps every stream it reads, and believes only result lines tagged with the run's random
nonce.

Without bubblewrap (`auto` warns in the log): `unshare` gives the same network, PID, IPC and UTS
namespaces and limits, but the program sees the host's files (as its unprivileged user, when the
host is root) and works in a temporary folder; with neither, only the limits, the process group
and (as root) killing everything the run's user still runs are left.

What a program cannot do is forge a result: stdin/stdout outputs and function results are compared
on the host against expected values the sandbox never sees. Assertion tests (HumanEval, MBPP) run
in the program's own process, so a program written to search the harness's memory for the nonce
could forge one; exiting early, printing "passed", or returning an object that equals anything
cannot.
"""

from __future__ import annotations

import contextlib
import json
import logging
import marshal
import os
import secrets
import select
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, cast

log = logging.getLogger(__name__)

Mechanism = Literal["bubblewrap", "unshare", "none"]

HARNESS = Path(__file__).with_name("sandbox_harness.py")
_HARNESS_INSIDE = "/sandbox/harness.py"
_STDERR_TAIL = 4096
_RECORD_SLACK = 256 * 1024
_UID_BASE = 2**31


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    wall_s: float
    test_timeout_s: float
    cpu_s: int = 20
    memory_bytes: int = 1024 * 2**20
    processes: int = 32
    file_bytes: int = 16 * 2**20
    open_files: int = 64
    tmp_bytes: int = 64 * 2**20
    output_bytes: int = 2**20


@dataclass(slots=True)
class SandboxRun:
    """What the host saw of one run."""

    records: list[dict[str, Any]] = field(default_factory=list)
    stopped: Literal["deadline", "output_limit", "result_limit", "by_caller"] | None = None
    returncode: int | None = None
    stdout_bytes: int = 0
    stderr_tail: str = ""
    forged_lines: int = 0
    elapsed_s: float = 0.0

    def event(self, name: str) -> dict[str, Any] | None:
        return next((r for r in self.records if r.get("event") == name), None)


@dataclass(frozen=True, slots=True)
class Interpreter:
    path: str
    prefix: str
    flags: tuple[str, ...]


def resolve_interpreter(python: str | None, site_packages: bool) -> Interpreter:
    """The interpreter that runs the harness and the programs: the configured one, or the base
    interpreter of the Python running distillery (not a virtual environment's wrapper)."""
    if python is None:
        path, prefix = os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix)
    else:
        found = shutil.which(python) if os.sep not in python else python
        if not found or not os.path.exists(found):
            raise FileNotFoundError(f"code verifier: python interpreter {python!r} not found")
        path = os.path.realpath(found)
        prefix = os.path.dirname(os.path.dirname(path))
    flags = ("-I", "-B") if site_packages else ("-I", "-S", "-B")
    return Interpreter(path=path, prefix=prefix, flags=flags)


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    return args


def _command(mechanism: Mechanism, interpreter: Interpreter, tmp_bytes: int) -> tuple[list[str], str]:
    """(argv, working directory inside) of one sandboxed harness run."""
    harness_argv = [interpreter.path, *interpreter.flags]
    if mechanism == "bubblewrap":
        argv = ["bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if os.geteuid() != 0:
            argv.append("--unshare-user")
        argv += ["--die-with-parent", "--new-session", *_system_binds()]
        if not interpreter.prefix.startswith("/usr/"):
            # Folders bubblewrap creates on the way are private (0700) to root; the program runs as
            # another user and must reach the interpreter's standard library.
            for parent in reversed(Path(interpreter.prefix).parents[:-1]):
                argv += ["--perms", "0755", "--dir", str(parent)]
            argv += ["--ro-bind", interpreter.prefix, interpreter.prefix]
        argv += ["--ro-bind", str(HARNESS), _HARNESS_INSIDE, "--proc", "/proc", "--dev", "/dev",
                 "--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/tmp", "--chdir", "/tmp"]
        return [*argv, *harness_argv, _HARNESS_INSIDE], "/tmp"
    harness = [*harness_argv, str(HARNESS)]
    if mechanism == "unshare":
        namespaces = ["--net", "--pid", "--fork", "--kill-child", "--ipc", "--uts"]
        if os.geteuid() != 0:
            namespaces.insert(0, "--user")
        return ["unshare", *namespaces, *harness], ""
    return harness, ""


def _probe(mechanism: Mechanism, interpreter: Interpreter) -> str | None:
    """None when a trivial program runs under `mechanism` here, else why not."""
    limits = SandboxLimits(wall_s=20, test_timeout_s=10)
    try:
        run = Sandbox(mechanism, interpreter, limits).run(
            {"mode": "stdio", "code": "import fractions\nprint(input())", "cases": [{"input": "ok\n"}]}
        )
    except OSError as exc:
        return str(exc)
    case = run.event("case")
    if case and case.get("status") == "ok" and case.get("stdout") == "ok\n" and run.event("done"):
        return None
    if case:
        hint = " (is the interpreter's standard library readable by other users?)" if os.geteuid() == 0 else ""
        return f"a test program failed ({case.get('status')}): {case.get('stderr', '').strip()[-300:]}{hint}"
    return f"the harness failed (exit {run.returncode}): {run.stderr_tail.strip()[-300:]}"


@lru_cache(maxsize=8)
def resolve_mechanism(requested: str, interpreter: Interpreter) -> Mechanism:
    """The isolation to use. An explicit choice that does not work here is an error; `auto` takes the
    best that works and warns when that is not bubblewrap."""
    candidates = ["bubblewrap", "unshare", "none"] if requested == "auto" else [requested]
    reasons = []
    for mechanism in candidates:
        binary = {"bubblewrap": "bwrap", "unshare": "unshare", "none": None}[mechanism]
        if binary and shutil.which(binary) is None:
            reasons.append(f"{mechanism}: `{binary}` not installed")
            continue
        problem = _probe(mechanism, interpreter)
        if problem is None:
            if mechanism != "bubblewrap":
                log.warning(
                    "code sandbox: bubblewrap unavailable (%s); running programs with %s. Install it "
                    "(Debian/Ubuntu: apt-get install -y bubblewrap) for a read-only file system and a private /tmp.",
                    "; ".join(reasons),
                    "namespaces (unshare) and rlimits" if mechanism == "unshare" else "rlimits only, NO isolation",
                )
            return cast(Mechanism, mechanism)
        reasons.append(f"{mechanism}: {problem}")
    raise RuntimeError(f"code sandbox {requested!r} does not work here: {'; '.join(reasons)}")


def _namespace_init(launcher: int) -> int | None:
    """A pidfd of the first process of the run's PID namespace (the launcher's child): killing it
    ends every process in the namespace, and it exits only after all of them have."""
    try:
        children = Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split()
        # The launcher has not reaped its child yet, so the pid still names that process.
        return os.pidfd_open(int(children[0])) if children else None
    except (OSError, ValueError, AttributeError):
        return None


def _end_namespace(pidfd: int, timeout_s: float = 5.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.poll(timeout_s * 1000)
    os.close(pidfd)


class Sandbox:
    def __init__(self, mechanism: Mechanism, interpreter: Interpreter, limits: SandboxLimits) -> None:
        self.mechanism = mechanism
        self.interpreter = interpreter
        self.limits = limits

    def run(self, spec: dict[str, Any], on_record: Callable[[dict[str, Any]], bool] | None = None) -> SandboxRun:
        """Run the harness on `spec` (mode, code, cases, ...). `on_record` sees each result record
        as it arrives and may return False to stop the run early."""
        argv, workdir = _command(self.mechanism, self.interpreter, self.limits.tmp_bytes)
        host_dir = None
        drop_to = None
        if os.geteuid() == 0:
            # A user of its own for each run, from a range no system allocates (above 2^31, which
            # systemd leaves unused), so nothing else ever runs under it.
            uid = _UID_BASE + secrets.randbelow(2**30)
            drop_to = [uid, uid]
        if not workdir:
            host_dir = tempfile.mkdtemp(prefix="distillery-sandbox-")
            if drop_to:
                os.chown(host_dir, *drop_to)
            workdir = host_dir
        nonce = secrets.token_hex(16)
        read_fd, write_fd = os.pipe()
        full_spec = {
            **spec,
            "nonce": nonce,
            "result_fd": write_fd,
            "workdir": workdir,
            "python": self.interpreter.path,
            "python_flags": list(self.interpreter.flags),
            "drop_to": drop_to,
            "test_timeout_s": self.limits.test_timeout_s,
            "output_cap": self.limits.output_bytes,
            "limits": {
                "cpu_s": self.limits.cpu_s,
                "memory_bytes": self.limits.memory_bytes,
                "fsize_bytes": self.limits.file_bytes,
                "nofile": self.limits.open_files,
                "nproc": self.limits.processes,
            },
        }
        try:
            return self._communicate(argv, marshal.dumps(full_spec), read_fd, write_fd, nonce, on_record)
        finally:
            if self.mechanism == "none" and drop_to:
                self._kill_user(drop_to[0])
            if host_dir:
                shutil.rmtree(host_dir, ignore_errors=True)

    def _kill_user(self, uid: int) -> None:
        """Without a PID namespace, a detached child survives its group: everything the run's own
        user still runs is killed by a process of that user (kill(-1) reaches exactly those)."""
        subprocess.run([self.interpreter.path, *self.interpreter.flags, "-c", "import os; os.kill(-1, 9)"],
                       user=uid, group=uid, extra_groups=[], check=False, timeout=30,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _communicate(self, argv: list[str], spec: bytes, read_fd: int, write_fd: int, nonce: str,
                     on_record: Callable[[dict[str, Any]], bool] | None) -> SandboxRun:
        start = time.monotonic()
        run = SandboxRun()
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(write_fd,), start_new_session=True, close_fds=True,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"},
            )
        except OSError:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        result = os.fdopen(read_fd, "rb", buffering=0)
        selector = selectors.DefaultSelector()
        os.set_blocking(proc.stdin.fileno(), False)
        selector.register(proc.stdin, selectors.EVENT_WRITE)
        for stream in (proc.stdout, proc.stderr, result):
            selector.register(stream, selectors.EVENT_READ)
        deadline = start + self.limits.wall_s
        view, offset = memoryview(spec), 0
        pending, stderr, prefix = bytearray(), bytearray(), nonce.encode() + b" "
        record_cap = 2 * self.limits.output_bytes + _RECORD_SLACK
        finished = False
        namespace_init = None
        try:
            while selector.get_map() and not finished and run.stopped is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    run.stopped = "deadline"
                    break
                for key, _ in selector.select(remaining):
                    stream = key.fileobj
                    if stream is proc.stdin:
                        try:
                            offset += os.write(proc.stdin.fileno(), view[offset : offset + 65536])
                        except BrokenPipeError:
                            offset = len(view)
                        if offset >= len(view):
                            selector.unregister(proc.stdin)
                            proc.stdin.close()
                        continue
                    chunk = os.read(stream.fileno(), 65536)
                    if not chunk:
                        selector.unregister(stream)
                        continue
                    if stream is proc.stdout:
                        run.stdout_bytes += len(chunk)
                        if run.stdout_bytes > self.limits.output_bytes:
                            run.stopped = "output_limit"
                    elif stream is proc.stderr:
                        stderr += chunk
                        if len(stderr) > self.limits.output_bytes:
                            run.stopped = "output_limit"
                        del stderr[:-_STDERR_TAIL]
                    else:
                        pending += chunk
                        while b"\n" in pending and not finished and run.stopped is None:
                            line, _, rest = bytes(pending).partition(b"\n")
                            pending = bytearray(rest)
                            finished = self._accept(line, prefix, run, on_record)
                            if namespace_init is None and self.mechanism != "none" and run.records:
                                namespace_init = _namespace_init(proc.pid)
                        if len(pending) > record_cap:
                            run.stopped = "result_limit"
        finally:
            # The whole group goes. A detached child of the program left its group, but not the
            # PID namespace, whose first process takes every process in it along when it ends.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if namespace_init is not None:
                _end_namespace(namespace_init)
            run.returncode = proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr, result):
                if not stream.closed:
                    stream.close()
            selector.close()
        run.stderr_tail = stderr.decode("utf-8", "replace")
        run.elapsed_s = time.monotonic() - start
        return run

    @staticmethod
    def _accept(line: bytes, prefix: bytes, run: SandboxRun,
                on_record: Callable[[dict[str, Any]], bool] | None) -> bool:
        """Take one result line; True once the run is complete."""
        if not line.startswith(prefix):
            run.forged_lines += 1
            return False
        try:
            record = json.loads(line[len(prefix) :])
        except ValueError:
            run.forged_lines += 1
            return False
        run.records.append(record)
        if on_record is not None and on_record(record) is False:
            run.stopped = "by_caller"
        return record.get("event") == "done"
