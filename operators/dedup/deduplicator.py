"""Exact and near-duplicate removal over rows given in a keep order.

Both answer, for every row, whether it is kept and, if not, which kept row it duplicates and how
similar they are. The keep order (`rank`) is the caller's deterministic rule: the first row of a
duplicate group in that order is its representative.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillery.operators.counters import OperatorCounters
from distillery.operators.dedup.neighbors import NeighborSearch, Representatives, keep_first
from distillery.operators.dedup.normalize import exact_key, normalize_for_matching, number_signature
from distillery.schemas.dedup_config import VectorSearchConfig


def keep_order(*keys: Sequence[object] | np.ndarray | pa.Array) -> np.ndarray:
    """rank[i] = position of row i when rows are sorted by the keys (first key most significant,
    ties in row order). Sorted as columns (no per-row tuples: a stage ranks a million samples)."""
    if len(keys[0]) == 0:
        return np.zeros(0, dtype=np.int64)
    # Dense ranks give every key type (strings, bools, numbers) one integer order; Arrow compares
    # strings by their UTF-8 bytes, which is the order of Python's str comparison.
    columns = [np.asarray(pc.rank(k if isinstance(k, pa.Array) else pa.array(k), tiebreaker="dense")) for k in keys]
    order = np.lexsort(columns[::-1])
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    return rank


def _codes(values: Sequence[str]) -> np.ndarray:
    table: dict[str, int] = {}
    return np.fromiter((table.setdefault(v, len(table)) for v in values), dtype=np.int64, count=len(values))


def _count(counters: OperatorCounters, result: Representatives, reason: str) -> None:
    kept = int(result.kept.sum())
    counters.seen += len(result.kept)
    counters.kept += kept
    dropped = len(result.kept) - kept
    counters.dropped += dropped
    if dropped:
        counters.reasons[reason] += dropped


class ExactDeduplicator:
    """Rows whose texts are equal after `normalize_for_matching`."""

    name = "exact_dedup"

    def __init__(self) -> None:
        self.counters = OperatorCounters(self.name)

    def run(self, texts: Sequence[str], rank: np.ndarray) -> Representatives:
        return self.run_keys([exact_key(t) for t in texts], rank)

    def run_keys(self, keys: Sequence[str], rank: np.ndarray) -> Representatives:
        """The same over the texts' `exact_key`s, computed wherever the texts are."""
        n = len(keys)
        kept = np.ones(n, dtype=bool)
        duplicate_of = np.full(n, -1, dtype=np.int64)
        first: dict[str, int] = {}
        for row in np.argsort(rank, kind="stable").tolist():
            key = keys[row]
            if key in first:
                kept[row] = False
                duplicate_of[row] = first[key]
            else:
                first[key] = row
        result = Representatives(kept, duplicate_of, np.where(kept, 0.0, 1.0).astype(np.float32))
        _count(self.counters, result, "exact_duplicate")
        return result


class NearDeduplicator:
    """Rows whose embeddings have cosine similarity >= threshold (faiss, `NeighborSearch`)."""

    name = "near_dedup"

    def __init__(
        self, threshold: float, *, search: VectorSearchConfig | None = None, same_numbers: bool = False
    ) -> None:
        self.threshold = threshold
        self.search = NeighborSearch(search)
        self.same_numbers = same_numbers
        self.counters = OperatorCounters(self.name)

    def run(
        self,
        vectors: np.ndarray,
        rank: np.ndarray,
        *,
        texts: Sequence[str] | None = None,
        groups: Sequence[str] | None = None,
    ) -> Representatives:
        """texts: needed with `same_numbers`. groups: rows of one group are never duplicates of each
        other (a corpus-wide pass over samples, whose own prompt's samples are handled apart)."""
        same = None
        if self.same_numbers:
            if texts is None:
                raise ValueError("same_numbers needs the texts")
            same = _codes([number_signature(normalize_for_matching(t)) for t in texts])
        differ = _codes(groups) if groups is not None else None
        links = self.search.links(vectors, self.threshold, rank=rank, same=same, differ=differ)
        result = keep_first(len(vectors), links, rank)
        _count(self.counters, result, "near_duplicate")
        return result
