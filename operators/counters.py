"""What every operator counts: how many items it saw, kept and dropped, and why it dropped them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class OperatorCounters:
    name: str
    seen: int = 0
    kept: int = 0
    dropped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def keep(self) -> None:
        self.seen += 1
        self.kept += 1

    def drop(self, reason: str) -> None:
        self.seen += 1
        self.dropped += 1
        self.reasons[reason] += 1

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "seen": self.seen,
            "kept": self.kept,
            "dropped": self.dropped,
            "reasons": dict(self.reasons),
        }
