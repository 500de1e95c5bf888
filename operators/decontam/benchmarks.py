"""Benchmark items to decontaminate against: local JSONL/Parquet files or Hugging Face datasets."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from distillery.schemas.dedup_config import BenchmarkConfig

TEXT_FIELDS = ("problem", "question", "prompt")
ID_FIELDS = ("id", "idx", "unique_id", "problem_id", "task_id")


class BenchmarkLoadError(ValueError):
    """A benchmark cannot be read; the message names the file, row and field."""


@dataclass(frozen=True, slots=True)
class BenchmarkItem:
    benchmark: str
    item_id: str
    text: str


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BenchmarkLoadError(f"{path}: line {number}: not valid JSON: {exc}") from None
            if not isinstance(row, dict):
                raise BenchmarkLoadError(f"{path}: line {number}: expected a JSON object, got {type(row).__name__}")
            yield row


def _local_rows(path: Path) -> tuple[list[dict[str, Any]], str]:
    if not path.exists():
        raise BenchmarkLoadError(f"{path}: benchmark file not found")
    if path.is_dir() or path.suffix == ".parquet":
        return pq.read_table(path).to_pylist(), str(path)
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise BenchmarkLoadError(f"{path}: a .json benchmark must be a list of objects")
        return data, str(path)
    return list(_jsonl_rows(path)), str(path)


def _hub_rows(config: BenchmarkConfig) -> tuple[list[dict[str, Any]], str]:
    import datasets

    where = f"{config.dataset}" + (f" ({config.subset})" if config.subset else "") + f" split {config.split!r}"
    try:
        dataset = datasets.load_dataset(str(config.dataset), config.subset, split=config.split)
    except Exception as exc:  # the hub client raises many types; the message is what matters
        raise BenchmarkLoadError(f"{where}: cannot load the dataset: {type(exc).__name__}: {exc}") from exc
    return dataset.to_list(), where


def _pick(fields: Sequence[str], candidates: Sequence[str]) -> str | None:
    return next((name for name in candidates if name in fields), None)


def load_benchmark(config: BenchmarkConfig, *, base_dir: Path | None = None) -> list[BenchmarkItem]:
    if config.path is not None:
        path = Path(config.path)
        rows, where = _local_rows(path if path.is_absolute() or base_dir is None else base_dir / path)
    else:
        rows, where = _hub_rows(config)
    if not rows:
        raise BenchmarkLoadError(f"{where}: the benchmark has no rows")
    fields = list(rows[0])
    text_field = config.field or _pick(fields, TEXT_FIELDS)
    if text_field is None or text_field not in fields:
        wanted = repr(config.field) if config.field else f"one of {list(TEXT_FIELDS)}"
        raise BenchmarkLoadError(f"{where}: no text field {wanted}; fields are {fields} (add `:FIELD` to the spec)")
    id_field = config.id_field or _pick(fields, ID_FIELDS)
    items = []
    for number, row in enumerate(rows):
        text = row.get(text_field)
        if not isinstance(text, str) or not text.strip():
            raise BenchmarkLoadError(f"{where}: row {number}: field {text_field!r} is empty or not text ({text!r})")
        item_id = row.get(id_field) if id_field else None
        items.append(BenchmarkItem(config.label, str(number if item_id is None else item_id), text))
    return items


def load_benchmarks(configs: Sequence[BenchmarkConfig], *, base_dir: Path | None = None) -> list[BenchmarkItem]:
    labels = [c.label for c in configs]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise BenchmarkLoadError(f"benchmark names must be unique (set `name:`); repeated: {repeated}")
    return [item for config in configs for item in load_benchmark(config, base_dir=base_dir)]
