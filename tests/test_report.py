"""`distillery report`: a self-contained HTML page whose every plot draws in a real headless Chromium
(the distribution's `chromium` package, which `make install` installs), checked from the DOM and
from the pixels of a screenshot."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from distillery.operators.writers.run_report import LatencyStats, LeakExample, ReportData, figures, render_report
from distillery.pipeline.commands.cli import main

BROWSERS = ("chromium", "chromium-headless-shell", "chromium-browser", "google-chrome")
BROWSER = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
needs_browser = pytest.mark.skipif(
    BROWSER is None,
    reason="no headless Chromium: `make install` installs the Debian package `chromium` when run as root "
    "(apt-get install -y chromium)",
)
WINDOW_WIDTH = 1280
RENDER_BUDGET_MS = 20000
MIN_INK_PIXELS = 300
"""Coloured (trace) pixels a drawn plot has at least; an empty frame has none."""

# After the plots have drawn, write every plot's place on the page into the DOM, so the screenshot
# can be cut into plots. The probe goes into a copy of the page: the report itself has no such script.
PROBE = """<script>window.addEventListener('load', function () { setTimeout(function () {
  var out = {height: document.documentElement.scrollHeight, plots: {}};
  document.querySelectorAll('div[id^=plot-]').forEach(function (d) {
    var r = d.getBoundingClientRect(); out.plots[d.id] = [r.left, r.top + window.scrollY, r.width, r.height]; });
  var pre = document.createElement('pre'); pre.id = 'layout-probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre); }, 500); });</script></body>"""


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert BROWSER is not None
    command = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--virtual-time-budget={RENDER_BUDGET_MS}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def render(page: Path, workdir: Path) -> tuple[str, dict, Image.Image]:
    """(DOM after scripts ran, plot rectangles, screenshot of the whole page)."""
    probe = workdir / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE), encoding="utf-8")
    dom = chromium(f"--window-size={WINDOW_WIDTH},900", "--dump-dom", probe.as_uri()).stdout
    found = re.search(r'<pre id="layout-probe">([^<]*)</pre>', dom)
    assert found, "the page's scripts did not finish (no layout probe in the DOM)"
    layout = json.loads(found.group(1))
    shot = workdir / "page.png"
    chromium(f"--window-size={WINDOW_WIDTH},{layout['height']}", f"--screenshot={shot}", probe.as_uri())
    return dom, layout["plots"], Image.open(shot).convert("RGB")


def ink(image: Image.Image, box: list[float]) -> int:
    """Strongly coloured pixels in the box: traces are; white, greys and text are not."""
    left, top, width, height = (int(v) for v in box)
    crop = image.crop((left, top, left + width, top + height))
    pixels = np.asarray(crop, dtype=np.int16)
    return int(((pixels.max(axis=2) - pixels.min(axis=2)) > 60).sum())


def check_every_plot_drew(page: Path, workdir: Path, expected: set[str]) -> None:
    html = page.read_text(encoding="utf-8")
    # self-contained: nothing is fetched when the page opens
    assert not re.search(r"<script[^>]+src=", html) and "<link" not in html
    dom, boxes, image = render(page, workdir)
    assert set(boxes) == {f"plot-{name}" for name in expected}
    starts = sorted((dom.index(f'id="{plot}"'), plot) for plot in boxes)
    for i, (start, plot) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(dom)
        subtree = dom[start:end]
        assert 'class="main-svg"' in subtree, f"{plot}: plotly drew no SVG"
        assert re.search(r'class="trace[ "]', subtree), f"{plot}: no trace in the SVG"
        assert ink(image, boxes[plot]) >= MIN_INK_PIXELS, f"{plot}: the screenshot shows no trace"


@needs_browser
def test_report_of_a_run_draws_every_plot(demo_like_run, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["report", str(demo_like_run), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    expected = {"funnel", "acceptance", "rejections", "lengths-outcome", "lengths-finish", "pass-rate", "verdicts",
                "latency", "filter-drops", "rows-by-kind", "leaks"}
    check_every_plot_drew(out, tmp_path, expected)
    html = out.read_text(encoding="utf-8")
    # the leaked prompt is shown as an example, next to its benchmark item
    assert "How many positive divisors does 36 have?" in html
    assert "Journey stage: not run" in html and "Targets: none set" in html


def full_data() -> ReportData:
    """Every section present, journey and targets included (runs with those stages write them)."""
    return ReportData(
        run_name="big",
        config_hash="h",
        prompt_funnel=[("source rows", 1000), ("prompts", 950), ("sampled", 900)],
        sample_funnel=[("drawn", 3600), ("accepted", 1800), ("dataset rows", 800)],
        acceptance=[("s1", "math", 2000, 900), ("s2", "code", 1600, 900)],
        rejections=[("incorrect", 1200), ("filter: repetition", 300), ("surplus", 300)],
        length_bins_by_outcome={"accepted": [(0, 5), (100, 40), (200, 20)], "rejected": [(0, 50), (100, 10)]},
        length_bins_by_finish={"stop": [(0, 50), (100, 40)], "length": [(1000, 30)]},
        length_bin_width=100,
        pass_rate_bins=[(0.0, 100), (0.5, 300), (0.9, 200)],
        pass_rate_bin_width=0.1,
        verdicts=[("math@2", "correct", 900), ("math@2", "incorrect", 1100), ("code@1", "correct", 900)],
        latency=[LatencyStats("math@2", 1, 3, 5, 9, 200, 2000), LatencyStats("code@1", 50, 80, 120, 300, 5000, 1600)],
        filter_drops=[("generate", "filter:repetition", 300), ("prompt_filter", "near_dedup", 50)],
        leaks=[("aime24", "ngram", 3), ("aime24", "embedding", 4)],
        leak_examples=[LeakExample("aime24", "ngram", 1.0, "Find x <b>", "Find x", "shared 8-gram")],
        rows_by_kind=[("reasoning", "shortcut", 600), ("reasoning", "journey", 60), ("general", "general", 140)],
        journey=[("accepted", 60), ("rejected: incorrect", 20)],
        targets=[("math", 500, 480), ("general", 200, 200)],
    )


def test_sections_follow_the_data():
    data = full_data()
    assert {"journey", "targets", "leaks"} <= set(figures(data))
    bare = ReportData(**{**data.__dict__, "journey": [], "targets": [], "leaks": [], "leak_examples": []})
    assert not {"journey", "targets", "leaks"} & set(figures(bare))
    page = render_report(data)
    assert "Find x &lt;b&gt;" in page  # example text is escaped
    # a run stopped before generation: only the funnel has data
    empty = {"acceptance": [], "rejections": [], "length_bins_by_outcome": {}, "length_bins_by_finish": {},
             "pass_rate_bins": [], "verdicts": [], "latency": [], "filter_drops": [], "rows_by_kind": []}
    assert set(figures(ReportData(**{**bare.__dict__, **empty}))) == {"funnel"}


@needs_browser
def test_journey_and_targets_plots_draw(tmp_path):
    page = tmp_path / "full.html"
    page.write_text(render_report(full_data()), encoding="utf-8")
    check_every_plot_drew(page, tmp_path, set(figures(full_data())))
