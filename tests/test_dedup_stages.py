"""Stages 2 and 5 on a real run directory (ingest writes the prompt shards), with the real
embedding model: what is dropped and why, the audit table, and resume from the files on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import job_yaml, write_jsonl

from distillery.pipeline.run_directory import RunDirectory, Units
from distillery.pipeline.runtime.embedding_workers import EmbeddingUnit, read_embeddings, run_embedding_units
from distillery.pipeline.stages import response_filter
from distillery.pipeline.stages.ingest import run_ingest
from distillery.pipeline.stages.prompt_filter import run_prompt_filter
from distillery.pipeline.stages.response_filter import run_response_filter
from distillery.schemas.arrow import to_table
from distillery.schemas.dedup_config import EmbedderConfig
from distillery.schemas.job import load_job
from distillery.schemas.records import Generation, prompt_id

BENCHMARK = [
    {
        "id": "b1",
        "problem": "A bakery sells 48 cupcakes in the morning and 36 in the afternoon. Each cupcake costs "
        "$3. How much money does the bakery make that day?",
    },
    {
        "id": "b3",
        "problem": "How many ways can 6 distinct books be arranged on a shelf so that two particular books "
        "are never next to each other?",
    },
]
TRAIN = "A train travels 240 miles in 4 hours. How fast is it going?"
PROMPTS = [
    {"id": "q1", "problem": TRAIN, "answer": "60"},
    {"id": "q2", "problem": TRAIN.upper(), "answer": None},  # exact duplicate (case outside math)
    {"id": "q3", "problem": "A train travels 240 miles in 4 hours. How fast is the train going?", "answer": None},
    {
        "id": "q4",
        "problem": "In the morning a bakery sold 48 cupcakes, and in the afternoon it sold another 36. If "
        "every cupcake is priced at $3, what were the bakery's total earnings for the day?",
        "answer": "252",
    },
    {"id": "q5", "problem": "Quick one: " + BENCHMARK[1]["problem"], "answer": "480"},
    {"id": "q6", "problem": "What is the greatest common divisor of 84 and 126?", "answer": "42"},
    {"id": "q7", "problem": "A train travels 250 miles in 4 hours. How fast is it going?", "answer": "62.5"},
]


def make_run(tmp_path: Path, extra: str) -> tuple[RunDirectory, Path]:
    write_jsonl(tmp_path / "toybench.jsonl", BENCHMARK)
    write_jsonl(tmp_path / "prompts.jsonl", [{**p, "domain": "math"} for p in PROMPTS])
    job_path = tmp_path / "job.yaml"
    # Rows without a gold answer are kept: the keep rule prefers those with one.
    text = job_yaml("prompts.jsonl", shard_size=3, extra=extra).replace(
        "    fields:", "    require_answer: false\n    fields:"
    )
    job_path.write_text(text)
    job = load_job(job_path)
    run = RunDirectory(tmp_path / "run")
    run.bind(job)
    run_ingest(job, tmp_path, run)
    return run, job_path


DECONTAM = """
decontamination:
  benchmarks: ["toybench.jsonl:problem"]
"""


def pid(problem: str) -> str:
    return prompt_id(problem, "src")


def test_prompt_filter_drops_duplicates_and_contaminated_prompts_and_resumes(tmp_path: Path):
    run, job_path = make_run(tmp_path, DECONTAM)
    job = load_job(job_path)
    result = run_prompt_filter(job, run, tmp_path)
    dropped = {r["id"]: r for r in pq.read_table(run.path / "prompt_filter" / "dropped.parquet").to_pylist()}
    by_row = {p["id"]: pid(p["problem"]) for p in PROMPTS}
    assert result.excluded_prompts == set(dropped) == {by_row[q] for q in ("q2", "q3", "q4", "q5")}
    # q1 represents its group: it has a gold answer, q2 and q3 do not.
    assert (dropped[by_row["q2"]]["reason"], dropped[by_row["q2"]]["duplicate_of"]) == ("exact_duplicate", by_row["q1"])
    assert (dropped[by_row["q3"]]["reason"], dropped[by_row["q3"]]["duplicate_of"]) == ("near_duplicate", by_row["q1"])
    assert dropped[by_row["q3"]]["similarity"] >= 0.95
    q4, q5 = dropped[by_row["q4"]], dropped[by_row["q5"]]
    assert (q4["reason"], q4["benchmark"], q4["benchmark_item"], q4["detector"]) == (
        "contaminated",
        "toybench",
        "b1",
        "embedding",
    )
    assert (q5["reason"], q5["benchmark_item"], q5["detector"]) == ("contaminated", "b3", "ngram")
    audit = pq.read_table(run.path / "decontam_audit" / "prompts.parquet").to_pylist()
    assert {(r["item_id"], r["detector"], r["benchmark_item"]) for r in audit} >= {
        (by_row["q4"], "embedding", "b1"),
        (by_row["q5"], "ngram", "b3"),
    }
    assert all(r["item_text"] and r["benchmark_text"] and r["evidence"] for r in audit)
    counters = json.loads((run.path / "prompt_filter" / "counters.json").read_text())
    assert [(c["name"], c["dropped"]) for c in counters] == [
        ("exact_dedup", 1),
        ("decontamination", 2),
        ("near_dedup", 1),
    ]

    # Done is the dropped file: a rerun only reads it back.
    units = sorted((run.path / "prompt_filter" / "embeddings").rglob("*.parquet"))
    assert [u.name for u in units] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    units += list((run.path / "decontam_audit" / "benchmark_embeddings").glob("*.parquet"))
    assert len(units) == 4
    stamps = [u.stat().st_mtime_ns for u in units]
    assert run_prompt_filter(job, run, tmp_path).excluded_prompts == result.excluded_prompts
    # Without it, the stage runs again on the embeddings already written, to the same table.
    first = (run.path / "prompt_filter" / "dropped.parquet").read_bytes()
    (run.path / "prompt_filter" / "dropped.parquet").unlink()
    assert run_prompt_filter(job, run, tmp_path).excluded_prompts == result.excluded_prompts
    assert [u.stat().st_mtime_ns for u in units] == stamps
    assert pq.read_table(run.path / "prompt_filter" / "dropped.parquet").equals(pq.read_table(pa.BufferReader(first)))


def sample(prompt: str, index: int, reasoning: str, answer: str, *, selected: bool = False) -> Generation:
    return Generation(
        id=f"{prompt}-r0-{index}",
        prompt_id=prompt,
        round=0,
        index=index,
        source="src",
        domain="math",
        teacher="t",
        model="m",
        sampling="{}",
        seed=0,
        text=f"<think>{reasoning}</think>{answer}",
        reasoning=reasoning,
        answer=answer,
        think_well_formed=True,
        prompt_tokens=10,
        completion_tokens=20,
        finish_reason="stop",
        accepted=True,
        selected=selected,
    )


@pytest.mark.parametrize("on_ray", [False, True], ids=["in-process", "ray-tasks"])
def test_response_filter_drops_near_duplicate_and_contaminated_samples(
    tmp_path: Path, on_ray: bool, request, monkeypatch: pytest.MonkeyPatch
):
    embedder = ""
    if on_ray:
        # The same stage with its per-file and global matching as Ray tasks and its embedding on an
        # actor (what a cluster run does).
        request.getfixturevalue("local_ray")
        embedder = "  embedder: {actors: 1}\n"
    read_in_driver: list[int] = []
    reader = response_filter._accepted_rows

    def recording(path: str, columns: list[str], rows: np.ndarray) -> pa.Table:
        read_in_driver.append(len(rows))
        return reader(path, columns, rows)

    # Only the driver's module is patched: Ray's workers import their own.
    monkeypatch.setattr(response_filter, "_accepted_rows", recording)
    run, job_path = make_run(tmp_path, DECONTAM + "dedup:\n  responses: {across_corpus_threshold: 0.95}\n" + embedder)
    job = load_job(job_path)
    q1, q3, q6, q7 = (pid(PROMPTS[k]["problem"]) for k in (0, 2, 5, 6))
    samples = [
        sample(
            q1,
            0,
            "Speed is distance over time. 240 / 4 = 60. So the train goes 60 miles per hour.",
            "The train goes 60 miles per hour.",
            selected=True,
        ),
        sample(
            q1,
            1,
            "Speed is distance divided by time: 240 / 4 = 60. So the train goes 60 miles per hour.",
            "The train goes 60 miles per hour.",
        ),
        sample(
            q1,
            2,
            "In one hour the train covers a quarter of the 240 miles, which is 60 miles. That is its speed.",
            "60 miles per hour.",
        ),
        sample(
            q6,
            0,
            "84 = 2^2 * 3 * 7 and 126 = 2 * 3^2 * 7, so the gcd is 2 * 3 * 7 = 42.",
            "42. A harder one to try next: " + BENCHMARK[1]["problem"],
            selected=True,
        ),
        sample(q7, 0, "250 / 4 = 62.5.", "The train goes 62.5 miles per hour.", selected=True),
    ]
    rejected = sample(q3, 1, "240 / 4 = 50", "50")
    rejected.accepted = False
    Units.commit(to_table(samples[:3], Generation), run.samples / "part-00000-t.parquet")
    Units.commit(
        to_table([*samples[3:], sample(q3, 0, "240 / 4 = 60.", "It goes 60 miles per hour."), rejected], Generation),
        run.samples / "part-00001-t.parquet",
    )
    result = run_response_filter(job, run, tmp_path)
    # On Ray no sample text is read in the driver: the actor reads the texts it embeds.
    assert (read_in_driver == []) == on_ray
    dropped = {r["id"]: r for r in pq.read_table(run.path / "response_filter" / "dropped.parquet").to_pylist()}
    assert result.excluded_samples == set(dropped)
    assert {k: (r["reason"], r["duplicate_of"], r["benchmark_item"]) for k, r in dropped.items()} == {
        f"{q1}-r0-1": ("near_duplicate_in_prompt", f"{q1}-r0-0", None),
        f"{q6}-r0-0": ("contaminated", None, "b3"),
        # q3 is q1 reworded with the same answer; q7 has other numbers and stays.
        f"{q3}-r0-0": ("near_duplicate_in_corpus", f"{q1}-r0-0", None),
    }
    kept = pq.read_table(run.path / "response_filter" / "kept.parquet").column("id").to_pylist()
    assert sorted(kept) == sorted([f"{q1}-r0-0", f"{q1}-r0-2", f"{q7}-r0-0"])
    (audit,) = pq.read_table(run.path / "decontam_audit" / "responses.parquet").to_pylist()
    assert (audit["item_id"], audit["detector"], audit["benchmark_item"]) == (f"{q6}-r0-0", "ngram", "b3")
    assert "A harder one to try next" in audit["item_text"]
    assert run_response_filter(job, run, tmp_path).excluded_samples == result.excluded_samples


def test_embedding_units_on_ray_actors_match_the_driver(tmp_path: Path, local_ray):
    texts = {"u1": ["What is 2 + 3?", "Name a prime above 10."], "u2": ["How many legs has a spider?"]}

    def unit(folder: str, name: str) -> EmbeddingUnit:
        return EmbeddingUnit(
            tmp_path / folder / f"{name}.parquet",
            lambda: ([f"{name}-{k}" for k in range(len(texts[name]))], texts[name]),
        )

    on_actors = [unit("ray", name) for name in texts]
    in_driver = [unit("driver", name) for name in texts]
    assert run_embedding_units(on_actors, EmbedderConfig(actors=1)) == 2
    assert run_embedding_units(in_driver, EmbedderConfig()) == 2
    assert run_embedding_units(on_actors, EmbedderConfig(actors=1)) == 0  # done units are skipped
    ray_ids, ray_vectors = read_embeddings([u.output for u in on_actors])
    ids, vectors = read_embeddings([u.output for u in in_driver])
    assert ray_ids == ids == ["u1-0", "u1-1", "u2-0"]
    np.testing.assert_allclose(ray_vectors, vectors, atol=1e-5)
    assert pq.read_schema(on_actors[0].output).metadata[b"distillery.embedding_model"] == b"bundled:all-minilm-l6-v2"


@pytest.mark.parametrize(
    "section", ["dedup: {prompts: {threshold: 1.5}}", "decontamination: {benchmarks: [nope.jsonl]}"]
)
def test_bad_sections_are_job_file_errors(tmp_path: Path, section: str):
    from distillery.schemas.job import JobFileError

    write_jsonl(tmp_path / "prompts.jsonl", PROMPTS)
    job_path = tmp_path / "job.yaml"
    job_path.write_text(job_yaml("prompts.jsonl", extra=section))
    with pytest.raises(JobFileError, match=r"dedup|decontamination"):
        load_job(job_path)
