"""The filter stages' matching as Ray tasks over the units on disk, so the driver holds no texts
and no vectors: it sends file paths and ids, and gets verdicts back.

- `near_duplicates_task`: the one global view, near duplicates across a whole table. One task
  gathers the vectors of the rows still alive from the embedding units (4 bytes a dimension a row,
  no texts; 1.5 KB a row for MiniLM's 384 dimensions) and searches them with `NeighborSearch`: one
  exact index up to `search.exact_max_rows` vectors, then k-means clusters (two-level assignment
  from `search.two_level_min_clusters` clusters on), so time grows about linearly and the task's
  memory is the matrix plus one cluster's pairs. The numbers `same_numbers` compares are read in
  the task from the prompt shards.
- `task_decontaminator` and `benchmark_matches`: what a per-file decontamination task runs
  (n-grams, and the embedding detector on the benchmark vectors the driver cached); the judge stays
  in the driver, which sends it only the few borderline texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillery.operators.counters import OperatorCounters
from distillery.operators.decontam.decontaminator import Decontaminator
from distillery.operators.decontam.matches import Match
from distillery.operators.dedup.deduplicator import NearDeduplicator, keep_order
from distillery.operators.dedup.neighbors import Representatives
from distillery.operators.dedup.normalize import normalize_for_matching, number_signature
from distillery.pipeline.runtime.embedding_workers import cached_encoder, read_embeddings
from distillery.schemas.dedup_config import DecontaminationConfig, EmbedderConfig, VectorSearchConfig


def gather_vectors(files: Sequence[str], ids: Sequence[str]) -> np.ndarray:
    """The vectors of `ids`, row-aligned, read file by file from embedding units (a file's other
    rows are not kept)."""
    where = {item_id: k for k, item_id in enumerate(ids)}
    matrix: np.ndarray | None = None
    found = np.zeros(len(ids), dtype=bool)
    for path in files:
        file_ids, vectors = read_embeddings([Path(path)])
        if matrix is None:
            matrix = np.zeros((len(ids), vectors.shape[1] if len(vectors) else 1), dtype=np.float32)
        pairs = [(where[i], k) for k, i in enumerate(file_ids) if i in where]
        if pairs:
            rows, positions = (np.asarray(side, dtype=np.int64) for side in zip(*pairs, strict=True))
            matrix[rows] = vectors[positions]
            found[rows] = True
    if not found.all():
        raise RuntimeError(f"no embedding for {ids[int(np.flatnonzero(~found)[0])]!r} in {len(files)} embedding files")
    return matrix if matrix is not None else np.zeros((0, 1), dtype=np.float32)


def number_signatures(prompt_shards: Sequence[str], prompt_ids: Sequence[str]) -> list[str]:
    """The sorted numbers of each row's prompt (`prompt_ids` row-aligned), read from the shards."""
    wanted = pa.array(sorted(set(prompt_ids)), pa.string())
    signature: dict[str, str] = {}
    for shard in prompt_shards:
        table = pq.read_table(shard, columns=["id", "problem"]).filter(pc.is_in(pc.field("id"), wanted))
        for prompt_id, problem in zip(table.column("id").to_pylist(), table.column("problem").to_pylist(), strict=True):
            signature[prompt_id] = number_signature(normalize_for_matching(problem))
    return [signature[p] for p in prompt_ids]


Strings = Sequence[str] | pa.Array
"""Row-aligned strings; a caller that holds them as an Arrow column sends it as is (compact)."""


def _listed(values: Strings) -> Sequence[str]:
    return values.to_pylist() if isinstance(values, pa.Array) else values


def near_duplicates_task(
    files: Sequence[str],
    ids: Strings,
    rank: np.ndarray,
    threshold: float,
    search: VectorSearchConfig,
    counter_name: str,
    numbers_of: tuple[Sequence[str], Strings] | None = None,
    groups: Strings | None = None,
) -> tuple[Representatives, OperatorCounters]:
    """Near duplicates among the rows `ids` (their vectors in `files`); `rank` decides the
    representatives. numbers_of: (prompt shards, each row's prompt id) when duplicates must also
    share their prompt's numbers. groups: rows of one group are never each other's duplicates."""
    deduplicator = NearDeduplicator(threshold, search=search, same_numbers=numbers_of is not None)
    deduplicator.counters.name = counter_name
    texts = number_signatures(numbers_of[0], _listed(numbers_of[1])) if numbers_of is not None else None
    result = deduplicator.run(
        gather_vectors(files, _listed(ids)),
        keep_order(rank),
        texts=texts,
        groups=_listed(groups) if groups is not None else None,
    )
    return result, deduplicator.counters


def task_decontaminator(
    config: DecontaminationConfig, base_dir: Path, benchmark_cache: Path, embedder: EmbedderConfig
) -> Decontaminator:
    """The detectors of a per-file task; the embedding detector reads the benchmark vectors the
    driver's own decontaminator cached in `benchmark_cache`. Matches in the judge's band are kept:
    the driver's decontaminator judges them."""
    encode = cached_encoder(benchmark_cache, embedder) if config.embedding.enabled else None
    return Decontaminator.from_config(config, encode=encode, base_dir=base_dir, judged_elsewhere=True)


def benchmark_matches(
    decontaminator: Decontaminator,
    texts: Sequence[str],
    number_texts: Sequence[str],
    embeddings: str | None,
    ids: Sequence[str],
) -> list[list[Match]]:
    """The matches of one file's rows: n-grams over `texts`, then (with `embeddings`, the file's
    embedding unit holding `ids`) the embedding detector, whose number check reads `number_texts`."""
    found = decontaminator.ngram_matches(texts)
    if embeddings is not None and decontaminator.needs_vectors:
        by_vector = decontaminator.embedding_matches(gather_vectors([embeddings], ids), number_texts)
        found = [a + b for a, b in zip(found, by_vector, strict=True)]
    return found
