"""The syscall filter every sandboxed program runs under (seccomp BPF, built with libseccomp).

Everything is allowed except what lets a program leave its limits or attack the kernel: new
namespaces (a user namespace gives it root, its own mounts and a /tmp past the size limit), mounts,
System V shared memory and memfd (memory outside RLIMIT_AS), reading other processes (ptrace and
its kin: the harness holds what the program must not see), Unix sockets (the host's daemons), bpf,
userfaultfd, io_uring, perf events and the kernel keyring. A denied call fails with EPERM; `clone3`
fails with ENOSYS, so that the C library falls back to `clone`, whose flags the filter can read.
A syscall of another architecture (32-bit entry points) kills the process.
"""

from __future__ import annotations

import errno
import tempfile
from functools import lru_cache

CLONE_NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
AF_UNIX = 1

DENIED_SYSCALLS = (
    "unshare", "setns",
    "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount",
    "fspick", "mount_setattr",
    "shmget", "shmat", "memfd_create", "memfd_secret",
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
    "bpf", "userfaultfd", "perf_event_open",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key",
)


class SeccompUnavailable(RuntimeError):
    """libseccomp (or its Python interface) is missing here."""


@lru_cache(maxsize=1)
def syscall_filter() -> bytes:
    """The filter as a BPF program (what bubblewrap's `--seccomp FD` and PR_SET_SECCOMP take)."""
    try:
        import pyseccomp as seccomp
    except (ImportError, RuntimeError) as exc:
        raise SeccompUnavailable(
            f"cannot build the sandbox's syscall filter ({exc}); install libseccomp (Debian: libseccomp2)"
        ) from None
    denied = seccomp.ERRNO(errno.EPERM)
    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        try:
            rules.add_rule(denied, name)
        except (RuntimeError, OSError, ValueError):
            continue  # a syscall this kernel's architecture does not have cannot be made either
    for flag in CLONE_NAMESPACE_FLAGS.values():
        rules.add_rule(denied, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    rules.add_rule(denied, "socket", seccomp.Arg(0, seccomp.EQ, AF_UNIX))
    with tempfile.TemporaryFile() as handle:
        rules.export_bpf(handle)
        handle.seek(0)
        return handle.read()
