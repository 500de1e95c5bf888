"""CPU work of the streaming stages as Ray tasks over the run directory's Parquet units.

A stage hands `run_tasks` one call per unit (a source file, a samples file); each call runs as a
Ray task with one CPU, reads its own inputs, commits its own outputs with `Units` and returns a
small summary (counts, ids). At most `TASKS_IN_FLIGHT_PER_CPU` tasks per cluster CPU are
submitted at once, so the object store never holds more than that many summaries in flight, and
the summaries come back in submission order, so what the driver builds from them is
deterministic whichever task finished first.

Without a Ray connection (unit tests that call a stage function directly) the calls run one by
one in the calling process: same code, same outputs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import ray

TASK_CPUS = 1
"""CPUs each unit task asks Ray for: the work is single-threaded Python and Arrow."""
TASKS_IN_FLIGHT_PER_CPU = 2
"""Submitted tasks per cluster CPU: one running, one queued behind it, so no CPU waits on the driver."""
TASK_RETRIES = 3
"""Ray reruns a task whose worker died this many times (a task commits atomically, so a rerun is safe)."""

Result = TypeVar("Result")


@functools.cache
def _remote(function: Callable[..., Any]) -> Any:
    return ray.remote(num_cpus=TASK_CPUS, max_retries=TASK_RETRIES)(function)


def in_flight_limit() -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1) * TASKS_IN_FLIGHT_PER_CPU))


def run_tasks(function: Callable[..., Result], calls: Sequence[tuple[Any, ...]]) -> list[Result]:
    """`function(*call)` for every call, as Ray tasks when Ray is connected; results in call order.
    `function` must be a module-level function (workers import it by name)."""
    if not ray.is_initialized():
        return [function(*call) for call in calls]
    remote = _remote(function)
    limit = in_flight_limit()
    results: list[Any] = [None] * len(calls)
    in_flight: dict[ray.ObjectRef, int] = {}
    submitted = 0
    while submitted < len(calls) or in_flight:
        while submitted < len(calls) and len(in_flight) < limit:
            in_flight[remote.remote(*calls[submitted])] = submitted
            submitted += 1
        ready, _ = ray.wait(list(in_flight), num_returns=1)
        for ref in ready:
            results[in_flight.pop(ref)] = ray.get(ref)
    return results


def shared(value: Any) -> Any:
    """A large read-only argument (an id array every task filters by), stored once in the object
    store rather than copied into every task's arguments; tasks receive the value itself."""
    return ray.put(value) if ray.is_initialized() else value
