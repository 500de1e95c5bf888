"""Limits that hold for a whole program: memory across its children (control group), no System V shared
memory or memfd outside RLIMIT_AS, no new user namespaces or other risky syscalls (seccomp), and a host
reader that stops result-record, newline and stderr floods. Each flood is stopped and reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from distillery.operators.verifiers.code import CodeVerifier
from distillery.operators.verifiers.sandbox import RecordReader
from distillery.operators.verifiers.sandbox_cgroup import CgroupHost, CgroupLimits, find_cgroup_host
from distillery.schemas.verifier_config import CodeVerifierConfig

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="bubblewrap is not installed (apt-get install -y bubblewrap)"
)

MEMORY_MB = 256
CALL_TESTS = json.dumps({"fn_name": "f", "inputs": [[1]], "outputs": [[1]]})
needs_cgroups = pytest.mark.skipif(find_cgroup_host() is None, reason="no cgroup to limit whole programs here")


@pytest.fixture(scope="module")
def verifier() -> CodeVerifier:
    return CodeVerifier(CodeVerifierConfig(sandbox="bubblewrap", test_timeout_s=8, timeout_s=12, memory_mb=MEMORY_MB,
                                           max_processes=16, max_output_kb=64))


def stdio(expected: str) -> str:
    return json.dumps({"inputs": ["\n"], "outputs": [expected]})


def check(verifier: CodeVerifier, tests: str, program: str) -> tuple[str, str]:
    label, _, detail = verifier.check(verifier.prepare_gold(None, tests), f"```python\n{program}\n```")
    return label, detail


@needs_cgroups
def test_memory_across_children_is_limited(verifier: CodeVerifier) -> None:
    # Four children of 150 MiB each: every one is under RLIMIT_AS, together they are far over the limit.
    program = (
        "import os, time\n"
        "ready_r, ready_w = os.pipe()\n"
        "for _ in range(4):\n"
        "    if os.fork() == 0:\n"
        "        block = b'x' * (150 * 2**20)\n"
        "        os.write(ready_w, b'1')\n"
        "        time.sleep(3)\n"
        "        os._exit(0)\n"
        "os.close(ready_w)\n"
        "held = 0\n"
        "while os.read(ready_r, 1):\n"
        "    held += 1\n"
        "    if held == 4:\n"
        "        break\n"
        "print(held)\n"
    )
    label, detail = check(verifier, stdio("4\n"), program)
    assert label == "incorrect"
    assert f"memory limit exceeded: the program's processes together may use {MEMORY_MB} MiB" in detail


def test_shared_memory_outside_the_address_space_limit_is_refused(verifier: CodeVerifier) -> None:
    # System V shared memory and memfd pages count against no process's RLIMIT_AS.
    program = (
        "import ctypes, os, errno\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.shmget.restype = ctypes.c_int\n"
        "segment = libc.shmget(0, ctypes.c_size_t(1536 * 2**20), 0o1600)\n"
        "print('shmget', errno.errorcode.get(ctypes.get_errno(), 'ok') if segment < 0 else 'ok')\n"
        "fd = libc.memfd_create(b'x', 0)\n"
        "print('memfd_create', errno.errorcode.get(ctypes.get_errno(), 'ok') if fd < 0 else 'ok')\n"
        "try:\n"
        "    open('/dev/shm/block', 'wb').write(b'x' * 2**20)\n"
        "    print('/dev/shm ok')\n"
        "except OSError as exc:\n"
        "    print('/dev/shm', errno.errorcode[exc.errno])\n"
    )
    label, detail = check(verifier, stdio("shmget EPERM\nmemfd_create EPERM\n/dev/shm EACCES\n"), program)
    assert label == "correct", detail


def test_no_new_user_namespaces(verifier: CodeVerifier) -> None:
    # Root in a user namespace of its own would mount a tmpfs past the /tmp limit; every way in fails.
    program = (
        "import ctypes, errno, os, subprocess\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "def outcome(result):\n"
        "    return errno.errorcode.get(ctypes.get_errno(), '?') if result < 0 else 'ok'\n"
        "CLONE_NEWUSER, CLONE_NEWNS, SIGCHLD = 0x10000000, 0x20000, 17\n"
        "print('unshare', outcome(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS)))\n"
        "print('clone', outcome(libc.syscall(56, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)))\n"
        "print('clone3', outcome(libc.syscall(435, 0, 0)))\n"
        "run = subprocess.run(['unshare', '-r', 'true'], capture_output=True)\n"
        "print('unshare -r', 'ok' if run.returncode == 0 else 'refused')\n"
    )
    label, detail = check(verifier, stdio("unshare EPERM\nclone EPERM\nclone3 ENOSYS\nunshare -r refused\n"), program)
    assert label == "correct", detail


RISKY = {"mount": "EPERM", "bpf": "EPERM", "userfaultfd": "EPERM", "io_uring_setup": "EPERM",
         "perf_event_open": "EPERM", "ptrace": "EPERM", "process_vm_readv": "EPERM", "keyctl": "EPERM"}


def test_risky_syscalls_are_refused(verifier: CodeVerifier) -> None:
    import pyseccomp

    numbers = {name: pyseccomp.resolve_syscall(pyseccomp.system_arch(), name) for name in RISKY}
    program = (
        "import ctypes, errno, socket\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        f"for name, number in {sorted(numbers.items())!r}:\n"
        "    result = libc.syscall(number, 0, 0, 0, 0, 0)\n"
        "    print(name, errno.errorcode.get(ctypes.get_errno(), '?') if result < 0 else 'ok')\n"
        "try:\n"
        "    socket.socket(socket.AF_UNIX)\n"
        "    print('unix socket ok')\n"
        "except OSError as exc:\n"
        "    print('unix socket', errno.errorcode[exc.errno])\n"
        "print('Seccomp', [l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')][0])\n"
    )
    expected = "".join(f"{name} {RISKY[name]}\n" for name in sorted(RISKY)) + "unix socket EPERM\nSeccomp 2\n"
    label, detail = check(verifier, stdio(expected), program)
    assert label == "correct", detail


def test_functions_run_under_the_filter_too(verifier: CodeVerifier) -> None:
    program = ("def f(x):\n"
               "    return [int([l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')][0])]")
    tests = json.dumps({"fn_name": "f", "inputs": [[1]], "outputs": [[2]]})
    assert check(verifier, tests, program)[0] == "correct"


@pytest.mark.parametrize("stream", ["stderr", "stdout"])
def test_a_flood_from_a_function_is_stopped(verifier: CodeVerifier, stream: str) -> None:
    # 200 MiB from the program's own process, straight to the host's pipe: counted and stopped.
    program = (f"import sys\ndef f(x):\n    for _ in range(200 * 16):\n        sys.{stream}.write('y' * 65536)\n"
               "    return [x]")
    gold = verifier.prepare_gold(None, CALL_TESTS)
    run = verifier.sandbox.run({**gold.harness_spec(), "code": program})
    assert run.stopped == "output_limit"
    written = run.stderr_bytes if stream == "stderr" else run.stdout_bytes
    assert 64 * 1024 < written < 4 * 2**20
    label, detail = check(verifier, CALL_TESTS, program)
    assert (label, detail) == ("incorrect", "output limit exceeded (64 KiB per stream; 0/1 tests passed)")


def test_a_newline_flood_is_stopped(verifier: CodeVerifier) -> None:
    program = "import os\ndef f(x):\n    while True:\n        os.write(1, b'\\n' * 65536)"
    label, detail = check(verifier, CALL_TESTS, program)
    assert (label, detail) == ("incorrect", "output limit exceeded (64 KiB per stream; 0/1 tests passed)")


NONCE = "ab" * 16


def line(event: str, **fields: object) -> bytes:
    return f"{NONCE} {json.dumps({'event': event, **fields})}\n".encode()


def test_the_reader_takes_no_more_records_than_the_cases_need() -> None:
    reader = RecordReader(NONCE, max_records=4, max_line=1024)
    flood = line("ready") + line("case", i=0, status="ok") * 1_000_000
    records = []
    for start in range(0, len(flood), 65536):
        records += reader.feed(flood[start : start + 65536])
        if reader.stopped:
            break
    assert reader.stopped == "result_limit"
    assert len(records) == 4
    assert start < 65536  # stopped in the first chunk, not after reading the flood


@pytest.mark.parametrize(
    ("data", "stopped"),
    [
        (b"\n" * 65536, "protocol"),
        (line("ready") + b"forged line\n" + line("done"), "protocol"),
        (line("ready") + line("passed"), "protocol"),
        (line("ready") + f"{NONCE} [1, 2]\n".encode(), "protocol"),
        (line("ready") + NONCE.encode() + b" " + b"x" * 5000, "result_limit"),
        (line("case", i=0, status="ok", stdout="y" * 5000), "result_limit"),
    ],
    ids=["newlines", "untagged", "unknown-event", "not-a-record", "endless-line", "long-line"],
)
def test_the_reader_stops_at_the_first_line_that_is_not_a_record(data: bytes, stopped: str) -> None:
    reader = RecordReader(NONCE, max_records=100, max_line=1024)
    records = reader.feed(data)
    assert reader.stopped == stopped
    assert [r["event"] for r in records] == (["ready"] if data.startswith(line("ready")) else [])


def test_cgroup_v2_limits_are_written_where_the_kernel_reads_them(tmp_path: Path) -> None:
    # The v2 files, in a folder standing in for a delegated cgroup (the v1 hierarchy is tested for real above).
    host = CgroupHost(version=2, parents={"unified": tmp_path}, cpu=True)
    group = host.create(CgroupLimits(memory_bytes=256 * 2**20, pids=20, cpus=1.5))
    folder = group.folders["unified"]
    assert folder.parent == tmp_path
    assert {name: (folder / name).read_text() for name in ("memory.max", "memory.swap.max", "pids.max", "cpu.max")} \
        == {"memory.max": str(256 * 2**20), "memory.swap.max": "0", "pids.max": "20", "cpu.max": "150000 100000"}
    assert group.wrap(["python3"])[-2:] == [str(folder / "cgroup.procs"), "python3"]
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (folder / "pids.events").write_text("max 0\n")
    assert group.limits_hit() == ("memory",)
