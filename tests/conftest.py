from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import ray.cloudpickle

sys.path.insert(0, str(Path(__file__).parent))
import scripted_teacher

# Ray workers cannot import modules from tests/: ship the test double by value.
ray.cloudpickle.register_pickle_by_value(scripted_teacher)
os.environ.setdefault("DISTILLERY_RAY_DASHBOARD", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

MATH_ROWS = [
    {"id": "q1", "problem": "What is 2 + 3?", "answer": "5", "domain": "math"},
    {"id": "q2", "problem": "What is 10 - 4?", "answer": "6", "domain": "math"},
    {"id": "q3", "problem": "What is 6 times 7?", "answer": "42", "domain": "math"},
    {"id": "q4", "problem": "What is 1 + 1?", "answer": "2", "domain": "math"},
    {"id": "q5", "problem": "What is 9 + 1?", "answer": "10", "domain": "math"},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def job_yaml(
    data_file: str,
    *,
    model: str = "scripted",
    shard_size: int = 2,
    max_rounds: int = 2,
    keep: int = 1,
    n: int = 4,
    max_tokens: int = 64,
    extra: str = "",
) -> str:
    return f"""
name: test
sources:
  - name: src
    format: jsonl
    path: {data_file}
    fields: {{problem: problem, answer: answer, domain: domain, id: id}}
teachers:
  t:
    backend: vllm
    model: {model}
    dtype: bfloat16
    max_model_len: 1024
    gpu_memory_utilization: 0.3
    enforce_eager: true
    device: cpu
    prompt_template: "{{problem}}\\nPut your final answer within \\\\boxed{{}}."
    sampling: {{n: {n}, temperature: 0.7, top_p: 0.95, max_tokens: {max_tokens}, seed: 0}}
generation:
  teacher: t
  keep_per_prompt: {keep}
  max_rounds: {max_rounds}
  shard_size: {shard_size}
  shards_in_flight: 2
verification:
  workers: 1
  timeout_s: 10
{extra}"""


@pytest.fixture
def math_job(tmp_path: Path) -> Path:
    write_jsonl(tmp_path / "prompts.jsonl", MATH_ROWS)
    job = tmp_path / "job.yaml"
    job.write_text(job_yaml("prompts.jsonl"))
    return job


@pytest.fixture
def local_ray():
    """A local Ray instance for tests that run stages (4 logical CPUs, no GPUs). It is shared by the
    tests that ask for it (starting Ray takes ~15 s); a test that needs another shape shuts it down."""
    if ray.is_initialized() and ray.cluster_resources().get("GPU", 0) > 0:
        ray.shutdown()
    if not ray.is_initialized():
        ray.init(num_cpus=4, num_gpus=0, include_dashboard=False, log_to_driver=False)
    yield


@pytest.fixture(scope="session")
def demo_like_run(tmp_path_factory) -> Path:
    """A demo-shaped run directory (tests/demo_like_run.py), made once for the tests that read it."""
    import demo_like_run as maker

    if ray.is_initialized() and ray.cluster_resources().get("GPU", 0) > 0:
        ray.shutdown()
    if not ray.is_initialized():
        ray.init(num_cpus=4, num_gpus=0, include_dashboard=False, log_to_driver=False)
    return maker.make_run(tmp_path_factory.mktemp("demo_like"))


def pytest_sessionfinish(session, exitstatus):
    if ray.is_initialized():
        ray.shutdown()
