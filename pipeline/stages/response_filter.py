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

import bisect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillery.operators.counters import OperatorCounters
from distillery.operators.decontam.decontaminator import Decontaminator
from distillery.operators.dedup.deduplicator import NearDeduplicator, keep_order
from distillery.operators.dedup.matching import CONTAMINATED, RowMatches, near_pass
from distillery.operators.dedup.neighbors import NeighborLinks, keep_first
from distillery.operators.dedup.normalize import normalize_for_matching, number_signature
from distillery.operators.teachers.base import Teacher
from distillery.pipeline.run_directory import RunDirectory
from distillery.pipeline.runtime.cpu_tasks import run_tasks
from distillery.pipeline.runtime.embedding_workers import (
    EmbeddingUnit,
    cached_encoder,
    embedder_key,
    read_embeddings,
    run_embedding_units,
)
from distillery.pipeline.stages import filter_outputs
from distillery.pipeline.stages.base import Stage, StageContext, StageResult
from distillery.pipeline.stages.prompt_filter import build_judge, decontam_embedder
from distillery.schemas.arrow import to_table
from distillery.schemas.dedup_config import DecontaminationConfig, EmbedderConfig
from distillery.schemas.dedup_records import DecontamAudit, DroppedResponse, KeptResponse
from distillery.schemas.job import JobConfig

log = logging.getLogger(__name__)
STAGE = "response_filter"
WITHIN_PROMPT = "near_duplicate_in_prompt"
ACROSS_CORPUS = "near_duplicate_in_corpus"
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
    """The accepted samples, row-aligned; texts are read per file when needed, never all at once."""

    ids: list[str] = field(default_factory=list)
    prompt_ids: list[str] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    selected: list[bool] = field(default_factory=list)
    file_rows: list[tuple[int, int]] = field(default_factory=list)
    """(start, stop) of each samples file's rows."""


def _read_accepted(files: Sequence[Path]) -> _Accepted:
    accepted = _Accepted()
    for path in files:
        table = pq.read_table(path, columns=["id", "prompt_id", "round", "index", "accepted", "selected"])
        table = table.filter(pc.field("accepted"))
        start = len(accepted.ids)
        accepted.ids += table.column("id").to_pylist()
        accepted.prompt_ids += table.column("prompt_id").to_pylist()
        accepted.rounds += table.column("round").to_pylist()
        accepted.indexes += table.column("index").to_pylist()
        accepted.selected += table.column("selected").to_pylist()
        accepted.file_rows.append((start, len(accepted.ids)))
    return accepted


def _read_texts(path: Path, columns: list[str]) -> dict[str, list[str]]:
    table = pq.read_table(path, columns=["accepted", *columns]).filter(pc.field("accepted"))
    return {name: table.column(name).to_pylist() for name in columns}


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


class _RowQuestions(Sequence[str]):
    """The question of each accepted row, read file by file: only the current file's prompts are in
    memory. Callers read rows in increasing order (row passes, `near_pass`), so each file loads once."""

    def __init__(self, run: RunDirectory, accepted: _Accepted) -> None:
        self.accepted = accepted
        self.shard_paths = [run.prompt_shard(s) for s in run.prompt_shards()]
        self.shard_of = _prompt_shards(run)
        self.starts = [start for start, _ in accepted.file_rows]
        self.file = -1
        self.questions: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.accepted.ids)

    def missing(self) -> list[str]:
        return sorted(set(self.accepted.prompt_ids) - set(self.shard_of))

    def shards_of_file(self, file: int) -> list[Path]:
        start, stop = self.accepted.file_rows[file]
        indexes = {self.shard_of[p] for p in self.accepted.prompt_ids[start:stop]}
        return [self.shard_paths[k] for k in sorted(indexes)]

    def of_file(self, file: int) -> dict[str, str]:
        if file != self.file:
            start, stop = self.accepted.file_rows[file]
            self.file = file
            self.questions = _questions(self.shards_of_file(file), self.accepted.prompt_ids[start:stop])
        return self.questions

    def __getitem__(self, row: int) -> str:  # type: ignore[override]
        if not 0 <= row < len(self):
            raise IndexError(row)
        # The last file starting at or before the row: an empty file shares its start with the next.
        file = bisect.bisect_right(self.starts, row) - 1
        return self.of_file(file)[self.accepted.prompt_ids[row]]


def ngram_unit(config: DecontaminationConfig, base_dir: Path, path: str, shards: list[Path]) -> dict[int, tuple]:
    """Task: n-gram matches of one file's accepted rows (prompt and answer, full texts); `shards`:
    the prompt shards holding its prompts. Returns {row in the file: (matches, the text)} for rows
    with a match only."""
    off = {"embedding": config.embedding.model_copy(update={"enabled": False})}
    off["judge"] = config.judge.model_copy(update={"enabled": False})
    decontaminator = Decontaminator.from_config(config.model_copy(update=off), encode=None, base_dir=base_dir)
    table = pq.read_table(path, columns=["accepted", "prompt_id", "answer"]).filter(pc.field("accepted"))
    prompt_ids = table.column("prompt_id").to_pylist()
    questions = _questions(shards, prompt_ids)
    texts = [f"{questions[p]}\n\n{a}" for p, a in zip(prompt_ids, table.column("answer").to_pylist(), strict=True)]
    found = decontaminator.ngram_matches(texts)
    return {k: (matches, texts[k]) for k, matches in enumerate(found) if matches}


def _embed(
    run: RunDirectory,
    files: Sequence[Path],
    accepted: _Accepted,
    kind: str,
    config: EmbedderConfig,
    texts_of: Callable[[Path, int], list[str]],
    wanted: np.ndarray,
) -> list[tuple[Path, np.ndarray]]:
    """Embeds the rows marked in `wanted`, one unit per file: (embedding file, the rows it holds).
    texts_of(path, start) -> the texts of that file's accepted rows (the first is row `start`)."""
    folder = run.response_filter.embeddings(kind, embedder_key(config))
    units, parts = [], []
    for path, (start, stop) in zip(files, accepted.file_rows, strict=True):
        rows = np.flatnonzero(wanted[start:stop])
        if not len(rows):
            continue

        def texts(path: Path = path, start: int = start, rows: np.ndarray = rows) -> tuple[list[str], list[str]]:
            all_texts = texts_of(path, start)
            return [accepted.ids[start + r] for r in rows.tolist()], [all_texts[r] for r in rows.tolist()]

        # Named by table and file: a journey unit has its samples unit's name.
        units.append(EmbeddingUnit(folder / f"{path.parent.name}-{path.name}", texts))
        parts.append((units[-1].output, start + rows))
    run_embedding_units(units, config)
    return parts


def _matrix(parts: list[tuple[Path, np.ndarray]], accepted: _Accepted) -> np.ndarray:
    """One matrix of every accepted row's vector (rows without one get zeros): the global view the
    across-corpus search needs, 4 bytes a dimension a row and no texts."""
    ids, vectors = read_embeddings([path for path, _ in parts])
    position = {sample_id: k for k, sample_id in enumerate(ids)}
    matrix = np.zeros((len(accepted.ids), vectors.shape[1] if len(vectors) else 1), dtype=np.float32)
    for _, rows in parts:
        for row in rows.tolist():
            if accepted.ids[row] not in position:
                raise RuntimeError(f"no embedding for sample {accepted.ids[row]}")
            matrix[row] = vectors[position[accepted.ids[row]]]
    return matrix


def _within_prompt_links(
    vectors: np.ndarray, rows: np.ndarray, groups: list[str], rank: np.ndarray, threshold: float
) -> NeighborLinks:
    """All pairs above threshold inside each group (groups are a prompt's few samples)."""
    members: dict[str, list[int]] = {}
    for row in rows.tolist():
        members.setdefault(groups[row], []).append(row)
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
    embeddings: str, rows: np.ndarray, ids: list[str], groups: list[str], rank: np.ndarray, threshold: float
) -> NeighborLinks:
    """The within-prompt links of one file's rows (a prompt's samples, and its journey traces, each
    sit in one file), from that file's embeddings; returned in the stage's row numbers."""
    file_ids, vectors = read_embeddings([Path(embeddings)])
    position = {sample_id: k for k, sample_id in enumerate(file_ids)}
    missing = [i for i in ids if i not in position]
    if missing:
        raise RuntimeError(f"{embeddings}: no embedding for sample {missing[0]}")
    local = vectors[[position[i] for i in ids]]
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
    first_trace = accepted.file_rows[len(samples_files)][0] if len(files) > len(samples_files) else len(accepted.ids)
    groups = [p if row < first_trace else f"{p}/journey" for row, p in enumerate(accepted.prompt_ids)]
    questions = _RowQuestions(run, accepted)
    orphans = questions.missing()
    if orphans:
        raise RuntimeError(f"{run.samples}: accepted samples of prompts missing from {run.prompts}: {orphans[:5]}")
    n = len(accepted.ids)
    matches = RowMatches.of(n)
    audit: list[DecontamAudit] = []

    def corpus_texts(path: Path, start: int) -> list[str]:
        texts = _read_texts(path, ["answer"])["answer"]
        unit = questions.of_file(files.index(path))
        return [corpus_text(unit[accepted.prompt_ids[start + k]], a) for k, a in enumerate(texts)]

    def trace_texts(path: Path, start: int) -> list[str]:
        texts = _read_texts(path, ["reasoning", "answer"])
        return [trace_slice(r, a) for r, a in zip(texts["reasoning"], texts["answer"], strict=True)]

    corpus_vectors: dict[str, np.ndarray] = {}

    def corpus_matrix(config: EmbedderConfig) -> np.ndarray:
        key = embedder_key(config)
        if key not in corpus_vectors:
            parts = _embed(run, files, accepted, "corpus", config, corpus_texts, np.ones(n, bool))
            corpus_vectors[key] = _matrix(parts, accepted)
        return corpus_vectors[key]

    if decontam.enabled and decontam.responses and decontam.benchmarks and n:
        model = decontam_embedder(decontam, dedup.embedder)
        decontaminator = Decontaminator.from_config(
            decontam,
            encode=cached_encoder(run.benchmark_embeddings, model) if decontam.embedding.enabled else None,
            judge=build_judge(job, judge_teacher),
            base_dir=base_dir,
        )
        vectors = corpus_matrix(model) if decontaminator.needs_vectors else None
        found = decontaminator.embedding_matches(vectors, questions)
        # N-grams see the whole prompt and answer: one task per file (a corpus of long traces is never
        # held whole); texts come back only for rows with evidence.
        full_texts: dict[int, str] = {}
        per_file = run_tasks(
            ngram_unit, [(decontam, base_dir, str(path), questions.shards_of_file(k)) for k, path in enumerate(files)]
        )
        for (start, _), hits in zip(accepted.file_rows, per_file, strict=True):
            for k, (ngram, text) in hits.items():
                found[start + k] = ngram + found[start + k]
                full_texts[start + k] = text
        for row in [r for r, matches in enumerate(found) if matches and r not in full_texts]:
            full_texts[row] = f"{questions[row]}\n\n{_answer(files, accepted, row)}"
        decisions = decontaminator.decide(found, questions.__getitem__)
        matches.apply_contamination(range(n), decisions)
        matches.counters.add(decontaminator.counters)
        audit = decontaminator.audit_rows(STAGE, accepted.ids, decisions, lambda row: full_texts[row])

    if dedup.enabled and dedup.responses.within_prompt:
        alive = matches.alive
        per_prompt: dict[str, int] = {}
        for row in np.flatnonzero(alive).tolist():
            per_prompt[groups[row]] = per_prompt.get(groups[row], 0) + 1
        wanted = alive & np.array([per_prompt.get(g, 0) > 1 for g in groups], dtype=bool)
        rank = keep_order([not s for s in accepted.selected], accepted.rounds, accepted.indexes)
        within = OperatorCounters("within_prompt_dedup")
        if wanted.any():
            # One task per file: the trace vectors are never gathered in the driver.
            parts = _embed(run, files, accepted, "trace", dedup.embedder, trace_texts, wanted)
            threshold = dedup.responses.within_prompt_threshold
            per_file = run_tasks(
                within_prompt_unit,
                [
                    (str(path), rows, [accepted.ids[r] for r in rows], [groups[r] for r in rows], rank[rows], threshold)
                    for path, rows in parts
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
        deduplicator = NearDeduplicator(
            dedup.responses.across_corpus_threshold, search=dedup.search, same_numbers=dedup.responses.same_numbers
        )
        deduplicator.counters.name = "across_corpus_dedup"
        rank = keep_order([not s for s in accepted.selected], accepted.prompt_ids, accepted.rounds, accepted.indexes)
        near_pass(
            matches,
            deduplicator,
            lambda rows: corpus_matrix(dedup.embedder)[rows],
            rank,
            # The numbers of each question, not the question: all `same_numbers` compares, and a
            # few bytes a row where the questions would be the corpus's prompt texts.
            texts=[number_signature(normalize_for_matching(q)) for q in questions]
            if dedup.responses.same_numbers
            else None,
            groups=accepted.prompt_ids,
            reason=ACROSS_CORPUS,
        )

    alive_rows = matches.alive_rows().tolist()
    kept = [KeptResponse(id=accepted.ids[r], prompt_id=accepted.prompt_ids[r]) for r in alive_rows]
    dropped = [_dropped(accepted, matches, row) for row in np.flatnonzero(~matches.alive).tolist()]
    run.units.commit(to_table(kept, KeptResponse), output.kept)
    return filter_outputs.commit(
        output, to_table(audit, DecontamAudit), to_table(dropped, DroppedResponse), matches.counters, samples=True
    )


def _answer(files: Sequence[Path], accepted: _Accepted, row: int) -> str:
    """One accepted row's answer (for the audit of a row only the embedding detector matched)."""
    file = next(k for k, (start, stop) in enumerate(accepted.file_rows) if start <= row < stop)
    return _read_texts(files[file], ["answer"])["answer"][row - accepted.file_rows[file][0]]


def _dropped(accepted: _Accepted, matches: RowMatches, row: int) -> DroppedResponse:
    reason = matches.reason[row]
    decision = matches.contamination.get(row)
    if reason == CONTAMINATED and decision is not None and decision.match is not None:
        match = decision.match
        return DroppedResponse(
            id=accepted.ids[row],
            prompt_id=accepted.prompt_ids[row],
            reason="contaminated",
            similarity=match.score,
            benchmark=match.benchmark,
            benchmark_item=match.item_id,
            detector=match.detector,
        )
    return DroppedResponse(
        id=accepted.ids[row],
        prompt_id=accepted.prompt_ids[row],
        reason=reason,  # type: ignore[arg-type]
        duplicate_of=accepted.ids[int(matches.duplicate_of[row])],
        similarity=float(matches.score[row]),
    )
