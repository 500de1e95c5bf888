"""Stage 5, response filter: final decontamination and near-duplicate removal of accepted samples.

In order: decontamination of prompt + answer (n-grams over the full texts; embeddings and the
judge over the corpus text below), then near-duplicate samples of one prompt (keep a diverse set),
then near duplicates across the corpus (samples of *different* prompts). The representative of a
group is the first by (not selected, round, index) within a prompt and (not selected, prompt id,
round, index) across prompts, so the samples the dataset stage takes are preferred.

What is embedded, and why: a 10K-token trace costs about ten times a short text to embed on a CPU,
and MiniLM reads only its first 256 tokens anyway. So
- within a prompt, the trace slice: the opening of the reasoning (the approach taken) and its
  ending (how it concluded), about 250 tokens; samples of one prompt share the question, so the
  question would only add to every similarity;
- across the corpus, the question and the tail of the final answer: what makes two rows the same
  training example is the problem they solve and the result they reach.
Trace slices are only embedded for prompts with two or more accepted samples.

```
RUN/response_filter/embeddings/<kind>/<model key>/<samples file>.parquet  one unit per samples file
RUN/response_filter/kept.parquet       KeptResponse rows (accepted samples that survive)
RUN/response_filter/counters.json
RUN/response_filter/dropped.parquet    DroppedResponse rows; written last: done iff it exists
RUN/decontam_audit/responses.parquet   DecontamAudit rows
RUN/decontam_audit/benchmark_embeddings/   the benchmark items' embeddings, shared with stage 2
```
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillery.operators.counters import OperatorCounters
from distillery.operators.decontam.decontaminator import Decontaminator
from distillery.operators.dedup.deduplicator import keep_order
from distillery.operators.dedup.matching import CONTAMINATED, RowMatches, found_decontam_pass
from distillery.operators.dedup.neighbors import NeighborLinks, keep_first
from distillery.operators.teachers.base import Teacher
from distillery.pipeline.run_directory import RunDirectory
from distillery.pipeline.runtime.cpu_tasks import run_tasks
from distillery.pipeline.runtime.embedding_workers import (
    EmbeddingUnit,
    TextsReader,
    cached_encoder,
    embedder_key,
    run_embedding_units,
)
from distillery.pipeline.stages import filter_outputs
from distillery.pipeline.stages.base import Stage, StageContext, StageResult
from distillery.pipeline.stages.matching_tasks import (
    benchmark_matches,
    gather_vectors,
    near_duplicates_task,
    task_decontaminator,
)
from distillery.pipeline.stages.prompt_filter import build_judge, decontam_embedder
from distillery.schemas.arrow import arrow_schema, to_table
from distillery.schemas.dedup_config import DecontaminationConfig, EmbedderConfig
from distillery.schemas.dedup_records import DecontamAudit, DroppedResponse, KeptResponse
from distillery.schemas.job import JobConfig

log = logging.getLogger(__name__)
STAGE = "response_filter"
WITHIN_PROMPT = "near_duplicate_in_prompt"
ACROSS_CORPUS = "near_duplicate_in_corpus"
ACROSS_CORPUS_COUNTER = "across_corpus_dedup"
TRACE_HEAD_CHARS = 700
TRACE_TAIL_CHARS = 300
QUESTION_CHARS = 600
ANSWER_TAIL_CHARS = 400


def trace_slice(reasoning: str, answer: str) -> str:
    """What stands for a sample among its prompt's samples (see the module docstring)."""
    if len(reasoning) <= TRACE_HEAD_CHARS + TRACE_TAIL_CHARS:
        return reasoning or answer
    return f"{reasoning[:TRACE_HEAD_CHARS]} ... {reasoning[-TRACE_TAIL_CHARS:]}"


def corpus_text(question: str, answer: str) -> str:
    """What stands for a sample across the corpus (see the module docstring)."""
    return f"{question[:QUESTION_CHARS]}\n{answer[-ANSWER_TAIL_CHARS:]}"


class ResponseFilterStage(Stage):
    name = STAGE
    reads = ("samples", "journey", "prompts")

    def run(self, context: StageContext) -> StageResult:
        return run_response_filter(context.job, context.run, context.base_dir)


@dataclass
class _Accepted:
    """The accepted samples, row-aligned, as columns (ids as Arrow strings, the rest numpy): a few
    dozen bytes a sample, where Python lists of strings took hundreds. Texts are read per file when
    needed, never all at once."""

    ids: pa.Array
    prompt_ids: pa.Array
    rounds: np.ndarray
    indexes: np.ndarray
    selected: np.ndarray
    file_rows: list[tuple[int, int]]
    """(start, stop) of each samples file's rows."""

    def prompts_of_file(self, file: int) -> list[str]:
        start, stop = self.file_rows[file]
        return self.prompt_ids[start:stop].to_pylist()


_ACCEPTED_COLUMNS = {
    "id": pa.string(),
    "prompt_id": pa.string(),
    "round": pa.int64(),
    "index": pa.int64(),
    "selected": pa.bool_(),
}


def _read_accepted(files: Sequence[Path]) -> _Accepted:
    tables, file_rows, start = [], [], 0
    for path in files:
        table = pq.read_table(path, columns=[*_ACCEPTED_COLUMNS, "accepted"]).filter(pc.field("accepted"))
        tables.append(table.select(list(_ACCEPTED_COLUMNS)).cast(pa.schema(_ACCEPTED_COLUMNS)))
        file_rows.append((start, start + table.num_rows))
        start += table.num_rows
    columns = pa.concat_tables(tables) if tables else pa.schema(_ACCEPTED_COLUMNS).empty_table()

    def column(name: str) -> pa.Array:
        return columns.column(name).combine_chunks()

    return _Accepted(
        column("id"),
        column("prompt_id"),
        column("round").to_numpy(),
        column("index").to_numpy(),
        column("selected").to_numpy(zero_copy_only=False),
        file_rows,
    )


def _accepted_rows(path: str, columns: list[str], rows: np.ndarray) -> pa.Table:
    """`columns` of one samples file's accepted rows at `rows` (positions among its accepted rows)."""
    return pq.read_table(path, columns=["accepted", *columns]).filter(pc.field("accepted")).take(rows)


def corpus_texts_of(path: str, rows: np.ndarray, shards: list[Path]) -> tuple[list[str], list[str]]:
    """Embedding-unit reader: (ids, corpus texts) of one file's accepted rows at `rows`; `shards`:
    the prompt shards holding their questions."""
    table = _accepted_rows(path, ["id", "prompt_id", "answer"], rows)
    prompt_ids = table.column("prompt_id").to_pylist()
    questions = _questions(shards, prompt_ids)
    answers = table.column("answer").to_pylist()
    return table.column("id").to_pylist(), [
        corpus_text(questions[p], a) for p, a in zip(prompt_ids, answers, strict=True)
    ]


def trace_texts_of(path: str, rows: np.ndarray) -> tuple[list[str], list[str]]:
    """Embedding-unit reader: (ids, trace slices) of one file's accepted rows at `rows`."""
    table = _accepted_rows(path, ["id", "reasoning", "answer"], rows)
    pairs = zip(table.column("reasoning").to_pylist(), table.column("answer").to_pylist(), strict=True)
    return table.column("id").to_pylist(), [trace_slice(r, a) for r, a in pairs]


def _prompt_shards(run: RunDirectory) -> dict[str, int]:
    """Prompt id -> the index of its ingest shard (ids only: the questions stay on disk)."""
    shard_of: dict[str, int] = {}
    for index, shard in enumerate(run.prompt_shards()):
        ids = pq.read_table(run.prompt_shard(shard), columns=["id"]).column("id").to_pylist()
        shard_of.update(dict.fromkeys(ids, index))
    return shard_of


def _questions(shards: Sequence[Path], prompt_ids: Sequence[str]) -> dict[str, str]:
    """Prompt id -> problem for the given prompts, read from the shards that hold them."""
    wanted = pa.array(sorted(set(prompt_ids)), pa.string())
    questions: dict[str, str] = {}
    for shard in shards:
        table = pq.read_table(shard, columns=["id", "problem"]).filter(pc.is_in(pc.field("id"), wanted))
        questions.update(zip(table.column("id").to_pylist(), table.column("problem").to_pylist(), strict=True))
    return questions


class _PromptShards:
    """Which prompt shards hold the questions of each samples file's accepted rows (prompt ids
    only: whoever needs a file's questions reads them from those shards)."""

    def __init__(self, run: RunDirectory, accepted: _Accepted) -> None:
        self.accepted = accepted
        self.shard_paths = [run.prompt_shard(s) for s in run.prompt_shards()]
        self.shard_of = _prompt_shards(run)

    def missing(self) -> list[str]:
        return sorted(p for p in pc.unique(self.accepted.prompt_ids).to_pylist() if p not in self.shard_of)

    def shards_of_file(self, file: int) -> list[Path]:
        indexes = {self.shard_of[p] for p in self.accepted.prompts_of_file(file)}
        return [self.shard_paths[k] for k in sorted(indexes)]


def decontam_unit(
    config: DecontaminationConfig,
    base_dir: Path,
    benchmark_cache: Path,
    embedder: EmbedderConfig,
    path: str,
    shards: list[Path],
    embeddings: str | None,
) -> dict[int, tuple]:
    """Task: the benchmark matches of one file's accepted rows: n-grams over the full prompt and
    answer, and (with `embeddings`, that file's corpus embedding unit) the embedding detector, whose
    number check reads the question. `shards`: the prompt shards holding its prompts. Returns
    {row in the file: (matches, the text, the question)} for rows with a match only."""
    decontaminator = task_decontaminator(config, base_dir, benchmark_cache, embedder)
    table = pq.read_table(path, columns=["accepted", "id", "prompt_id", "answer"]).filter(pc.field("accepted"))
    prompt_ids = table.column("prompt_id").to_pylist()
    questions = _questions(shards, prompt_ids)
    texts = [f"{questions[p]}\n\n{a}" for p, a in zip(prompt_ids, table.column("answer").to_pylist(), strict=True)]
    found = benchmark_matches(
        decontaminator, texts, [questions[p] for p in prompt_ids], embeddings, table.column("id").to_pylist()
    )
    return {k: (matches, texts[k], questions[prompt_ids[k]]) for k, matches in enumerate(found) if matches}


def _embed(
    run: RunDirectory,
    files: Sequence[Path],
    accepted: _Accepted,
    kind: str,
    config: EmbedderConfig,
    wanted: np.ndarray,
    read: TextsReader,
    more_args: Callable[[int], tuple] = lambda file: (),
) -> dict[Path, tuple[Path, np.ndarray]]:
    """Embeds the rows marked in `wanted`, one unit per file: file -> (its embedding unit, the rows
    the unit holds); files without such rows have none. A unit's texts are read(path, its rows
    among the file's accepted rows, *more_args(file number)), where the unit is embedded."""
    folder = run.response_filter.embeddings(kind, embedder_key(config))
    units, parts = [], {}
    for file, (path, (start, stop)) in enumerate(zip(files, accepted.file_rows, strict=True)):
        rows = np.flatnonzero(wanted[start:stop])
        if not len(rows):
            continue
        # Named by table and file: a journey unit has its samples unit's name.
        units.append(
            EmbeddingUnit(folder / f"{path.parent.name}-{path.name}", read, (str(path), rows, *more_args(file)))
        )
        parts[path] = (units[-1].output, start + rows)
    run_embedding_units(units, config)
    return parts


def _within_prompt_links(
    vectors: np.ndarray, rows: np.ndarray, groups: np.ndarray, rank: np.ndarray, threshold: float
) -> NeighborLinks:
    """All pairs above threshold inside each group (groups are a prompt's few samples)."""
    members: dict[int, list[int]] = {}
    group_of = groups.tolist()
    for row in rows.tolist():
        members.setdefault(group_of[row], []).append(row)
    parts = []
    for group in members.values():
        if len(group) < 2:
            continue
        block = np.asarray(group, dtype=np.int64)
        sims = vectors[block] @ vectors[block].T
        later, first = np.nonzero((sims >= threshold) & (rank[block][:, None] > rank[block][None, :]))
        parts.append(NeighborLinks(block[later], block[first], sims[later, first].astype(np.float32)))
    return NeighborLinks.concat(parts)


def within_prompt_unit(
    embeddings: str, rows: np.ndarray, ids: pa.Array, groups: np.ndarray, rank: np.ndarray, threshold: float
) -> NeighborLinks:
    """The within-prompt links of one file's rows (a prompt's samples, and its journey traces, each
    sit in one file), from that file's embeddings; returned in the stage's row numbers. groups:
    each row's group code."""
    local = gather_vectors([embeddings], ids.to_pylist())
    links = _within_prompt_links(local, np.arange(len(ids)), groups, rank, threshold)
    return NeighborLinks(rows[links.item], rows[links.earlier], links.score)


def run_response_filter(
    job: JobConfig, run: RunDirectory, base_dir: Path, *, judge_teacher: Teacher | None = None
) -> StageResult:
    """Stage 5 over the accepted samples in `samples/`. Resumes: done iff
    `response_filter/dropped.parquet` exists; embedding files already written are reused."""
    output = run.response_filter
    finished = filter_outputs.finished(output, samples=True)
    if finished is not None:
        return finished

    dedup, decontam = job.dedup, job.decontamination
    # Journey traces (stage 4) are filtered with the samples; within a prompt they are compared only
    # with each other (a trace shares its opening with a rejected sample and its end with an accepted one).
    samples_files = run.samples_files()
    files = samples_files + run.journey_files()
    accepted = _read_accepted(files)
    n = len(accepted.ids)
    first_trace = accepted.file_rows[len(samples_files)][0] if len(files) > len(samples_files) else n
    # Prompt ids as dense codes in their sort order; a group is a prompt's samples, or its journey
    # traces: twice the prompt's code, plus one for traces.
    prompt_codes = np.asarray(pc.rank(accepted.prompt_ids, tiebreaker="dense"), dtype=np.int64)
    groups = 2 * prompt_codes + (np.arange(n) >= first_trace)
    shards = _PromptShards(run, accepted)
    orphans = shards.missing()
    if orphans:
        raise RuntimeError(f"{run.samples}: accepted samples of prompts missing from {run.prompts}: {orphans[:5]}")
    matches = RowMatches.of(n)
    audit: list[DecontamAudit] = []

    corpus_parts: dict[str, dict[Path, tuple[Path, np.ndarray]]] = {}

    def corpus_embeddings(config: EmbedderConfig) -> dict[Path, tuple[Path, np.ndarray]]:
        """Every accepted row's corpus embedding, one unit per file: (unit, the rows it holds)."""
        key = embedder_key(config)
        if key not in corpus_parts:
            corpus_parts[key] = _embed(
                run,
                files,
                accepted,
                "corpus",
                config,
                np.ones(n, bool),
                corpus_texts_of,
                lambda file: (shards.shards_of_file(file),),
            )
        return corpus_parts[key]

    if decontam.enabled and decontam.responses and decontam.benchmarks and n:
        model = decontam_embedder(decontam, dedup.embedder)
        # Built here first: it caches the benchmark embeddings the tasks read, and holds the judge.
        decontaminator = Decontaminator.from_config(
            decontam,
            encode=cached_encoder(run.benchmark_embeddings, model) if decontam.embedding.enabled else None,
            judge=build_judge(job, judge_teacher),
            base_dir=base_dir,
        )
        units = corpus_embeddings(model) if decontaminator.needs_vectors else {}
        # One task per file (a corpus of long traces is never held whole); texts come back only for
        # rows with evidence.
        per_file = run_tasks(
            decontam_unit,
            [
                (
                    decontam,
                    base_dir,
                    run.benchmark_embeddings,
                    model,
                    str(path),
                    shards.shards_of_file(k),
                    str(units[path][0]) if path in units else None,
                )
                for k, path in enumerate(files)
            ],
        )
        # Row -> (matches, the full text, the question), for the rows with a match only.
        hits = {
            start + k: hit
            for (start, _), file_hits in zip(accepted.file_rows, per_file, strict=True)
            for k, hit in file_hits.items()
        }
        # The judge is asked whether the question is the benchmark's problem.
        decided, decisions = found_decontam_pass(
            matches, decontaminator, {r: hit[0] for r, hit in hits.items()}, n, lambda r: hits[r][2]
        )
        decided_ids = accepted.ids.take(np.asarray(decided, dtype=np.int64)).to_pylist()
        audit = decontaminator.audit_rows(STAGE, decided_ids, decisions, lambda k: hits[decided[k]][1])

    if dedup.enabled and dedup.responses.within_prompt:
        alive = matches.alive
        alive_per_group = np.bincount(groups[alive], minlength=int(groups.max()) + 1 if n else 0)
        wanted = alive & (alive_per_group[groups] > 1)
        rank = keep_order(~accepted.selected, accepted.rounds, accepted.indexes)
        within = OperatorCounters("within_prompt_dedup")
        if wanted.any():
            # One task per file: the trace vectors are never gathered in the driver.
            parts = _embed(run, files, accepted, "trace", dedup.embedder, wanted, trace_texts_of)
            threshold = dedup.responses.within_prompt_threshold
            per_file = run_tasks(
                within_prompt_unit,
                [
                    (str(path), rows, accepted.ids.take(rows), groups[rows], rank[rows], threshold)
                    for path, rows in parts.values()
                ],
            )
            result = keep_first(n, NeighborLinks.concat(per_file), rank)
            matches.apply_duplicates(np.arange(n), result, WITHIN_PROMPT)
            for row in np.flatnonzero(wanted).tolist():
                if result.kept[row]:
                    within.keep()
                else:
                    within.drop(WITHIN_PROMPT)
        matches.counters.add(within)

    if dedup.enabled and dedup.responses.across_corpus and matches.alive.any():
        rank = keep_order(~accepted.selected, prompt_codes, accepted.rounds, accepted.indexes)
        rows = matches.alive_rows()
        alive_prompts = accepted.prompt_ids.take(rows)
        # The global view, in one task: the vectors of the rows alive, never the texts.
        ((result, counters),) = run_tasks(
            near_duplicates_task,
            [
                (
                    [str(unit) for unit, _ in corpus_embeddings(dedup.embedder).values()],
                    accepted.ids.take(rows),
                    rank[rows],
                    dedup.responses.across_corpus_threshold,
                    dedup.search,
                    ACROSS_CORPUS_COUNTER,
                    (list(map(str, shards.shard_paths)), alive_prompts) if dedup.responses.same_numbers else None,
                    alive_prompts,
                )
            ],
        )
        matches.apply_duplicates(rows, result, ACROSS_CORPUS)
        matches.counters.add(counters)

    alive_rows = matches.alive_rows()
    kept = pa.table(
        {"id": accepted.ids.take(alive_rows), "prompt_id": accepted.prompt_ids.take(alive_rows)},
        schema=arrow_schema(KeptResponse),
    )
    run.units.commit(kept, output.kept)
    return filter_outputs.commit(
        output, to_table(audit, DecontamAudit), _dropped_table(accepted, matches), matches.counters, samples=True
    )


def _dropped_table(accepted: _Accepted, matches: RowMatches) -> pa.Table:
    """The DroppedResponse rows of the dropped samples, built as columns: a contaminated row names
    its benchmark match, a duplicate the kept sample it duplicates."""
    rows = np.flatnonzero(~matches.alive)
    reasons = [matches.reason[r] for r in rows.tolist()]
    found = [
        decision.match if reason == CONTAMINATED and (decision := matches.contamination.get(r)) is not None else None
        for r, reason in zip(rows.tolist(), reasons, strict=True)
    ]
    duplicate_of = matches.duplicate_of[rows]
    has_duplicate = np.array([m is None for m in found], dtype=bool)
    representative = pa.array(np.where(has_duplicate, duplicate_of, 0), mask=~has_duplicate)
    similarity = np.where(has_duplicate, matches.score[rows], [m.score if m is not None else 0.0 for m in found])
    return pa.table(
        {
            "id": accepted.ids.take(rows),
            "prompt_id": accepted.prompt_ids.take(rows),
            "reason": pa.array(reasons, pa.string()),
            "duplicate_of": accepted.ids.take(representative),
            "similarity": similarity,
            "benchmark": [m.benchmark if m is not None else None for m in found],
            "benchmark_item": [m.item_id if m is not None else None for m in found],
            "detector": [m.detector if m is not None else None for m in found],
        },
        schema=arrow_schema(DroppedResponse),
    )
