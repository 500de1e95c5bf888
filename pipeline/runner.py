"""A whole run: bind the run directory, then each stage of `STAGES` in order, each resumable on its own."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import ray

from distillery.pipeline.run_directory import RunDirectory
from distillery.pipeline.stages.base import Stage, StageContext, TeacherFactoryBuilder, default_teacher_factory
from distillery.pipeline.stages.dataset import DatasetStage
from distillery.pipeline.stages.generate import GenerationStage
from distillery.pipeline.stages.ingest import IngestStage
from distillery.pipeline.stages.journey import JourneyStage
from distillery.pipeline.stages.prompt_filter import PromptFilterStage
from distillery.pipeline.stages.response_filter import ResponseFilterStage
from distillery.schemas.job import JobConfig, job_base_dir, load_job

log = logging.getLogger(__name__)

STAGES: tuple[Stage, ...] = (
    IngestStage(),
    # Duplicates and benchmark leaks are dropped before any teacher time is spent on them.
    PromptFilterStage(),
    GenerationStage(),
    JourneyStage(),
    ResponseFilterStage(),
    DatasetStage(),
)
"""The run, in order; a stage's number is its position here, counted from 1."""

RAY_STAGES = frozenset({"prompt_filter", "generate", "journey", "response_filter", "dataset"})
"""Stages that need a Ray connection (ingest runs before Ray starts, so a bad source fails fast)."""


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
    context = StageContext(job, run, job_base_dir(job_path), teacher_factory)
    report: dict[str, object] = {"config_hash": job.config_hash()}
    for number, stage in enumerate(STAGES, start=1):
        if stage.name in RAY_STAGES:
            connect_ray()
        log.info("stage %d %s: start", number, stage.name)
        result = stage.run(context)
        context.absorb(result)
        report[stage.name] = {"number": number, **result.as_report()}
        log.info("stage %d %s: done", number, stage.name)
    run.units.commit_json(report, run.report)
    return RunResult(run.path, report)
