"""Running untrusted Python programs: bubblewrap where it works, an unshare-based private view where it
does not, and no run at all without isolation unless the job asks for `sandbox: unsafe`.

With bubblewrap the program sees a read-only /usr and Python installation, a private /proc, a
minimal /dev and a private size-limited /tmp; it has no network (its own empty network namespace),
its own PID and IPC namespaces (every process and shared-memory segment of the run dies with it)
and a new session. The unshare fallback gives the same namespaces plus a mount namespace in which
the harness makes every host mount read-only and mounts private tmpfs on /tmp, /var/tmp, /dev/shm
and /run. Either way:
- a seccomp filter (`sandbox_seccomp`) forbids new namespaces, mounts, System V shared memory,
  ptrace and the other risky syscalls; bubblewrap also gets `--disable-userns` where it runs
  unprivileged;
- one control group per run (`sandbox_cgroup`) limits the memory, processes and CPU of the whole
  program where the host allows it; rlimits (CPU, address space, processes, file size, open files)
  limit each process always;
- inside, the harness (`sandbox_harness.py`) becomes a random unprivileged user when the host runs
  as root, and never runs candidate code in its own process;
- from outside, the host kills the whole process group, the PID namespace and the control group at
  the wall-clock deadline, caps every stream it reads (stdout and stderr bytes, the number and size
  of result records), and stops at the first result line that is not a known record tagged with
  the run's random nonce.
"""

from __future__ import annotations

import contextlib
import hashlib
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

from distillery.operators.verifiers.sandbox_cgroup import CgroupHost, CgroupLimits, RunCgroup, find_cgroup_host
from distillery.operators.verifiers.sandbox_seccomp import syscall_filter
from distillery.schemas.verifier_config import CodeVerifierConfig

log = logging.getLogger(__name__)

Mechanism = Literal["bubblewrap", "unshare", "unsafe"]
Stop = Literal["deadline", "output_limit", "result_limit", "protocol", "by_caller"]

HARNESS = Path(__file__).with_name("sandbox_harness.py")
_HARNESS_INSIDE = "/sandbox/harness.pyc"
_STDERR_TAIL = 4096
_RECORD_SLACK = 64 * 1024
_RECORD_EVENTS = frozenset({"ready", "load", "case", "done"})
_RUN_RECORDS = 3  # ready, load, done
_UID_BASE = 2**31
PROBE_WALL_S = 20.0
PROBE_TEST_TIMEOUT_S = 10.0
"""Time the probe (a trivial program under each mechanism) gets: generous, it decides `sandbox: auto`."""
SANDBOX_OWN_PROCESSES = 4
"""Room in a run's pids.max for the sandbox's own processes (bubblewrap's two, the harness, slack);
the program's own are bounded by max_processes (RLIMIT_NPROC of the run's user) as well."""


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """The limits of one run, in bytes and seconds; their defaults live in `CodeVerifierConfig` alone."""

    wall_s: float
    test_timeout_s: float
    cpu_s: int
    memory_bytes: int
    processes: int
    file_bytes: int
    open_files: int
    tmp_bytes: int
    output_bytes: int
    cpus: float | None

    @staticmethod
    def of(config: CodeVerifierConfig) -> SandboxLimits:
        return SandboxLimits(
            wall_s=config.timeout_s,
            test_timeout_s=config.test_timeout_s,
            cpu_s=config.cpu_s,
            memory_bytes=config.memory_mb * 2**20,
            processes=config.max_processes,
            file_bytes=config.max_file_mb * 2**20,
            open_files=config.max_open_files,
            tmp_bytes=config.tmp_mb * 2**20,
            output_bytes=config.max_output_kb * 1024,
            cpus=config.cpus,
        )


@dataclass(slots=True)
class SandboxRun:
    """What the host saw of one run."""

    records: list[dict[str, Any]] = field(default_factory=list)
    stopped: Stop | None = None
    returncode: int | None = None
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    stderr_tail: str = ""
    limits_hit: tuple[str, ...] = ()
    """Whole-program limits that stopped something: 'memory', 'processes' (control group)."""
    peak_memory_bytes: int | None = None
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


@lru_cache(maxsize=4)
def compiled_harness(interpreter: Interpreter) -> Path:
    """The harness compiled by the interpreter that runs it, once per harness version and
    interpreter build (kept in the user's cache folder): compiling its source took a third of a
    run's CPU time when every run did it. Only the host's user reads it (the harness starts as them)."""
    stat = os.stat(interpreter.path)
    key = hashlib.sha256(f"{interpreter.path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode()
                         + HARNESS.read_bytes()).hexdigest()[:16]
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "distillery"
    target = folder / f"sandbox-harness-{key}.pyc"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{target.name}.{os.getpid()}"
        subprocess.run([interpreter.path, "-I", "-S", "-c",
                        "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)",
                        str(HARNESS), str(partial)], check=True, capture_output=True, timeout=60)
        os.replace(partial, target)
    return target


@lru_cache(maxsize=1)
def _harness_source() -> str:
    return HARNESS.read_text(encoding="utf-8")


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    return args


def _command(mechanism: Mechanism, interpreter: Interpreter, tmp_bytes: int, filter_fd: int) -> list[str]:
    """argv of one sandboxed harness run."""
    harness_argv = [interpreter.path, *interpreter.flags]
    if mechanism == "bubblewrap":
        argv = ["bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if os.geteuid() != 0:
            # As root the harness gives up root itself and the filter forbids user namespaces.
            argv += ["--unshare-user", "--disable-userns"]
        argv += ["--die-with-parent", "--new-session", "--seccomp", str(filter_fd), *_system_binds()]
        if not interpreter.prefix.startswith("/usr/"):
            # Folders bubblewrap creates on the way are private (0700) to root; the program runs as
            # another user and must reach the interpreter's standard library.
            for parent in reversed(Path(interpreter.prefix).parents[:-1]):
                argv += ["--perms", "0755", "--dir", str(parent)]
            argv += ["--ro-bind", interpreter.prefix, interpreter.prefix]
        argv += ["--perms", "0755", "--dir", os.path.dirname(_HARNESS_INSIDE), "--ro-bind",
                 str(compiled_harness(interpreter)), _HARNESS_INSIDE, "--proc", "/proc", "--dev", "/dev",
                 "--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/tmp", "--chdir", "/tmp"]
        return [*argv, *harness_argv, _HARNESS_INSIDE]
    harness = [*harness_argv, str(compiled_harness(interpreter))]
    if mechanism == "unshare":
        namespaces = ["--mount", "--propagation", "private", "--net", "--pid", "--fork", "--kill-child",
                      "--mount-proc", "--ipc", "--uts"]
        if os.geteuid() != 0:
            namespaces.insert(0, "--map-root-user")
            namespaces.insert(0, "--user")
        return ["unshare", *namespaces, *harness]
    return harness


_PROBE = (
    "import fractions\n"
    "status = dict(line.split(':\\t', 1) for line in open('/proc/self/status').read().splitlines() if ':\\t' in line)\n"
    "print(input(), status.get('Seccomp', '?').strip())\n"
)


def _probe(mechanism: Mechanism, interpreter: Interpreter, cgroups: CgroupHost | None) -> str | None:
    """None when a trivial program runs under `mechanism` here, with the syscall filter on, else why not."""
    limits = SandboxLimits.of(CodeVerifierConfig(timeout_s=PROBE_WALL_S, test_timeout_s=PROBE_TEST_TIMEOUT_S))
    try:
        run = Sandbox(mechanism, interpreter, limits, cgroups).run(
            {"mode": "stdio", "code": _PROBE, "cases": [{"input": "ok\n"}]}
        )
    except OSError as exc:
        return str(exc)
    case = run.event("case")
    if case and case.get("status") == "ok" and case.get("stdout") == "ok 2\n" and run.event("done"):
        return None
    if case and case.get("status") == "ok":
        return f"the syscall filter is not in force (the test program printed {case.get('stdout')!r})"
    if case:
        hint = " (is the interpreter's standard library readable by other users?)" if os.geteuid() == 0 else ""
        return f"a test program failed ({case.get('status')}): {case.get('stderr', '').strip()[-300:]}{hint}"
    return f"the harness failed (exit {run.returncode}): {run.stderr_tail.strip()[-300:]}"


@lru_cache(maxsize=8)
def resolve_mechanism(requested: str, interpreter: Interpreter, cgroup_parent: str | None = None) -> Mechanism:
    """The isolation to use. An explicit choice that does not work here is an error; `auto` takes
    bubblewrap, else the unshare fallback (with a warning), and refuses to run programs with neither:
    only `unsafe` runs them without isolation."""
    syscall_filter()  # fails here, with how to fix it, where libseccomp is missing
    cgroups = find_cgroup_host(cgroup_parent)
    candidates = ["bubblewrap", "unshare"] if requested == "auto" else [requested]
    reasons = []
    for mechanism in candidates:
        binary = {"bubblewrap": "bwrap", "unshare": "unshare", "unsafe": None}[mechanism]
        if binary and shutil.which(binary) is None:
            reasons.append(f"{mechanism}: `{binary}` not installed")
            continue
        problem = _probe(cast(Mechanism, mechanism), interpreter, cgroups)
        if problem is None:
            if mechanism == "unshare" and requested == "auto":
                log.warning(
                    "code sandbox: bubblewrap unavailable (%s); running programs in unshare namespaces with a "
                    "read-only view of the host's files. Install it (Debian/Ubuntu: apt-get install -y bubblewrap) "
                    "so that programs see only the system and a private /tmp.", "; ".join(reasons))
            if mechanism == "unsafe":
                log.warning("code sandbox: `sandbox: unsafe`: programs run WITHOUT isolation (limits only)")
            return cast(Mechanism, mechanism)
        reasons.append(f"{mechanism}: {problem}")
    advice = ""
    if requested == "auto":
        advice = (" Refusing to run untrusted programs without isolation: install bubblewrap "
                  "(apt-get install -y bubblewrap), or set `sandbox: unsafe` to run them anyway.")
    raise RuntimeError(f"code sandbox {requested!r} does not work here: {'; '.join(reasons)}.{advice}")


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


class RecordReader:
    """The host's side of the result channel: complete lines, each `<nonce> <json record>`, at most
    `max_records` of at most `max_line` bytes. Anything else stops the run (`stopped`): the harness
    writes nothing else, so a line that is not one of its records means something is wrong."""

    def __init__(self, nonce: str, max_records: int, max_line: int) -> None:
        self.prefix = nonce.encode() + b" "
        self.max_records = max_records
        self.max_line = max_line
        self.pending = bytearray()
        self.count = 0
        self.stopped: Stop | None = None

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        self.pending += chunk
        *lines, rest = self.pending.split(b"\n")
        self.pending = bytearray(rest)
        records = []
        for line in lines:
            record = self._parse(line)
            if record is None:
                break
            records.append(record)
        if self.stopped is None and len(self.pending) > self.max_line:
            self.stopped = "result_limit"
        return records

    def _parse(self, line: bytes) -> dict[str, Any] | None:
        self.count += 1
        if self.count > self.max_records or len(line) > self.max_line:
            self.stopped = "result_limit"
            return None
        if not line.startswith(self.prefix):
            self.stopped = "protocol"
            return None
        try:
            record = json.loads(line[len(self.prefix) :])
        except ValueError:
            record = None
        if not isinstance(record, dict) or record.get("event") not in _RECORD_EVENTS:
            self.stopped = "protocol"
            return None
        return record


class Sandbox:
    def __init__(self, mechanism: Mechanism, interpreter: Interpreter, limits: SandboxLimits,
                 cgroups: CgroupHost | None = None) -> None:
        self.mechanism = mechanism
        self.interpreter = interpreter
        self.limits = limits
        self.cgroups = cgroups

    def run(self, spec: dict[str, Any], on_record: Callable[[dict[str, Any]], bool] | None = None) -> SandboxRun:
        """Run the harness on `spec` (mode, code, cases, ...). `on_record` sees each result record
        as it arrives and may return False to stop the run early."""
        drop_to = None
        if os.geteuid() == 0:
            # A user of its own for each run, from a range no system allocates (above 2^31, which
            # systemd leaves unused), so nothing else ever runs under it.
            uid = _UID_BASE + secrets.randbelow(2**30)
            drop_to = [uid, uid]
        cgroup = None
        if self.cgroups is not None:
            cgroup = self.cgroups.create(CgroupLimits(
                memory_bytes=self.limits.memory_bytes, pids=self.limits.processes + SANDBOX_OWN_PROCESSES,
                cpus=self.limits.cpus))
        host_dir = None
        try:
            if self.mechanism == "unsafe":
                host_dir = tempfile.mkdtemp(prefix="distillery-sandbox-")
                if drop_to:
                    os.chown(host_dir, *drop_to)
            return self._start(spec, on_record, drop_to, host_dir or "/tmp", cgroup)
        finally:
            if cgroup is not None:
                cgroup.kill()
                cgroup.remove()
            elif self.mechanism == "unsafe" and drop_to:
                self._kill_user(drop_to[0])
            if host_dir:
                shutil.rmtree(host_dir, ignore_errors=True)

    def _start(self, spec: dict[str, Any], on_record: Callable[[dict[str, Any]], bool] | None,
               drop_to: list[int] | None, workdir: str, cgroup: RunCgroup | None) -> SandboxRun:
        program = syscall_filter()
        child_fds: list[int] = []
        filter_fd = -1
        if self.mechanism == "bubblewrap":
            filter_fd, filter_write = os.pipe()
            os.write(filter_write, program)  # a few hundred bytes: well within a pipe's buffer
            os.close(filter_write)
            child_fds.append(filter_fd)
        nonce = secrets.token_hex(16)
        read_fd, write_fd = os.pipe()
        child_fds.append(write_fd)
        full_spec = {
            **spec,
            "nonce": nonce,
            "result_fd": write_fd,
            "workdir": workdir,
            "python": self.interpreter.path,
            "python_flags": list(self.interpreter.flags),
            "drop_to": drop_to,
            "private_tmp_bytes": self.limits.tmp_bytes if self.mechanism == "unshare" else None,
            "syscall_filter": None if self.mechanism == "bubblewrap" else program,
            # A script test's candidate process is a fresh interpreter that runs the harness as source.
            "harness_source": _harness_source() if spec["mode"] == "script" else None,
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
        argv = _command(self.mechanism, self.interpreter, self.limits.tmp_bytes, filter_fd)
        if cgroup is not None:
            argv = cgroup.wrap(argv)
        reader = RecordReader(nonce, max_records=len(spec.get("cases") or [None]) + _RUN_RECORDS,
                              max_line=2 * self.limits.output_bytes + _RECORD_SLACK)
        return self._communicate(argv, marshal.dumps(full_spec), read_fd, tuple(child_fds), reader, on_record, cgroup)

    def _kill_user(self, uid: int) -> None:
        """Without a PID namespace or a control group, a detached child survives its group:
        everything the run's own user still runs is killed by a process of that user."""
        subprocess.run([self.interpreter.path, *self.interpreter.flags, "-c", "import os; os.kill(-1, 9)"],
                       user=uid, group=uid, extra_groups=[], check=False, timeout=30,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _communicate(self, argv: list[str], spec: bytes, read_fd: int, child_fds: tuple[int, ...],
                     reader: RecordReader, on_record: Callable[[dict[str, Any]], bool] | None,
                     cgroup: RunCgroup | None) -> SandboxRun:
        start = time.monotonic()
        run = SandboxRun()
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=child_fds, start_new_session=True, close_fds=True,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"},
            )
        except OSError:
            os.close(read_fd)
            raise
        finally:
            for fd in child_fds:
                os.close(fd)
        result = os.fdopen(read_fd, "rb", buffering=0)
        selector = selectors.DefaultSelector()
        os.set_blocking(proc.stdin.fileno(), False)
        selector.register(proc.stdin, selectors.EVENT_WRITE)
        for stream in (proc.stdout, proc.stderr, result):
            selector.register(stream, selectors.EVENT_READ)
        deadline = start + self.limits.wall_s
        view, offset = memoryview(spec), 0
        stderr = bytearray()
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
                        run.stderr_bytes += len(chunk)
                        stderr += chunk
                        del stderr[:-_STDERR_TAIL]
                        if run.stderr_bytes > self.limits.output_bytes:
                            run.stopped = "output_limit"
                    else:
                        for record in reader.feed(chunk):
                            finished = self._accept(record, run, on_record)
                            if finished or run.stopped is not None:
                                break
                        run.stopped = run.stopped or reader.stopped
                        if namespace_init is None and self.mechanism != "unsafe" and run.records:
                            namespace_init = _namespace_init(proc.pid)
                    if run.stopped is not None or finished:
                        break
        finally:
            # The whole group goes. A detached child of the program left its group, but not the
            # PID namespace, whose first process takes every process in it along when it ends, nor
            # the control group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if namespace_init is not None:
                _end_namespace(namespace_init)
            if cgroup is not None:
                cgroup.kill()
            run.returncode = proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr, result):
                if not stream.closed:
                    stream.close()
            selector.close()
            if cgroup is not None:
                run.limits_hit = cgroup.limits_hit()
                run.peak_memory_bytes = cgroup.peak_memory_bytes()
        run.stderr_tail = stderr.decode("utf-8", "replace")
        run.elapsed_s = time.monotonic() - start
        return run

    @staticmethod
    def _accept(record: dict[str, Any], run: SandboxRun, on_record: Callable[[dict[str, Any]], bool] | None) -> bool:
        """Take one result record; True once the run is complete."""
        run.records.append(record)
        if on_record is not None and on_record(record) is False:
            run.stopped = "by_caller"
        return record.get("event") == "done"
