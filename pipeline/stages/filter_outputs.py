"""How a dedup/decontamination stage (2 and 5) commits its outputs and reads them back on resume.

The stage is one unit: done iff its `dropped.parquet` exists, so that file is written last.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from distillery.operators.counters import CounterSet
from distillery.pipeline.run_directory import FilterStageFiles, Units
from distillery.pipeline.stages.base import StageResult


def excluded_ids(dropped: pa.Table) -> set[str]:
    return set(dropped.column("id").to_pylist())


def finished(files: FilterStageFiles, *, samples: bool) -> StageResult | None:
    """The result of a stage that already ran to the end, or None."""
    if not Units.is_done(files.dropped):
        return None
    excluded = excluded_ids(pq.read_table(files.dropped, columns=["id"]))
    counters = CounterSet.from_list(json.loads(files.counters.read_text()))
    return _result(excluded, counters, samples=samples)


def commit(
    files: FilterStageFiles, audit: pa.Table, dropped: pa.Table, counters: CounterSet, *, samples: bool
) -> StageResult:
    Units.commit(audit, files.audit)
    Units.commit_json(counters.as_list(), files.counters)
    Units.commit(dropped.sort_by("id"), files.dropped)
    return _result(excluded_ids(dropped), counters, samples=samples)


def _result(excluded: set[str], counters: CounterSet, *, samples: bool) -> StageResult:
    if samples:
        return StageResult(counters, excluded_samples=excluded, report={"dropped": len(excluded)})
    return StageResult(counters, excluded_prompts=excluded, report={"dropped": len(excluded)})
