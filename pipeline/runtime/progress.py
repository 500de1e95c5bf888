"""The live display of a run: prompts done, samples, acceptance, tokens/s, ETA; and per target group
(a mix domain, or a split) accepted rows against the goal, acceptance rate, tokens/s, teacher tokens
per accepted row, the ETA to the goal and, where teachers declare prices, cost so far and projected.

The same figures are written to `RUN/progress.json` every few seconds (`YieldLedger.snapshot`), which
`distillery status RUN` prints from another terminal while the run goes on, and after it ended.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from distillery.operators.teachers.base import REPETITION_FINISH, WASTED_FINISHES
from distillery.schemas.teacher_config import TokenPrice

SNAPSHOT_SECONDS = 5.0
"""How often the live figures are written to `RUN/progress.json`."""
PLAIN_LINE_SECONDS = 10.0
"""How often a run without a terminal prints its progress lines."""
SAMPLE_COLUMNS = (
    "teacher", "domain", "round", "prompt_id", "accepted", "selected", "finish_reason", "prompt_tokens",
    "completion_tokens", "sampling",
)


@dataclass
class GenerationTally:
    """Counts of shards finished before this run started, plus what each replica reports live."""

    baseline: dict[str, int] = field(default_factory=dict)
    live: dict[str, dict[str, int]] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def total(self, key: str) -> int:
        return self.baseline.get(key, 0) + sum(stats.get(key, 0) for stats in self.live.values())

    def tokens_per_second(self) -> float:
        elapsed = time.monotonic() - self.started
        tokens = sum(stats.get("completion_tokens", 0) for stats in self.live.values())
        return tokens / elapsed if elapsed > 0 else 0.0

    def describe(self) -> str:
        samples, accepted = self.total("samples"), self.total("accepted")
        rate = accepted / samples if samples else 0.0
        return f"samples {samples}  accepted {accepted} ({rate:.0%})  {self.tokens_per_second():.0f} tok/s"


@dataclass
class GroupYield:
    """What one target group has cost and yielded, over finished units (earlier runs included)."""

    goal: int | None = None
    """Accepted rows generation aims at (the target plus its margin); None: no target."""
    target: int | None = None
    samples: int = 0
    passed: int = 0
    """Samples that passed verification and the filters (the acceptance rate is passed / samples)."""
    accepted: int = 0
    """Selected samples: rows before dedup and decontamination."""
    prompt_tokens: int = 0
    """Prompt tokens per request (one request serves all n samples of a round)."""
    completion_tokens: int = 0
    wasted_tokens: int = 0
    """Completion tokens of samples that finished as `length` or `repetition`."""
    saved_tokens: int = 0
    """Tokens the loop cut saved: max_tokens less the tokens of each sample stopped for repetition."""
    cost: float = 0.0
    accepted_this_run: int = 0
    completion_tokens_this_run: int = 0

    def tokens_per_row(self) -> float | None:
        return self.completion_tokens / self.accepted if self.accepted else None

    def eta_seconds(self, elapsed: float) -> float | None:
        """At this run's pace of accepted rows; 0 once the goal is reached; None when unknown."""
        if self.goal is None:
            return None
        missing = self.goal - self.accepted
        if missing <= 0:
            return 0.0
        if not self.accepted_this_run or elapsed <= 0:
            return None
        return missing / (self.accepted_this_run / elapsed)

    def projected_cost(self) -> float | None:
        """Cost so far scaled to the goal, at the cost per accepted row so far."""
        if self.goal is None or not self.accepted or not self.cost:
            return None
        return self.cost * max(self.goal, self.accepted) / self.accepted


class YieldLedger:
    """Per target group: what finished units cost and yielded. Units add with `add`."""

    def __init__(
        self,
        group_of: Callable[[str], str | None],
        goals: dict[str, int],
        targets: dict[str, int | None],
        prices: dict[str, TokenPrice | None],
    ) -> None:
        """`group_of`: domain -> its group (None: a domain no target takes); `prices`: per teacher."""
        self.group_of = group_of
        self.prices = prices
        self.groups: dict[str, GroupYield] = {
            name: GroupYield(goal=goals.get(name), target=target) for name, target in targets.items()
        }
        self.started = time.monotonic()
        self.priced = any(p is not None for p in prices.values())

    def add(self, samples: pa.Table, *, this_run: bool = True) -> None:
        """A finished unit's samples (one teacher's)."""
        if samples.num_rows == 0:
            return
        table = samples.select(list(SAMPLE_COLUMNS))
        price = self.prices.get(table["teacher"][0].as_py())
        for domain in pc.unique(table["domain"]).to_pylist():
            name = self.group_of(domain)
            if name is None:
                continue
            rows = table.filter(pc.equal(table["domain"], domain))
            group = self.groups.setdefault(name, GroupYield())
            completion = int(pc.sum(rows["completion_tokens"]).as_py() or 0)
            accepted = int(pc.sum(rows["selected"]).as_py() or 0)
            wasted = rows.filter(pc.is_in(rows["finish_reason"], pa.array(WASTED_FINISHES)))
            requests = rows.group_by(["prompt_id", "round"]).aggregate([("prompt_tokens", "max")])
            prompt = int(pc.sum(requests["prompt_tokens_max"]).as_py() or 0)
            group.samples += rows.num_rows
            group.passed += int(pc.sum(rows["accepted"]).as_py() or 0)
            group.accepted += accepted
            group.prompt_tokens += prompt
            group.completion_tokens += completion
            group.wasted_tokens += int(pc.sum(wasted["completion_tokens"]).as_py() or 0)
            cut = rows.filter(pc.equal(rows["finish_reason"], REPETITION_FINISH))
            for sampling, used in zip(cut["sampling"].to_pylist(), cut["completion_tokens"].to_pylist(), strict=True):
                group.saved_tokens += max(0, int(json.loads(sampling).get("max_tokens", used)) - used)
            if price is not None:
                group.cost += (prompt * price.input + completion * price.output) / 1e6
            if this_run:
                group.accepted_this_run += accepted
                group.completion_tokens_this_run += completion

    def totals(self) -> dict[str, int]:
        """Token accounting over every group, for the stage's report."""
        keys = ("samples", "passed", "accepted", "prompt_tokens", "completion_tokens", "wasted_tokens", "saved_tokens")
        return {k: sum(getattr(g, k) for g in self.groups.values()) for k in keys}

    def snapshot(self, *, finished: bool = False) -> dict[str, object]:
        elapsed = time.monotonic() - self.started
        return {
            "written_at": time.time(),
            "elapsed_s": round(elapsed, 1),
            "finished": finished,
            "priced": self.priced,
            "groups": {
                name: {
                    **asdict(g),
                    "tokens_per_second": round(g.completion_tokens_this_run / elapsed, 2) if elapsed > 0 else 0.0,
                    "eta_s": g.eta_seconds(elapsed),
                    "projected_cost": g.projected_cost(),
                }
                for name, g in sorted(self.groups.items())
            },
        }


def describe_groups(snapshot: dict[str, object]) -> list[str]:
    """One line per group of a snapshot: what the live display and `distillery status` print."""
    groups = snapshot.get("groups") or {}
    assert isinstance(groups, dict)
    lines = []
    for name, g in groups.items():
        goal = f"/{g['goal']}" if g.get("goal") is not None else ""
        target = f" (target {g['target']})" if g.get("target") is not None else ""
        per_row = f"{g['completion_tokens'] / g['accepted']:.0f}" if g["accepted"] else "-"
        wasted = g["wasted_tokens"] / g["completion_tokens"] if g["completion_tokens"] else 0.0
        acceptance = g["passed"] / g["samples"] if g["samples"] else 0.0
        eta = _duration(g.get("eta_s"))
        if g.get("goal") is None:
            eta = "- (no target)"
        elif snapshot.get("finished") and g["accepted"] < g["goal"]:
            eta = "- (generation ended short of the goal)"
        line = (
            f"{name}: accepted {g['accepted']}{goal}{target}  acceptance {acceptance:.0%}"
            f"  {g['tokens_per_second']:.0f} tok/s  {per_row} tok/row  wasted {wasted:.0%}"
            f"  loop cut saved {g['saved_tokens']} tok  ETA {eta}"
        )
        if snapshot.get("priced"):
            projected = g.get("projected_cost")
            line += f"  cost ${g['cost']:.2f}" + (f" (to goal ${projected:.2f})" if projected is not None else "")
        lines.append(line)
    return lines


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds <= 0:
        return "done"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class RunProgress:
    """A rich progress bar on a terminal (one bar for prompts, one per target group); plain periodic
    lines otherwise (logs, `ray job submit`). With a ledger, the figures also go to `snapshot_path`."""

    def __init__(
        self,
        total_prompts: int,
        already_done: int,
        ledger: YieldLedger | None = None,
        snapshot_path: Path | None = None,
        write_snapshot: Callable[[object, Path], object] | None = None,
    ) -> None:
        self.console = Console(stderr=True)
        self.interactive = self.console.is_terminal and sys.stderr.isatty()
        self.total = total_prompts
        self.ledger = ledger
        self.snapshot_path = snapshot_path
        self.write_snapshot = write_snapshot
        self._last_line = 0.0
        self._last_snapshot = 0.0
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.interactive,
        )
        self.task = self.progress.add_task("generate prompts", total=total_prompts, completed=already_done, stats="")
        self.group_tasks: dict[str, int] = {}

    def __enter__(self) -> RunProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._write_snapshot(finished=True)
        self.progress.__exit__(None, None, None)

    def update(self, done_prompts: int, tally: GenerationTally) -> None:
        stats = tally.describe()
        self.progress.update(self.task, completed=done_prompts, stats=stats)
        lines = self._update_groups()
        now = time.monotonic()
        if now - self._last_snapshot >= SNAPSHOT_SECONDS:
            self._write_snapshot(finished=False)
        if not self.interactive and now - self._last_line >= PLAIN_LINE_SECONDS:
            self._last_line = now
            self.console.print(f"generate: {done_prompts}/{self.total} prompts  {stats}")
            for line in lines:
                self.console.print(f"  {line}")

    def _update_groups(self) -> list[str]:
        if self.ledger is None:
            return []
        snapshot = self.ledger.snapshot()
        lines = describe_groups(snapshot)
        groups = snapshot["groups"]
        assert isinstance(groups, dict)
        for (name, g), line in zip(groups.items(), lines, strict=True):
            if g["goal"] is None:
                continue
            if name not in self.group_tasks:
                self.group_tasks[name] = self.progress.add_task(f"  {name}", total=g["goal"], stats="")
            stats = line.split(": ", 1)[1].split("  ", 1)[1]
            self.progress.update(self.group_tasks[name], completed=min(g["accepted"], g["goal"]), stats=stats)
        return lines

    def _write_snapshot(self, *, finished: bool) -> None:
        if self.ledger is None or self.snapshot_path is None or self.write_snapshot is None:
            return
        self._last_snapshot = time.monotonic()
        self.write_snapshot(self.ledger.snapshot(finished=finished), self.snapshot_path)


def read_snapshot(path: Path) -> dict[str, object] | None:
    if not path.exists():
        return None
    return json.loads(path.read_text())
