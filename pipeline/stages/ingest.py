"""Stage 1, ingest: read every source, normalize rows into prompts, dead-letter the rest.

Ingest is one unit of work: shards are written as the rows stream in, and the manifest that lists
them is written last. Without a manifest the stage starts over (it is deterministic, so the shards
come out the same).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from distillery.operators.counters import CounterSet, OperatorCounters
from distillery.operators.sources.readers import RowReadError, read_source
from distillery.operators.sources.rows import PromptBuilder, dead_letter
from distillery.pipeline.run_directory import RunDirectory
from distillery.pipeline.stages.base import Stage, StageContext, StageResult
from distillery.schemas.arrow import to_table
from distillery.schemas.job import JobConfig
from distillery.schemas.records import DeadLetter, Prompt


class IngestStage(Stage):
    """Stage 1. Its one unit is the manifest: present means every shard and the dead letters are written."""

    name = "ingest"
    reads = ("sources",)

    def run(self, context: StageContext) -> StageResult:
        run = context.run
        if not run.units.is_done(run.manifest):
            run_ingest(context.job, context.base_dir, run)
        manifest = json.loads(run.manifest.read_text())
        counters = CounterSet.from_list(manifest["sources"])
        return StageResult(counters, report={"prompts": manifest["prompts"], "dead_letter": manifest["dead_letter"]})


def run_ingest(job: JobConfig, base_dir: Path, run: RunDirectory) -> list[OperatorCounters]:
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
        name = run.shard_name(len(shards))
        run.units.commit(to_table(buffer, Prompt), run.prompt_shard(name))
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
    run.units.commit(to_table(dead, DeadLetter), run.ingest_dead_letter)
    manifest = {
        "shards": shards,
        "prompts": len(first_row),
        "dead_letter": len(dead),
        "sources": [c.as_dict() for c in counters],
    }
    run.units.commit_json(manifest, run.manifest)
    return counters
