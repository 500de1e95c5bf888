"""The run directory: every path and unit name of a run, and the one rule that makes it resumable.

```
RUN/
  job.yaml, config_hash     the resolved job file; what the outputs were made with (another job is refused)
  report.json               what every stage counted and reported, written at the end of a run
  prompts/                  part-00000.parquet ...; _manifest.json once ingest is complete    (stage 1)
  dead_letter/              ingest.parquet, generate-part-00000-<teacher>.parquet ...
  prompt_filter/            dropped.parquet, counters.json, embeddings/                         (stage 2)
  samples/                  part-00000-<teacher>.parquet: every generation, accepted or not     (stage 3)
  counters/generate/        part-00000-<teacher>.json: what the unit's sampler, filters and verifiers counted
  journey/                  wrong-then-corrected traces                                          (stage 4)
  response_filter/          dropped.parquet, kept.parquet, counters.json, embeddings/           (stage 5)
  decontam_audit/           prompts.parquet, responses.parquet, benchmark_embeddings/
  dataset/                  reasoning/, general/, README.md, dataset_info.json                  (stage 6)
  logs/                     driver.log, actors/<worker>-<pid>.log (pipeline/runtime/run_logs.py)
```

**Resume rule** (`Units`): a unit of work is done if and only if its file exists. Files are written
under a temporary name and renamed, and a unit's companions (its dead letters, its counters) are
written before the file that marks it done.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from distillery.schemas.job import JobConfig

SHARD_PATTERN = re.compile(r"^(part-\d{5})-(.+)$")
BATCH_PATTERN = re.compile(r"^(batch-[A-Za-z0-9_.]+-\d{5})-(.+)$")
"""Generation units of a run with targets: prompts in visit order (`batches/`), not ingest shards."""


class RunDirectoryError(RuntimeError):
    """The run directory belongs to another job, or is not a run directory."""


class Units:
    """The done-ness rule of every stage, in one place (datatrove's `is_rank_completed` and
    `mark_rank_as_completed`): a unit is done iff its file exists; committing writes it atomically."""

    @staticmethod
    def is_done(path: Path) -> bool:
        return path.exists()

    @staticmethod
    def commit(table: pa.Table, path: Path) -> Path:
        """Write a Parquet unit whole or not at all."""
        return _commit(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))

    @staticmethod
    def commit_empty(schema: pa.Schema, path: Path) -> Path:
        """Write a Parquet unit with the schema and no rows. It has zero row groups (a writer closed
        with no batches): `datasets` refuses a file holding one row group of 0 rows."""
        return _commit(path, lambda tmp: pq.ParquetWriter(tmp, schema, compression="zstd").close())

    @staticmethod
    def retract(path: Path) -> None:
        """Make a unit not done again: its inputs grew (a raised target added samples after it ran)."""
        path.unlink(missing_ok=True)

    @staticmethod
    def commit_json(value: object, path: Path) -> Path:
        return _commit(path, lambda tmp: tmp.write_text(json.dumps(value, indent=2, default=str)))

    @staticmethod
    def commit_folder(staging: Path, target: Path) -> None:
        """Swap a fully written folder into place (a stage written whole, like the dataset)."""
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.replace(target)


def _commit(path: Path, write: Callable[[Path], object]) -> Path:
    """`write` the file under a temporary name, sync it, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        write(tmp)
        _sync(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def _sync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def data_files(folder: Path, pattern: str = "*.parquet") -> list[Path]:
    """The committed files of a folder, in name order (temporary files start with a dot)."""
    return sorted(p for p in folder.glob(pattern) if not p.name.startswith("."))


@dataclass(frozen=True)
class FilterStageFiles:
    """The files of a dedup/decontamination stage (prompt filter, response filter). The stage is
    done iff its `dropped.parquet` exists, so that file is written last."""

    folder: Path
    audit: Path
    """Its file under `decontam_audit/`."""

    @property
    def dropped(self) -> Path:
        return self.folder / "dropped.parquet"

    @property
    def counters(self) -> Path:
        return self.folder / "counters.json"

    @property
    def kept(self) -> Path:
        return self.folder / "kept.parquet"

    def embeddings(self, *parts: str) -> Path:
        return self.folder.joinpath("embeddings", *parts)


class RunDirectory:
    units = Units

    def __init__(self, path: Path) -> None:
        self.path = path

    # --- stage folders -------------------------------------------------------------------------

    @property
    def prompts(self) -> Path:
        return self.path / "prompts"

    @property
    def dead_letter(self) -> Path:
        return self.path / "dead_letter"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def journey(self) -> Path:
        return self.path / "journey"

    @property
    def dataset(self) -> Path:
        return self.path / "dataset"

    @property
    def manifest(self) -> Path:
        return self.prompts / "_manifest.json"

    @property
    def report(self) -> Path:
        return self.path / "report.json"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def benchmark_embeddings(self) -> Path:
        """Embeddings of the benchmark items, shared by stages 2 and 5 and by reruns."""
        return self.path / "decontam_audit" / "benchmark_embeddings"

    @property
    def prompt_filter(self) -> FilterStageFiles:
        return FilterStageFiles(self.path / "prompt_filter", self.path / "decontam_audit" / "prompts.parquet")

    @property
    def response_filter(self) -> FilterStageFiles:
        return FilterStageFiles(self.path / "response_filter", self.path / "decontam_audit" / "responses.parquet")

    # --- unit names ----------------------------------------------------------------------------

    @staticmethod
    def shard_name(index: int) -> str:
        return f"part-{index:05d}"

    @staticmethod
    def generation_unit(shard: str, teacher: str) -> str:
        return f"{shard}-{teacher}"

    @staticmethod
    def shard_of_unit(unit: str) -> str:
        """The prompt shard a generation unit (`part-00003-<teacher>`) was made from."""
        match = SHARD_PATTERN.match(unit)
        if match is None:
            raise RunDirectoryError(f"{unit!r} is not a generation unit name (part-NNNNN-<teacher>)")
        return match.group(1)

    def prompt_shard(self, shard: str) -> Path:
        return self.prompts / f"{shard}.parquet"

    def prompt_shards(self) -> list[str]:
        """Names of the prompt shards, once ingest is complete."""
        return list(json.loads(self.manifest.read_text())["shards"])

    def samples_unit(self, unit: str) -> Path:
        return self.samples / f"{unit}.parquet"

    def samples_files(self) -> list[Path]:
        return data_files(self.samples)

    def generation_dead_letter(self, unit: str) -> Path:
        return self.dead_letter / f"generate-{unit}.parquet"

    def generation_counters(self, unit: str) -> Path:
        return self.path / "counters" / "generate" / f"{unit}.json"

    def generation_counter_files(self) -> list[Path]:
        return data_files(self.path / "counters" / "generate", "*.json")

    def journey_unit(self, unit: str) -> Path:
        """The journey traces made from one samples unit (same name)."""
        return self.journey / f"{unit}.parquet"

    def journey_files(self) -> list[Path]:
        return data_files(self.journey)

    def journey_counters(self, unit: str) -> Path:
        return self.path / "counters" / "journey" / f"{unit}.json"

    def journey_counter_files(self) -> list[Path]:
        return data_files(self.path / "counters" / "journey", "*.json")

    # --- targets (a run that builds to row counts) --------------------------------------------

    @property
    def batches(self) -> Path:
        """The prompts of each batch unit, in visit order (written once, when first planned)."""
        return self.path / "batches"

    @staticmethod
    def batch_name(group: str, index: int) -> str:
        return f"batch-{re.sub(r'[^A-Za-z0-9_.]', '_', group)}-{index:05d}"

    def batch_prompts(self, batch: str) -> Path:
        return self.batches / f"{batch}.parquet"

    def prompts_of_unit(self, unit: str) -> Path:
        """The prompts file a generation unit was made from: an ingest shard or a batch."""
        batch = BATCH_PATTERN.match(unit)
        if batch is not None:
            return self.batch_prompts(batch.group(1))
        return self.prompt_shard(self.shard_of_unit(unit))

    @property
    def targets_outcome(self) -> Path:
        """How each target was met by the last dataset selection (in the dataset folder)."""
        return self.dataset / "targets.json"

    @property
    def progress(self) -> Path:
        """The live progress of generation, rewritten every few seconds; `distillery status` reads it."""
        return self.path / "progress.json"

    @property
    def ingest_dead_letter(self) -> Path:
        return self.dead_letter / "ingest.parquet"

    # --- claiming and cleaning -----------------------------------------------------------------

    def bind(self, job: JobConfig) -> None:
        """Claim the folder for this job, or check that it already belongs to it."""
        digest = job.config_hash()
        hash_file = self.path / "config_hash"
        if hash_file.exists():
            existing = hash_file.read_text().strip()
            if existing != digest:
                raise RunDirectoryError(
                    f"{self.path} holds the output of a different job (config {existing}, this job {digest}); "
                    "resuming would mix outputs of two configs. Use another --output, or delete the folder "
                    f"to start over (diff the job against {self.path / 'job.yaml'} to see what changed)."
                )
            return
        if self.path.exists() and any(self.path.iterdir()):
            raise RunDirectoryError(f"{self.path} is not empty and is not a distillery run directory")
        self.path.mkdir(parents=True, exist_ok=True)
        resolved = yaml.safe_dump(job.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
        (self.path / "job.yaml").write_text(resolved, encoding="utf-8")
        # The hash is written last: its presence means the folder is claimed.
        tmp = self.path / f".config_hash.{uuid.uuid4().hex}"
        tmp.write_text(digest + "\n")
        tmp.replace(hash_file)

    def config_hash(self) -> str:
        return (self.path / "config_hash").read_text().strip()

    def staging_dir(self, name: str) -> Path:
        path = self.path / f".{name}.{uuid.uuid4().hex}.staging"
        path.mkdir(parents=True)
        return path

    def clean_staging(self) -> None:
        """Remove what an interrupted run left half-written (temporary files and folders)."""
        for leftover in self.path.glob(".*.staging"):
            shutil.rmtree(leftover, ignore_errors=True)
        for leftover in self.path.rglob(".*.tmp"):
            leftover.unlink(missing_ok=True)
