"""A real two-node Ray cluster on loopback (two `ray start` on this machine, token auth, logical
GPUs, one custom resource per node). Teacher replicas (TP 2: a placement group each) land one per
node; the second node is lost mid-run (its raylet and workers killed), and the run still completes
with every prompt committed exactly once, the lost node's shard done again on the survivor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import ray
import ray.cloudpickle
from conftest import job_yaml, write_jsonl
from ray_nodes import free_port, start_node, token_env
from scripted_teacher import ScriptedTeacher

from distillery.operators.teachers.base import TeacherResponse
from distillery.pipeline.runner import run_job

# Ray workers cannot import test modules: ship this one's teacher by value (run as the driver script,
# it is __main__, which cloudpickle ships by value anyway).
if __name__ != "__main__":
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

PROMPTS = 10
SCRIPT = {"What is": [["\\boxed{1}"]]}
REQUEST_SECONDS = 1.0
RUN_SECONDS = 240


class NodeLoggingTeacher(ScriptedTeacher):
    """Writes which node served each request (one line each, appended), then answers from the script."""

    def __init__(self, log: str, name: str) -> None:
        super().__init__(SCRIPT, n=2, name=name, delay_s=REQUEST_SECONDS)
        self.log = log

    async def sample(self, messages: list[dict[str, str]], *, n: int, seed: int, request_id: str) -> TeacherResponse:
        with open(self.log, "a") as out:
            out.write(f"{ray.get_runtime_context().get_node_id()}\t{request_id}\n")
        return await super().sample(messages, n=n, seed=seed, request_id=request_id)


def _served(log: Path) -> list[tuple[str, str]]:
    if not log.exists():
        return []
    return [tuple(line.split("\t")) for line in log.read_text().splitlines() if "\t" in line]  # type: ignore[misc]


def _node_ids() -> dict[str, str]:
    ids = {}
    for info in ray.nodes():
        for key in ("node_a", "node_b"):
            if info["Alive"] and key in info["Resources"]:
                ids[key] = info["NodeID"]
    return ids


def drive(job: str, out: str, log: str, nodes_file: str) -> None:
    """The run's driver, in its own process (this file run as a script): Ray reads RAY_AUTH_MODE once,
    when it is imported, so the test process (local Ray, other tests) cannot be this cluster's driver."""
    ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    deadline = time.monotonic() + 60
    while len(_node_ids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray.cluster_resources()["GPU"] == 4
    Path(nodes_file).write_text(json.dumps(_node_ids()))

    def factory(name, config):  # type: ignore[no-untyped-def]
        assert config.tensor_parallel_size == 2
        return lambda: NodeLoggingTeacher(log, name)

    run_job(job, out, teacher_factory=factory)


@pytest.fixture
def two_nodes():
    env = token_env()
    port = free_port()
    nodes = []
    try:
        nodes.append(start_node(env, head_port=port, head=True, gpus=2, cpus=4, resources={"node_a": 1}))
        nodes.append(start_node(env, head_port=port, head=False, gpus=2, cpus=4, resources={"node_b": 1}))
        yield nodes, {**env, "RAY_ADDRESS": f"127.0.0.1:{port}", "DISTILLERY_RAY_DASHBOARD": "0"}
    finally:
        for node in reversed(nodes):
            node.stop()


def test_losing_a_node_mid_run_loses_and_repeats_nothing(tmp_path, two_nodes):
    nodes, env = two_nodes
    rows = [
        {"id": f"p{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1), "domain": "math"} for i in range(PROMPTS)
    ]
    write_jsonl(tmp_path / "prompts.jsonl", rows)
    text = job_yaml("prompts.jsonl", shard_size=1, max_rounds=1, n=2)
    text = text.replace("    device: cpu\n", "    device: gpu\n    tensor_parallel_size: 2\n    replicas: 2\n")
    (tmp_path / "job.yaml").write_text(text.replace("shards_in_flight: 2", "shards_in_flight: 1"))
    log, nodes_file, run_dir = tmp_path / "served.tsv", tmp_path / "nodes.json", tmp_path / "run"
    driver = subprocess.Popen(
        [sys.executable, __file__, str(tmp_path / "job.yaml"), str(run_dir), str(log), str(nodes_file)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + RUN_SECONDS
        # Wait until both replicas serve, then until node b starts another request: kill it mid-shard.
        while time.monotonic() < deadline and driver.poll() is None:
            served = _served(log)
            ids = json.loads(nodes_file.read_text()) if nodes_file.exists() else {}
            if ids and {n for n, _ in served} == set(ids.values()) and served[-1][0] == ids["node_b"]:
                break
            time.sleep(0.05)
        assert driver.poll() is None, driver.communicate()[0][-3000:]
        in_flight_on_b = _served(log)[-1][1]
        # The raylet and its workers at once: a worker that outlived its raylet by the request's one
        # second could still answer (actor replies go to the caller directly), and nothing would be redone.
        nodes[1].lose()
        killed_at = len(_served(log))
        output, _ = driver.communicate(timeout=RUN_SECONDS)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 0, output[-3000:]

    con = duckdb.connect()
    samples = f"read_parquet('{run_dir}/samples/*.parquet')"
    assert con.execute(f"SELECT count(*), count(DISTINCT id), count(DISTINCT prompt_id) FROM {samples}").fetchone() == (
        PROMPTS * 2,
        PROMPTS * 2,
        PROMPTS,
    )
    assert len(list((run_dir / "samples").glob("*.parquet"))) == PROMPTS
    assert con.execute(
        f"SELECT count(*) FROM read_parquet('{run_dir}/dead_letter/generate-*.parquet')"
    ).fetchone() == (0,)
    after = _served(log)[killed_at:]
    # the shard node b held when it died was done again, on node a; nothing ran on b afterwards
    assert (ids["node_a"], in_flight_on_b) in after
    assert {n for n, _ in after} == {ids["node_a"]}
    assert (run_dir / "dataset").exists()


if __name__ == "__main__":
    drive(*sys.argv[1:5])
