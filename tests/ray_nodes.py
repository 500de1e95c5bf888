"""Real Ray nodes for tests: `ray start --block` on loopback, each with its own temp dir and ports,
token authentication on. Each node is a process group the test owns; stopping a node kills that
group only (`ray stop` would stop every Ray on the machine, other tests' too)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).with_name("ray"))
NODE_START_SECONDS = 90
# The ports one node listens on besides the head's GCS port; two nodes on one machine must not share them.
NODE_PORT_FLAGS = (
    "--node-manager-port",
    "--object-manager-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--metrics-export-port",
    "--runtime-env-agent-port",
)
WORKER_PORTS = 40


_HANDED_OUT: set[int] = set()
"""Ports given out in this process: a port is free until its node binds it, so without this a later
pick (a worker port range) could hand out a port already meant for another component."""


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def free_port_range(count: int) -> int:
    """The first of `count` consecutive free ports, none of them handed out before."""
    while True:
        first = free_port()
        ports = range(first + 1, first + count)
        if first + count < 65000 and all(p not in _HANDED_OUT and _is_free(p) for p in ports):
            _HANDED_OUT.update(ports)
            return first


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def token_env() -> dict[str, str]:
    """The environment of a token-authenticated cluster: `ray get-auth-token --generate` makes the
    token once (~/.ray/auth_token) and reuses it after, as the README says."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_DEDUP_LOGS": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=60)
    return env


@dataclass
class RayNode:
    process: subprocess.Popen
    temp_dir: Path
    resources: dict[str, float] = field(default_factory=dict)

    def raylet(self) -> psutil.Process:
        for child in psutil.Process(self.process.pid).children(recursive=True):
            if child.name() == "raylet":
                return child
        raise LookupError("this node has no raylet")

    def lose(self) -> None:
        """The node is gone at once: its raylet and every worker on it (the raylet's descendants) are
        killed together, so no call running there can still finish and answer."""
        processes = [self.raylet()]
        processes += processes[0].children(recursive=True)
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=20)
        # Processes a killed raylet left behind (workers) are in the group too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_node(
    env: dict[str, str], *, head_port: int, head: bool, gpus: int, cpus: int, resources: dict[str, float]
) -> RayNode:
    # Short: Ray's socket paths live under it and must fit in 107 characters.
    temp_dir = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    command = [RAY, "start", "--block", "--node-ip-address", "127.0.0.1", "--temp-dir", str(temp_dir)]
    command += ["--head", "--port", str(head_port), "--include-dashboard", "false"] if head else [
        "--address", f"127.0.0.1:{head_port}"
    ]
    command += ["--num-cpus", str(cpus), "--num-gpus", str(gpus), "--resources", json.dumps(resources)]
    for flag in NODE_PORT_FLAGS:
        command += [flag, str(free_port())]
    first = free_port_range(WORKER_PORTS)
    command += ["--min-worker-port", str(first), "--max-worker-port", str(first + WORKER_PORTS - 1)]
    if head:
        command += ["--ray-client-server-port", str(free_port())]
    log = (temp_dir / "start.log").open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    node = RayNode(process, temp_dir, resources)
    deadline = time.monotonic() + NODE_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = (temp_dir / "start.log").read_text()
            node.stop()
            raise RuntimeError(f"ray start failed: {text[-2000:]}")
        try:
            node.raylet()
            return node
        except LookupError:
            time.sleep(0.5)
    node.stop()
    raise TimeoutError("ray start did not bring up a raylet")
