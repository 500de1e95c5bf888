"""The live display of a run: prompts done, samples, acceptance, tokens/s, ETA."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


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


class RunProgress:
    """A rich progress bar on a terminal; plain periodic lines otherwise (logs, `ray job submit`)."""

    def __init__(self, total_prompts: int, already_done: int) -> None:
        self.console = Console(stderr=True)
        self.interactive = self.console.is_terminal and sys.stderr.isatty()
        self.total = total_prompts
        self._last_line = 0.0
        self.progress = Progress(
            TextColumn("[bold]generate"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("prompts  {task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.interactive,
        )
        self.task = self.progress.add_task("generate", total=total_prompts, completed=already_done, stats="")

    def __enter__(self) -> RunProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def update(self, done_prompts: int, tally: GenerationTally) -> None:
        stats = tally.describe()
        self.progress.update(self.task, completed=done_prompts, stats=stats)
        now = time.monotonic()
        if not self.interactive and now - self._last_line >= 10:
            self._last_line = now
            self.console.print(f"generate: {done_prompts}/{self.total} prompts  {stats}")
