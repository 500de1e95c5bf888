"""Near-duplicate search with faiss that stays roughly linear in the number of vectors.

Up to `exact_max_rows` vectors: one exact inner-product index, range-searched in blocks. Past it,
the SemDeDup scheme: spherical k-means into clusters of about `rows_per_cluster` vectors, then an
exact range search inside clusters. Each vector is compared with the members of its `probes`
nearest clusters (as an IVF index's nprobe does), so a pair split by a cluster border is still
found. With a fixed cluster size the work per vector is constant, hence linear growth; only the
assignment to centroids grows with the number of clusters. Below `two_level_min_clusters` (about 1M
vectors) that is one BLAS product, rows x clusters (about a quarter of the time at 1M vectors); from
there on centroids are trained and searched in two levels (`_two_level_index`: coarse k-means, fine
k-means inside each coarse cell, a faiss IVF index over the fine centroids), so a vector costs
about sqrt(clusters) products: 100M vectors (100K clusters) assign at ~3K products per vector.
The global view is the vectors only: 1.5 KB per row at 384 float32 dimensions, plus the links.

What comes out is, for each vector, its neighbours above the threshold that come *earlier* in the
keep order (`rank`): all that the greedy keep rule needs. At most `max_neighbors` per vector are
kept (the earliest ones, which are the likeliest to be kept themselves), so a huge group of
near-identical rows costs bounded memory instead of a quadratic number of pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from distillery.schemas.dedup_config import VectorSearchConfig

_HITS_PER_BLOCK = 1 << 24
_TRAIN_POINTS_PER_CLUSTER = 48
_KMEANS_ITERATIONS = 12
_COARSE_PROBES = 8
"""Coarse cells searched for a vector's nearest fine centroids (two-level assignment)."""

Pairs = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(query ids, found ids, scores) of one block of a range search."""


@dataclass(frozen=True, slots=True)
class NeighborLinks:
    """`item[k]` is similar (`score[k]`) to `earlier[k]`, which precedes it in the keep order."""

    item: np.ndarray
    earlier: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.item)

    @staticmethod
    def concat(parts: Sequence[NeighborLinks]) -> NeighborLinks:
        """The links of all parts (none: no links)."""
        return NeighborLinks(
            np.concatenate([np.zeros(0, np.int64), *(p.item for p in parts)]),
            np.concatenate([np.zeros(0, np.int64), *(p.earlier for p in parts)]),
            np.concatenate([np.zeros(0, np.float32), *(p.score for p in parts)]),
        )


@dataclass(frozen=True, slots=True)
class Representatives:
    """The outcome of the keep rule: `duplicate_of[i]` is -1 for kept items."""

    kept: np.ndarray
    duplicate_of: np.ndarray
    score: np.ndarray


class NeighborSearch:
    """Finds, for every vector, the earlier vectors within a cosine-similarity threshold."""

    def __init__(self, config: VectorSearchConfig | None = None) -> None:
        self.config = config or VectorSearchConfig()
        self.plan = ""
        """How the last search ran: `exact` or `clustered(k=...)`, for logs and benchmarks."""

    def links(
        self,
        vectors: np.ndarray,
        threshold: float,
        *,
        rank: np.ndarray | None = None,
        same: np.ndarray | None = None,
        differ: np.ndarray | None = None,
    ) -> NeighborLinks:
        """Links between unit vectors with inner product >= threshold.

        rank: position of each vector in the keep order (a permutation; default: row order).
        same: a pair only counts when these codes are equal (e.g. the numbers a problem contains).
        differ: a pair only counts when these codes differ (e.g. samples of different prompts).
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n = len(vectors)
        rank = np.arange(n, dtype=np.int64) if rank is None else np.asarray(rank, dtype=np.int64)
        if len(rank) != n:
            raise ValueError(f"rank has {len(rank)} entries for {n} vectors")
        if n < 2:
            self.plan = "exact"
            return NeighborLinks.concat([])
        parts: list[NeighborLinks] = []
        for queries, found, scores in self._pairs(vectors, threshold):
            part = self._orient(queries, found, scores, rank, same, differ)
            if len(part):
                parts.append(self._cap(self._unique(part, n), rank))
        if not parts:
            return NeighborLinks.concat([])
        merged = NeighborLinks.concat(parts)
        return self._cap(self._unique(merged, n), rank)

    def _pairs(self, vectors: np.ndarray, threshold: float) -> Iterator[Pairs]:
        n = len(vectors)
        if n <= self.config.exact_max_rows:
            self.plan = "exact"
            yield from _range_pairs(vectors, np.arange(n), vectors, np.arange(n), threshold)
            return
        clusters = max(2, round(n / self.config.rows_per_cluster))
        self.plan = f"clustered(k={clusters}, probes={self.config.probes})"
        assignment = self._assign(vectors, clusters)
        members_of = _cluster_lists(assignment[:, :1], clusters)
        queries_of = _cluster_lists(assignment, clusters)
        for cluster in range(clusters):
            members, queries = members_of(cluster), queries_of(cluster)
            if len(members) and len(queries):
                yield from _range_pairs(vectors[queries], queries, vectors[members], members, threshold)

    def _assign(self, vectors: np.ndarray, clusters: int) -> np.ndarray:
        """The `probes` nearest centroids of every vector, nearest first."""
        n = len(vectors)
        rng = np.random.default_rng(self.config.seed)
        sample_size = min(n, clusters * _TRAIN_POINTS_PER_CLUSTER)
        sample = vectors[np.sort(rng.choice(n, size=sample_size, replace=False))]
        nearest = min(self.config.probes, clusters)
        if clusters < self.config.two_level_min_clusters:
            index: faiss.Index = faiss.IndexFlatIP(vectors.shape[1])
            index.add(_kmeans(sample, clusters, self.config.seed))
        else:
            index = self._two_level_index(sample, clusters)
            self.plan += f" two-level(coarse={index.nlist}, nprobe={index.nprobe})"
        assignment = np.empty((n, nearest), dtype=np.int64)
        step = 1 << 16
        for start in range(0, n, step):
            _, assignment[start : start + step] = index.search(vectors[start : start + step], nearest)
        return assignment

    def _two_level_index(self, sample: np.ndarray, clusters: int) -> faiss.IndexIVFFlat:
        """Fine centroids found and searched through coarse ones (hierarchical k-means, faiss IVF).

        `sqrt(clusters)` coarse centroids split the training sample; each coarse cell gets fine
        centroids in proportion to its share of the sample, trained on its points only. The fine
        centroids go into an IVF index whose coarse quantizer holds the coarse centroids, so a
        vector is compared with the coarse centroids and then with the fine centroids of its
        `_COARSE_PROBES` nearest cells: about (1 + _COARSE_PROBES) * sqrt(clusters) products per
        vector instead of `clusters`, and training costs about clusters^1.5 instead of clusters^2."""
        dim = sample.shape[1]
        coarse_count = max(2, round(math.sqrt(clusters)))
        coarse = _kmeans(sample, coarse_count, self.config.seed)
        quantizer = faiss.IndexFlatIP(dim)
        quantizer.add(coarse)
        _, cell = quantizer.search(sample, 1)
        cell = cell.ravel()
        fine: list[np.ndarray] = []
        for c in range(coarse_count):
            points = sample[cell == c]
            if not len(points):
                continue
            share = max(1, round(clusters * len(points) / len(sample)))
            fine.append(points if len(points) <= share else _kmeans(points, share, self.config.seed + c))
        centroids = np.ascontiguousarray(np.concatenate(fine), dtype=np.float32)
        index = faiss.IndexIVFFlat(quantizer, dim, coarse_count, faiss.METRIC_INNER_PRODUCT)
        index.is_trained = True  # the quantizer already holds the coarse centroids
        index.add(centroids)
        index.nprobe = min(_COARSE_PROBES, coarse_count)
        return index

    @staticmethod
    def _orient(
        queries: np.ndarray,
        found: np.ndarray,
        scores: np.ndarray,
        rank: np.ndarray,
        same: np.ndarray | None,
        differ: np.ndarray | None,
    ) -> NeighborLinks:
        """Pairs -> links from the later to the earlier vector (a pair found from either side counts)."""
        keep = queries != found
        if same is not None:
            keep &= same[queries] == same[found]
        if differ is not None:
            keep &= differ[queries] != differ[found]
        queries, found, scores = queries[keep], found[keep], scores[keep]
        later_is_query = rank[queries] > rank[found]
        item = np.where(later_is_query, queries, found)
        earlier = np.where(later_is_query, found, queries)
        return NeighborLinks(item, earlier, scores)

    @staticmethod
    def _unique(links: NeighborLinks, n: int) -> NeighborLinks:
        _, first = np.unique(links.item * n + links.earlier, return_index=True)
        return NeighborLinks(links.item[first], links.earlier[first], links.score[first])

    def _cap(self, links: NeighborLinks, rank: np.ndarray) -> NeighborLinks:
        """Keep each item's `max_neighbors` earliest neighbours."""
        order = np.lexsort((rank[links.earlier], links.item))
        item = links.item[order]
        starts = np.flatnonzero(np.r_[True, item[1:] != item[:-1]])
        position = np.arange(len(item)) - np.repeat(starts, np.diff(np.r_[starts, len(item)]))
        keep = order[position < self.config.max_neighbors]
        return NeighborLinks(links.item[keep], links.earlier[keep], links.score[keep])


def _kmeans(points: np.ndarray, clusters: int, seed: int) -> np.ndarray:
    """Spherical k-means centroids of `points` (unit vectors)."""
    kmeans = faiss.Kmeans(
        points.shape[1],
        clusters,
        niter=_KMEANS_ITERATIONS,
        seed=seed,
        spherical=True,
        max_points_per_centroid=_TRAIN_POINTS_PER_CLUSTER,
        verbose=False,
    )
    kmeans.train(np.ascontiguousarray(points, dtype=np.float32))
    return kmeans.centroids


def _cluster_lists(assignment: np.ndarray, clusters: int) -> Callable[[int], np.ndarray]:
    """cluster -> the rows assigned to it (a row may be in several: one per column)."""
    flat = assignment.ravel()
    order = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[order], np.arange(clusters + 1))
    rows = order // assignment.shape[1]
    return lambda cluster: rows[bounds[cluster] : bounds[cluster + 1]]


def _range_pairs(
    queries: np.ndarray, query_ids: np.ndarray, database: np.ndarray, database_ids: np.ndarray, threshold: float
) -> Iterator[Pairs]:
    """Exact range search: yields (query id, database id, score) arrays with score >= threshold."""
    index = faiss.IndexFlatIP(database.shape[1])
    index.add(database)
    # faiss keeps scores strictly above the radius; step just below so `>= threshold` holds.
    radius = float(np.nextafter(np.float32(threshold), np.float32(-1)))
    block = int(np.clip(_HITS_PER_BLOCK // max(1, len(database)), 1, 1 << 14))
    for start in range(0, len(queries), block):
        limits, scores, found = index.range_search(queries[start : start + block], radius)
        counts = np.diff(limits).astype(np.int64)
        if not counts.sum():
            continue
        query_rows = np.repeat(np.arange(start, start + len(counts)), counts)
        keep = scores >= threshold
        yield query_ids[query_rows[keep]], database_ids[found[keep]], scores[keep].astype(np.float32)


def keep_first(n: int, links: NeighborLinks, rank: np.ndarray | None = None) -> Representatives:
    """The deterministic keep rule: walk items in rank order; an item is dropped when one of its
    earlier neighbours was kept, and then names the most similar such neighbour. Every dropped item
    therefore points at a kept one, and no two kept items are linked."""
    kept = np.ones(n, dtype=bool)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    best = np.zeros(n, dtype=np.float32)
    if not len(links):
        return Representatives(kept, duplicate_of, best)
    rank = np.arange(n, dtype=np.int64) if rank is None else np.asarray(rank, dtype=np.int64)
    order = np.lexsort((rank[links.earlier], rank[links.item]))
    item, earlier, score = links.item[order], links.earlier[order], links.score[order]
    starts = np.flatnonzero(np.r_[True, item[1:] != item[:-1]])
    ends = np.r_[starts[1:], len(item)]
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        candidates = earlier[start:end]
        alive = kept[candidates]
        if alive.any():
            # Highest similarity wins; among equals the earliest (candidates are in rank order).
            choice = int(np.argmax(np.where(alive, score[start:end], -np.inf)))
            current = item[start]
            kept[current] = False
            duplicate_of[current] = candidates[choice]
            best[current] = score[start + choice]
    return Representatives(kept, duplicate_of, best)
