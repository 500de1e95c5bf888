"""The numbers the dataset card states, read with duckdb from the dataset being written (its staging
folder) and the run's tables; `operators.writers.card` turns them into text."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import duckdb

from distillery.operators.writers.card import AcceptanceFacts, CardFacts, ColumnFacts, SplitFacts
from distillery.pipeline.run_directory import RunDirectory, data_files
from distillery.schemas.arrow import arrow_schema
from distillery.schemas.job import JobConfig
from distillery.schemas.records import SFTRecord

LENGTH_PERCENTILES = (50, 90, 99)
"""Completion-length percentiles the card lists (and the maximum)."""


def parquet_relation(files: list[Path], *, filename: bool = False) -> str:
    """duckdb's relation over these Parquet files (`filename`: with a column naming each row's file)."""
    listed = ", ".join(f"'{f.as_posix()}'" for f in files)
    return f"read_parquet([{listed}], union_by_name=true{', filename=true' if filename else ''})"


def _grouped(con: duckdb.DuckDBPyConnection, table: str, column: str) -> dict[str, int]:
    return {str(k): int(n) for k, n in con.execute(f"SELECT {column}, count(*) FROM {table} GROUP BY 1").fetchall()}


def _split_facts(con: duckdb.DuckDBPyConnection, name: str, files: list[Path]) -> SplitFacts:
    glob = f"{name}/*.parquet"
    if not files:
        return SplitFacts(name, 0, glob)
    table = parquet_relation(files)
    rows = int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
    lengths: dict[str, int] = {}
    if rows:
        picks = ", ".join(f"quantile_disc(completion_tokens, {p / 100})" for p in LENGTH_PERCENTILES)
        values = con.execute(f"SELECT {picks}, max(completion_tokens) FROM {table}").fetchone() or ()
        labels = [f"p{p}" for p in LENGTH_PERCENTILES] + ["p100"]
        lengths = {label: int(v) for label, v in zip(labels, values, strict=True)}
    return SplitFacts(
        name,
        rows,
        glob,
        by_source=_grouped(con, table, "source"),
        by_domain=_grouped(con, table, "domain"),
        by_kind=_grouped(con, table, "kind"),
        completion_tokens=lengths,
    )


def _acceptance(con: duckdb.DuckDBPyConnection, run: RunDirectory, rows: list[Path]) -> list[AcceptanceFacts]:
    samples = run.samples_files()
    if not samples:
        return []
    dataset = (
        f"(SELECT source, domain, count(*) AS n FROM {parquet_relation(rows)} GROUP BY ALL)"
        if rows
        else "(SELECT ''::VARCHAR AS source, ''::VARCHAR AS domain, 0 AS n WHERE false)"
    )
    result = con.execute(
        f"SELECT s.source, s.domain, count(*), sum(s.accepted::INT), coalesce(any_value(d.n), 0) "
        f"FROM {parquet_relation(samples)} s LEFT JOIN {dataset} d USING (source, domain) GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    return [AcceptanceFacts(str(s), str(d), int(n), int(a), int(r)) for s, d, n, a, r in result]


def _verifiers(con: duckdb.DuckDBPyConnection, rows: list[Path]) -> dict[str, int]:
    if not rows:
        return {}
    result = con.execute(
        f"SELECT v.verifier, count(*) FROM (SELECT unnest(verdicts) AS v FROM {parquet_relation(rows)}) GROUP BY 1"
    ).fetchall()
    return {str(name): int(n) for name, n in result}


def _removals(con: duckdb.DuckDBPyConnection, run: RunDirectory) -> dict[str, int]:
    removed: dict[str, int] = {}
    for label, files in (("prompts", run.prompt_filter), ("responses", run.response_filter)):
        if files.dropped.exists():
            for reason, n in _grouped(con, parquet_relation([files.dropped]), "reason").items():
                removed[f"{label}: {reason}"] = n
    return removed


def _leaks(con: duckdb.DuckDBPyConnection, run: RunDirectory) -> dict[str, int]:
    audits = [f.audit for f in (run.prompt_filter, run.response_filter) if f.audit.exists()]
    if not audits:
        return {}
    result = con.execute(
        f"SELECT benchmark, count(DISTINCT item_id) FROM {parquet_relation(audits)} WHERE contaminated GROUP BY 1"
    ).fetchall()
    return {str(b): int(n) for b, n in result}


def _columns() -> list[ColumnFacts]:
    schema = arrow_schema(SFTRecord)
    return [
        ColumnFacts(name, str(schema.field(name).type), info.description or "")
        for name, info in SFTRecord.model_fields.items()
    ]


def _version() -> str:
    try:
        return metadata.version("distillery")
    except metadata.PackageNotFoundError:
        return ""


def card_facts(job: JobConfig, run: RunDirectory, dataset: Path, splits: tuple[str, ...]) -> CardFacts:
    """What the card says about the dataset written under `dataset` (its split folders)."""
    con = duckdb.connect()
    split_files = {split: data_files(dataset / split) for split in splits}
    all_rows = [f for files in split_files.values() for f in files]
    teachers = {
        name: f"`{t.model}` ({t.backend}), sampling `{t.sampling.model_dump_json(exclude_none=True)}`"
        for name, t in job.teachers.items()
    }
    filters = {
        name: json.dumps(getattr(job.filters, name).model_dump(mode="json")) for name in type(job.filters).model_fields
    }
    benchmarks = [b.name or b.path or b.dataset or "" for b in job.decontamination.benchmarks]
    return CardFacts(
        name=job.name,
        config_hash=job.config_hash(),
        license=job.license,
        splits=[_split_facts(con, split, files) for split, files in split_files.items()],
        columns=_columns(),
        acceptance=_acceptance(con, run, all_rows),
        teachers=teachers,
        verifiers=_verifiers(con, all_rows),
        filters=filters,
        benchmarks=benchmarks,
        removals=_removals(con, run),
        leaks=_leaks(con, run),
        distillery_version=_version(),
    )
