"""The JSONL and Parquet files the standalone commands (verify, decontam, dedup) read and write."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
READ_BATCH_ROWS = 256


class DataFileError(ValueError):
    """A file a command cannot use (missing, unknown format); the message names it."""


def data_format(path: Path) -> str:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataFileError(f"{path}: unknown format {path.suffix!r}; use .jsonl or .parquet")
    return kind


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(row number, row) for every row, streaming; a row that cannot be read comes as the reason why."""
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    if data_format(path) == "parquet":
        number = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=READ_BATCH_ROWS):
            for row in batch.to_pylist():
                yield number, row
                number += 1
        return
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, f"row {number} (line {number + 1}): not valid JSON ({exc.msg})"
                continue
            yield number, row if isinstance(row, dict) else f"row {number} (line {number + 1}): not a JSON object"
