"""Streaming CPU stages: unit tasks on Ray produce what the in-process path produces, byte for byte;
the task pool keeps call order; the two-level centroid assignment keeps the clustered search's recall."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import ray

from distillery.operators.dedup.neighbors import NeighborSearch
from distillery.pipeline.run_directory import RunDirectory
from distillery.pipeline.runtime.cpu_tasks import run_tasks
from distillery.pipeline.stages.ingest import run_ingest
from distillery.schemas.dedup_config import VectorSearchConfig
from distillery.schemas.job import JobConfig, parse_job

# Ray workers cannot import modules from tests/: this module's task function travels by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _pid_after(delay_rank: int) -> tuple[int, int]:
    # Later calls finish first, so results arriving out of order must be put back in call order.
    import time

    time.sleep(0.05 * (3 - delay_rank))
    return delay_rank, os.getpid()


def test_task_pool_keeps_call_order_and_runs_in_workers(local_ray):
    results = run_tasks(_pid_after, [(k,) for k in range(4)])
    assert [rank for rank, _ in results] == [0, 1, 2, 3]
    assert all(pid != os.getpid() for _, pid in results)


def _job(tmp_path: Path) -> JobConfig:
    return parse_job(
        {
            "name": "t",
            "sources": [
                {"name": "a", "format": "jsonl", "path": "a.jsonl"},
                {"name": "b", "format": "jsonl", "path": "b.jsonl"},
                {"name": "c", "format": "jsonl", "path": "c.jsonl", "require_answer": False},
            ],
            "teachers": {"t": {"model": "m"}},
            "generation": {"teacher": "t", "shard_size": 3},
        },
        base_dir=tmp_path,
        origin="job",
    )


def _write_sources(tmp_path: Path) -> None:
    a = [{"problem": f"What is {i}+1?", "answer": str(i + 1)} for i in range(7)]
    a += [{"problem": "What is 0+1?  ", "answer": "1"}, {"problem": "no answer"}]
    b = [{"problem": f"What is {i}*2?", "answer": str(2 * i)} for i in range(4)]
    b.insert(2, {"problem": "What is 1*2?", "answer": "2"})
    lines = {"a": [json.dumps(r) for r in a], "b": [json.dumps(r) for r in b]}
    lines["b"].insert(3, "{not json")
    lines["c"] = [json.dumps({"problem": f"Say hello {i}"}) for i in range(2)]
    for name, rows in lines.items():
        (tmp_path / f"{name}.jsonl").write_text("\n".join(rows) + "\n")


def _ingest_outputs(run: RunDirectory) -> dict[str, object]:
    manifest = json.loads(run.manifest.read_text())
    shards = {s: pq.read_table(run.prompt_shard(s)).to_pylist() for s in manifest["shards"]}
    return {"manifest": manifest, "shards": shards, "dead": pq.read_table(run.ingest_dead_letter).to_pylist()}


def test_ingest_as_tasks_matches_ingest_in_process(tmp_path, local_ray):
    _write_sources(tmp_path)
    job = _job(tmp_path)
    on_ray = RunDirectory(tmp_path / "on_ray")
    on_ray.bind(job)
    run_ingest(job, tmp_path, on_ray)
    ray_outputs = _ingest_outputs(on_ray)

    ray.shutdown()
    try:
        local = RunDirectory(tmp_path / "local")
        local.bind(job)
        run_ingest(job, tmp_path, local)
        local_outputs = _ingest_outputs(local)
    finally:
        ray.init(num_cpus=4, num_gpus=0, include_dashboard=False, log_to_driver=False)

    assert ray_outputs == local_outputs
    manifest = ray_outputs["manifest"]
    # 7 + 4 + 2 prompts, shards of 3 spanning sources; the staging folder is gone.
    assert manifest["prompts"] == 13 and manifest["shards"] == [f"part-{k:05d}" for k in range(5)]
    sizes = [len(rows) for rows in ray_outputs["shards"].values()]
    assert sizes == [3, 3, 3, 3, 1]
    reasons = [(d["source"], d["row"], d["reason"].split(" (")[0]) for d in ray_outputs["dead"]]
    assert [r[:2] for r in reasons] == [("a", 7), ("a", 8), ("b", 2), ("b", 3)]
    assert reasons[0][2] == "duplicate of a row 0" and reasons[2][2] == "duplicate of b row 1"
    assert json.loads(ray_outputs["dead"][2]["raw"]) == {"problem": "What is 1*2?", "answer": "2"}
    assert not list(on_ray.path.glob(".*.staging"))


def _planted(n: int, pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((n // 200, 64)).astype(np.float32)
    vectors = topics[rng.integers(0, len(topics), n)] + 0.8 * rng.standard_normal((n, 64)).astype(np.float32)
    chosen = rng.choice(n, size=2 * pairs, replace=False)
    originals, copies = chosen[:pairs], chosen[pairs:]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    noise = rng.standard_normal((pairs, 64)).astype(np.float32) * 0.02
    vectors[copies] = vectors[originals] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, originals, copies


def test_two_level_assignment_finds_the_pairs_the_flat_one_finds():
    vectors, originals, copies = _planted(20_000, 200, seed=3)
    planted = {(max(a, b), min(a, b)) for a, b in zip(originals.tolist(), copies.tolist(), strict=True)}
    found = {}
    for name, minimum in (("flat", 10**6), ("two_level", 16)):
        search = NeighborSearch(
            VectorSearchConfig(exact_max_rows=1000, rows_per_cluster=50, two_level_min_clusters=minimum)
        )
        links = search.links(vectors, 0.95)
        found[name] = set(zip(links.item.tolist(), links.earlier.tolist(), strict=True)) & planted
        assert ("two-level" in search.plan) == (name == "two_level")
    assert len(found["flat"]) >= 0.99 * len(planted)
    assert len(found["two_level"]) >= 0.98 * len(planted)
