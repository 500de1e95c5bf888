"""The programs that run inside the code sandbox, compiled once by the host (`python -I -S harness.pyc`);
distillery imports it only for `decode_plain`.

Two roles. The harness (no argument) reads the spec (a `marshal`-encoded dict) from stdin, isolates
the files when the sandbox asks it to (the unshare fallback), sets the limits, gives up root,
installs the syscall filter when the sandbox did not, and runs the tests. It never runs candidate
code. The candidate (argument `candidate`) loads the candidate program and answers calls.

What decides a test, and where:
- stdin/stdout: the harness runs the program once per case in a process of its own and reports the
  output it captured; the host compares it.
- calls (APPS/LiveCodeBench functions, and assertion tests the host turned into call cases): the
  candidate process gets each case's arguments as a marshalled copy and answers with the result
  encoded as plain data (tagged JSON, see `decode_plain`); the host decodes and compares it.
- any other assertion test: its code runs here in the harness, which holds no candidate code; the
  functions it calls are proxies that send marshalled copies of their arguments to the candidate
  process and return decoded copies of its results.
The candidate process has no result channel: what it sends is only its claim of what the program
returned, judged by code it cannot reach (the host, or this process: not dumpable, and the syscall
filter forbids ptrace and its kin).

Protocol with the host: the harness answers on `result_fd` with lines `<nonce> <json>`: `ready`,
`load` (call and script modes), one `case` per test, and `done`. With the candidate process:
requests on its fd 3 (4-byte length, then marshal), responses on its fd 4 (a kind byte, a 4-byte
length, then UTF-8): `l` loaded, `e` load failed, `r` result (tagged JSON), `x` the call raised,
`n` the result is not plain data.

Start-up time is most of a test run, so this imports only built-in modules where it can (json only
for script tests, ctypes only where a privilege or a mount needs it) and writes its JSON by hand.
"""

import _signal
import marshal
import os
import select
import sys
import time

_JSON_ESCAPES = {i: f"\\u{i:04x}" for i in range(32)}
_JSON_ESCAPES[ord('"')] = '\\"'
_JSON_ESCAPES[ord("\\")] = "\\\\"
_STDERR_TAIL = 2000
_SMALL_INT = 2**63
_REQUESTS_FD, _RESPONSES_FD = 3, 4


class TimeLimit(BaseException):
    """Raised in the harness when a test's time is up."""


class CandidateFailed(BaseException):
    """The candidate process died, timed out, broke the protocol or returned something that is not
    plain data. A BaseException, so that test code's `except Exception` does not turn it into a pass."""


def _on_alarm(signum, frame):
    raise TimeLimit()


# -- plain data --------------------------------------------------------------------------------------

def _float(value):
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _json(value):
    """JSON of the harness's own records (str, int, float, bool, None, list, dict)."""
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
        return _float(value)
    if kind is list or kind is tuple:
        return "[" + ",".join([_json(v) for v in value]) + "]"
    if kind is dict:
        return "{" + ",".join([_json(str(k)) + ":" + _json(v) for k, v in value.items()]) + "}"
    raise TypeError(f"cannot report a {kind.__name__}")


def encode_plain(value):
    """A function result as tagged JSON: builtin data only (exact types, so that an object claiming
    to equal anything, or an int subclass, is refused). Lists, str, finite-or-not floats, small ints,
    bool and None are JSON; {"t": [...]} tuple, {"s": [...]} set, {"f": [...]} frozenset,
    {"d": [[k, v], ...]} dict, {"i": "hex"} a big int, {"b": "hex"} bytes, {"c": [re, im]} complex."""
    kind = type(value)
    if kind is str:
        return '"' + value.translate(_JSON_ESCAPES) + '"'
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value) if -_SMALL_INT < value < _SMALL_INT else '{"i":"' + hex(value) + '"}'
    if value is None:
        return "null"
    if kind is float:
        return _float(value)
    if kind is list:
        return "[" + ",".join([encode_plain(v) for v in value]) + "]"
    if kind is tuple:
        return '{"t":[' + ",".join([encode_plain(v) for v in value]) + "]}"
    if kind is dict:
        items = ["[" + encode_plain(k) + "," + encode_plain(v) + "]" for k, v in value.items()]
        return '{"d":[' + ",".join(items) + "]}"
    if kind is set or kind is frozenset:
        tag = "s" if kind is set else "f"
        return '{"' + tag + '":[' + ",".join([encode_plain(v) for v in value]) + "]}"
    if kind is bytes:
        return '{"b":"' + value.hex() + '"}'
    if kind is complex:
        return '{"c":[' + _float(value.real) + "," + _float(value.imag) + "]}"
    raise TypeError(f"the result is a {kind.__name__}, not plain data (bool, int, float, str, list, tuple, dict, ...)")


def _tagged(pairs):
    if len(pairs) != 1:
        raise ValueError("not a tagged value")
    tag, payload = pairs[0]
    if tag in ("t", "s", "f") and type(payload) is list:
        return {"t": tuple, "s": set, "f": frozenset}[tag](payload)
    if tag == "d" and type(payload) is list and all(type(p) is list and len(p) == 2 for p in payload):
        return {key: value for key, value in payload}
    if tag == "i" and type(payload) is str:
        return int(payload, 16)
    if tag == "b" and type(payload) is str:
        return bytes.fromhex(payload)
    if tag == "c" and type(payload) is list and len(payload) == 2 and all(type(p) in (int, float) for p in payload):
        return complex(payload[0], payload[1])
    raise ValueError(f"unknown tag {tag!r}")


def decode_plain(text):
    """A value from `encode_plain`'s text, built from builtin types only (whoever wrote the text).
    Raises ValueError, TypeError or RecursionError on anything else."""
    import json

    return json.loads(text, object_pairs_hook=_tagged)


# -- reporting ---------------------------------------------------------------------------------------

class Reporter:
    def __init__(self, fd, nonce):
        self.fd = fd
        self._prefix = nonce.encode("ascii") + b" "

    def emit(self, event, **fields):
        fields["event"] = event
        try:
            body = _json(fields)
        except (TypeError, ValueError, RecursionError) as exc:
            body = _json({"event": event, "i": fields.get("i"), "status": "error", "error": f"unreportable: {exc}"})
        data = self._prefix + body.encode("utf-8", "backslashreplace") + b"\n"
        while data:
            try:
                written = os.write(self.fd, data)
            except InterruptedError:
                continue
            data = data[written:]


def _short_error(exc):
    try:
        text = f"{type(exc).__name__}: {exc}"
    except BaseException:
        text = type(exc).__name__
    return text if len(text) <= 500 else text[:500] + "..."


# -- setting up --------------------------------------------------------------------------------------

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


def _libc():
    import ctypes

    return ctypes, ctypes.CDLL(None, use_errno=True)


def _check(result, what):
    if result != 0:
        import ctypes

        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _isolate_files(tmp_bytes):
    """The unshare fallback's private view (this process is root of a new mount namespace): every
    mount read-only, and fresh private tmpfs on the folders others can write or keep sockets in."""
    ctypes, libc = _libc()
    mount_attr_rdonly, mount_attr_nosuid, at_recursive, at_fdcwd = 0x1, 0x2, 0x8000, -100
    sys_mount_setattr = 442
    attr = (ctypes.c_uint64 * 4)(mount_attr_rdonly | mount_attr_nosuid, 0, 0, 0)
    _check(libc.syscall(sys_mount_setattr, at_fdcwd, b"/", at_recursive, ctypes.byref(attr), 32),
           "making the file system read-only")
    ms_nosuid, ms_nodev = 0x2, 0x4
    for folder, options in (("/tmp", f"size={tmp_bytes},mode=1777"), ("/var/tmp", "size=1m,mode=1777"),
                            ("/dev/shm", "size=1m,mode=1777"), ("/run", "size=1m,mode=755")):
        if os.path.isdir(folder):
            _check(libc.mount(b"tmpfs", folder.encode(), b"tmpfs", ms_nosuid | ms_nodev, options.encode()),
                   f"mounting a private {folder}")


def _drop_privileges(uid, gid):
    # Root in the sandbox (bubblewrap run by root keeps every capability) becomes an unprivileged
    # user of its own: no capabilities, and RLIMIT_NPROC counts only this run's processes.
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def _not_dumpable(changed_user):
    """Processes started here may not read the harness's memory or file descriptors (/proc/PID/mem,
    /proc/PID/fd). Giving up root already did that unless fs.suid_dumpable says otherwise."""
    if changed_user:
        try:
            with open("/proc/sys/fs/suid_dumpable") as handle:
                if handle.read().strip() == "0":
                    return
        except OSError:
            pass
    pr_set_dumpable = 4
    _, libc = _libc()
    _check(libc.prctl(pr_set_dumpable, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")


def _install_filter(program):
    """The syscall filter, where the sandbox did not install it (bubblewrap does)."""
    ctypes, libc = _libc()
    pr_set_no_new_privs, pr_set_seccomp, seccomp_mode_filter = 38, 22, 2

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]  # noqa: RUF012 (ctypes' layout)

    _check(libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    fprog = Program(len(program) // 8, program)
    _check(libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.byref(fprog), 0, 0), "prctl(PR_SET_SECCOMP)")


# -- processes ---------------------------------------------------------------------------------------

def _kill_group(pid):
    try:  # noqa: SIM105 (contextlib would cost start-up time)
        os.killpg(pid, 9)
    except (ProcessLookupError, PermissionError):
        pass


def _spawn(argv, moves):
    """Start `argv` in a session of its own with the file descriptors `moves` ({target: source});
    the sources are closed here. (pid, pidfd or None)."""
    actions = [(os.POSIX_SPAWN_DUP2, source, target) for target, source in moves.items()]
    actions += [(os.POSIX_SPAWN_CLOSE, source) for source in set(moves.values()) if source not in moves]
    try:
        pid = os.posix_spawn(argv[0], argv, {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                             file_actions=actions, setsid=True)
    finally:
        for source in set(moves.values()):
            if source > 2:
                os.close(source)
    try:
        exit_fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        exit_fd = None
    return pid, exit_fd


def _run_program(argv, stdin_data, timeout_s, cap):
    """Run one program on one input: (status, stdout, stderr tail, exit code)."""
    (in_r, in_w), (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe(), os.pipe()
    try:
        pid, exit_fd = _spawn(argv, {0: in_r, 1: out_w, 2: err_w})
    except OSError as exc:
        for fd in (in_w, out_r, err_r):
            os.close(fd)
        return "error", b"", f"cannot start the program: {exc}".encode(), None
    for fd in (in_w, out_r, err_r):
        os.set_blocking(fd, False)
    # The run ends when the program exits, not when its pipes close: a detached child of it may
    # hold them open (it dies with the sandbox).
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
    err_total = 0

    def take(fd):
        nonlocal status, err_total
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return False
        if not chunk:
            poller.unregister(fd)
            open_fds.discard(fd)
            return False
        if fd == out_r:
            out.extend(chunk)
            if len(out) > cap:
                status = "output_limit"
        else:
            err_total += len(chunk)
            err.extend(chunk)
            del err[:-_STDERR_TAIL]
            if err_total > cap:
                status = "output_limit"
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


class Candidate:
    """The process that holds the candidate program, seen from the harness.

    `forked`: a fork of the harness (it saves an interpreter start per run), for call tests, where
    the harness holds nothing the program may not know but the nonce, useless without the result
    channel, which the fork closes before it loads the program. Script tests hold test code, so
    their candidate process is a fresh interpreter."""

    def __init__(self, spec, forked, result_fd):
        self.spec = spec
        self.failure = None
        """Why the process can no longer be believed (it died, timed out, broke the protocol)."""
        (req_r, self.requests), (self.responses, resp_w) = os.pipe(), os.pipe()
        devnull = os.open(os.devnull, os.O_RDONLY)
        if forked:
            self.pid = os.fork()
            if self.pid == 0:
                try:
                    os.setsid()
                    for target, source in ((0, devnull), (_REQUESTS_FD, req_r), (_RESPONSES_FD, resp_w)):
                        os.dup2(source, target)
                    os.close(result_fd)
                    os.closerange(_RESPONSES_FD + 1, 1 << 20)  # the harness's ends of the pipes too
                    candidate_main()
                finally:
                    os._exit(1)
            for fd in (devnull, req_r, resp_w):
                os.close(fd)
            try:
                self.exit_fd = os.pidfd_open(self.pid)
            except (AttributeError, OSError):
                self.exit_fd = None
        else:
            argv = [spec["python"], *spec["python_flags"], "-c", spec["harness_source"], "candidate"]
            self.pid, self.exit_fd = _spawn(argv, {0: devnull, _REQUESTS_FD: req_r, _RESPONSES_FD: resp_w})
        os.set_blocking(self.requests, False)
        os.set_blocking(self.responses, False)
        self.buffer = bytearray()
        self.outgoing = bytearray()

    def _fail(self, status, message):
        self.failure = (status, message)
        self.close()
        return status, message

    def send(self, request):
        """Queue one request; it is written while responses are awaited (calls are pipelined, so
        the program does not wait on the harness between cases)."""
        self.outgoing += len(request).to_bytes(4, "big") + request

    def _receive(self, deadline):
        """The next response: (kind, text), or a failure (status, message)."""
        cap = self.spec["output_cap"]
        poller = select.poll()
        if self.outgoing:
            poller.register(self.requests, select.POLLOUT)
        poller.register(self.responses, select.POLLIN)
        if self.exit_fd is not None:
            poller.register(self.exit_fd, select.POLLIN)
        exited = False
        while True:
            if len(self.buffer) >= 5:
                size = int.from_bytes(self.buffer[1:5], "big")
                if size > cap:
                    return self._fail("output_limit", "the result is larger than the output limit")
                if len(self.buffer) >= 5 + size:
                    kind, text = chr(self.buffer[0]), bytes(self.buffer[5 : 5 + size])
                    del self.buffer[: 5 + size]
                    return kind, text.decode("utf-8", "replace")
            if exited:
                return self._fail("exit", "the program exited")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._fail("timeout", "time limit exceeded")
            for fd, _ in poller.poll(remaining * 1000):
                if fd == self.requests:
                    try:
                        del self.outgoing[: os.write(self.requests, self.outgoing[:65536])]
                    except BlockingIOError:
                        pass
                    except BrokenPipeError:
                        return self._fail("exit", "the program exited")
                    if not self.outgoing:
                        poller.unregister(self.requests)
                elif fd == self.responses:
                    chunk = b""
                    try:
                        chunk = os.read(self.responses, 65536)
                    except BlockingIOError:
                        continue
                    exited = exited or not chunk
                    self.buffer += chunk
                elif fd == self.exit_fd:
                    try:  # what it wrote before it exited still counts
                        chunk = os.read(self.responses, 65536)
                    except BlockingIOError:
                        chunk = b""
                    exited = exited or not chunk
                    self.buffer += chunk

    def start(self):
        """Load the program: None, or why it failed."""
        self.send(marshal.dumps({"workdir": self.spec["workdir"]}))
        outcome = self._receive(time.monotonic() + self.spec["test_timeout_s"])
        if outcome[0] == "l":
            return None
        if outcome[0] == "e":
            self.close()
            return outcome[1]
        if outcome[0] == "timeout":
            return "time limit while loading the program"
        return outcome[1] if self.failure else f"unexpected answer {outcome[0]!r} while loading"

    def queue(self, name, args, kwargs):
        """Queue a call: None, or why its arguments cannot be sent."""
        try:
            self.send(marshal.dumps((name, tuple(args), dict(kwargs))))
        except ValueError as exc:
            return f"the test passed an argument that is not plain data ({exc})"
        return None

    def call(self, name, args, kwargs, timeout_s):
        problem = self.queue(name, args, kwargs)
        return ("error", problem) if problem else self.result(timeout_s)

    def result(self, timeout_s):
        """The answer to the oldest call not answered yet: (status, text): ok (text: the result,
        tagged JSON), raised (text: the exception), or a failure: timeout, output_limit, exit, error."""
        if self.failure:
            return self.failure
        kind, text = self._receive(time.monotonic() + timeout_s)
        if kind == "r":
            return "ok", text
        if kind == "x":
            return "raised", text
        if kind == "n":
            return self._fail("error", text)
        if self.failure:
            return kind, text
        return self._fail("error", f"unexpected answer {kind!r} to a call")

    def proxy(self, name):
        """A function for test code: the candidate's `name`, called on copies of plain data."""
        import builtins

        def call(*args, **kwargs):
            status, text = self.call(name, args, kwargs, self.spec["test_timeout_s"])
            if status == "ok":
                try:
                    return decode_plain(text)
                except (ValueError, TypeError, RecursionError) as exc:
                    self.failure = ("error", f"the program returned something that is not plain data: {exc}")
                    raise CandidateFailed(self.failure[1]) from None
            if status == "raised":
                # An exception of a builtin type can be caught by the test as the program raised it.
                kind = getattr(builtins, text.partition(":")[0], None)
                if isinstance(kind, type) and issubclass(kind, Exception):
                    raise kind(text.partition(": ")[2])
                raise RuntimeError(text)
            raise CandidateFailed(text)

        call.__name__ = name
        return call

    def close(self):
        _kill_group(self.pid)
        try:  # noqa: SIM105 (contextlib would cost start-up time)
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        for fd in (self.requests, self.responses, self.exit_fd):
            if fd is not None:
                try:  # noqa: SIM105
                    os.close(fd)
                except OSError:
                    pass
        self.requests = self.responses = self.exit_fd = None


# -- modes -------------------------------------------------------------------------------------------

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


def _call(spec, report):
    cases, index, loaded = spec["cases"], 0, False
    while index < len(cases):
        candidate = Candidate(spec, forked=True, result_fd=report.fd)
        problem = candidate.start()
        if not loaded:
            report.emit("load", ok=problem is None, error=problem)
            loaded = True
        if problem is not None:
            return
        queued, unsendable = index, None
        while queued < len(cases) and unsendable is None:
            case = cases[queued]
            unsendable = candidate.queue(case.get("fn") or spec.get("fn_name"), case["args"], case.get("kwargs") or {})
            queued += unsendable is None
        while index < len(cases):
            started = time.monotonic()
            if index == queued:
                status, text = "error", unsendable
            else:
                status, text = candidate.result(spec["test_timeout_s"])
            ms = round((time.monotonic() - started) * 1000, 1)
            if status == "ok":
                report.emit("case", i=index, status="ok", result=text, ms=ms)
            else:
                report.emit("case", i=index, status="error" if status == "raised" else status, error=text, ms=ms)
            index += 1
            if status not in ("ok", "raised"):
                break  # a timed-out or broken process is gone; the next case gets a new one
        candidate.close()


def _script(spec, report):
    """Assertion tests that are not simple calls: the test code runs here, on proxies."""
    import builtins

    candidate = Candidate(spec, forked=False, result_fd=report.fd)
    problem = candidate.start()
    report.emit("load", ok=problem is None, error=problem)
    if problem is not None:
        return
    started = time.monotonic()
    namespace = {"__name__": "__tests__", "__builtins__": builtins}

    def run_tests():
        for name in spec["modules"]:
            namespace[name] = __import__(name)
        for name in spec["proxied"]:
            namespace[name] = candidate.proxy(name)
        exec(compile(spec["test_code"], "tests.py", "exec"), namespace)
        entry = spec.get("entry_point")
        if entry and callable(namespace.get("check")):
            namespace["check"](candidate.proxy(entry))

    _signal.setitimer(_signal.ITIMER_REAL, spec["test_timeout_s"])
    try:
        run_tests()
        _signal.setitimer(_signal.ITIMER_REAL, 0)
        if candidate.failure:  # whatever the test code made of it
            report.emit("case", i=0, status=candidate.failure[0], error=candidate.failure[1])
        else:
            report.emit("case", i=0, status="ok", ms=round((time.monotonic() - started) * 1000, 1))
    except TimeLimit:
        report.emit("case", i=0, status="timeout")
    except BaseException as exc:
        _signal.setitimer(_signal.ITIMER_REAL, 0)
        status, error = candidate.failure or ("error", _short_error(exc))
        report.emit("case", i=0, status=status, error=error)
    finally:
        _signal.setitimer(_signal.ITIMER_REAL, 0)
        candidate.close()


def main():
    spec = marshal.loads(sys.stdin.buffer.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    report = Reporter(spec.pop("result_fd"), spec.pop("nonce"))
    os.set_inheritable(report.fd, False)
    if spec.get("private_tmp_bytes"):
        _isolate_files(spec["private_tmp_bytes"])
    _set_limits(spec["limits"])
    workdir = spec["workdir"]
    os.chdir(workdir)
    with open(os.path.join(workdir, "solution.py"), "w", encoding="utf-8") as handle:
        handle.write(spec["code"])
    changed_user = bool(spec.get("drop_to")) and os.getuid() == 0
    if changed_user:
        _drop_privileges(*spec["drop_to"])
    _not_dumpable(changed_user)
    if spec.get("syscall_filter"):
        _install_filter(spec["syscall_filter"])
    _signal.signal(_signal.SIGALRM, _on_alarm)
    report.emit("ready")
    {"stdio": _stdio, "call": _call, "script": _script}[spec["mode"]](spec, report)
    report.emit("done")
    os._exit(0)  # skip atexit handlers and finalizers


# -- the candidate's process -------------------------------------------------------------------------

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


def _read_exactly(fd, size):
    data = bytearray()
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _answer(kind, text):
    data = text.encode("utf-8", "backslashreplace")
    data = kind + len(data).to_bytes(4, "big") + data
    while data:
        data = data[os.write(_RESPONSES_FD, data) :]


def candidate_main():
    import builtins

    header = _read_exactly(_REQUESTS_FD, 4)
    init = marshal.loads(_read_exactly(_REQUESTS_FD, int.from_bytes(header, "big")))
    namespace = {"__name__": "__solution__", "__builtins__": builtins}
    try:
        with open(os.path.join(init["workdir"], "solution.py"), encoding="utf-8") as handle:
            exec(compile(handle.read(), "solution.py", "exec"), namespace)
    except BaseException as exc:  # SystemExit included: loading did not finish
        _answer(b"e", _short_error(exc))
        os._exit(0)
    _answer(b"l", "")
    functions = {}
    while True:
        header = _read_exactly(_REQUESTS_FD, 4)
        if header is None:
            os._exit(0)
        name, args, kwargs = marshal.loads(_read_exactly(_REQUESTS_FD, int.from_bytes(header, "big")))
        try:
            if name not in functions:
                functions[name] = _entry_point(namespace, name)
            result = functions[name](*args, **kwargs)
        except BaseException as exc:
            _answer(b"x", _short_error(exc))
            continue
        try:
            text = encode_plain(result)
        except (TypeError, ValueError, RecursionError) as exc:
            _answer(b"n", _short_error(exc))
            continue
        _answer(b"r", text)


if __name__ == "__main__":
    if sys.argv[1:] == ["candidate"]:
        candidate_main()
    else:
        main()
