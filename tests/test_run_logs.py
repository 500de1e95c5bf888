"""The quiet terminal: what Ray workers print goes to RUN/logs/actors/, the warnings distillery logs
in a worker still reach the terminal, driver logs go to RUN/logs/driver.log, and --verbose shows it all.
Runs on a Ray instance of its own (the run's ray.init options are under test)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import pytest
import ray
import ray.cloudpickle

from distillery.pipeline.runner import connect_ray
from distillery.pipeline.runtime.run_logs import RunLogs, _for_the_user, stage_detail

# Ray workers cannot import this module: ship the actor by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
STREAM_TIMEOUT_S = 60


class Noisy:
    def speak(self) -> int:
        print("Triton is installed, but doesn't include CPU backend", file=sys.stderr, flush=True)
        logging.getLogger("distillery.operators.teachers.openai_compat").warning("teacher t: request r1 failed")
        sys.stderr.flush()
        return 1


def wait_for(path: Path, text: str) -> str:
    deadline = time.monotonic() + STREAM_TIMEOUT_S
    while time.monotonic() < deadline:
        found = [f.read_text() for f in path.glob("*.log")] if path.exists() else []
        if any(text in content for content in found):
            return next(c for c in found if text in c)
        time.sleep(0.5)
    raise AssertionError(f"no {text!r} under {path} after {STREAM_TIMEOUT_S}s")


@pytest.fixture
def fresh_ray():
    if ray.is_initialized():
        ray.shutdown()
    yield
    ray.shutdown()  # its workers carry this run's setup hook; the next test starts its own


@pytest.mark.parametrize("verbose", [False, True])
def test_worker_output_goes_to_files_and_warnings_to_the_terminal(tmp_path, capfd, fresh_ray, verbose):
    with RunLogs(tmp_path / "logs", verbose=verbose) as logs:
        logs.stage_started(3, 6, "generate")
        connect_ray(logs)
        logging.getLogger("transformers.modeling_utils").warning("a library warning")
        logging.getLogger("distillery.pipeline.stages.generate").warning("shard part-00000 failed; retrying")
        actor = ray.remote(num_cpus=0)(Noisy).remote()
        assert ray.get(actor.speak.remote()) == 1
        content = wait_for(tmp_path / "logs" / "actors", "request r1 failed")
        # the file has what the worker printed, noise included
        assert "Triton is installed" in content
        assert any(f.name.startswith("Noisy-") for f in (tmp_path / "logs" / "actors").glob("*.log"))
        logs.stage_finished(3, 6, "generate", stage_detail({"number": 3, "prompts_generated": 5, "counters": []}))
        time.sleep(1)  # Ray's printer (verbose) runs on its own thread
    terminal = capfd.readouterr()
    shown = terminal.out + terminal.err
    assert "stage 3/6 generate ..." in shown and "stage 3/6 generate done in" in shown
    assert "prompts generated 5" in shown
    assert "(Noisy pid=" in shown and "request r1 failed" in shown
    assert "shard part-00000 failed; retrying" in shown
    assert ("Triton is installed" in shown) is verbose
    assert ("a library warning" in shown) is verbose
    driver = (tmp_path / "logs" / "driver.log").read_text()
    assert "a library warning" in driver and "shard part-00000 failed" in driver
    # the run's handlers are gone afterwards
    driver_log = str(tmp_path / "logs" / "driver.log")
    assert not any(getattr(h, "baseFilename", None) == driver_log for h in logging.getLogger().handlers)


def test_what_the_terminal_shows_of_worker_lines():
    assert _for_the_user("[distillery] WARNING distillery.x: request r1 failed", "12") == (
        "WARNING distillery.x: request r1 failed"
    )
    assert _for_the_user("[distillery] INFO distillery.x: loaded", "12") is None
    assert _for_the_user("libtcmalloc is not found in LD_PRELOAD", "12") is None
    oom = "[2026-12-01 09:57:49,710 E 26921 26921] (raylet) node_manager.cc:3517: 1 Workers killed (OOM)"
    assert _for_the_user(oom, "raylet") == oom
    assert _for_the_user("[2026-12-01 09:57:49,710 I 26921 26921] (raylet) started", "raylet") is None
