"""What was dead-lettered, said where it matters: each source's health at the end of ingest, and
the dead letters by stage and reason at the end of a run.

A source that yields no rows, or whose rows are mostly dead-lettered, almost always means a wrong
`path`, `format` or `fields` mapping rather than bad data; ingest reports it with the top reasons,
and `run --strict` stops there.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow.parquet as pq

from distillery.pipeline.run_directory import data_files
from distillery.schemas.job import SourceConfig
from distillery.schemas.records import DeadLetter

TOP_REASONS = 3
"""Reasons shown per source, and per stage in the run summary."""

_NUMBER = re.compile(r"(?<![\w.\-])\d+(?!\w)")
"""A number on its own (a row, a column, a token count), not part of a name such as utf-8 or part-00001."""


class SourceHealthError(RuntimeError):
    """Ingest found sources that cannot be right (under `--strict`), or no prompt at all."""


def reason_kind(reason: str) -> str:
    """A dead letter's reason with its row-specific numbers blanked out, so like reasons group."""
    return _NUMBER.sub("N", reason)[:120]


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """A source ingest should not have passed over in silence."""

    source: str
    rows: int
    dead: int
    threshold: float
    reasons: list[tuple[str, int]]
    example: str | None
    """The first dead row: its number and its columns."""
    fix: str

    @property
    def share(self) -> float:
        return self.dead / self.rows if self.rows else 1.0

    def message(self) -> str:
        if self.rows == 0:
            return f"source {self.source!r}: no rows (an empty file or folder). {self.fix}"
        reasons = "; ".join(f"{n} rows: {why}" for why, n in self.reasons)
        return (
            f"source {self.source!r}: {self.dead} of {self.rows} rows dead-lettered ({self.share:.0%}, more than "
            f"{self.threshold:.0%}): {reasons}. First: {self.example}. {self.fix}"
        )

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: dict[str, object]) -> SourceHealth:
        reasons = [(str(why), int(n)) for why, n in value["reasons"]]  # type: ignore[union-attr]
        return cls(
            source=str(value["source"]),
            rows=int(value["rows"]),  # type: ignore[call-overload]
            dead=int(value["dead"]),  # type: ignore[call-overload]
            threshold=float(value["threshold"]),  # type: ignore[arg-type]
            reasons=reasons,
            example=value["example"] if value["example"] is None else str(value["example"]),
            fix=str(value["fix"]),
        )


def assess_source(source: SourceConfig, rows: int, dead: list[DeadLetter]) -> SourceHealth | None:
    """None when the source looks as meant; else what is wrong with it. `rows` counts every row
    read, `dead` are the source's dead letters from ingest."""
    if rows and len(dead) / rows <= source.max_dead_letter_share:
        return None
    kinds = Counter(reason_kind(d.reason) for d in dead)
    example = None
    if dead:
        first = dead[0]
        example = f"row {first.row}{_columns(first.raw)}"
    return SourceHealth(
        source=source.name,
        rows=rows,
        dead=len(dead),
        threshold=source.max_dead_letter_share,
        reasons=kinds.most_common(TOP_REASONS),
        example=example,
        fix=_fix(source, rows, kinds),
    )


def _columns(raw: str) -> str:
    try:
        row = json.loads(raw)
    except ValueError:
        return ""
    return f", whose columns are {', '.join(sorted(row))}" if isinstance(row, dict) else ""


def _fix(source: SourceConfig, rows: int, kinds: Counter[str]) -> str:
    top = kinds.most_common(1)[0][0] if kinds else ""
    if rows == 0:
        return f"Fix: check `path` ({source.path or source.dataset}): is it the file that holds the prompts?"
    if "invalid JSON" in top or "undecodable" in top:
        return f"Fix: check `format` ({source.format}: one JSON object per line) and that `path` is the right file."
    if top.startswith(("missing", "empty")) or "column" in top:
        return "Fix: check the `fields` mapping against the row's columns."
    if top.startswith("duplicate of"):
        return "Fix: the source repeats rows of another source (or itself): is it listed twice?"
    return "Fix: look at the rows: distillery inspect RUN \"SELECT row, reason FROM dead_letter\"."


def require_healthy_sources(report: dict[str, object], *, strict: bool) -> None:
    """After ingest: no prompt at all is fatal; a source in bad health is fatal under `strict`."""
    problems = [SourceHealth.from_dict(h) for h in report.get("source_health", [])]  # type: ignore[union-attr]
    if report.get("prompts") == 0:
        detail = "".join(f"\n  {p.message()}" for p in problems)
        raise SourceHealthError(f"ingest: no prompts: every source was empty or dead-lettered{detail}")
    if strict and problems:
        detail = "".join(f"\n  {p.message()}" for p in problems)
        raise SourceHealthError(f"ingest (--strict): {len(problems)} source(s) in bad health{detail}")


# --- the run summary ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadLetterGroup:
    stage: str
    failure: str
    """permanent (bad input, dead-lettered for good) or transient (infrastructure, retried on a rerun)."""
    reason: str
    count: int


def dead_letter_groups(dead_letter_folder: Path) -> list[DeadLetterGroup]:
    """The run's dead letters by stage, permanence and reason, largest first within a stage."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for file in data_files(dead_letter_folder):
        table = pq.read_table(file)
        failures = (
            table["failure"].to_pylist() if "failure" in table.column_names else [None] * table.num_rows
        )
        for stage, reason, failure in zip(table["stage"].to_pylist(), table["reason"].to_pylist(), failures,
                                          strict=True):
            # Before dead letters said which they were, only ingest's were known to be bad rows.
            kind = failure or ("permanent" if stage == "ingest" else "unclassified")
            counts[(stage, kind, reason_kind(reason))] += 1
    groups = [DeadLetterGroup(s, f, r, n) for (s, f, r), n in counts.items()]
    return sorted(groups, key=lambda g: (g.stage, -g.count, g.reason))


def run_summary(run_dir: Path, report: dict[str, object]) -> str:
    """The end of `distillery run`: sources in bad health, then the dead letters by stage and reason."""
    lines = []
    ingest = report.get("ingest")
    health = ingest.get("source_health", []) if isinstance(ingest, dict) else []
    for entry in health:
        lines.append(f"warning: {SourceHealth.from_dict(entry).message()}")
    groups = dead_letter_groups(run_dir / "dead_letter")
    if not groups:
        lines.append("dead letters: none")
        return "\n".join(lines)
    by_failure: Counter[str] = Counter()
    for group in groups:
        by_failure[group.failure] += group.count
    total = sum(by_failure.values())
    parts = []
    if by_failure["permanent"]:
        parts.append(f"{by_failure['permanent']} permanent (bad input, not retried)")
    if by_failure["transient"]:
        parts.append(f"{by_failure['transient']} transient (infrastructure; a rerun retries them)")
    if by_failure["unclassified"]:
        parts.append(f"{by_failure['unclassified']} unclassified")
    lines.append(f"dead letters: {total}: " + ", ".join(parts))
    shown: Counter[str] = Counter()
    hidden: Counter[str] = Counter()
    for group in groups:
        key = f"{group.stage:<10} {group.failure:<12}"
        shown[key] += 1
        if shown[key] > TOP_REASONS:
            hidden[key] += group.count
            continue
        lines.append(f"  {key} {group.count:>6}  {group.reason}")
    lines += [f"  {key} {n:>6}  (other reasons)" for key, n in hidden.items()]
    lines.append('  see them all: distillery inspect RUN "SELECT stage, source, row, reason FROM dead_letter"')
    return "\n".join(lines)
