"""`distillery status RUN` from another process while a run is going (a slow scripted teacher), and
after it ended."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from test_targets import _job, _script

TESTS = Path(__file__).parent
RUNNER = """
import json, sys
sys.path.insert(0, {tests!r})
import ray.cloudpickle
import scripted_teacher
ray.cloudpickle.register_pickle_by_value(scripted_teacher)
from distillery.pipeline.runner import run_job

script = json.loads({script!r})
def builder(name, config):
    return lambda: scripted_teacher.ScriptedTeacher(script, n=2, name=name, delay_s=1.0)

run_job({job!r}, {out!r}, teacher_factory=builder)
"""


def _status(out: Path) -> str:
    command = [sys.executable, "-m", "distillery.pipeline.commands.cli", "status", str(out)]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout


def test_status_while_a_run_is_in_progress_and_after(tmp_path):
    job = _job(tmp_path, reasoning=12, general=4)
    out = tmp_path / "run"
    code = RUNNER.format(tests=str(TESTS), script=json.dumps(_script()), job=str(job), out=str(out))
    env = {**os.environ, "DISTILLERY_RAY_DASHBOARD": "0", "RAY_DEDUP_LOGS": "0"}
    run = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        live = ""
        while time.monotonic() < deadline and run.poll() is None:
            if (out / "progress.json").exists():
                live = _status(out)
                if "generation: running" in live and "accepted" in live:
                    break
            time.sleep(1)
        assert "generation: running" in live, run.stderr.read().decode() if run.poll() is not None else live
        assert "math: accepted" in live and "(target 8)" in live and "tok/row" in live
        assert run.wait(timeout=300) == 0, run.stderr.read().decode()
    finally:
        if run.poll() is None:
            run.kill()
    after = _status(out)
    assert "generation: finished" in after
    assert "  math: 8 of 8 rows: met" in after and "  general: 4 of 4 rows: met" in after
