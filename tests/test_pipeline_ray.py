"""The pipeline on a local Ray instance with the scripted teacher: exact checks of the stage
outputs, resume and refusal. The same path with the real vLLM teacher is in test_teacher_integration.py."""

from __future__ import annotations

import time

import duckdb
import pytest
import ray
from conftest import job_yaml, write_jsonl
from scripted_teacher import scripted_factory

from distillery.pipeline.run_directory import RunDirectoryError
from distillery.pipeline.runner import run_job
from distillery.pipeline.runtime.placement import replica_options
from distillery.schemas.teacher_config import VLLMTeacherConfig

SCRIPT = {
    "2 + 3": [["<think>\nadd\n</think>\n\n\\boxed{5}", "\\boxed{6}"]],
    "10 - 4": [["The answer is 7."], ["The answer is 6."]],
    "6 times 7": [["\\boxed{42}<TRUNCATED>"]],
    "1 + 1": [["no idea"]],
    "9 + 1": [["#### 10"]],
}
ROWS = [
    {"id": "q1", "problem": "What is 2 + 3?", "answer": "5", "domain": "math"},
    {"id": "q2", "problem": "What is 10 - 4?", "answer": "6", "domain": "math"},
    {"id": "q3", "problem": "What is 6 times 7?", "answer": "42", "domain": "math"},
    {"id": "q4", "problem": "What is 1 + 1?", "answer": "2", "domain": "math"},
    {"id": "q5", "problem": "What is 9 + 1?", "answer": "10", "domain": "math"},
    {"id": "q6", "problem": "What is 8 + 8?", "domain": "math"},
]


def q(con, sql):
    return con.execute(sql).fetchall()


@pytest.fixture
def job(tmp_path):
    write_jsonl(tmp_path / "prompts.jsonl", ROWS)
    path = tmp_path / "job.yaml"
    path.write_text(job_yaml("prompts.jsonl", keep=1, max_rounds=2))
    return path


def test_pipeline_writes_every_stage(job, tmp_path, local_ray):
    result = run_job(job, str(tmp_path / "run"), teacher_factory=scripted_factory(SCRIPT))
    run = result.run_dir
    con = duckdb.connect()
    prompts = f"read_parquet('{run}/prompts/*.parquet')"
    samples = f"read_parquet('{run}/samples/*.parquet')"
    dataset = f"read_parquet('{run}/dataset/reasoning/*.parquet')"
    assert q(con, f"SELECT count(*) FROM {prompts}") == [(5,)]
    assert q(con, f"SELECT reason FROM read_parquet('{run}/dead_letter/*.parquet')") == [
        ("missing gold answer (column 'answer')",)
    ]
    # every generation is stored once, with its verdicts; rounds follow acceptance
    assert q(con, f"SELECT count(*), count(DISTINCT id) FROM {samples}") == [(32, 32)]
    per_prompt = dict(
        q(con, f"SELECT p.source_id, count(*) FROM {samples} s JOIN {prompts} p ON p.id = s.prompt_id GROUP BY ALL")
    )
    assert per_prompt == {"q1": 4, "q2": 8, "q3": 8, "q4": 8, "q5": 4}
    assert q(con, f"SELECT count(*) FROM {samples} WHERE len(verdicts) = 0") == [(0,)]
    reasons = dict(
        q(con, f"SELECT split_part(rejection_reason, ':', 1), count(*) FROM {samples} WHERE NOT selected GROUP BY ALL")
    )
    assert reasons == {"incorrect": 6, "filter": 8, "invalid": 8, "surplus": 7}
    rows = q(con, f"SELECT problem, answer, kind, pass_rate, messages[2].content FROM {dataset} ORDER BY problem")
    assert [r[0] for r in rows] == ["What is 10 - 4?", "What is 2 + 3?", "What is 9 + 1?"]
    assert rows[1][2:] == ("shortcut", 0.5, "<think>\nadd\n</think>\n\n\\boxed{5}")
    assert rows[0][3] == 0.5  # q2: 4 of its 8 samples were accepted, in round 1
    assert q(con, f"SELECT count(*) FROM {dataset} d JOIN {samples} s ON s.id = d.sample_id WHERE s.selected") == [(3,)]
    assert (run / "dataset" / "dataset_info.json").exists() and (run / "dataset" / "README.md").exists()
    assert (run / "job.yaml").exists()


def test_rerun_resumes_and_a_changed_job_is_refused(job, tmp_path, local_ray):
    out = str(tmp_path / "run")
    first = run_job(job, out, teacher_factory=scripted_factory(SCRIPT))
    assert first.report["generate"]["prompts_generated"] == 5
    parts = sorted(p.name for p in (first.run_dir / "samples").iterdir())
    # a lost shard is redone, the others are kept
    (first.run_dir / "samples" / parts[0]).unlink()
    again = run_job(job, out, teacher_factory=scripted_factory(SCRIPT))
    generated = again.report["generate"]
    assert (generated["prompts_generated"], generated["prompts_already_done"]) == (2, 3)
    assert sorted(p.name for p in (first.run_dir / "samples").iterdir()) == parts
    job.write_text(job.read_text().replace("max_rounds: 2", "max_rounds: 3"))
    with pytest.raises(RunDirectoryError, match="different job"):
        run_job(job, out, teacher_factory=scripted_factory(SCRIPT))


def test_a_replica_that_dies_is_restarted_and_its_shard_retried(tmp_path, local_ray):
    marker = tmp_path / "crashed-once"
    rows = [dict(r) for r in ROWS[:4]]
    rows[2]["problem"] += f" <CRASH:{marker}>"
    write_jsonl(tmp_path / "prompts.jsonl", rows)
    job = tmp_path / "job.yaml"
    job.write_text(job_yaml("prompts.jsonl", keep=1, max_rounds=2))
    result = run_job(job, str(tmp_path / "run"), teacher_factory=scripted_factory(SCRIPT))
    assert marker.exists()  # the replica process really died
    con = duckdb.connect()
    samples = f"read_parquet('{result.run_dir}/samples/*.parquet')"
    assert q(con, f"SELECT count(DISTINCT prompt_id), count(*), count(DISTINCT id) FROM {samples}") == [(4, 28, 28)]


def test_replica_placement_with_logical_gpus():
    """One GPU per replica, or a STRICT_PACK placement group of TP GPUs; no GPU on the CPU backend."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=8, num_gpus=4, include_dashboard=False, log_to_driver=False)
    try:
        assert replica_options(VLLMTeacherConfig(model="m", device="cpu"), 4) == {"num_cpus": 1.0, "num_gpus": 0}
        assert replica_options(VLLMTeacherConfig(model="m"), 0)["num_gpus"] == 0
        assert replica_options(VLLMTeacherConfig(model="m"), 4)["num_gpus"] == 1
        tp2 = [replica_options(VLLMTeacherConfig(model="m", tensor_parallel_size=2), 4) for _ in range(2)]
        groups = [o["scheduling_strategy"].placement_group for o in tp2]
        ray.get([g.ready() for g in groups], timeout=60)
        # two replicas x TP 2 hold all 4 GPUs (Ray's resource view catches up asynchronously)
        deadline = time.monotonic() + 20
        while ray.available_resources().get("GPU", 0) != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ray.available_resources().get("GPU", 0) == 0
        assert all(g.bundle_specs == [{"GPU": 1.0, "CPU": 1.0}] * 2 for g in groups)

        @ray.remote
        class Probe:
            def gpus(self) -> list[str]:
                return ray.get_runtime_context().get_accelerator_ids()["GPU"]

        opts = replica_options(VLLMTeacherConfig(model="m"), 4)
        ray.util.remove_placement_group(groups[0])
        probe = Probe.options(**opts).remote()
        assert len(ray.get(probe.gpus.remote(), timeout=60)) == 1
        with pytest.raises(ValueError, match="needs 8 GPUs"):
            replica_options(VLLMTeacherConfig(model="m", tensor_parallel_size=8), 4)
    finally:
        ray.shutdown()
