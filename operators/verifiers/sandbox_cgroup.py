"""Limits for a whole sandboxed program, all its processes together: one control group per run.

cgroup v2 (`memory.max`, which counts shared memory and tmpfs pages too, `memory.swap.max`,
`pids.max`, `cpu.max`) under a group whose `cgroup.subtree_control` delegates `memory` and `pids`
(the verifier's own, or `cgroup_parent`); or cgroup v1 (`memory.limit_in_bytes`, `pids.max`,
`cpu.cfs_quota_us`) under the verifier's own group of each hierarchy. The run's first process joins
the group before it executes anything (`wrap`), so every process it starts is inside. Where neither
works (no cgroup file system, not root, nothing delegated) runs have only per-process rlimits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

CPU_PERIOD_US = 100_000
REMOVE_WAIT_S = 2.0
_GROUP_PREFIX = "distillery-"


@dataclass(frozen=True, slots=True)
class CgroupLimits:
    memory_bytes: int
    pids: int
    cpus: float | None


@dataclass(frozen=True, slots=True)
class CgroupHost:
    """Where this process may create per-run groups: one parent per v1 hierarchy, or one v2 parent."""

    version: Literal[1, 2]
    parents: dict[str, Path]
    """controller ('memory', 'pids', 'cpu'; v2: 'unified') -> parent folder"""
    cpu: bool

    def create(self, limits: CgroupLimits) -> RunCgroup:
        name = _GROUP_PREFIX + secrets.token_hex(8)
        folders = {controller: parent / name for controller, parent in self.parents.items()}
        group = RunCgroup(self.version, folders)
        try:
            for folder in folders.values():
                folder.mkdir()
            group.set_limits(limits, self.cpu)
        except OSError:
            group.remove()
            raise
        return group


class RunCgroup:
    def __init__(self, version: Literal[1, 2], folders: dict[str, Path]) -> None:
        self.version = version
        self.folders = folders

    def _file(self, controller: str, name: str) -> Path:
        return self.folders["unified" if self.version == 2 else controller] / name

    def set_limits(self, limits: CgroupLimits, cpu: bool) -> None:
        if self.version == 2:
            self._file("memory", "memory.max").write_text(str(limits.memory_bytes))
            with contextlib.suppress(FileNotFoundError):  # no swap accounting: nothing to close
                self._file("memory", "memory.swap.max").write_text("0")
            self._file("pids", "pids.max").write_text(str(limits.pids))
            if cpu and limits.cpus:
                self._file("cpu", "cpu.max").write_text(f"{round(limits.cpus * CPU_PERIOD_US)} {CPU_PERIOD_US}")
            return
        self._file("memory", "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
        with contextlib.suppress(FileNotFoundError):  # memory+swap, where swap accounting is on
            self._file("memory", "memory.memsw.limit_in_bytes").write_text(str(limits.memory_bytes))
        self._file("pids", "pids.max").write_text(str(limits.pids))
        if cpu and limits.cpus:
            self._file("cpu", "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
            self._file("cpu", "cpu.cfs_quota_us").write_text(str(round(limits.cpus * CPU_PERIOD_US)))

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` started by a shell that first moves itself into the group (writing 0 to a
        cgroup.procs file moves the writer), then executes it."""
        procs = [str(folder / "cgroup.procs") for folder in self.folders.values()]
        joins = " && ".join(f'echo 0 >"${i}"' for i in range(1, len(procs) + 1))
        return ["/bin/sh", "-c", f'{joins} && shift {len(procs)} && exec "$@"', "sh", *procs, *argv]

    def _counter(self, controller: str, name: str, key: str) -> int:
        try:
            for line in self._file(controller, name).read_text().splitlines():
                field, _, value = line.partition(" ")
                if field == key:
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def limits_hit(self) -> tuple[str, ...]:
        """Which of the group's limits stopped something in it: 'memory' (a process was killed for
        memory), 'processes' (a fork or thread was refused)."""
        hit = []
        memory_events = ("memory.events", "oom_kill") if self.version == 2 else ("memory.oom_control", "oom_kill")
        if self._counter("memory", *memory_events) > 0:
            hit.append("memory")
        if self._counter("pids", "pids.events", "max") > 0:
            hit.append("processes")
        return tuple(hit)

    def peak_memory_bytes(self) -> int | None:
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int(self._file("memory", name).read_text())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """Kill every process still in the group."""
        if self.version == 2:
            with contextlib.suppress(OSError):
                self._file("unified", "cgroup.kill").write_text("1")
                return
        for _ in range(100):  # a fork between reading and killing leaves a new pid: read again
            pids = self._pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _pids(self) -> list[int]:
        found: set[int] = set()
        for folder in self.folders.values():
            with contextlib.suppress(OSError, ValueError):
                found.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
        return sorted(found)

    def remove(self) -> None:
        deadline = time.monotonic() + REMOVE_WAIT_S
        for folder in self.folders.values():
            while True:
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    # Processes that were just killed leave the group when the kernel has reaped them.
                    if time.monotonic() > deadline:
                        log.warning("code sandbox: could not remove %s (processes still in it)", folder)
                        break
                    self.kill()
                    time.sleep(0.005)


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(mount root, mount point, file system type, super options) of each cgroup mount."""
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            before, _, after = line.partition(" - ")
            fields, tail = before.split(), after.split()
            if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
                found.append((fields[3], fields[4].replace("\\040", " "), tail[0], set(tail[2].split(","))))
    return found


def _own_groups() -> dict[str, str]:
    """hierarchy key ('memory', 'pids', ...; '' for v2) -> this process's group path in it."""
    groups: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                groups[controller] = path
    return groups


def _inside(mount_root: str, mount_point: str, path: str) -> Path | None:
    if mount_root == "/":
        return Path(mount_point + path)
    if path == mount_root or path.startswith(mount_root.rstrip("/") + "/"):
        return Path(mount_point + path[len(mount_root) :])
    return None


def _writable_parent(folder: Path) -> bool:
    probe = folder / f"{_GROUP_PREFIX}probe-{secrets.token_hex(4)}"
    try:
        probe.mkdir()
    except OSError:
        return False
    with contextlib.suppress(OSError):
        probe.rmdir()
    return True


def _v2(parent: Path) -> CgroupHost | None:
    try:
        delegated = set((parent / "cgroup.subtree_control").read_text().split())
    except OSError:
        return None
    if not {"memory", "pids"} <= delegated or not _writable_parent(parent):
        return None
    return CgroupHost(version=2, parents={"unified": parent}, cpu="cpu" in delegated)


def _v1(mounts: list[tuple[str, str, str, set[str]]], own: dict[str, str]) -> CgroupHost | None:
    parents: dict[str, Path] = {}
    for controller in ("memory", "pids", "cpu"):
        for root, point, kind, options in mounts:
            if kind == "cgroup" and controller in options and controller in own:
                folder = _inside(root, point, own[controller])
                if folder is not None and _writable_parent(folder):
                    parents[controller] = folder
                break
    if "memory" not in parents or "pids" not in parents:
        return None
    return CgroupHost(version=1, parents=parents, cpu="cpu" in parents)


@lru_cache(maxsize=4)
def find_cgroup_host(parent: str | None = None) -> CgroupHost | None:
    """Where per-run groups can be made here, or None (then the log says so once)."""
    if parent is not None:
        host = _v2(Path(parent))
        if host is None:
            raise RuntimeError(
                f"code sandbox: cgroup_parent {parent!r} is not a writable cgroup v2 folder whose "
                "cgroup.subtree_control enables memory and pids"
            )
        return host
    mounts, own = _mounts(), _own_groups()
    host = None
    for root, point, kind, _ in mounts:
        if kind == "cgroup2" and "" in own:
            folder = _inside(root, point, own[""])
            if folder is not None and (host := _v2(folder)) is not None:
                break
    host = host or _v1(mounts, own)
    if host is None:
        log.warning(
            "code sandbox: no cgroup to limit whole programs (needs root and cgroup v1 memory+pids, or a "
            "cgroup v2 group delegating memory and pids: set cgroup_parent); memory, processes and CPU "
            "are limited per process only"
        )
    return host
