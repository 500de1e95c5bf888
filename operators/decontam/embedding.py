"""Embedding similarity to the nearest benchmark items: catches rephrasings that share no n-gram.

A match is a hit at cosine >= `threshold`, or at cosine >= `numbers_threshold` when the two texts
also share their numbers (`number_agreement`): MiniLM-like models see the topic and barely the
numbers, so unrelated problems on one topic ("how many legs do the cows and chickens have") score
as high as true rephrasings, which keep the numbers of the problem they copy.

Benchmarks are small (thousands of items), so one exact faiss index over them is right.
"""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np

from distillery.operators.decontam.benchmarks import BenchmarkItem
from distillery.operators.decontam.matches import Match
from distillery.operators.dedup.normalize import normalize_for_matching, number_agreement, numbers
from distillery.schemas.dedup_config import EmbeddingDetectorConfig


class EmbeddingDetector:
    name = "embedding"

    def __init__(
        self,
        items: Sequence[BenchmarkItem],
        vectors: np.ndarray,
        config: EmbeddingDetectorConfig | None = None,
        *,
        floor: float | None = None,
    ) -> None:
        """vectors: the items' unit embeddings. floor: also report non-hits down to this score (the
        judge's borderline band)."""
        if len(items) != len(vectors):
            raise ValueError(f"{len(items)} benchmark items but {len(vectors)} vectors")
        self.config = config or EmbeddingDetectorConfig()
        self.items = list(items)
        self.item_numbers = [numbers(normalize_for_matching(item.text)) for item in self.items]
        self.floor = self.config.floor if floor is None else min(floor, self.config.floor)
        self.top_k = min(self.config.top_k, max(1, len(self.items)))
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def is_hit(self, score: float, agreement: float) -> bool:
        if score >= self.config.threshold:
            return True
        low = self.config.numbers_threshold
        return low is not None and score >= low and agreement >= self.config.min_number_agreement

    def matches(self, vectors: np.ndarray, texts: Sequence[str]) -> list[list[Match]]:
        """Per query (its unit vector, and the text whose numbers count): the nearest items scoring at
        least `floor`, best first."""
        if len(vectors) != len(texts):
            raise ValueError(f"{len(vectors)} vectors but {len(texts)} texts")
        if not len(vectors) or not self.items:
            return [[] for _ in range(len(vectors))]
        scores, found = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), self.top_k)
        result: list[list[Match]] = []
        for text, row_scores, row_found in zip(texts, scores.tolist(), found.tolist(), strict=True):
            row = []
            ours = None
            for score, index in zip(row_scores, row_found, strict=True):
                if index < 0 or score < self.floor:
                    continue
                ours = ours if ours is not None else numbers(normalize_for_matching(text))
                agreement = number_agreement(ours, self.item_numbers[index])
                item = self.items[index]
                row.append(
                    Match(
                        item.benchmark,
                        item.item_id,
                        index,
                        self.name,
                        float(score),
                        f"cosine {score:.3f}, numbers agree {agreement:.2f}",
                        contaminated=self.is_hit(score, agreement),
                    )
                )
            result.append(row)
        return result
