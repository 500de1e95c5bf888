"""`distillery status RUN`: the live figures of a run from its directory alone, from another terminal
while it runs or after it ended: per target group accepted rows against the goal, acceptance,
tokens/s, teacher tokens per accepted row, ETA and cost (`RUN/progress.json`, written by the
generation stage every few seconds), and how the last dataset selection met each target.

Without a progress file (a run from before it existed, or one still in ingest), the figures are
counted from the finished units in `samples/`, per split.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pyarrow.parquet as pq

from distillery.operators.select.mix import TargetOutcome, split_of
from distillery.pipeline.run_directory import RunDirectory, RunDirectoryError
from distillery.pipeline.runtime.progress import (
    SAMPLE_COLUMNS,
    SNAPSHOT_SECONDS,
    YieldLedger,
    describe_groups,
    read_snapshot,
)

STALE_AFTER_SNAPSHOTS = 6
"""A progress file older than this many snapshot intervals, and not marked finished, belongs to a run
that stopped without finishing (killed, or failed)."""


def status_text(path: Path) -> str:
    run = RunDirectory(path)
    if not (path / "config_hash").exists():
        raise RunDirectoryError(f"{path} is not a distillery run directory (no config_hash)")
    lines = [f"run {path} (config {run.config_hash()})"]
    snapshot = read_snapshot(run.progress)
    if snapshot is None:
        lines.append("generation: no progress recorded yet; counted from finished units")
        snapshot = _counted(run)
    else:
        age = time.time() - float(snapshot["written_at"])  # type: ignore[arg-type]
        if snapshot.get("finished"):
            state = f"finished {age:.0f} s ago"
        elif age > STALE_AFTER_SNAPSHOTS * SNAPSHOT_SECONDS:
            state = f"not running (last update {age:.0f} s ago; rerun the job to continue)"
        else:
            state = f"running (updated {age:.0f} s ago, {snapshot['elapsed_s']} s in)"
        lines.append(f"generation: {state}")
    lines += [f"  {line}" for line in describe_groups(snapshot)]
    if run.units.is_done(run.targets_outcome):
        outcomes = json.loads(run.targets_outcome.read_text())["outcomes"]
        lines.append("dataset (last selection):")
        lines += [f"  {_outcome(o).describe()}" for o in outcomes]
    elif run.units.is_done(run.report):
        rows = json.loads(run.report.read_text()).get("dataset", {}).get("rows", {})
        lines.append(f"dataset: {', '.join(f'{split} {n} rows' for split, n in sorted(rows.items()))}")
    return "\n".join(lines)


def _counted(run: RunDirectory) -> dict[str, object]:
    ledger = YieldLedger(split_of, {}, {"reasoning": None, "general": None}, {})
    for samples in run.samples_files():
        ledger.add(pq.read_table(samples, columns=list(SAMPLE_COLUMNS)), this_run=False)
    return ledger.snapshot()


def _outcome(saved: dict[str, object]) -> TargetOutcome:
    fields = {k: v for k, v in saved.items() if k != "shortfall"}
    return TargetOutcome(**fields)  # type: ignore[arg-type]


def _status(args: argparse.Namespace) -> int:
    print(status_text(args.run_dir))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("status", help="yield, cost and ETA of a run, from its directory (during or after it)")
    parser.add_argument("run_dir", type=Path)
    parser.set_defaults(func=_status)
