"""The files of a dedup/decontamination stage (prompt filter, response filter): where they go, how
they are committed, and how a finished stage is read back on resume.

The stage is done if and only if its `dropped.parquet` exists, so that file is written last.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from distillery.operators.writers.parquet import write_parquet_atomic
from distillery.pipeline.run_dir import RunDirectory


@dataclass
class FilterStageResult:
    excluded: set[str]
    """Ids the next stage must skip (prompts before generation, samples before the dataset)."""
    counters: list[dict[str, object]] = field(default_factory=list)


@dataclass(frozen=True)
class FilterStageFiles:
    run: RunDirectory
    stage: str
    """The stage's folder under the run directory."""
    audit_name: str
    """Its file under `decontam_audit/`."""

    @property
    def folder(self) -> Path:
        return self.run.path / self.stage

    @property
    def dropped(self) -> Path:
        return self.folder / "dropped.parquet"

    @property
    def audit(self) -> Path:
        return self.run.path / "decontam_audit" / self.audit_name

    @property
    def counters(self) -> Path:
        return self.folder / "counters.json"

    def finished(self) -> FilterStageResult | None:
        """The result of a stage that already ran to the end, or None."""
        if not self.dropped.exists():
            return None
        excluded = set(pq.read_table(self.dropped, columns=["id"]).column("id").to_pylist())
        counters = json.loads(self.counters.read_text()) if self.counters.exists() else []
        return FilterStageResult(excluded, counters)

    def commit(self, audit: pa.Table, dropped: pa.Table, counters: list[dict[str, object]]) -> FilterStageResult:
        write_parquet_atomic(audit, self.audit)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.counters.write_text(json.dumps(counters, indent=2))
        write_parquet_atomic(dropped.sort_by("id"), self.dropped)
        return FilterStageResult(set(dropped.column("id").to_pylist()), counters)
