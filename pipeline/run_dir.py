"""The run directory: one folder per stage, every file Parquet, plus the resolved job and its hash.

```
RUN/
  job.yaml            the resolved job file (every default filled in)
  config_hash         what the outputs were made with; a different job is refused
  prompts/            part-00000.parquet ... and _manifest.json once ingest is complete
  dead_letter/        ingest.parquet, generate-part-00000.parquet ...
  samples/            part-00000-<teacher>.parquet: every generation, accepted or not
  dataset/reasoning/  the final rows (written whole, then renamed into place)
```
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import yaml

from distillery.schemas.job import JobConfig


class RunDirectoryError(RuntimeError):
    """The run directory belongs to another job, or is not a run directory."""


class RunDirectory:
    def __init__(self, path: Path) -> None:
        self.path = path

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
    def dataset(self) -> Path:
        return self.path / "dataset"

    @property
    def manifest(self) -> Path:
        return self.prompts / "_manifest.json"

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

    def prompt_shards(self) -> list[str]:
        """Names of the prompt shards, once ingest is complete."""
        return list(json.loads(self.manifest.read_text())["shards"])

    def replace_dir(self, staging: Path, target: Path) -> None:
        """Swap a fully written folder into place (a stage written whole, like the dataset)."""
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.replace(target)

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
