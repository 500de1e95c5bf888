"""Stage 1: read every source, normalize rows into prompts, dead-letter the rest.

Ingest is one unit of work: shards are written as the rows stream in, and the manifest that lists
them is written last. Without a manifest the stage starts over (it is deterministic, so the shards
come out the same).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from distillery.operators.counters import OperatorCounters
from distillery.operators.sources.readers import RowReadError, read_source
from distillery.operators.sources.rows import PromptBuilder, dead_letter
from distillery.operators.writers.parquet import write_parquet_atomic
from distillery.pipeline.run_dir import RunDirectory
from distillery.schemas.arrow import to_table
from distillery.schemas.job import JobConfig
from distillery.schemas.records import DeadLetter, Prompt


def shard_name(index: int) -> str:
    return f"part-{index:05d}"


def run_ingest(job: JobConfig, base_dir: Path, run: RunDirectory) -> list[OperatorCounters]:
    if run.manifest.exists():
        return []
    if run.prompts.exists():
        shutil.rmtree(run.prompts)
    shard_size = job.generation.shard_size
    buffer: list[Prompt] = []
    shards: list[str] = []
    dead: list[DeadLetter] = []
    first_row: dict[str, tuple[str, int]] = {}
    counters: list[OperatorCounters] = []
    duplicates = OperatorCounters("ingest:exact_duplicates")

    def flush() -> None:
        name = shard_name(len(shards))
        write_parquet_atomic(to_table(buffer, Prompt), run.prompts / f"{name}.parquet")
        shards.append(name)
        buffer.clear()

    for source in job.sources:
        builder = PromptBuilder(source)
        for number, row in read_source(source, base_dir):
            if isinstance(row, RowReadError):
                builder.counters.drop("unreadable")
                dead.append(dead_letter("ingest", source.name, number, row.reason, row.raw))
                continue
            built = builder.build(row, number)
            if isinstance(built, DeadLetter):
                dead.append(built)
                continue
            if built.id in first_row:
                src, first = first_row[built.id]
                duplicates.drop("duplicate")
                dead.append(
                    dead_letter(
                        "ingest", source.name, number, f"duplicate of {src} row {first} (same normalized text)", row
                    )
                )
                continue
            duplicates.keep()
            first_row[built.id] = (source.name, number)
            buffer.append(built)
            if len(buffer) >= shard_size:
                flush()
        counters.append(builder.counters)
    counters.append(duplicates)
    if buffer or not shards:
        flush()
    write_parquet_atomic(to_table(dead, DeadLetter), run.dead_letter / "ingest.parquet")
    manifest = {
        "shards": shards,
        "prompts": len(first_row),
        "dead_letter": len(dead),
        "sources": [c.as_dict() for c in counters],
    }
    tmp = run.manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(run.manifest)
    return counters
