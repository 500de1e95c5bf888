"""The run report: plotly figures from a run's numbers, in one self-contained HTML page.

Pure: `ReportData` holds what the run counted (pre-aggregated: histograms are binned before they get
here, so a run of millions of samples makes a page of the same size); `render_report` returns the
page. plotly.js is inlined once, so the page needs no network when it is opened.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

PLOT_HEIGHT_PX = 420
"""Height of every plot; the page lays them out two per row on a wide screen."""
WIDE_PLOTS = frozenset({"funnel"})
"""Plots that take a whole row (the funnel's labels are long)."""
EXAMPLE_CHARS = 240
"""Longest text shown in a decontamination example cell."""

Bins = list[tuple[float, int]]
"""(bin start, count) pairs of one histogram."""


@dataclass
class LatencyStats:
    verifier: str
    p0: float
    p25: float
    p50: float
    p75: float
    p100: float
    count: int


@dataclass
class LeakExample:
    benchmark: str
    detector: str
    score: float
    item_text: str
    benchmark_text: str
    evidence: str


@dataclass
class ReportData:
    run_name: str
    config_hash: str
    prompt_funnel: list[tuple[str, int]]
    sample_funnel: list[tuple[str, int]]
    acceptance: list[tuple[str, str, int, int]]
    """(source, domain, samples, accepted)."""
    rejections: list[tuple[str, int]]
    length_bins_by_outcome: dict[str, Bins]
    """"accepted" / "rejected" -> completion-token histogram."""
    length_bins_by_finish: dict[str, Bins]
    length_bin_width: float
    pass_rate_bins: Bins
    pass_rate_bin_width: float
    verdicts: list[tuple[str, str, int]]
    """(verifier, verdict, count)."""
    latency: list[LatencyStats]
    filter_drops: list[tuple[str, str, int]]
    """(stage, operator, dropped)."""
    leaks: list[tuple[str, str, int]]
    """(benchmark, detector, items matched)."""
    leak_examples: list[LeakExample]
    rows_by_kind: list[tuple[str, str, int]]
    """(split, kind, rows): journey rows show as kind `journey`."""
    journey: list[tuple[str, int]] = field(default_factory=list)
    """(outcome, traces) from the journey stage, when it ran."""
    targets: list[tuple[str, int, int]] = field(default_factory=list)
    """(target, wanted rows, rows made), when the job set targets."""
    leaked_items: int = 0
    """Run items (prompts, rows) a benchmark match condemned."""
    summary: list[tuple[str, str]] = field(default_factory=list)
    """(label, value) lines at the top of the page."""


def _layout(fig: go.Figure, title: str, x: str = "", y: str = "") -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.02},
        height=PLOT_HEIGHT_PX,
        margin={"l": 60, "r": 20, "t": 60, "b": 60},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
    )
    if x:
        fig.update_xaxes(title_text=x)
    if y:
        fig.update_yaxes(title_text=y)
    return fig


def funnel_figure(data: ReportData) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("prompts", "samples"), horizontal_spacing=0.22)
    for col, steps in ((1, data.prompt_funnel), (2, data.sample_funnel)):
        fig.add_trace(
            go.Funnel(y=[s for s, _ in steps], x=[n for _, n in steps], textinfo="value+percent initial",
                      showlegend=False),
            row=1,
            col=col,
        )
    return _layout(fig, "From source rows to dataset rows")


def acceptance_figure(data: ReportData) -> go.Figure:
    labels = [f"{source} / {domain}" for source, domain, _, _ in data.acceptance]
    rates = [accepted / samples if samples else 0.0 for _, _, samples, accepted in data.acceptance]
    text = [f"{accepted}/{samples}" for _, _, samples, accepted in data.acceptance]
    fig = go.Figure(go.Bar(x=labels, y=rates, text=text, textposition="auto"))
    fig.update_yaxes(tickformat=".0%", range=[0, 1])
    return _layout(fig, "Acceptance by source and domain", "source / domain", "accepted samples")


def rejections_figure(data: ReportData) -> go.Figure:
    ordered = sorted(data.rejections, key=lambda r: r[1])
    fig = go.Figure(go.Bar(y=[r for r, _ in ordered], x=[n for _, n in ordered], orientation="h"))
    return _layout(fig, "Why samples were not kept", "samples", "")


def _bars(bins: Bins, width: float, **trace: object) -> go.Bar:
    """A histogram's bars at their bins (plotly would size a lone bar by its neighbours)."""
    return go.Bar(x=[b + width / 2 for b, _ in bins], y=[n for _, n in bins], width=[width] * len(bins), **trace)


def _histogram(groups: dict[str, Bins], width: float, title: str, x: str, y: str) -> go.Figure:
    fig = go.Figure([_bars(bins, width, name=name) for name, bins in sorted(groups.items())])
    fig.update_layout(barmode="stack")
    return _layout(fig, title, x, y)


def lengths_by_outcome_figure(data: ReportData) -> go.Figure:
    return _histogram(data.length_bins_by_outcome, data.length_bin_width, "Completion length: accepted vs rejected",
                      "completion tokens", "samples")


def lengths_by_finish_figure(data: ReportData) -> go.Figure:
    return _histogram(data.length_bins_by_finish, data.length_bin_width, "Completion length by finish reason",
                      "completion tokens", "samples")


def pass_rate_figure(data: ReportData) -> go.Figure:
    fig = go.Figure(_bars(data.pass_rate_bins, data.pass_rate_bin_width, marker_line_width=1))
    fig.update_xaxes(tickformat=".0%", range=[0, 1])
    return _layout(fig, "Pass rate of prompts (accepted / sampled)", "pass rate", "prompts")


def _series_bars(rows: list[tuple[str, str, int]], barmode: str) -> go.Figure:
    """(x, series, count) rows: one bar trace per series."""
    fig = go.Figure()
    for series in sorted({s for _, s, _ in rows}):
        points = [(x, n) for x, s, n in rows if s == series]
        fig.add_trace(go.Bar(x=[x for x, _ in points], y=[n for _, n in points], name=series))
    fig.update_layout(barmode=barmode)
    return fig


def verdicts_figure(data: ReportData) -> go.Figure:
    return _layout(_series_bars(data.verdicts, "stack"), "Verifier verdicts", "verifier", "samples")


def latency_figure(data: ReportData) -> go.Figure:
    fig = go.Figure()
    for stats in data.latency:
        fig.add_trace(
            go.Box(
                name=stats.verifier,
                x=[stats.verifier],
                q1=[stats.p25],
                median=[stats.p50],
                q3=[stats.p75],
                lowerfence=[stats.p0],
                upperfence=[stats.p100],
                showlegend=False,
            )
        )
    fig.update_yaxes(type="log")
    return _layout(fig, "Verifier latency (min, quartiles, max)", "verifier", "milliseconds per sample")


def filter_drops_figure(data: ReportData) -> go.Figure:
    fig = go.Figure()
    for stage in dict.fromkeys(s for s, _, _ in data.filter_drops):
        rows = [(op, n) for s, op, n in data.filter_drops if s == stage]
        fig.add_trace(go.Bar(y=[f"{stage}: {op}" for op, _ in rows], x=[n for _, n in rows], name=stage,
                             orientation="h"))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "What each filter dropped (every stage, in order)", "dropped", "")


def leaks_figure(data: ReportData) -> go.Figure:
    fig = _series_bars(data.leaks, "group")
    return _layout(fig, "Benchmark matches (decontamination)", "benchmark", "items matched")


def rows_by_kind_figure(data: ReportData) -> go.Figure:
    return _layout(_series_bars(data.rows_by_kind, "stack"), "Dataset rows by split and kind", "split", "rows")


def journey_figure(data: ReportData) -> go.Figure:
    fig = go.Figure(go.Bar(x=[o for o, _ in data.journey], y=[n for _, n in data.journey]))
    return _layout(fig, "Journey traces", "", "traces")


def targets_figure(data: ReportData) -> go.Figure:
    names = [t for t, _, _ in data.targets]
    fig = go.Figure(
        [
            go.Bar(x=names, y=[w for _, w, _ in data.targets], name="target"),
            go.Bar(x=names, y=[m for _, _, m in data.targets], name="made"),
        ]
    )
    fig.update_layout(barmode="group")
    return _layout(fig, "Targets: wanted vs made", "", "rows")


def figures(data: ReportData) -> dict[str, go.Figure]:
    """Every plot the data can draw, by id. A plot without data has no section: no samples yet (a
    run stopped before generation), no benchmarks, no journey stage, no targets."""
    builders: dict[str, tuple[object, Callable[[ReportData], go.Figure]]] = {
        "funnel": (data.prompt_funnel, funnel_figure),
        "acceptance": (data.acceptance, acceptance_figure),
        "rejections": (data.rejections, rejections_figure),
        "lengths-outcome": (data.length_bins_by_outcome, lengths_by_outcome_figure),
        "lengths-finish": (data.length_bins_by_finish, lengths_by_finish_figure),
        "pass-rate": (data.pass_rate_bins, pass_rate_figure),
        "verdicts": (data.verdicts, verdicts_figure),
        "latency": (data.latency, latency_figure),
        "filter-drops": (data.filter_drops, filter_drops_figure),
        "rows-by-kind": (data.rows_by_kind, rows_by_kind_figure),
        "leaks": (data.leaks, leaks_figure),
        "journey": (data.journey, journey_figure),
        "targets": (data.targets, targets_figure),
    }
    return {name: build(data) for name, (source, build) in builders.items() if source}


def _cell(text: str) -> str:
    text = " ".join(text.split())
    short = text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"
    return html.escape(short)


def _examples_table(examples: list[LeakExample]) -> str:
    if not examples:
        return "<p>No benchmark matches.</p>"
    head = "<tr><th>benchmark</th><th>detector</th><th>score</th><th>run item</th><th>benchmark item</th>" \
           "<th>evidence</th></tr>"
    rows = "".join(
        f"<tr><td>{_cell(e.benchmark)}</td><td>{_cell(e.detector)}</td><td>{e.score:.3f}</td>"
        f"<td>{_cell(e.item_text)}</td><td>{_cell(e.benchmark_text)}</td><td>{_cell(e.evidence)}</td></tr>"
        for e in examples
    )
    return f'<table class="examples">{head}{rows}</table>'


STYLE = f"""
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }}
h1 {{ font-size: 24px; margin: 0 0 4px; }}
.summary {{ display: flex; flex-wrap: wrap; gap: 8px 24px; margin: 12px 0 20px; }}
.summary div {{ font-size: 14px; }} .summary b {{ font-size: 18px; display: block; }}
.plots {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 16px; }}
.plot {{ border: 1px solid #ddd; border-radius: 6px; min-height: {PLOT_HEIGHT_PX}px; }}
.plot.wide {{ grid-column: 1 / -1; }}
table.examples {{ border-collapse: collapse; font-size: 13px; margin-top: 8px; }}
table.examples td, table.examples th {{ border: 1px solid #ddd; padding: 4px 6px; vertical-align: top; }}
"""


def render_report(data: ReportData) -> str:
    sections = "".join(
        f'<section class="plot{" wide" if name in WIDE_PLOTS else ""}" data-plot="{name}">'
        + fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{name}",
                      config={"displaylogo": False, "responsive": True})
        + "</section>"
        for name, fig in figures(data).items()
    )
    summary = "".join(f"<div>{html.escape(label)}<b>{html.escape(value)}</b></div>" for label, value in data.summary)
    notes = []
    if not data.journey:
        notes.append("Journey stage: not run (no journey traces).")
    if not data.targets:
        notes.append("Targets: none set in the job.")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>distillery report: {html.escape(data.run_name)}</title>
<style>{STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>Run report: {html.escape(data.run_name)}</h1>
<div>config hash <code>{html.escape(data.config_hash)}</code></div>
<div class="summary">{summary}</div>
<div class="plots">{sections}</div>
<h2>Benchmark matches, examples</h2>
{_examples_table(data.leak_examples)}
<p>{" ".join(html.escape(n) for n in notes)}</p>
</body></html>
"""
