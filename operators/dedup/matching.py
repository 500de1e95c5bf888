"""The matching every filter uses, in one order: exact duplicates, then benchmark decontamination of
the survivors, then near duplicates among the clean ones, so that a contaminated row is never the
representative clean rows are dropped for.

`RowMatches` holds one verdict per row of the caller's table. Each pass looks only at the rows still
alive and reports back in the caller's row numbers (the representative index remap lives here, in
`near_pass`). The prompt filter, the response filter and `distillery dedup` / `decontam` all call
these passes; they differ only in what they read and what records they write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from distillery.operators.counters import CounterSet
from distillery.operators.decontam.decontaminator import Decision, Decontaminator
from distillery.operators.decontam.matches import Match
from distillery.operators.dedup.deduplicator import ExactDeduplicator, NearDeduplicator, keep_order
from distillery.operators.dedup.neighbors import Representatives

VectorsOf = Callable[[np.ndarray], np.ndarray]
"""rows -> their unit embeddings, row-aligned (rows are the caller's row numbers)."""

EXACT_DUPLICATE = "exact_duplicate"
CONTAMINATED = "contaminated"
NEAR_DUPLICATE = "near_duplicate"


@dataclass
class RowMatches:
    """Per row: alive, and for a dropped row why, which row it duplicates and how closely."""

    alive: np.ndarray
    reason: list[str | None]
    duplicate_of: np.ndarray
    score: np.ndarray
    contamination: dict[int, Decision] = field(default_factory=dict)
    """The decontamination decisions: of every alive row after `decontam_pass`, of the rows with a
    match after `found_decontam_pass` (the others are clean)."""
    counters: CounterSet = field(default_factory=CounterSet)

    @classmethod
    def of(cls, n: int) -> RowMatches:
        return cls(
            np.ones(n, dtype=bool), [None] * n, np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=np.float32)
        )

    def alive_rows(self) -> np.ndarray:
        return np.flatnonzero(self.alive)

    def drop(self, row: int, reason: str, duplicate_of: int = -1, score: float = 0.0) -> None:
        self.alive[row] = False
        self.reason[row] = reason
        self.duplicate_of[row] = duplicate_of
        self.score[row] = score

    def apply_duplicates(self, rows: np.ndarray, result: Representatives, reason: str) -> None:
        """Mark the duplicates `result` found among `rows`; its indices are positions in `rows`."""
        for k in np.flatnonzero(~result.kept).tolist():
            self.drop(int(rows[k]), reason, int(rows[int(result.duplicate_of[k])]), float(result.score[k]))

    def apply_contamination(self, rows: Sequence[int], decisions: Sequence[Decision]) -> None:
        for row, decision in zip(rows, decisions, strict=True):
            self.contamination[row] = decision
            if decision.contaminated:
                assert decision.match is not None
                self.drop(row, CONTAMINATED, score=decision.match.score)


def exact_pass(matches: RowMatches, keys: Sequence[str], rank: np.ndarray) -> None:
    """Exact duplicates among the alive rows by their `exact_key`s (computed wherever the texts are:
    a caller that holds no texts gets them from tasks); the first by `rank` is kept."""
    rows = matches.alive_rows()
    deduplicator = ExactDeduplicator()
    matches.apply_duplicates(rows, deduplicator.run_keys([keys[r] for r in rows.tolist()], rank[rows]), EXACT_DUPLICATE)
    matches.counters.add(deduplicator.counters)


def decontam_pass(
    matches: RowMatches, decontaminator: Decontaminator, texts: Sequence[str], vectors_of: VectorsOf | None
) -> None:
    """Benchmark decontamination of the alive rows (n-grams on `texts`, embeddings from `vectors_of`)."""
    rows = matches.alive_rows()
    query = vectors_of(rows) if decontaminator.needs_vectors and vectors_of is not None else None
    decisions = decontaminator.check([texts[r] for r in rows.tolist()], query)
    matches.apply_contamination(rows.tolist(), decisions)
    matches.counters.add(decontaminator.counters)


def found_decontam_pass(
    matches: RowMatches,
    decontaminator: Decontaminator,
    found: dict[int, list[Match]],
    checked: int,
    judge_text_of: Callable[[int], str],
) -> tuple[list[int], list[Decision]]:
    """Decontamination of `checked` rows whose detectors ran elsewhere (in tasks): `found` holds the
    matches of the rows that have some, and only those are decided (the rest are clean, counted as
    kept). judge_text_of(row) is asked only for the rows the judge sees. Returns the decided rows,
    in row order, and their decisions."""
    decided = sorted(found)
    decisions = decontaminator.decide(
        [found[r] for r in decided], lambda k: judge_text_of(decided[k]), unmatched=checked - len(decided)
    )
    matches.apply_contamination(decided, decisions)
    matches.counters.add(decontaminator.counters)
    return decided, decisions


def near_pass(
    matches: RowMatches,
    deduplicator: NearDeduplicator,
    vectors_of: VectorsOf,
    rank: np.ndarray,
    *,
    texts: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    reason: str = NEAR_DUPLICATE,
) -> None:
    """Near duplicates among the alive rows; `rank` (over all rows) decides the representatives,
    `groups` marks rows that are never each other's duplicates (see NearDeduplicator.run)."""
    rows = matches.alive_rows()
    if len(rows) == 0:
        matches.counters.add(deduplicator.counters)
        return
    result = deduplicator.run(
        vectors_of(rows),
        keep_order(rank[rows].tolist()),
        texts=[texts[r] for r in rows.tolist()] if texts is not None else None,
        groups=[groups[r] for r in rows.tolist()] if groups is not None else None,
    )
    matches.apply_duplicates(rows, result, reason)
    matches.counters.add(deduplicator.counters)
