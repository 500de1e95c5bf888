"""Readers of prompt sources: JSONL, Parquet and Hugging Face datasets.

Each yields `(row_number, row)` pairs, streaming; a row that cannot even be read (invalid JSON,
undecodable bytes) is yielded as a `RowReadError` so it can be dead-lettered with its row number
instead of stopping the job.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from distillery.schemas.job import SourceConfig


@dataclass(frozen=True, slots=True)
class RowReadError:
    reason: str
    raw: str


RawRow = Any
"""A decoded row (normally a dict), or a RowReadError."""


def _files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in suffixes and p.is_file())
    return [path]


def read_jsonl(path: Path) -> Iterator[tuple[int, RawRow]]:
    number = 0
    for file in _files(path, (".jsonl", ".json")):
        with file.open("rb") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    yield (
                        number,
                        RowReadError(f"{file.name}: undecodable text: {exc}", line[:200].decode("utf-8", "replace")),
                    )
                except json.JSONDecodeError as exc:
                    yield (
                        number,
                        RowReadError(
                            f"{file.name}: invalid JSON: {exc.msg} at column {exc.colno}",
                            line[:200].decode("utf-8", "replace"),
                        ),
                    )
                number += 1


def read_parquet(path: Path) -> Iterator[tuple[int, RawRow]]:
    number = 0
    for file in _files(path, (".parquet",)):
        for batch in pq.ParquetFile(file).iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                yield number, row
                number += 1


def read_hf(config: SourceConfig, base_dir: Path) -> Iterator[tuple[int, RawRow]]:
    import datasets

    assert config.dataset is not None
    local = base_dir / config.dataset
    if (local / "dataset_info.json").exists() or (local / "state.json").exists():
        loaded = datasets.load_from_disk(str(local))
        data = loaded[config.split] if isinstance(loaded, datasets.DatasetDict) else loaded
    else:
        # A hub name, or a local folder of data files: load_dataset handles both, streaming.
        name = str(local) if local.exists() else config.dataset
        data = datasets.load_dataset(name, config.subset, split=config.split, streaming=True)
    yield from enumerate(data)


def read_source(config: SourceConfig, base_dir: Path) -> Iterator[tuple[int, RawRow]]:
    rows: Iterator[tuple[int, RawRow]]
    if config.format == "jsonl":
        rows = read_jsonl(base_dir / str(config.path))
    elif config.format == "parquet":
        rows = read_parquet(base_dir / str(config.path))
    else:
        rows = read_hf(config, base_dir)
    if config.limit is None:
        yield from rows
        return
    for number, row in rows:
        if number >= config.limit:
            return
        yield number, row
