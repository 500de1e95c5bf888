from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillery.operators.sources.readers import RowReadError, read_source
from distillery.operators.sources.rows import PromptBuilder
from distillery.pipeline.run_directory import RunDirectory
from distillery.pipeline.stages.ingest import run_ingest
from distillery.schemas.job import JobConfig, SourceConfig, parse_job
from distillery.schemas.records import DeadLetter, Prompt, prompt_id


def source(tmp_path: Path, **kw) -> SourceConfig:
    return SourceConfig.model_validate({"name": "s", **kw}, context={"base_dir": str(tmp_path)})


def test_jsonl_rows_with_field_mapping(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"q": "What is 1+1?", "gold": 2, "cat": "Math", "uid": 7}) + "\n")
    cfg = source(
        tmp_path,
        format="jsonl",
        path="a.jsonl",
        fields={"problem": "q", "answer": "gold", "domain": "cat", "id": "uid"},
    )
    rows = list(read_source(cfg, tmp_path))
    built = PromptBuilder(cfg).build(rows[0][1], rows[0][0])
    assert isinstance(built, Prompt)
    assert (built.problem, built.answer, built.domain, built.source_id, built.source_row) == (
        "What is 1+1?",
        "2",
        "math",
        "7",
        0,
    )
    assert built.id == prompt_id("What is 1+1?", "s")


def test_bad_rows_become_dead_letters_with_row_and_reason(tmp_path):
    lines = [
        json.dumps({"problem": "ok", "answer": "1"}).encode(),
        json.dumps({"answer": "1"}).encode(),
        json.dumps({"problem": "no gold"}).encode(),
        json.dumps({"problem": {"nested": 1}, "answer": "1"}).encode(),
        json.dumps({"problem": "   ", "answer": "1"}).encode(),
        b'{"problem": "cut off',
        b'{"problem": "\xff\xfe bad bytes", "answer": "1"}',
        json.dumps(["a", "list"]).encode(),
    ]
    (tmp_path / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    cfg = source(tmp_path, format="jsonl", path="a.jsonl")
    builder = PromptBuilder(cfg)
    results = {}
    for number, row in read_source(cfg, tmp_path):
        results[number] = row.reason if isinstance(row, RowReadError) else builder.build(row, number)
    assert isinstance(results[0], Prompt)
    reasons = {n: (r.reason if isinstance(r, DeadLetter) else r) for n, r in results.items() if n}
    assert reasons[1] == "missing problem (column 'problem')"
    assert reasons[2] == "missing gold answer (column 'answer')"
    assert reasons[3] == "problem (column 'problem') must be text, got dict"
    assert reasons[4] == "empty problem (column 'problem')"
    assert "invalid JSON" in reasons[5] and "a.jsonl" in reasons[5]
    assert "undecodable text" in reasons[6]
    assert "must be an object" in reasons[7]
    assert builder.counters.kept == 1 and builder.counters.dropped == 5


def test_answer_is_optional_when_not_required(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"problem": "Write a poem"}) + "\n")
    cfg = source(tmp_path, format="jsonl", path="a.jsonl", require_answer=False, domain="general")
    built = PromptBuilder(cfg).build(*reversed(next(iter(read_source(cfg, tmp_path)))))
    assert isinstance(built, Prompt) and built.answer is None and built.domain == "general"


def test_parquet_source_and_limit(tmp_path):
    pq.write_table(
        pa.table({"problem": [f"p{i}" for i in range(10)], "answer": [str(i) for i in range(10)]}),
        tmp_path / "a.parquet",
    )
    cfg = source(tmp_path, format="parquet", path="a.parquet", limit=3)
    assert [row["problem"] for _, row in read_source(cfg, tmp_path)] == ["p0", "p1", "p2"]


def test_hf_dataset_from_a_local_folder(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"question": ["What is 3+4?"], "final": ["7"]}).save_to_disk(str(tmp_path / "ds"))
    cfg = source(tmp_path, format="hf", dataset="ds", fields={"problem": "question", "answer": "final"})
    ((number, row),) = list(read_source(cfg, tmp_path))
    built = PromptBuilder(cfg).build(row, number)
    assert isinstance(built, Prompt) and built.answer == "7"


def test_source_config_errors(tmp_path):
    with pytest.raises(ValueError, match="needs `path: FILE`"):
        source(tmp_path, format="jsonl")
    with pytest.raises(ValueError, match="needs `dataset: NAME_OR_PATH`"):
        source(tmp_path, format="hf")


def _job(tmp_path: Path, shard_size: int) -> JobConfig:
    return parse_job(
        {
            "name": "t",
            "sources": [{"name": "a", "format": "jsonl", "path": "a.jsonl"}],
            "teachers": {"t": {"model": "m"}},
            "generation": {"teacher": "t", "shard_size": shard_size},
        },
        base_dir=tmp_path,
        origin="job",
    )


def test_ingest_shards_dead_letters_and_exact_duplicates(tmp_path):
    rows = [{"problem": f"What is {i}+1?", "answer": str(i + 1)} for i in range(5)]
    rows += [{"problem": "What is 0+1?  ", "answer": "1"}, {"problem": "x"}]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = RunDirectory(tmp_path / "run")
    job = _job(tmp_path, shard_size=2)
    run.bind(job)
    run_ingest(job, tmp_path, run)
    assert run.prompt_shards() == ["part-00000", "part-00001", "part-00002"]
    prompts = pa.concat_tables([pq.read_table(run.prompts / f"{s}.parquet") for s in run.prompt_shards()])
    assert prompts.num_rows == 5 and len(set(prompts["id"].to_pylist())) == 5
    dead = pq.read_table(run.dead_letter / "ingest.parquet").to_pylist()
    assert sorted((d["row"], d["reason"].split(" (")[0]) for d in dead) == [
        (5, "duplicate of a row 0"),
        (6, "missing gold answer"),
    ]
    assert json.loads(dead[0]["raw"])  # the offending row is kept
    manifest = json.loads(run.manifest.read_text())
    assert manifest["prompts"] == 5 and manifest["dead_letter"] == 2


def test_run_directory_refuses_another_job(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"problem": "p", "answer": "1"}) + "\n")
    run = RunDirectory(tmp_path / "run")
    run.bind(_job(tmp_path, shard_size=2))
    run.bind(_job(tmp_path, shard_size=2))  # the same job resumes
    from distillery.pipeline.run_directory import RunDirectoryError

    with pytest.raises(RunDirectoryError, match="different job"):
        run.bind(_job(tmp_path, shard_size=3))
