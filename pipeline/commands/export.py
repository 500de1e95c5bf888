"""`distillery export RUN --format F --out DIR`: the run's dataset in another trainer's shape (one
file per split) with LLaMA-Factory's `dataset_info.json` for it. The conversions are
`operators.writers.exports`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, cast

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from distillery.operators.writers.exports import EXPORT_FORMATS, ExportFormat, Row, convert, llama_factory_info
from distillery.pipeline.run_directory import RunDirectory, data_files

FileFormat = Literal["jsonl", "parquet"]
READ_COLUMNS = ["id", "messages"]


def _rows(files: list[Path]) -> Iterator[list[Row]]:
    """The split's rows, a file at a time (a split can be larger than memory)."""
    for path in files:
        yield pq.read_table(path, columns=READ_COLUMNS).to_pylist()


def _write_split(files: list[Path], target: Path, export_format: ExportFormat, file_format: FileFormat) -> int:
    written = 0
    if file_format == "jsonl":
        with target.open("w", encoding="utf-8") as out:
            for rows in _rows(files):
                for row in convert(rows, export_format):
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
                written += len(rows)
        return written
    writer: pq.ParquetWriter | None = None
    try:
        for rows in _rows(files):
            if not rows:
                continue
            table = pa.Table.from_pylist(convert(rows, export_format))
            if writer is None:
                writer = pq.ParquetWriter(target, table.schema, compression="zstd")
            writer.write_table(table.cast(writer.schema))
            written += len(rows)
    finally:
        if writer is not None:
            writer.close()
    return written


def export_dataset(run_dir: Path, out: Path, export_format: ExportFormat, file_format: FileFormat) -> dict[str, int]:
    """Write `out/<split>.<jsonl|parquet>` for every split with rows; returns rows per split
    (0 for an empty split, which gets no file)."""
    dataset = RunDirectory(run_dir).dataset
    splits = sorted(p for p in dataset.iterdir() if p.is_dir()) if dataset.is_dir() else []
    if not splits:
        raise FileNotFoundError(f"{dataset}: no dataset here; run the job first (distillery run JOB.yaml)")
    job_file = run_dir / "job.yaml"
    job_name = str(yaml.safe_load(job_file.read_text())["name"]) if job_file.exists() else run_dir.name
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    exported: dict[str, str] = {}
    for split in splits:
        target = out / f"{split.name}.{file_format}"
        counts[split.name] = _write_split(data_files(split), target, export_format, file_format)
        if counts[split.name]:
            exported[split.name] = target.name
        else:
            target.unlink(missing_ok=True)
    info = llama_factory_info(job_name, exported, export_format)
    (out / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return counts


def _export(args: argparse.Namespace) -> int:
    counts = export_dataset(args.run_dir, args.out, cast(ExportFormat, args.format), args.file_format)
    for split, n in counts.items():
        where = args.out / f"{split}.{args.file_format}" if n else "no file (empty split)"
        print(f"{split}: {n} rows -> {where}")
    print(f"LLaMA-Factory: dataset_dir: {args.out} (dataset_info.json)")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("export", help="write the run's dataset for other trainers (messages, sharegpt, ...)")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--format", choices=EXPORT_FORMATS, default="messages", help="row shape (default: messages)")
    parser.add_argument("--out", type=Path, required=True, help="folder for <split>.<file format> files")
    parser.add_argument("--file-format", choices=("jsonl", "parquet"), default="jsonl")
    parser.set_defaults(func=_export)
