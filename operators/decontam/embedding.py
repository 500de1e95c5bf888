"""Embedding similarity to the nearest benchmark items: catches rephrasings that share no n-gram.

Benchmarks are small (thousands of items), so one exact faiss index over them is right; our texts
are searched against it in batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np

from distillery.operators.decontam.benchmarks import BenchmarkItem
from distillery.operators.decontam.matches import Match


class EmbeddingDetector:
    name = "embedding"

    def __init__(
        self,
        items: Sequence[BenchmarkItem],
        vectors: np.ndarray,
        *,
        threshold: float,
        top_k: int = 5,
        floor: float | None = None,
    ) -> None:
        """vectors: the items' unit embeddings. floor: report matches down to this score (the judge's
        borderline band); they count as contaminated only from `threshold` up."""
        if len(items) != len(vectors):
            raise ValueError(f"{len(items)} benchmark items but {len(vectors)} vectors")
        self.items = list(items)
        self.threshold = threshold
        self.floor = threshold if floor is None else min(floor, threshold)
        self.top_k = min(top_k, max(1, len(self.items)))
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def matches(self, vectors: np.ndarray) -> list[list[Match]]:
        """Per query vector: its nearest items scoring at least `floor`, best first."""
        if not len(vectors) or not self.items:
            return [[] for _ in range(len(vectors))]
        scores, found = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), self.top_k)
        result: list[list[Match]] = []
        for row_scores, row_found in zip(scores.tolist(), found.tolist(), strict=True):
            row = []
            for score, index in zip(row_scores, row_found, strict=True):
                if index >= 0 and score >= self.floor:
                    item = self.items[index]
                    row.append(
                        Match(
                            item.benchmark,
                            item.item_id,
                            index,
                            self.name,
                            float(score),
                            "",
                            contaminated=score >= self.threshold,
                        )
                    )
            result.append(row)
        return result
