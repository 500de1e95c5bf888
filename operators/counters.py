"""What every operator counts: how many items it saw, kept and dropped, and why it dropped them.

Counts merge with `+` (as datatrove's `PipelineStats`): the counts of the shards of one stage, made
in different processes, add up to the stage's counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


@dataclass
class OperatorCounters:
    name: str
    seen: int = 0
    kept: int = 0
    dropped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def keep(self, count: int = 1) -> None:
        self.seen += count
        self.kept += count

    def drop(self, reason: str) -> None:
        self.seen += 1
        self.dropped += 1
        self.reasons[reason] += 1

    def __add__(self, other: OperatorCounters) -> OperatorCounters:
        if other.name != self.name:
            raise ValueError(f"cannot add the counts of {other.name!r} to those of {self.name!r}")
        return OperatorCounters(
            self.name, self.seen + other.seen, self.kept + other.kept, self.dropped + other.dropped,
            self.reasons + other.reasons,
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "seen": self.seen,
            "kept": self.kept,
            "dropped": self.dropped,
            "reasons": dict(self.reasons),
        }

    @classmethod
    def from_dict(cls, value: dict[str, object]) -> OperatorCounters:
        reasons = value.get("reasons") or {}
        assert isinstance(reasons, dict)
        return cls(
            str(value["name"]),
            int(value.get("seen", 0)),  # type: ignore[call-overload]
            int(value.get("kept", 0)),  # type: ignore[call-overload]
            int(value.get("dropped", 0)),  # type: ignore[call-overload]
            Counter({str(k): int(v) for k, v in reasons.items()}),
        )


class CounterSet:
    """The counters of several operators by name, in the order they were first added; `+` merges
    operator by operator."""

    def __init__(self, counters: Iterable[OperatorCounters] = ()) -> None:
        self._by_name: dict[str, OperatorCounters] = {}
        for counter in counters:
            self.add(counter)

    def add(self, counter: OperatorCounters) -> None:
        existing = self._by_name.get(counter.name)
        self._by_name[counter.name] = counter if existing is None else existing + counter

    def get(self, name: str) -> OperatorCounters:
        if name not in self._by_name:
            self._by_name[name] = OperatorCounters(name)
        return self._by_name[name]

    def __add__(self, other: CounterSet) -> CounterSet:
        merged = CounterSet(self)
        for counter in other:
            merged.add(counter)
        return merged

    def __iter__(self) -> Iterator[OperatorCounters]:
        return iter(list(self._by_name.values()))

    def __len__(self) -> int:
        return len(self._by_name)

    def as_list(self) -> list[dict[str, object]]:
        return [c.as_dict() for c in self]

    @classmethod
    def from_list(cls, values: Iterable[dict[str, object]]) -> CounterSet:
        return cls(OperatorCounters.from_dict(v) for v in values)
