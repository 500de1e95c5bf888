"""The README's cluster recipe, run as written: a local head with token auth on 127.0.0.1 and
`ray job submit --working-dir . -- distillery run ...` of a replay job (no model to load).

What the test changes in the README's commands, and only that: ports and Ray's temp dir get
unique values (other Ray instances may be running on this machine), the job and run directory are
the test's, and the head is stopped by killing its own processes (`ray stop` would stop every Ray
on the machine)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import duckdb
import psutil
from conftest import write_jsonl
from ray_nodes import NODE_PORT_FLAGS, free_port

REPO = Path(__file__).resolve().parents[1]
RECIPE = re.compile(r"<!-- cluster-recipe -->\s*```bash\n(.*?)```", re.S)
SUBMIT_SECONDS = 300

ROWS = [
    {"problem": "What is 2 + 3?", "answer": "5", "generations": ["\\boxed{5}", "\\boxed{4}"]},
    {"problem": "What is 6 times 7?", "answer": "42", "generations": ["So \\boxed{42}"]},
]
JOB = """
name: submitted
sources:
  - name: dump
    format: jsonl
    path: dump.jsonl
teachers:
  recorded:
    backend: replay
    path: dump.jsonl
generation:
  teacher: recorded
  keep_per_prompt: 1
  max_rounds: 1
verification:
  workers: 1
"""


def readme_recipe() -> list[str]:
    match = RECIPE.search((REPO / "README.md").read_text())
    assert match, "README.md has no <!-- cluster-recipe --> bash block"
    return [line for line in match.group(1).splitlines() if line.strip() and not line.startswith("#")]


def _kill_cluster(temp_dir: str) -> None:
    """Every process of the head this test started: their command lines name its temp dir."""
    mine = []
    for process in psutil.process_iter(["cmdline"]):
        if temp_dir in " ".join(process.info["cmdline"] or []):
            mine.append(process)
    for process in mine:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            continue


def test_the_readme_cluster_recipe_submits_a_run(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    write_jsonl(work / "dump.jsonl", ROWS)
    (work / "job.yaml").write_text(JOB)
    run_dir = tmp_path / "submitted"
    temp_dir = tempfile.mkdtemp(prefix="rj", dir="/tmp")
    dashboard = free_port()
    node_ports = " ".join(f"{flag} {free_port()}" for flag in NODE_PORT_FLAGS)
    script = []
    for line in readme_recipe():
        if line.startswith("ray stop"):
            continue
        line = line.replace("source .venv/bin/activate", f"source {REPO}/.venv/bin/activate")
        line = line.replace("8265", str(dashboard)).replace("/tmp/submitted", str(run_dir))
        line = line.replace("jobs/demo.yaml", "job.yaml")
        if line.startswith("ray start"):
            line += f" --port {free_port()} --dashboard-port {dashboard} --temp-dir {temp_dir} {node_ports}"
            line += f" --ray-client-server-port {free_port()} --num-cpus 2"
        script.append(line)
    assert any(s.startswith("ray job submit") and "--working-dir ." in s for s in script), script
    # The PATH pytest has, without the venv: the recipe must work from a plain shell.
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if ".venv" not in p)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "VIRTUAL_ENV"))} | {
        "PATH": path,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", "\n".join(script)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=SUBMIT_SECONDS,
        )
    finally:
        _kill_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "succeeded" in output, output[-4000:]
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM read_parquet('{run_dir}/samples/*.parquet')").fetchone() == (3,)
    assert con.execute(f"SELECT count(*) FROM read_parquet('{run_dir}/dataset/*/*.parquet')").fetchone() == (2,)
    assert (run_dir / "report.json").exists()
