"""Stage 1, ingest: read every source, normalize rows into prompts, dead-letter the rest.

Ingest is one unit of work: shards are written as the rows stream in, and the manifest that lists
them is written last. Without a manifest the stage starts over (it is deterministic, so the shards
come out the same).

The work is three rounds of tasks (`pipeline/runtime/cpu_tasks.py`: Ray tasks when Ray is
connected, else in this process), all writing into one staging folder:
1. one task per source reads it, builds its prompts into candidate chunks and its bad rows into
   dead letters, and returns the built prompts' ids and row numbers;
2. the driver applies the exact-duplicate rule across sources on those ids alone (the first
   occurrence in source order, then row order, is kept) and cuts the kept rows into shards of
   `shard_size`; one task per shard gathers its rows from the chunks and commits it;
3. one task per source writes its dead letters, duplicates included, in row order, and judges its
   health; a last task joins them into `dead_letter/ingest.parquet`.
Shard names, their rows and the dead letters are the same whichever task finishes first.
The driver holds, per prompt, its id and where it was first seen (about 150 bytes).
"""

from __future__ import annotations

import heapq
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distillery.operators.counters import CounterSet, OperatorCounters
from distillery.operators.sources.readers import RowReadError, read_source
from distillery.operators.sources.rows import PromptBuilder, dead_letter, raw_json
from distillery.pipeline.dead_letters import SourceHealth, assess_source, require_healthy_sources
from distillery.pipeline.run_directory import RunDirectory, Units
from distillery.pipeline.runtime.cpu_tasks import run_tasks
from distillery.pipeline.stages.base import Stage, StageContext, StageResult
from distillery.schemas.arrow import arrow_schema, from_table, to_table
from distillery.schemas.job import JobConfig, SourceConfig
from distillery.schemas.records import DeadLetter, Prompt

log = logging.getLogger(__name__)

ROW_COLUMN = "_row"
RAW_COLUMN = "_raw"
"""Columns a candidate chunk carries beside the prompt: its row number and raw row (for a duplicate's dead letter)."""
_SOURCE_BITS = 40
"""A first occurrence is stored as one int: source index above these bits, row number below."""


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
        health = manifest.get("source_health", [])
        for entry in health:
            log.warning("%s", SourceHealth.from_dict(entry).message())
        report = {"prompts": manifest["prompts"], "dead_letter": manifest["dead_letter"]}
        if health:
            report["source_health"] = health
        require_healthy_sources(report, strict=context.strict)
        return StageResult(counters, report=report)


@dataclass(frozen=True, slots=True)
class SourceRead:
    """What a source task returns: ids and row numbers of its built prompts, in row order."""

    ids: list[str]
    rows: list[int]
    chunks: list[str]
    counters: OperatorCounters


@dataclass(frozen=True, slots=True)
class SourceDuplicates:
    positions: list[int]
    """Candidate positions (in the source's build order) that repeat an earlier prompt."""
    reasons: list[str]


def _source_folder(staging: Path, index: int) -> Path:
    return staging / f"source-{index:05d}"


def read_source_unit(source: SourceConfig, base_dir: Path, folder: str, chunk_rows: int) -> SourceRead:
    """Task: one source -> candidate chunks and its own dead letters (unreadable and malformed rows)."""
    out = Path(folder)
    builder = PromptBuilder(source)
    dead: list[DeadLetter] = []
    ids: list[str] = []
    rows: list[int] = []
    chunks: list[str] = []
    buffer: list[Prompt] = []
    raws: list[str] = []

    def flush() -> None:
        table = to_table(buffer, Prompt)
        table = table.append_column(ROW_COLUMN, pa.array(rows[len(rows) - len(buffer) :], pa.int64()))
        table = table.append_column(RAW_COLUMN, pa.array(raws, pa.string()))
        path = out / f"chunk-{len(chunks):05d}.parquet"
        Units.commit(table, path)
        chunks.append(str(path))
        buffer.clear()
        raws.clear()

    for number, row in read_source(source, base_dir):
        if isinstance(row, RowReadError):
            builder.counters.drop("unreadable")
            dead.append(dead_letter("ingest", source.name, number, row.reason, row.raw))
            continue
        built = builder.build(row, number)
        if isinstance(built, DeadLetter):
            dead.append(built)
            continue
        ids.append(built.id)
        rows.append(number)
        buffer.append(built)
        raws.append(raw_json(row))
        if len(buffer) >= chunk_rows:
            flush()
    if buffer:
        flush()
    Units.commit(to_table(dead, DeadLetter), out / "own_dead.parquet")
    return SourceRead(ids, rows, chunks, builder.counters)


def write_shard(parts: list[tuple[str, np.ndarray]], path: str) -> int:
    """Task: the shard's rows, gathered from candidate chunks in order, committed as one prompt shard."""
    tables = [pq.read_table(chunk).take(pa.array(positions)) for chunk, positions in parts]
    schema = arrow_schema(Prompt)
    table = pa.concat_tables(tables).select(schema.names).cast(schema) if tables else schema.empty_table()
    Units.commit(table, Path(path))
    return len(table)


def write_source_dead_letters(
    source: SourceConfig, folder: str, chunk_rows: int, seen: int, duplicates: SourceDuplicates
) -> tuple[int, SourceHealth | None]:
    """Task: the source's dead letters in row order (its own and its duplicates) and its health.
    `seen`: the rows read from the source."""
    out = Path(folder)
    own = from_table(pq.read_table(out / "own_dead.parquet"), DeadLetter)
    positions = np.asarray(duplicates.positions, dtype=np.int64)
    repeated: list[DeadLetter] = []
    for chunk in np.unique(positions // chunk_rows).tolist():
        table = pq.read_table(out / f"chunk-{chunk:05d}.parquet", columns=[ROW_COLUMN, RAW_COLUMN])
        for k in np.flatnonzero(positions // chunk_rows == chunk).tolist():
            row = table.slice(int(positions[k]) % chunk_rows, 1).to_pylist()[0]
            letter = dead_letter("ingest", source.name, row[ROW_COLUMN], duplicates.reasons[k], None)
            repeated.append(letter.model_copy(update={"raw": row[RAW_COLUMN]}))
    dead = list(heapq.merge(own, repeated, key=lambda d: -1 if d.row is None else d.row))
    Units.commit(to_table(dead, DeadLetter), out / "dead.parquet")
    return len(dead), assess_source(source, seen, dead)


def join_dead_letters(paths: list[str], output: str) -> int:
    """Task: the sources' dead letters, in source order, as the stage's one dead-letter file."""
    schema = arrow_schema(DeadLetter)
    tables = [pq.read_table(p).cast(schema) for p in paths]
    Units.commit(pa.concat_tables(tables) if tables else schema.empty_table(), Path(output))
    return sum(len(t) for t in tables)


def run_ingest(job: JobConfig, base_dir: Path, run: RunDirectory) -> list[OperatorCounters]:
    if run.prompts.exists():
        shutil.rmtree(run.prompts)
    shard_size = job.generation.shard_size
    staging = run.staging_dir("ingest")
    folders = [_source_folder(staging, i) for i in range(len(job.sources))]
    reads = run_tasks(
        read_source_unit, [(s, base_dir, str(f), shard_size) for s, f in zip(job.sources, folders, strict=True)]
    )
    first_seen: dict[str, int] = {}
    duplicates = OperatorCounters("ingest:exact_duplicates")
    per_source: list[SourceDuplicates] = []
    kept: list[tuple[int, np.ndarray]] = []
    """(source index, kept candidate positions) per source."""
    for index, read in enumerate(reads):
        repeated = SourceDuplicates([], [])
        keep = np.ones(len(read.ids), dtype=bool)
        for position, (prompt, number) in enumerate(zip(read.ids, read.rows, strict=True)):
            first = first_seen.get(prompt)
            if first is None:
                duplicates.keep()
                first_seen[prompt] = (index << _SOURCE_BITS) | number
                continue
            duplicates.drop("duplicate")
            keep[position] = False
            src, row = job.sources[first >> _SOURCE_BITS].name, first & ((1 << _SOURCE_BITS) - 1)
            repeated.positions.append(position)
            repeated.reasons.append(f"duplicate of {src} row {row} (same normalized text)")
        per_source.append(repeated)
        kept.append((index, np.flatnonzero(keep)))
    counters = [read.counters for read in reads] + [duplicates]

    shard_calls = _shard_calls(run, folders, kept, shard_size)
    run_tasks(write_shard, shard_calls)
    shards = [Path(path).stem for _, path in shard_calls]
    dead = run_tasks(
        write_source_dead_letters,
        [
            (s, str(f), shard_size, r.counters.seen, d)
            for s, f, r, d in zip(job.sources, folders, reads, per_source, strict=True)
        ],
    )
    health = [h for _, h in dead if h is not None]
    dead_count = run_tasks(
        join_dead_letters, [([str(f / "dead.parquet") for f in folders], str(run.ingest_dead_letter))]
    )[0]
    manifest = {
        "shards": shards,
        "prompts": len(first_seen),
        "dead_letter": dead_count,
        "sources": [c.as_dict() for c in counters],
        "source_health": [h.as_dict() for h in health],
    }
    run.units.commit_json(manifest, run.manifest)
    shutil.rmtree(staging)
    return counters


def _shard_calls(
    run: RunDirectory, folders: list[Path], kept: list[tuple[int, np.ndarray]], shard_size: int
) -> list[tuple[list[tuple[str, np.ndarray]], str]]:
    """Shard k holds kept prompts k*shard_size .. (k+1)*shard_size - 1 in source and row order, so
    a shard may span sources; at least one shard is written, empty if nothing was kept."""
    calls: list[tuple[list[tuple[str, np.ndarray]], str]] = []
    parts: list[tuple[str, np.ndarray]] = []
    filled = 0

    def flush() -> None:
        nonlocal parts, filled
        calls.append((parts, str(run.prompt_shard(run.shard_name(len(calls))))))
        parts, filled = [], 0

    for index, positions in kept:
        start = 0
        while start < len(positions):
            take = positions[start : start + shard_size - filled]
            chunk_of = take // shard_size
            for chunk in np.unique(chunk_of).tolist():
                path = folders[index] / f"chunk-{chunk:05d}.parquet"
                parts.append((str(path), (take[chunk_of == chunk] % shard_size).astype(np.int64)))
            filled += len(take)
            start += len(take)
            if filled == shard_size:
                flush()
    if parts or not calls:
        flush()
    return calls
