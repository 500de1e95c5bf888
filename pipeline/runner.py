"""A whole run: bind the run directory, then each stage in order, each resumable on its own."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import ray

from distillery.pipeline.dataset_stage import build_dataset
from distillery.pipeline.generate import GenerationStage, TeacherFactoryBuilder, default_teacher_factory
from distillery.pipeline.ingest import run_ingest
from distillery.pipeline.prompt_filter_stage import run_prompt_filter
from distillery.pipeline.response_filter_stage import run_response_filter
from distillery.pipeline.run_dir import RunDirectory
from distillery.schemas.job import JobConfig, job_base_dir, load_job

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_dir: Path
    report: dict[str, object] = field(default_factory=dict)


def resolve_output(job: JobConfig, job_path: Path, output: str | None) -> Path:
    if output:
        return Path(output).resolve()
    if job.output:
        return (job_base_dir(job_path) / job.output).resolve()
    return (Path.cwd() / "runs" / job.name).resolve()


def connect_ray() -> None:
    """The cluster `ray job submit` or RAY_ADDRESS names, else a local instance."""
    if ray.is_initialized():
        return
    dashboard = os.environ.get("DISTILLERY_RAY_DASHBOARD", "1") != "0"
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=True)
    else:
        ray.init(include_dashboard=dashboard, log_to_driver=True)


def run_job(
    job_path: str | Path,
    output: str | None = None,
    teacher_factory: TeacherFactoryBuilder = default_teacher_factory,
) -> RunResult:
    job_path = Path(job_path)
    job = load_job(job_path)
    run = RunDirectory(resolve_output(job, job_path, output))
    run.bind(job)
    run.clean_staging()
    report: dict[str, object] = {"config_hash": job.config_hash()}

    base_dir = job_base_dir(job_path)
    ingest = run_ingest(job, base_dir, run)
    if ingest:
        report["ingest"] = [c.as_dict() for c in ingest]
    connect_ray()
    # Duplicates and benchmark leaks are dropped before any teacher time is spent on them.
    prompt_filter = run_prompt_filter(job, run, base_dir)
    report["prompt_filter"] = prompt_filter.counters
    report["generate"] = GenerationStage(job, run, teacher_factory).run(excluded_prompts=prompt_filter.excluded)
    response_filter = run_response_filter(job, run, base_dir)
    report["response_filter"] = response_filter.counters
    report["dataset"] = build_dataset(job, run, excluded_samples=response_filter.excluded)
    (run.path / "report.json").write_text(json.dumps(report, indent=2, default=str))
    return RunResult(run.path, report)
