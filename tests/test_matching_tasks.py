"""The filter stages' matching tasks: vectors gathered from embedding units on disk give the same
near duplicates as the matrix in memory, and a row without a vector is an error naming it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillery.operators.dedup.deduplicator import NearDeduplicator, keep_order
from distillery.pipeline.run_directory import Units
from distillery.pipeline.runtime.embedding_workers import embedding_table
from distillery.pipeline.stages.matching_tasks import gather_vectors, near_duplicates_task, number_signatures
from distillery.schemas.dedup_config import VectorSearchConfig


def unit_vectors(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, 16)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_gathered_vectors_follow_the_ids_asked_for_across_files(tmp_path: Path):
    vectors = unit_vectors(6, 0)
    ids = [f"s{k}" for k in range(6)]
    files = []
    for part, rows in enumerate(([0, 1, 2], [3, 4, 5])):
        files.append(str(tmp_path / f"part-{part}.parquet"))
        Units.commit(embedding_table([ids[r] for r in rows], vectors[rows], "m"), Path(files[-1]))
    wanted = ["s4", "s0", "s5"]
    assert np.array_equal(gather_vectors(files, wanted), vectors[[4, 0, 5]])
    with pytest.raises(RuntimeError, match="no embedding for 'missing'"):
        gather_vectors(files, ["s1", "missing"])


def test_the_near_duplicate_task_finds_what_the_deduplicator_finds_in_memory(tmp_path: Path):
    base = unit_vectors(20, 1)
    # Rows 20..24 are slightly moved copies of rows 0..4: near duplicates of them.
    moved = base[:5] + 0.01 * unit_vectors(5, 2)
    vectors = np.concatenate([base, moved / np.linalg.norm(moved, axis=1, keepdims=True)])
    ids = [f"s{k}" for k in range(len(vectors))]
    path = tmp_path / "part-0.parquet"
    Units.commit(embedding_table(ids, vectors, "m"), path)
    rank = np.arange(len(ids))
    result, counters = near_duplicates_task([str(path)], ids, rank, 0.95, VectorSearchConfig(), "near")
    expected = NearDeduplicator(0.95).run(vectors, keep_order(rank.tolist()))
    assert np.array_equal(result.kept, expected.kept)
    assert result.duplicate_of[20:].tolist() == [0, 1, 2, 3, 4]
    assert (counters.name, counters.reasons["near_duplicate"]) == ("near", 5)


def test_number_signatures_are_read_from_the_prompt_shards(tmp_path: Path):
    shard = tmp_path / "part-00000.parquet"
    problems = ["What is 12 + 3?", "Add 3 and 12.", "What is 7 times 6?"]
    pq.write_table(pa.table({"id": ["a", "b", "c"], "problem": problems}), shard)
    assert number_signatures([str(shard)], ["c", "a", "b", "a"]) == ["6 7", "12 3", "12 3", "12 3"]
