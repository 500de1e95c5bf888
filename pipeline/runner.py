"""A whole run: bind the run directory, then each stage of `STAGES` in order, each resumable on its own."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import ray

from distillery.pipeline.dead_letters import SourceHealthError
from distillery.pipeline.preflight import PreflightError, check_job, errors
from distillery.pipeline.run_directory import RunDirectory
from distillery.pipeline.runtime.run_logs import RunLogs, stage_detail
from distillery.pipeline.stage_failure import record_failure
from distillery.pipeline.stages.base import Stage, StageContext, TeacherFactoryBuilder, default_teacher_factory
from distillery.pipeline.stages.dataset import DatasetStage
from distillery.pipeline.stages.generate import GenerationIncomplete, GenerationStage
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


def connect_ray(logs: RunLogs | None = None) -> None:
    """The cluster `ray job submit` or RAY_ADDRESS names, else a local instance. With `logs`, what
    the workers print goes to the run's log files rather than the terminal."""
    if not ray.is_initialized():
        cluster = bool(os.environ.get("RAY_ADDRESS"))
        options = logs.ray_init_options(cluster=cluster) if logs is not None else {"log_to_driver": True}
        if not cluster:
            options["include_dashboard"] = os.environ.get("DISTILLERY_RAY_DASHBOARD", "1") != "0"
        ray.init(**options)
    if logs is not None:
        logs.attach_ray()


def stage_passes(job: JobConfig, report: dict[str, object]) -> Iterator[tuple[int, Stage]]:
    """(number, stage): every stage once; then, while the dataset's selection fell short of a target
    and prompts remain (its report says `needs_more`), generation to dataset again, at most
    `targets.max_top_up_passes` times. Read lazily: each pass looks at the report of the one before."""
    yield from enumerate(STAGES, start=1)
    first = next(i for i, s in enumerate(STAGES) if isinstance(s, GenerationStage))
    for _ in range(job.targets.max_top_up_passes if job.targets is not None else 0):
        dataset = report.get(DatasetStage.name)
        if not (isinstance(dataset, dict) and dataset.get("needs_more")):
            return
        log.info("targets fell short and prompts remain: back to generation")
        yield from enumerate(STAGES[first:], start=first + 1)


def run_job(
    job_path: str | Path,
    output: str | None = None,
    teacher_factory: TeacherFactoryBuilder = default_teacher_factory,
    *,
    strict: bool = False,
    verbose: bool = False,
) -> RunResult:
    """Run (or resume) a job. `strict`: a source in bad health after ingest stops the run.
    `verbose`: engine, Ray and library logs on the terminal too (they always go to RUN/logs/)."""
    job_path = Path(job_path)
    job = load_job(job_path)
    # Before the run directory and Ray: a job that cannot run leaves nothing behind. A test double
    # for the teachers has no model files to check.
    findings = check_job(job, job_base_dir(job_path), models=teacher_factory is default_teacher_factory)
    if errors(findings):
        raise PreflightError(str(job_path), findings)
    for finding in findings:
        log.warning("%s: %s (fix: %s)", finding.field, finding.message, finding.fix)
    run = RunDirectory(resolve_output(job, job_path, output))
    run.bind(job)
    run.clean_staging()
    context = StageContext(job, run, job_base_dir(job_path), teacher_factory, strict=strict)
    report: dict[str, object] = {"config_hash": job.config_hash()}
    with RunLogs(run.logs, verbose=verbose) as logs:
        for number, stage in stage_passes(job, report):
            logs.stage_started(number, len(STAGES), stage.name)
            try:
                # On a cluster (`ray job submit`) ingest's per-source tasks use it too; locally ingest
                # runs before Ray starts, so a bad source fails fast.
                if stage.name in RAY_STAGES or os.environ.get("RAY_ADDRESS"):
                    connect_ray(logs)
                result = stage.run(context)
            except (GenerationIncomplete, SourceHealthError):
                raise  # they say themselves what to do (exit codes 3 and 4): not a crashed stage
            except Exception as exc:
                raise record_failure(run, number, stage.name, exc) from exc
            context.absorb(result)
            seconds = logs.stage_finished(number, len(STAGES), stage.name, stage_detail(result.report))
            report[stage.name] = {"number": number, "wall_s": round(seconds, 1), **result.as_report()}
    run.units.commit_json(report, run.report)
    return RunResult(run.path, report)
