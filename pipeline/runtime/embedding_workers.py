"""Embeddings as resumable units of work: one Parquet file of (id, embedding) per input shard.

A unit is done iff its file exists (written under a temporary name, then renamed), so a rerun
embeds only what is missing. Units run in the driver, batch by batch, or, with
`embedder.actors > 0` on a running Ray instance, on a pool of embedding actors (each loads the
model once; `num_gpus` puts them on GPUs). A unit names the function that reads its texts, and
an actor reads its own unit's: with actors the texts never pass through the driver; in the driver
one shard's texts are in memory at a time, whatever the corpus size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distillery.pipeline.run_directory import Units
from distillery.schemas.dedup_config import EmbedderConfig
from distillery.schemas.records import stable_hash

MODEL_KEY = b"distillery.embedding_model"


TextsReader = Callable[..., tuple[list[str], list[str]]]


@dataclass(frozen=True, slots=True)
class EmbeddingUnit:
    output: Path
    read: TextsReader
    """read(*args) -> (ids, texts to embed), reading the shard; called only when the unit is not
    done, where the unit is embedded. A module-level function (Ray sends it by name) with small args."""
    args: tuple[Any, ...] = ()

    def texts(self) -> tuple[list[str], list[str]]:
        return self.read(*self.args)


def embedder_key(config: EmbedderConfig) -> str:
    """Folder name for one embedding model's files: other settings (batch, device) don't change them.
    A float32 key leaves the dtype out, so runs embedded before the dtype setting existed keep their files."""
    precision = () if config.dtype == "float32" else (config.dtype,)
    return stable_hash("embedder", config.model, str(config.max_seq_length), *precision, length=10)


def embedding_table(ids: Sequence[str], vectors: np.ndarray, model: str) -> pa.Table:
    dim = vectors.shape[1]
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel(), type=pa.float32())
    table = pa.table(
        {"id": pa.array(list(ids), pa.string()), "embedding": pa.FixedSizeListArray.from_arrays(flat, dim)}
    )
    return table.replace_schema_metadata({MODEL_KEY: model.encode()})


def read_embeddings(paths: Sequence[Path], dim: int | None = None) -> tuple[list[str], np.ndarray]:
    """(ids, float32 matrix) of the given embedding files, in order."""
    ids: list[str] = []
    blocks: list[np.ndarray] = []
    for path in paths:
        table = pq.read_table(path)
        column = table.column("embedding").combine_chunks()
        width = column.type.list_size
        ids.extend(table.column("id").to_pylist())
        blocks.append(column.flatten().to_numpy(zero_copy_only=False).reshape(-1, width))
    if not blocks:
        return ids, np.zeros((0, dim or 0), dtype=np.float32)
    return ids, np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32)


class EmbeddingActor:
    """Runs inside a Ray actor: loads the model once, embeds shard after shard."""

    def __init__(self, config: EmbedderConfig) -> None:
        from distillery.operators.dedup.embedder import Embedder

        self.embedder = Embedder(config)

    def embed_unit(self, unit: EmbeddingUnit) -> Path:
        ids, texts = unit.texts()
        Units.commit(embedding_table(ids, self.embedder.encode(texts), self.embedder.name), unit.output)
        return unit.output


def _numbered(texts: list[str]) -> tuple[list[str], list[str]]:
    return [str(k) for k in range(len(texts))], texts


def cached_encoder(folder: Path, config: EmbedderConfig) -> Callable[[Sequence[str]], np.ndarray]:
    """`encode(texts)` that keeps its result in `folder` as an embedding unit, named by the model and
    the texts, so a resumed stage does not embed the same benchmark items again. Embedded like every
    unit (on the embedding actors when there are some): the driver need not load the model."""

    def encode(texts: Sequence[str]) -> np.ndarray:
        path = folder / f"{stable_hash('texts', embedder_key(config), *texts)}.parquet"
        unit = EmbeddingUnit(path, _numbered, (list(texts),))
        run_embedding_units([unit], config)
        return read_embeddings([path])[1]

    return encode


def run_embedding_units(units: Sequence[EmbeddingUnit], config: EmbedderConfig) -> int:
    """Embed every unit whose file is missing; the number embedded."""
    pending = [u for u in units if not u.output.exists()]
    if not pending:
        return 0
    import ray

    if config.actors > 0 and ray.is_initialized():
        _run_on_actors(pending, config)
    else:
        from distillery.operators.dedup.embedder import shared_embedder

        embedder = shared_embedder(config)
        for unit in pending:
            ids, texts = unit.texts()
            Units.commit(embedding_table(ids, embedder.encode(texts), embedder.name), unit.output)
    return len(pending)


def _run_on_actors(pending: Sequence[EmbeddingUnit], config: EmbedderConfig) -> None:
    import ray

    actor_class = ray.remote(EmbeddingActor).options(num_cpus=1, num_gpus=config.num_gpus)
    actors = [actor_class.remote(config) for _ in range(min(config.actors, len(pending)))]
    idle = list(actors)
    running: dict[ray.ObjectRef, object] = {}
    queue = list(pending)
    try:
        while queue or running:
            while queue and idle:
                unit, actor = queue.pop(0), idle.pop()
                running[actor.embed_unit.remote(unit)] = actor
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                idle.append(running.pop(ref))
                ray.get(ref)
    finally:
        for actor in actors:
            ray.kill(actor)
