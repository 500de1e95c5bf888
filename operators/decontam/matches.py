"""What a detector reports: one benchmark item that one of our texts matches, and why."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Match:
    benchmark: str
    item_id: str
    item_index: int
    """Position of the benchmark item in the loaded list (to show its text)."""
    detector: str
    score: float
    evidence: str
    """The first shared n-gram, or the judge's reply."""
    contaminated: bool = True
    """False for a borderline match that the judge called a different problem."""

    def judged(self, same: bool, reply: str) -> Match:
        return replace(self, detector="judge", contaminated=same, evidence=reply)
