"""The `distillery` command."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from distillery.pipeline.commands import dedup as dedup_command
from distillery.pipeline.commands import doctor as doctor_command
from distillery.pipeline.commands import export as export_command
from distillery.pipeline.commands import report as report_command
from distillery.pipeline.commands import status as status_command
from distillery.pipeline.commands import verify as verify_command
from distillery.pipeline.dead_letters import SourceHealthError
from distillery.pipeline.preflight import PreflightError
from distillery.pipeline.run_directory import RunDirectoryError
from distillery.pipeline.stage_failure import StageFailed
from distillery.pipeline.stages.generate import GenerationIncomplete
from distillery.schemas.job import JobFileError, load_job

EXIT_INCOMPLETE = 3
"""`run` ended with requests that failed transiently after every retry: rerun it to retry them."""
EXIT_STAGE_FAILED = 1
"""A stage raised (a teacher that did not load, a crash): the traceback is under RUN/logs/."""
EXIT_INVALID = 2
"""The job file is invalid, or preflight found an error: nothing was started."""
EXIT_SOURCES = 4
"""Ingest made no prompt, or (`--strict`) a source is empty or mostly dead-lettered."""


def _validate(args: argparse.Namespace) -> int:
    from distillery.pipeline.preflight import check_job, format_findings
    from distillery.schemas.job import job_base_dir

    job = load_job(args.job)
    findings = check_job(job, job_base_dir(args.job))
    if any(f.level == "error" or args.strict for f in findings):
        print(f"{args.job}: the job cannot run as written:\n{format_findings(findings)}", file=sys.stderr)
        return EXIT_INVALID
    teachers = ", ".join(f"{n} ({t.model})" for n, t in job.teachers.items())
    print(
        f"{args.job}: valid. job {job.name!r}, {len(job.sources)} source(s), teachers: {teachers}; "
        f"config hash {job.config_hash()}"
    )
    if findings:
        print(f"{len(findings)} warning(s):\n{format_findings(findings)}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from distillery.operators.teachers.bundled import BUNDLED_PREFIX, is_bundled, prepare_bundled_model

    job = load_job(args.job)
    bundled = sorted({t.model for t in job.teachers.values() if is_bundled(t.model)})
    for model in bundled:
        print(f"{model}: {prepare_bundled_model(model.removeprefix(BUNDLED_PREFIX))}")
    if not bundled:
        print("no bundled teacher in this job; nothing to prepare")
    return 0


def _run(args: argparse.Namespace) -> int:
    from distillery.pipeline.commands.inspect import describe
    from distillery.pipeline.dead_letters import run_summary
    from distillery.pipeline.runner import run_job

    result = run_job(args.job, args.output, strict=args.strict, verbose=args.verbose)
    print(describe(result.run_dir))
    print(run_summary(result.run_dir, result.report))
    dataset = result.run_dir / "dataset"
    # The command as this shell can call it: `make demo` runs it from .venv without activating it.
    command = "distillery" if shutil.which("distillery") else sys.argv[0]
    print(f"\ndataset: {dataset}")
    print(f'look at it:  {command} inspect {result.run_dir} "SELECT problem, answer, pass_rate FROM dataset LIMIT 5"')
    print(f"  or in any duckdb:  SELECT problem, answer, pass_rate FROM '{dataset}/*/*.parquet' LIMIT 5")
    print(f"  plots:  {command} report {result.run_dir}   (writes {result.run_dir / 'report.html'})")
    print(f"logs: {result.run_dir / 'logs'} (driver.log; actors/: teacher engines and other Ray workers)")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from distillery.pipeline.commands.inspect import describe, query

    print(query(args.run_dir, args.sql) if args.sql else describe(args.run_dir))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distillery", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a job on Ray (local, or the cluster RAY_ADDRESS names)")
    run.add_argument("job", type=Path)
    run.add_argument("--output", "-o", help="run directory (default: the job's `output`, else runs/NAME)")
    run.add_argument(
        "--strict", action="store_true", help="stop after ingest when a source is empty or mostly dead-lettered"
    )
    # SUPPRESS: `distillery -v run` and `distillery run -v` both work (no default overrides the first).
    run.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                     help="engine, Ray and library logs on the terminal too (they always go to RUN/logs/)")
    run.set_defaults(func=_run)

    validate = sub.add_parser("validate", help="check a job file without loading any model")
    validate.add_argument("job", type=Path)
    validate.add_argument("--strict", action="store_true", help="warnings fail the check too")
    validate.set_defaults(func=_validate)

    prepare = sub.add_parser("prepare", help="prepare the job's bundled teachers (convert once into the cache)")
    prepare.add_argument("job", type=Path)
    prepare.set_defaults(func=_prepare)

    inspect = sub.add_parser("inspect", help="duckdb over a run directory: views per stage, or run SQL")
    inspect.add_argument("run_dir", type=Path)
    inspect.add_argument("sql", nargs="?")
    inspect.set_defaults(func=_inspect)

    verify_command.add_parser(sub)
    dedup_command.add_decontam_parser(sub)
    dedup_command.add_dedup_parser(sub)
    doctor_command.add_parser(sub)
    export_command.add_parser(sub)
    report_command.add_parser(sub)
    status_command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args))
    except JobFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, RunDirectoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except StageFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STAGE_FAILED
    except SourceHealthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SOURCES
    except GenerationIncomplete as exc:
        for unit, reason in exc.failed.items():
            print(f"failed: {unit}: {reason}", file=sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE


if __name__ == "__main__":
    sys.exit(main())
