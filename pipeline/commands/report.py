"""`distillery report RUN [--out report.html]`: one self-contained HTML page of plots about a run.

The numbers come from the run's tables through the same duckdb views as `distillery inspect`
(and its `stage_counters` from report.json), aggregated here; `operators.writers.run_report` draws
them with plotly.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import duckdb
import yaml

from distillery.operators.writers.run_report import LatencyStats, LeakExample, ReportData, render_report
from distillery.pipeline.commands.inspect import connect
from distillery.pipeline.run_directory import RunDirectory, data_files
from distillery.pipeline.stages.dataset_card import parquet_relation

LENGTH_BINS = 40
"""Bars of a completion-length histogram."""
PASS_RATE_BINS = 10
LEAK_EXAMPLES = 10
"""Benchmark matches shown as text, the highest scores first."""
NOT_FILTERS = ("verifier:%", "source:%", "rejection_sampling")
"""Counters of stage_counters that are not filters (verifiers, sources, the sampler's own tally)."""


class Queries:
    """The run's views; a view the run has no file for answers with no rows."""

    def __init__(self, run_dir: Path) -> None:
        self.con, views = connect(run_dir)
        self.views = set(views)

    def rows(self, view: str, sql: str) -> list[tuple[Any, ...]]:
        if view not in self.views:
            return []
        return self.con.execute(sql).fetchall()

    def scalar(self, view: str, sql: str) -> int:
        rows = self.rows(view, sql)
        return int(rows[0][0] or 0) if rows else 0


def _bins(rows: list[tuple[Any, ...]]) -> dict[str, list[tuple[float, int]]]:
    groups: dict[str, list[tuple[float, int]]] = {}
    for group, start, n in rows:
        groups.setdefault(str(group), []).append((float(start), int(n)))
    return groups


def _length_bin_width(q: Queries) -> int:
    return max(1, -(-q.scalar("samples", "SELECT max(completion_tokens) FROM samples") // LENGTH_BINS))


def _length_bins(q: Queries, group: str, width: int) -> dict[str, list[tuple[float, int]]]:
    return _bins(
        q.rows(
            "samples",
            f"SELECT {group}, floor(completion_tokens / {width}) * {width} AS start, count(*) "
            "FROM samples GROUP BY ALL ORDER BY ALL",
        )
    )


def _funnels(q: Queries, run_dir: Path) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    prompts = q.scalar("prompts", "SELECT count(*) FROM prompts")
    source_rows = q.scalar(
        "stage_counters",
        "SELECT sum(value) FROM stage_counters WHERE stage = 'ingest' AND operator LIKE 'source:%' "
        "AND counter = 'seen'",
    ) or prompts + q.scalar("dead_letter", "SELECT count(*) FROM dead_letter WHERE stage = 'ingest'")
    dropped_prompts = q.scalar("dropped_prompts", "SELECT count(*) FROM dropped_prompts")
    selected = q.scalar("samples", "SELECT count(*) FROM samples WHERE selected")
    dropped_samples = q.scalar("dropped_responses", "SELECT count(*) FROM dropped_responses")
    prompt_funnel = [
        ("source rows", source_rows),
        ("prompts", prompts),
        ("after dedup and decontamination", prompts - dropped_prompts),
        ("sampled", q.scalar("samples", "SELECT count(DISTINCT prompt_id) FROM samples")),
        ("with a dataset row", q.scalar("dataset", "SELECT count(DISTINCT prompt_id) FROM dataset")),
    ]
    sample_funnel = [
        ("drawn", q.scalar("samples", "SELECT count(*) FROM samples")),
        ("accepted", q.scalar("samples", "SELECT count(*) FROM samples WHERE accepted")),
        ("selected", selected),
        ("after dedup and decontamination", selected - dropped_samples),
        # journey rows are built from samples rather than being one; they count in rows_by_kind
        ("dataset rows", q.scalar("dataset", "SELECT count(*) FROM dataset WHERE kind != 'journey'")),
    ]
    return prompt_funnel, sample_funnel


def _journey(run: RunDirectory) -> list[tuple[str, int]]:
    files = run.journey_files()
    if not files:
        return []
    rows = duckdb.sql(
        "SELECT CASE WHEN accepted THEN 'accepted' ELSE 'rejected: ' || split_part(rejection_reason, ':', 1) END, "
        f"count(*) FROM {parquet_relation(files)} GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    return [(str(outcome), int(n)) for outcome, n in rows]


def _targets(report: dict[str, Any]) -> list[tuple[str, int, int]]:
    outcomes = (report.get("dataset") or {}).get("outcomes") or []
    return [(str(o["group"]), int(o["target"]), int(o["selected"])) for o in outcomes if o.get("target") is not None]


def _rows_by_kind(run: RunDirectory) -> list[tuple[str, str, int]]:
    files = [f for split in sorted(p for p in run.dataset.iterdir() if p.is_dir()) for f in data_files(split)] \
        if run.dataset.is_dir() else []
    if not files:
        return []
    rows = duckdb.sql(
        "SELECT regexp_extract(filename, '([^/]+)/[^/]+$', 1) AS split, kind, count(*) "
        f"FROM {parquet_relation(files, filename=True)} GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    return [(str(s), str(k), int(n)) for s, k, n in rows]


def _job_name(run_dir: Path) -> str:
    job = run_dir / "job.yaml"
    name = yaml.safe_load(job.read_text()).get("name") if job.exists() else None
    if not name or name == run_dir.name:
        return run_dir.name
    return f"{name} ({run_dir.name})"


def gather(run_dir: Path) -> ReportData:
    """What the report shows, from the run directory."""
    run = RunDirectory(run_dir)
    q = Queries(run_dir)
    report = json.loads(run.report.read_text()) if run.report.exists() else {}
    prompt_funnel, sample_funnel = _funnels(q, run_dir)
    width = _length_bin_width(q)
    verdicts = "(SELECT unnest(verdicts) AS v FROM samples)"
    not_filters = " AND ".join(f"operator NOT LIKE '{p}'" for p in NOT_FILTERS)
    data = ReportData(
        run_name=_job_name(run_dir),
        config_hash=run.config_hash(),
        prompt_funnel=prompt_funnel,
        sample_funnel=sample_funnel,
        acceptance=q.rows(
            "samples", "SELECT source, domain, count(*), sum(accepted::INT) FROM samples GROUP BY ALL ORDER BY ALL"
        ),
        rejections=q.rows(
            "samples",
            "SELECT CASE WHEN rejection_reason LIKE 'filter:%' THEN 'filter: ' || split_part(rejection_reason, ':', 2) "
            "ELSE coalesce(split_part(rejection_reason, ':', 1), 'not selected') END AS reason, count(*) "
            "FROM samples WHERE NOT selected GROUP BY ALL ORDER BY 2 DESC",
        ),
        length_bins_by_outcome=_length_bins(q, "CASE WHEN accepted THEN 'accepted' ELSE 'rejected' END", width),
        length_bins_by_finish=_length_bins(q, "finish_reason", width),
        length_bin_width=width,
        pass_rate_bin_width=1 / PASS_RATE_BINS,
        pass_rate_bins=[
            (float(b), int(n))
            for b, n in q.rows(
                "samples",
                f"SELECT least(floor(rate * {PASS_RATE_BINS}), {PASS_RATE_BINS - 1}) / {PASS_RATE_BINS} AS b, "
                "count(*) FROM (SELECT avg(accepted::INT) AS rate FROM samples GROUP BY prompt_id) "
                "GROUP BY ALL ORDER BY ALL",
            )
        ],
        verdicts=q.rows("samples", f"SELECT v.verifier, v.verdict, count(*) FROM {verdicts} GROUP BY ALL ORDER BY ALL"),
        latency=[
            LatencyStats(str(name), *(max(float(x), 0.01) for x in stats), int(n))
            for name, *stats, n in q.rows(
                "samples",
                "SELECT v.verifier, min(v.elapsed_ms), quantile_cont(v.elapsed_ms, 0.25), median(v.elapsed_ms), "
                f"quantile_cont(v.elapsed_ms, 0.75), max(v.elapsed_ms), count(*) FROM {verdicts} "
                "GROUP BY ALL ORDER BY ALL",
            )
        ],
        filter_drops=q.rows(
            "stage_counters",
            "SELECT stage, operator, value FROM stage_counters WHERE counter = 'dropped' "
            f"AND {not_filters} ORDER BY stage_number, operator",
        ),
        leaks=q.rows(
            "decontam_audit",
            "SELECT benchmark, detector, count(DISTINCT item_id) FROM decontam_audit WHERE contaminated "
            "GROUP BY ALL ORDER BY ALL",
        ),
        leak_examples=[
            LeakExample(*row)
            for row in q.rows(
                "decontam_audit",
                "SELECT benchmark, detector, score, item_text, benchmark_text, evidence FROM decontam_audit "
                f"WHERE contaminated ORDER BY score DESC, benchmark, item_id LIMIT {LEAK_EXAMPLES}",
            )
        ],
        rows_by_kind=_rows_by_kind(run),
        journey=_journey(run),
        targets=_targets(report),
        leaked_items=q.scalar(
            "decontam_audit", "SELECT count(DISTINCT item_id) FROM decontam_audit WHERE contaminated"
        ),
    )
    accepted = dict(sample_funnel)["accepted"]
    drawn = dict(sample_funnel)["drawn"]
    data.summary = [
        ("source rows", str(prompt_funnel[0][1])),
        ("prompts", str(prompt_funnel[1][1])),
        ("samples drawn", str(drawn)),
        ("acceptance", f"{accepted / drawn:.1%}" if drawn else "-"),
        ("dataset rows", str(sum(n for _, _, n in data.rows_by_kind))),
        ("benchmark leaks removed", str(data.leaked_items)),
    ]
    return data


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    target = out or run_dir / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_report(gather(run_dir)), encoding="utf-8")
    return target


def _report(args: argparse.Namespace) -> int:
    print(f"report: {write_report(args.run_dir, args.out)}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("report", help="an HTML page of plots about a run (self-contained, opens offline)")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--out", type=Path, help="the HTML file (default: RUN/report.html)")
    parser.set_defaults(func=_report)
