"""Which teacher replicas the dispatch loop may hand work to, after some of their actors died."""

from __future__ import annotations

import time

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

PROBES_BEFORE_GONE = 3
"""Failed `ready` probes after which a dead replica is given up for the rest of the run."""
RESTART_WAIT_SECONDS = 900.0
"""How long a replica may take to come back (Ray waits for resources to restart it, e.g. when its
node is lost and no other node has room) before it is given up for the rest of the run."""


class ReplicaHealth:
    """Which replicas take work: one whose actor died gets none until Ray has restarted it (a probe
    call answers); one that Ray cannot restart (its restarts spent, or its node gone for good with
    nowhere else to go) gets none again, and its units go to the survivors."""

    def __init__(self, replicas: dict[str, list[ray.actor.ActorHandle]]) -> None:
        self.replicas = replicas
        self.probes: dict[tuple[str, int], ray.ObjectRef] = {}
        self.gone: set[tuple[str, int]] = set()
        self.failed_probes: dict[tuple[str, int], int] = {}
        self.lost_at: dict[tuple[str, int], float] = {}

    def lost(self, teacher: str, index: int) -> None:
        key = (teacher, index)
        if key not in self.probes and key not in self.gone:
            self.probes[key] = self.replicas[teacher][index].ready.remote()
            self.lost_at.setdefault(key, time.monotonic())

    def serving(self, teacher: str, index: int) -> bool:
        return (teacher, index) not in self.probes and (teacher, index) not in self.gone

    def poll(self) -> None:
        if not self.probes:
            return
        ready, _ = ray.wait(list(self.probes.values()), num_returns=len(self.probes), timeout=0)
        for key, ref in list(self.probes.items()):
            if ref not in ready:
                if time.monotonic() - self.lost_at[key] > RESTART_WAIT_SECONDS:
                    del self.probes[key]
                    self.gone.add(key)
                continue
            del self.probes[key]
            try:
                ray.get(ref)
            except (RayActorError, ActorUnavailableError):
                # A probe sent while Ray restarts the actor waits for it; one that fails means the
                # actor is dead for good, but ask a few times in case it raced the restart.
                self.failed_probes[key] = self.failed_probes.get(key, 0) + 1
                if self.failed_probes[key] >= PROBES_BEFORE_GONE:
                    self.gone.add(key)
                else:
                    self.lost(*key)
            else:
                self.failed_probes.pop(key, None)
                self.lost_at.pop(key, None)

    def lost_teachers(self, teachers: list[str]) -> list[str]:
        """Those of `teachers` that no replica may ever serve again."""
        return [t for t in teachers if all((t, i) in self.gone for i in range(len(self.replicas[t])))]
