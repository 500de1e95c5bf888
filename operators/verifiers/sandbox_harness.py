"""The program that runs inside the code sandbox: it sets the limits, gives up root, runs the candidate
program against the test inputs, and reports what it saw. Run as a script (`python -I -S
sandbox_harness.py`), never imported by distillery.

Protocol: the host writes the spec (a `marshal`-encoded dict) to stdin; the harness reads all of
it before any candidate code runs (so the candidate finds stdin at its end) and answers on the
file descriptor `result_fd` with lines `<nonce> <json>`: `ready`, `load` (call/assert modes), one
`case` per test, and `done`. The nonce is a per-run random token the candidate is never given;
lines without it are ignored, and a run without `done` has failed, whatever its exit code.
Expected outputs of stdin/stdout and call tests never enter the sandbox: the host compares them.

Start-up time is most of a test run, so this imports only built-in modules (no json, re, enum,
signal or subprocess: each of those costs milliseconds) and writes its JSON by hand.
"""

import _signal
import marshal
import os
import select
import sys
import time

_PLAIN_TYPES = (int, float, complex, str, bytes, bool, type(None), list, tuple, dict, set, frozenset)
_JSON_ESCAPES = {i: f"\\u{i:04x}" for i in range(32)}
_JSON_ESCAPES[ord('"')] = '\\"'
_JSON_ESCAPES[ord("\\")] = "\\\\"
_STDERR_TAIL = 2000


class TimeLimit(BaseException):
    """Raised in the candidate's code when a test's time is up (a BaseException, so that a bare
    `except Exception` in the candidate does not swallow it)."""


def _on_alarm(signum, frame):
    raise TimeLimit()


def _json(value):
    kind = type(value)
    if kind is str:
        return '"' + value.translate(_JSON_ESCAPES) + '"'
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if kind is list or kind is tuple:
        return "[" + ",".join([_json(v) for v in value]) + "]"
    if kind is dict:
        return "{" + ",".join([_json(str(k)) + ":" + _json(v) for k, v in value.items()]) + "}"
    raise TypeError(f"cannot report a {kind.__name__}")


def _set_limits(limits):
    import resource

    pairs = {
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_CPU: limits["cpu_s"],
        resource.RLIMIT_AS: limits["memory_bytes"],
        resource.RLIMIT_FSIZE: limits["fsize_bytes"],
        resource.RLIMIT_NOFILE: limits["nofile"],
        resource.RLIMIT_NPROC: limits["nproc"],
    }
    for kind, value in pairs.items():
        resource.setrlimit(kind, (value, value))


def _drop_privileges(uid, gid):
    # Root in the sandbox (bubblewrap run by root keeps every capability) becomes an unprivileged
    # user of its own: no capabilities, not dumpable (fs.suid_dumpable), and RLIMIT_NPROC counts
    # only this run's processes.
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def _not_dumpable():
    # Programs started by the harness may not read its memory or file descriptors (/proc/PID/...).
    # Without root to give up, that takes prctl, through ctypes where the interpreter has it.
    try:
        import ctypes
    except ImportError:
        return
    pr_set_dumpable = 4
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_dumpable, 0, 0, 0, 0)


class Reporter:
    def __init__(self, fd, nonce):
        self._fd = fd
        self._prefix = nonce.encode("ascii") + b" "
        self._write = os.write  # bound before candidate code can replace os.write

    def emit(self, event, **fields):
        fields["event"] = event
        try:
            body = _json(fields)
        except (TypeError, ValueError, RecursionError) as exc:
            body = _json({"event": event, "i": fields.get("i"), "status": "error", "error": f"unreportable: {exc}"})
        data = self._prefix + body.encode("utf-8", "replace") + b"\n"
        while data:
            try:
                written = self._write(self._fd, data)
            except InterruptedError:
                continue
            data = data[written:]


def _short_error(exc):
    try:
        text = f"{type(exc).__name__}: {exc}"
    except BaseException:
        text = type(exc).__name__
    return text if len(text) <= 500 else text[:500] + "..."


def _kill_group(pid):
    try:  # noqa: SIM105 (contextlib would cost start-up time)
        os.killpg(pid, 9)
    except (ProcessLookupError, PermissionError):
        pass


def _run_program(argv, stdin_data, timeout_s, cap):
    """Run one program on one input in its own session: (status, stdout, stderr tail, exit code)."""
    pipes = [os.pipe() for _ in range(3)]
    (in_r, in_w), (out_r, out_w), (err_r, err_w) = pipes
    actions = [(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)]
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for pair in pipes for fd in pair]
    try:
        pid = os.posix_spawn(argv[0], argv, {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                             file_actions=actions, setsid=True)
    except OSError as exc:
        for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
            os.close(fd)
        return "error", b"", f"cannot start the program: {exc}".encode(), None
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    for fd in (in_w, out_r, err_r):
        os.set_blocking(fd, False)
    # The run ends when the program exits, not when its pipes close: a detached child of it may
    # hold them open (it dies with the sandbox).
    try:
        exit_fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        exit_fd = None
    poller = select.poll()
    open_fds = {out_r, err_r}
    poller.register(out_r, select.POLLIN)
    poller.register(err_r, select.POLLIN)
    if exit_fd is not None:
        poller.register(exit_fd, select.POLLIN)
    if stdin_data:
        poller.register(in_w, select.POLLOUT)
        open_fds.add(in_w)
    else:
        os.close(in_w)
    out, err = bytearray(), bytearray()
    view, offset = memoryview(stdin_data), 0
    deadline = time.monotonic() + timeout_s
    status, wait_status = None, None

    def take(fd):
        nonlocal status
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return False
        if not chunk:
            poller.unregister(fd)
            open_fds.discard(fd)
            return False
        buffer = out if fd == out_r else err
        buffer += chunk
        if len(buffer) > cap:
            status = "output_limit"
        if fd == err_r:
            del err[:-_STDERR_TAIL]
        return True

    while status is None and wait_status is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            status = "timeout"
            break
        wait_ms = remaining * 1000 if exit_fd is not None else min(remaining * 1000, 20)
        for fd, _ in poller.poll(wait_ms):
            if fd == exit_fd:
                wait_status = os.waitpid(pid, 0)[1]
            elif fd == in_w:
                try:
                    offset += os.write(in_w, view[offset : offset + 65536])
                except BlockingIOError:
                    pass
                except BrokenPipeError:
                    offset = len(view)
                if offset >= len(view):
                    poller.unregister(in_w)
                    open_fds.discard(in_w)
                    os.close(in_w)
            elif fd in open_fds:
                take(fd)
        if exit_fd is None and wait_status is None:
            done, polled = os.waitpid(pid, os.WNOHANG)
            wait_status = polled if done else None
    # What the program wrote before it exited is still in the pipes.
    for fd in (out_r, err_r):
        while status is None and fd in open_fds and take(fd):
            pass
    _kill_group(pid)
    if wait_status is None:
        wait_status = os.waitpid(pid, 0)[1]
    for fd in [*open_fds, *([exit_fd] if exit_fd is not None else [])]:
        os.close(fd)
    code = os.waitstatus_to_exitcode(wait_status)
    if status is None:
        status = "ok" if code == 0 else "exit"
    return status, bytes(out[:cap]), bytes(err[-_STDERR_TAIL:]), code


def _stdio(spec, report):
    path = os.path.join(spec["workdir"], "solution.py")
    argv = [spec["python"], *spec["python_flags"], path]
    for index, case in enumerate(spec["cases"]):
        started = time.monotonic()
        status, out, err, code = _run_program(argv, case["input"].encode("utf-8"), spec["test_timeout_s"],
                                              spec["output_cap"])
        report.emit("case", i=index, status=status, stdout=out.decode("utf-8", "replace"),
                    stderr=err.decode("utf-8", "replace"), returncode=code,
                    ms=round((time.monotonic() - started) * 1000, 1))


def _timed(seconds, function, *args):
    _signal.setitimer(_signal.ITIMER_REAL, seconds)
    try:
        return function(*args)
    finally:
        _signal.setitimer(_signal.ITIMER_REAL, 0)


def _load(spec, report):
    """Run the candidate's module code; its namespace, or None after reporting why it failed."""
    import builtins

    namespace = {"__name__": "__solution__", "__builtins__": builtins}
    try:
        code = compile(spec["code"], "solution.py", "exec")
        _timed(spec["test_timeout_s"], exec, code, namespace)
    except TimeLimit:
        report.emit("load", ok=False, error="time limit while loading the program")
        return None
    except BaseException as exc:  # SystemExit and KeyboardInterrupt included: loading did not finish
        report.emit("load", ok=False, error=_short_error(exc))
        return None
    report.emit("load", ok=True)
    return namespace


def _entry_point(namespace, name):
    """The function under test: a top-level function, or a method of LeetCode's `class Solution`."""
    found = namespace.get(name) if name else None
    if callable(found) and not isinstance(found, type):
        return found
    solution = namespace.get("Solution")
    if isinstance(solution, type):
        if name and callable(getattr(solution, name, None)):
            return getattr(solution(), name)
        methods = [m for m in vars(solution) if not m.startswith("_") and callable(vars(solution)[m])]
        if not name and len(methods) == 1:
            return getattr(solution(), methods[0])
    raise LookupError(f"no function {name!r} in the program" if name else "no entry point in the program")


def _plain(value):
    """Builtin data only: an object of the candidate's own class could claim to equal anything."""
    stack, seen = [value], 0
    while stack:
        item = stack.pop()
        seen += 1
        if type(item) not in _PLAIN_TYPES or seen > 1_000_000:
            return False
        if type(item) in (list, tuple, set, frozenset):
            stack.extend(item)
        elif type(item) is dict:
            stack.extend(item.keys())
            stack.extend(item.values())
    return True


def _jsonable(value):
    if type(value) in (bool, int, float, str, type(None)):
        return value
    if type(value) in (list, tuple):
        return [_jsonable(v) for v in value]
    if type(value) is dict:
        return {str(k): _jsonable(v) for k, v in value.items()}
    raise TypeError(f"the result is a {type(value).__name__}, not plain data (bool, int, float, str, list, dict)")


def _call(spec, report):
    namespace = _load(spec, report)
    if namespace is None:
        return
    try:
        function = _entry_point(namespace, spec.get("fn_name"))
    except Exception as exc:
        report.emit("case", i=0, status="error", error=_short_error(exc))
        return
    for index, case in enumerate(spec["cases"]):
        started = time.monotonic()
        try:
            result = _jsonable(_timed(spec["test_timeout_s"], function, *case["args"]))
        except TimeLimit:
            report.emit("case", i=index, status="timeout")
            continue
        except BaseException as exc:
            report.emit("case", i=index, status="error", error=_short_error(exc))
            continue
        report.emit("case", i=index, status="ok", result=result, ms=round((time.monotonic() - started) * 1000, 1))


def _guarded(function):
    def candidate(*args, **kwargs):
        result = function(*args, **kwargs)
        if not _plain(result):
            raise TypeError(f"candidate returned a {type(result).__name__}, not builtin data")
        return result

    return candidate


def _assert(spec, report):
    namespace = _load(spec, report)
    if namespace is None:
        return
    entry = spec.get("entry_point")
    started = time.monotonic()

    def run_tests():
        if entry and not callable(namespace.get(entry)):
            raise LookupError(f"no function {entry!r} in the program")
        if entry and "check" not in spec["test_code"]:
            namespace[entry] = _guarded(namespace[entry])
        exec(compile(spec["test_code"], "tests.py", "exec"), namespace)
        check = namespace.get("check")
        if entry and callable(check):
            check(_guarded(namespace[entry]))

    try:
        _timed(spec["test_timeout_s"], run_tests)
    except TimeLimit:
        report.emit("case", i=0, status="timeout")
        return
    except BaseException as exc:
        report.emit("case", i=0, status="error", error=_short_error(exc))
        return
    report.emit("case", i=0, status="ok", ms=round((time.monotonic() - started) * 1000, 1))


def main():
    spec = marshal.loads(sys.stdin.buffer.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    report = Reporter(spec.pop("result_fd"), spec.pop("nonce"))
    os.set_inheritable(report._fd, False)
    _set_limits(spec["limits"])
    workdir = spec["workdir"]
    os.chdir(workdir)
    with open(os.path.join(workdir, "solution.py"), "w", encoding="utf-8") as handle:
        handle.write(spec["code"])
    if spec.get("drop_to") and os.getuid() == 0:
        _drop_privileges(*spec["drop_to"])
    elif spec["mode"] == "stdio":
        _not_dumpable()
    _signal.signal(_signal.SIGALRM, _on_alarm)
    report.emit("ready")
    {"stdio": _stdio, "call": _call, "assert": _assert}[spec["mode"]](spec, report)
    report.emit("done")
    os._exit(0)  # skip atexit handlers and finalizers the candidate may have left behind


if __name__ == "__main__":
    main()
