"""The replay teacher: recorded generations (OpenR1-Math style, one row per prompt with a list of
responses; NeMo-Skills style, one row per response) through the real run on Ray, no engine."""

from __future__ import annotations

import asyncio

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_jsonl

from distillery.operators.teachers.replay import RecordedGenerations, ReplayTeacher
from distillery.pipeline.runner import run_job
from distillery.schemas.job import JobFileError, load_job

OPENR1_ROWS = [
    {
        "problem": "What is 2 + 3?",
        "answer": "5",
        "generations": ["<think>\n2 plus 3 is 5.\n</think>\n\n\\boxed{5}", "<think>\nhm\n</think>\n\n\\boxed{6}"],
        "finish_reasons": ["stop", "stop"],
    },
    {
        "problem": "What is 6 times 7?",
        "answer": "42",
        "generations": ["<think>\n6*7\n</think>\n\n\\boxed{42}", "<think>\n6*7=42 and then"],
        "finish_reasons": ["stop", "length"],
    },
    {"problem": "What is 1 + 1?", "answer": "2", "generations": [], "finish_reasons": []},
]


def replay_job(source: str, replay: str, *, layout: str, fields: str, source_fields: str) -> str:
    return f"""
name: replay
sources:
  - name: dump
    format: {"parquet" if source.endswith(".parquet") else "jsonl"}
    path: {source}
    fields: {source_fields}
teachers:
  recorded:
    backend: replay
    path: "{replay}"
    layout: {layout}
    model: some-r1
    fields: {fields}
generation:
  teacher: recorded
  keep_per_prompt: 1
  max_rounds: 1
  shard_size: 2
verification:
  workers: 1
  timeout_s: 10
"""


def q(sql: str) -> list[tuple]:
    return duckdb.connect().execute(sql).fetchall()


def test_openr1_style_dump_is_verified_filtered_and_written(tmp_path, local_ray):
    write_jsonl(tmp_path / "openr1.jsonl", OPENR1_ROWS)
    job = tmp_path / "job.yaml"
    job.write_text(
        replay_job(
            "openr1.jsonl",
            "openr1.jsonl",
            layout="per_prompt",
            fields="{problem: problem, responses: generations, finish_reason: finish_reasons}",
            source_fields="{problem: problem, answer: answer}",
        )
    )
    run = run_job(job, str(tmp_path / "run")).run_dir
    samples = f"read_parquet('{run}/samples/*.parquet')"
    rows = q(f"SELECT text, model, finish_reason, accepted, selected, completion_tokens FROM {samples} ORDER BY id")
    texts = sorted(t for r in OPENR1_ROWS for t in r["generations"])
    assert sorted(r[0] for r in rows) == texts  # every recorded response, once, as it was written
    assert {r[1] for r in rows} == {"some-r1"} and all(r[5] >= 1 for r in rows)
    accepted = sorted(r[0] for r in rows if r[3])
    assert accepted == [OPENR1_ROWS[0]["generations"][0], OPENR1_ROWS[1]["generations"][0]]
    assert [r[2] for r in rows if r[0].endswith("and then")] == ["length"]
    dataset = q(
        f"SELECT p.problem, d.answer FROM read_parquet('{run}/dataset/*/*.parquet') d "
        f"JOIN read_parquet('{run}/prompts/*.parquet') p ON p.id = d.prompt_id ORDER BY 1"
    )
    assert dataset == [("What is 2 + 3?", "\\boxed{5}"), ("What is 6 times 7?", "\\boxed{42}")]
    dead = q(f"SELECT reason, failure FROM read_parquet('{run}/dead_letter/generate-*.parquet')")
    assert len(dead) == 1 and dead[0][1] == "permanent" and "no recorded response" in dead[0][0]


def test_nemo_skills_style_files_with_a_field_mapping(tmp_path, local_ray):
    prompts = [
        {"problem": "What is 10 - 4?", "expected_answer": "6"},
        {"problem": "What is 9 + 1?", "expected_answer": "10"},
    ]
    write_jsonl(tmp_path / "input.jsonl", prompts)
    for seed, answers in enumerate([("6", "10"), ("7", "10")]):
        table = pa.table(
            {
                "problem": [p["problem"] for p in prompts],
                "expected_answer": [p["expected_answer"] for p in prompts],
                "generation": [f"Working... so \\boxed{{{a}}}" for a in answers],
                "num_generated_tokens": [17, 18],
            }
        )
        pq.write_table(table, tmp_path / f"output-rs{seed}.parquet")
    job = tmp_path / "job.yaml"
    job.write_text(
        replay_job(
            "input.jsonl",
            "output-rs*.parquet",
            layout="per_response",
            fields="{problem: problem, response: generation, completion_tokens: num_generated_tokens}",
            source_fields="{problem: problem, answer: expected_answer}",
        )
    )
    run = run_job(job, str(tmp_path / "run")).run_dir
    samples = f"read_parquet('{run}/samples/*.parquet')"
    per_prompt = q(
        f"SELECT p.problem, list(s.answer ORDER BY s.index), list(s.accepted ORDER BY s.index), "
        f"list(s.completion_tokens ORDER BY s.index) FROM {samples} s "
        f"JOIN read_parquet('{run}/prompts/*.parquet') p ON p.id = s.prompt_id GROUP BY ALL ORDER BY 1"
    )
    # the files' responses in file order (rs0, rs1); the second 10 - 4 is wrong, so it is rejected
    assert per_prompt == [
        ("What is 10 - 4?", ["Working... so \\boxed{6}", "Working... so \\boxed{7}"], [True, False], [17, 17]),
        ("What is 9 + 1?", ["Working... so \\boxed{10}", "Working... so \\boxed{10}"], [True, True], [18, 18]),
    ]
    assert q(f"SELECT count(*) FROM read_parquet('{run}/dataset/*/*.parquet')") == [(2,)]


def test_rows_that_cannot_be_read_are_skipped_and_counted(tmp_path):
    path = tmp_path / "dump.jsonl"
    path.write_text('{"problem": "p", "generations": ["a", 3, "b"]}\nnot json\n{"generations": ["c"]}\n')
    job = tmp_path / "job.yaml"
    job.write_text(
        replay_job("dump.jsonl", "dump.jsonl", layout="per_prompt", fields="{}", source_fields="{answer: null}")
    )
    config = load_job(job).teachers["recorded"]
    recorded = RecordedGenerations(config)
    assert [r.text for r in recorded.responses("p")] == ["a", "b"] and recorded.skipped_rows == 2
    teacher = ReplayTeacher("recorded", config)
    first = asyncio.run(teacher.sample([{"role": "user", "content": " p "}], n=4, seed=0, request_id="x-r0"))
    later = asyncio.run(teacher.sample([{"role": "user", "content": "p"}], n=4, seed=0, request_id="x-r1"))
    assert [c.text for c in first.completions] == ["a", "b"] and later.completions == [] and later.error is None


def test_a_missing_replay_file_fails_validation(tmp_path):
    write_jsonl(tmp_path / "p.jsonl", OPENR1_ROWS)
    job = tmp_path / "job.yaml"
    job.write_text(replay_job("p.jsonl", "nothing-*.jsonl", layout="per_prompt", fields="{}", source_fields="{}"))
    with pytest.raises(JobFileError, match="replay file not found"):
        load_job(job)


def test_the_index_holds_hashes_and_locations_and_reads_texts_back_from_the_files(tmp_path):
    """A replica indexes the dump (a turn hash and a location per row) and reads a prompt's rows back
    when it is asked for them: Parquet through its row groups, JSONL by byte offset."""
    problems = [f"What is {i} + {i}?" for i in range(300)]
    long_text = "x" * 5000
    rows = [
        {"problem": p, "generation": f"{long_text} \\boxed{{{2 * i + k}}}", "rs": k}
        for k in range(2)
        for i, p in enumerate(problems)
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "dump.parquet", row_group_size=64)
    write_jsonl(tmp_path / "dump.jsonl", rows)
    write_jsonl(tmp_path / "p.jsonl", [{"problem": p, "answer": str(2 * i)} for i, p in enumerate(problems)])
    for dump in ("dump.parquet", "dump.jsonl"):
        job = tmp_path / "job.yaml"
        job.write_text(replay_job("p.jsonl", dump, layout="per_response", fields="{}", source_fields="{}"))
        recorded = RecordedGenerations(load_job(job).teachers["recorded"])
        # ~20 bytes a row of index; the 3 MB of texts stay in the file
        assert recorded.keys.nbytes + recorded.file_of.nbytes + recorded.location.nbytes == 600 * 20
        for i in (0, 1, 150, 299):
            texts = [r.text for r in recorded.responses(problems[i])]
            assert texts == [f"{long_text} \\boxed{{{2 * i}}}", f"{long_text} \\boxed{{{2 * i + 1}}}"], dump
        assert recorded.responses("What is 300 + 300?") == []
