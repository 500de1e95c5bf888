"""Word n-gram overlap with benchmark items, after `normalize_for_matching`.

A text matches an item when it shares at least `min_shared` of the item's n-grams, or, with
`min_share`, that share of them (n = 8 by default, as in s1 and open-r1). Items shorter than n
words match only a text with exactly their words.

N-grams are 64-bit rolling hashes of word ids, looked up with numpy, so checking millions of long
responses is not a Python loop over every n-gram; the evidence shown is re-read from the words.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from distillery.operators.decontam.benchmarks import BenchmarkItem
from distillery.operators.decontam.matches import Match
from distillery.operators.dedup.normalize import normalize_for_matching, word_tokens

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


class NgramDetector:
    name = "ngram"

    def __init__(
        self, items: Sequence[BenchmarkItem], *, n: int = 8, min_shared: int = 1, min_share: float | None = None
    ) -> None:
        self.items = list(items)
        self.n = n
        self.min_shared = min_shared
        self.min_share = min_share
        self.vocabulary: dict[str, int] = {}
        hashes, owners = [], []
        self.gram_counts = np.zeros(len(self.items), dtype=np.int64)
        self.short_items: dict[tuple[str, ...], list[int]] = {}
        for index, item in enumerate(self.items):
            tokens = word_tokens(normalize_for_matching(item.text))
            if len(tokens) < n:
                self.short_items.setdefault(tuple(tokens), []).append(index)
                continue
            ids = np.array([self.vocabulary.setdefault(t, len(self.vocabulary)) for t in tokens], dtype=np.int64)
            grams = np.unique(self._hashes(ids))
            self.gram_counts[index] = len(grams)
            hashes.append(grams)
            owners.append(np.full(len(grams), index, dtype=np.int64))
        all_hashes = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
        all_owners = np.concatenate(owners) if owners else np.zeros(0, np.int64)
        order = np.argsort(all_hashes, kind="stable")
        self.gram_hashes = all_hashes[order]
        self.gram_owners = all_owners[order]

    def _hashes(self, ids: np.ndarray) -> np.ndarray:
        """One uint64 per window of n word ids (word id -1: unknown, the window cannot match)."""
        windows = len(ids) - self.n + 1
        value = np.zeros(windows, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for offset in range(self.n):
                value = value * _MULTIPLIER + (ids[offset : offset + windows] + 2).astype(np.uint64)
        return value

    def matches(self, text: str) -> list[Match]:
        """Items this text matches, best (largest share of the item's n-grams) first."""
        tokens = word_tokens(normalize_for_matching(text))
        found: list[Match] = []
        for index in self.short_items.get(tuple(tokens), []):
            found.append(self._match(index, 1.0, " ".join(tokens), "whole item"))
        if len(tokens) < self.n or not len(self.gram_hashes):
            return found
        ids = np.array([self.vocabulary.get(t, -1) for t in tokens], dtype=np.int64)
        hashes = self._hashes(ids)
        # A window with an unknown word cannot be a benchmark n-gram.
        known = np.convolve(ids < 0, np.ones(self.n, dtype=np.int64), mode="valid") == 0
        positions = np.flatnonzero(known)
        hashes = hashes[positions]
        left = np.searchsorted(self.gram_hashes, hashes, side="left")
        right = np.searchsorted(self.gram_hashes, hashes, side="right")
        hit = right > left
        if not hit.any():
            return found
        first_position: dict[int, int] = {}
        shared: dict[int, set[int]] = {}
        for position, lo, hi, gram in zip(positions[hit], left[hit], right[hit], hashes[hit], strict=True):
            for owner in self.gram_owners[lo:hi].tolist():
                first_position.setdefault(owner, int(position))
                shared.setdefault(owner, set()).add(int(gram))
        for owner, grams in shared.items():
            count = len(grams)
            share = count / self.gram_counts[owner]
            enough = share >= self.min_share if self.min_share is not None else count >= self.min_shared
            if enough:
                start = first_position[owner]
                gram_text = " ".join(tokens[start : start + self.n])
                found.append(
                    self._match(owner, share, gram_text, f"{count} of {self.gram_counts[owner]} {self.n}-grams")
                )
        found.sort(key=lambda m: (-m.score, m.item_index))
        return found

    def _match(self, index: int, score: float, gram: str, count: str) -> Match:
        item = self.items[index]
        return Match(item.benchmark, item.item_id, index, self.name, float(score), f"{gram!r} ({count} shared)")
