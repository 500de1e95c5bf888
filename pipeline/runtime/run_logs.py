"""Where a run's output goes. The terminal shows the stages as they start and finish, the live
progress, the warnings a user must act on, and the summary; everything else goes to `RUN/logs/`:

```
RUN/logs/
  driver.log                 every log record of the driver: distillery, Ray, transformers, Python warnings
  actors/<actor>-<pid>.log   what each Ray worker printed (teacher replicas and their vLLM engines,
                             embedding workers), streamed to the driver from whichever node it ran on
```

`--verbose` shows all of it on the terminal as well. In the workers, distillery's own log records are
marked (`worker_setup`, Ray's worker_process_setup_hook), so the driver can pick the warnings out of
the stream (a failed request, a dead engine, a sandbox fallback) and show them.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console

DRIVER_LOG = "driver.log"
ACTOR_LOGS = "actors"
USER_MARK = "[distillery]"
"""Prefix of distillery's log lines in Ray workers; the driver shows those at WARNING and above."""
SHOWN_LEVELS = ("WARNING", "ERROR", "CRITICAL")
LIBRARY_LOGGERS = (
    "ray", "transformers", "datasets", "sentence_transformers", "huggingface_hub", "vllm", "torch", "faiss", "urllib3",
    "filelock", "httpx", "openai", "py.warnings",
)
"""Loggers that bring their own terminal handlers: during a run their records go to driver.log instead."""
QUIET_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
"""Library progress bars write straight to the terminal, over the live display."""
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
RAYLET = "raylet"
RAYLET_ERROR = re.compile(r"^\[[^\]]* E \d+ \d+\]")
"""An error line of the raylet's log (`[time E pid tid] ...`), e.g. workers it killed for memory."""
# Ray 2.60's driver-side dispatcher of worker output (ray._private.ray_logging); `ray_print_logs`
# is the handler that prints it. Ray is pinned to 2.60.x, and without it we fall back to Ray's printing.
RAY_PRINT_HANDLER = "ray_print_logs"


def worker_setup() -> None:
    """Ray's worker_process_setup_hook: distillery's records in a worker go out marked."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{USER_MARK} %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("distillery")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def worker_env(verbose: bool) -> dict[str, str]:
    """Environment of the Ray workers: no progress bars in their log files, library verbosity by --verbose."""
    level = "debug" if verbose else "info"
    return {**QUIET_ENV, "VLLM_LOGGING_LEVEL": level.upper(), "TRANSFORMERS_VERBOSITY": level}


def _prints_to_terminal(handler: logging.Handler) -> bool:
    terminal = (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
    return isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) in terminal


class _ConsoleHandler(logging.Handler):
    """Log records on the rich console, so they print above a live display instead of through it."""

    def __init__(self, console: Console, verbose: bool) -> None:
        super().__init__(logging.DEBUG if verbose else logging.WARNING)
        self.console = console
        self.verbose = verbose
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose:
            return True
        # What distillery warns about is for the user; a library's warnings are in driver.log.
        return record.name.startswith("distillery") or record.levelno >= logging.ERROR

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(self.format(record), markup=False, highlight=False, soft_wrap=True)
        except Exception:
            self.handleError(record)


def _for_the_user(line: str, pid: str) -> str | None:
    """What the terminal shows of a worker's line: a marked distillery warning without its mark, or an
    error of Ray's node manager (workers killed for memory); None for every other line."""
    if pid == RAYLET and RAYLET_ERROR.match(line):
        return line
    if not line.startswith(USER_MARK):
        return None
    text = line[len(USER_MARK):].strip()
    return text if text.split(" ", 1)[0] in SHOWN_LEVELS else None


class _ActorFiles:
    """Ray worker output, one file per worker process; distillery's warnings also on the console."""

    def __init__(self, folder: Path, console: Console, verbose: bool) -> None:
        self.folder = folder
        self.console = console
        self.verbose = verbose
        self.files: dict[tuple[str, str], TextIO] = {}
        self.lock = threading.Lock()

    def __call__(self, data: dict[str, Any]) -> None:
        who = str(data.get("actor_name") or data.get("task_name") or "worker")
        pid = str(data.get("pid", "unknown"))
        lines: list[str] = list(data.get("lines") or [])
        with self.lock:
            key = (who, pid)
            if key not in self.files:
                self.folder.mkdir(parents=True, exist_ok=True)
                name = _UNSAFE_NAME.sub("_", f"{who}-{pid}")[:120]
                self.files[key] = (self.folder / f"{name}.log").open("a", encoding="utf-8")
            out = self.files[key]
            for line in lines:
                out.write(line + "\n")
            out.flush()
        if self.verbose:
            return  # Ray's own printer shows every line
        for line in lines:
            shown = _for_the_user(line, pid)
            if shown:
                self.console.print(f"({who} pid={pid}) {shown}", markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        with self.lock:
            for handle in self.files.values():
                handle.close()
            self.files.clear()


class RunLogs:
    """The logging of one `distillery run`, set up for its duration (a context manager)."""

    def __init__(self, folder: Path, *, verbose: bool = False, console: Console | None = None) -> None:
        self.folder = folder
        self.verbose = verbose
        self.console = console or Console(stderr=True)
        self._restore: list[tuple[logging.Logger, list[logging.Handler], bool]] = []
        self._root_level = logging.WARNING
        self._env: dict[str, str | None] = {}
        self._handlers: list[logging.Handler] = []
        self._actors: _ActorFiles | None = None
        self._removed_ray_printer: Any = None
        self._stage_started = 0.0

    @property
    def driver_log(self) -> Path:
        return self.folder / DRIVER_LOG

    @property
    def actor_logs(self) -> Path:
        return self.folder / ACTOR_LOGS

    def __enter__(self) -> RunLogs:
        self.folder.mkdir(parents=True, exist_ok=True)
        root = logging.getLogger()
        self._restore.append((root, root.handlers[:], root.propagate))
        self._root_level = root.level
        file_handler = logging.FileHandler(self.driver_log, encoding="utf-8")
        file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
        self._handlers = [file_handler, _ConsoleHandler(self.console, self.verbose)]
        # The terminal printers give way to ours; other handlers (a test's capture, say) stay.
        root.handlers = [h for h in root.handlers if not _prints_to_terminal(h)] + self._handlers
        root.setLevel(logging.DEBUG if self.verbose else logging.INFO)
        logging.captureWarnings(True)
        self.adopt_library_loggers()
        if not self.verbose:
            for key, value in QUIET_ENV.items():
                self._env[key] = os.environ.get(key)
                os.environ[key] = value
        return self

    def adopt_library_loggers(self) -> None:
        """Send the records of loggers that print for themselves (Ray's, transformers') to our handlers.
        Called again at each stage: a library imported since then has set up its handlers by now."""
        adopted = {id(logger) for logger, _, _ in self._restore}
        names = set(LIBRARY_LOGGERS) | {n for n in logging.root.manager.loggerDict if "." not in n}
        for name in sorted(names):
            logger = logging.getLogger(name)
            if id(logger) in adopted or name.startswith("distillery") or not (logger.handlers or not logger.propagate):
                continue
            self._restore.append((logger, logger.handlers[:], logger.propagate))
            logger.handlers = []
            logger.propagate = True

    def __exit__(self, *exc: object) -> None:
        self.detach_ray()
        for logger, handlers, propagate in reversed(self._restore):
            logger.handlers = handlers
            logger.propagate = propagate
        self._restore.clear()
        logging.getLogger().setLevel(self._root_level)
        logging.captureWarnings(False)
        for handler in self._handlers:
            handler.close()
        for key, value in self._env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._env.clear()

    # --- Ray ------------------------------------------------------------------------------------

    def ray_init_options(self, *, cluster: bool) -> dict[str, Any]:
        """Options for `ray.init`. On a cluster (`ray job submit`) the job's own runtime_env (API keys
        in env_vars, say) is left alone, so workers' lines are not marked there: they go to files."""
        options: dict[str, Any] = {"log_to_driver": True}
        if not cluster:
            options["runtime_env"] = {
                "worker_process_setup_hook": f"{__name__}.worker_setup",
                "env_vars": worker_env(self.verbose),
            }
        return options

    def attach_ray(self) -> None:
        """Stream what Ray workers print into per-worker files, and off the terminal unless --verbose."""
        self.adopt_library_loggers()  # ray.init may have set up its loggers again
        if self._actors is not None:
            return
        try:
            from ray._private import ray_logging
        except ImportError:
            return
        dispatcher = ray_logging.global_worker_stdstream_dispatcher
        self._actors = _ActorFiles(self.actor_logs, self.console, self.verbose)
        if not self.verbose:
            printers = [h for name, h in dispatcher.handlers if name == RAY_PRINT_HANDLER]
            if printers:
                self._removed_ray_printer = printers[0]
                dispatcher.remove_handler(RAY_PRINT_HANDLER)
        dispatcher.add_handler(ACTOR_LOGS, self._actors)

    def detach_ray(self) -> None:
        if self._actors is None:
            return
        from ray._private import ray_logging

        dispatcher = ray_logging.global_worker_stdstream_dispatcher
        dispatcher.remove_handler(ACTOR_LOGS)
        if self._removed_ray_printer is not None:
            dispatcher.add_handler(RAY_PRINT_HANDLER, self._removed_ray_printer)
            self._removed_ray_printer = None
        self._actors.close()
        self._actors = None

    # --- what the terminal shows ----------------------------------------------------------------

    def stage_started(self, number: int, total: int, name: str) -> None:
        self.adopt_library_loggers()
        self._stage_started = time.monotonic()
        logging.getLogger(__name__).info("stage %d %s: start", number, name)
        self.console.print(f"[bold]stage {number}/{total}[/bold] {name} ...", highlight=False)

    def stage_finished(self, number: int, total: int, name: str, detail: str = "") -> float:
        """Logs the stage's end; its wall time in seconds."""
        seconds = time.monotonic() - self._stage_started
        logging.getLogger(__name__).info("stage %d %s: done in %.1fs %s", number, name, seconds, detail)
        suffix = f": {detail}" if detail else ""
        self.console.print(f"[bold]stage {number}/{total}[/bold] {name} done in {seconds:.1f}s{suffix}",
                           highlight=False)
        return seconds

    def where(self) -> str:
        return f"logs: {self.folder} ({DRIVER_LOG}, {ACTOR_LOGS}/)"


DETAIL_ITEMS = 5
"""Figures a stage's "done" line shows at most (report.json has them all)."""
DETAIL_SKIPPED = frozenset({"number", "counters", "seconds"})


def stage_detail(report: dict[str, Any]) -> str:
    """The first figures a stage reported, for its "done" line: numbers, and small tables of numbers
    such as rows per split; its counters and the rest are in report.json."""
    parts = []
    for key, value in report.items():
        if key in DETAIL_SKIPPED:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            parts.append(f"{key.replace('_', ' ')} {value}")
        elif isinstance(value, dict) and 0 < len(value) <= 3 and all(isinstance(v, int) for v in value.values()):
            parts.append(f"{key.replace('_', ' ')} " + ", ".join(f"{k} {v}" for k, v in value.items()))
    return "; ".join(parts[:DETAIL_ITEMS])
