"""Stage 2, prompt filter: prompt dedup and benchmark decontamination, before any teacher time is spent.

Order: exact duplicates (after `normalize_for_matching`), then decontamination of the survivors,
then near duplicates among the clean ones, so a contaminated prompt is never the representative
that clean prompts are dropped for. The representative of a duplicate group is the first prompt
by (has no gold answer, id): verifiable prompts are preferred, and the choice depends on nothing
but the prompts themselves (not on shard order or timing).

```
RUN/prompt_filter/embeddings/<model key>/part-00000.parquet   (id, embedding): one unit per shard
RUN/prompt_filter/counters.json
RUN/prompt_filter/dropped.parquet      DroppedPrompt rows; written last: the stage is done iff it exists
RUN/decontam_audit/prompts.parquet     DecontamAudit rows, one per benchmark match
RUN/decontam_audit/benchmark_embeddings/<hash of model and texts>.parquet   reused by stage 5 and reruns
```
The prompt shards themselves are not rewritten: generation skips the dropped ids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from distillery.operators.decontam.decontaminator import Decontaminator
from distillery.operators.decontam.judge import ContaminationJudge
from distillery.operators.dedup.deduplicator import NearDeduplicator, keep_order
from distillery.operators.dedup.matching import (
    CONTAMINATED,
    RowMatches,
    VectorsOf,
    decontam_pass,
    exact_pass,
    near_pass,
)
from distillery.operators.teachers.base import Teacher
from distillery.pipeline.run_directory import RunDirectory
from distillery.pipeline.runtime.embedding_workers import (
    EmbeddingUnit,
    cached_encoder,
    embedder_key,
    read_embeddings,
    run_embedding_units,
)
from distillery.pipeline.stages import filter_outputs
from distillery.pipeline.stages.base import Stage, StageContext, StageResult
from distillery.schemas.arrow import to_table
from distillery.schemas.dedup_config import DecontaminationConfig, EmbedderConfig
from distillery.schemas.dedup_records import DecontamAudit, DroppedPrompt
from distillery.schemas.job import JobConfig

log = logging.getLogger(__name__)
STAGE = "prompt_filter"


class PromptFilterStage(Stage):
    name = STAGE
    reads = ("prompts",)

    def run(self, context: StageContext) -> StageResult:
        return run_prompt_filter(context.job, context.run, context.base_dir)


def decontam_embedder(config: DecontaminationConfig, fallback: EmbedderConfig) -> EmbedderConfig:
    return config.embedder or fallback


def build_judge(job: JobConfig, teacher: Teacher | None) -> ContaminationJudge | None:
    """The judge the job asks for: on `teacher` when given (the caller owns its engine), else on a
    teacher built from the job's `teachers` section."""
    judge = job.decontamination.judge
    if not (job.decontamination.enabled and judge.enabled):
        return None
    if teacher is None:
        if judge.teacher not in job.teachers:
            raise ValueError(
                f"decontamination.judge.teacher: unknown teacher {judge.teacher!r} (known: {sorted(job.teachers)})"
            )
        from distillery.operators.teachers.registry import build_teacher

        teacher = build_teacher(str(judge.teacher), job.teachers[str(judge.teacher)])
    return ContaminationJudge(teacher, seed=job.teachers[job.generation.teacher].sampling.seed)


@dataclass
class _Prompts:
    ids: list[str]
    sources: list[str]
    problems: list[str]
    has_answer: list[bool]
    shard_of: list[int]


def _read_prompts(run: RunDirectory, shards: list[str]) -> _Prompts:
    prompts = _Prompts([], [], [], [], [])
    for number, shard in enumerate(shards):
        table = pq.read_table(run.prompt_shard(shard), columns=["id", "source", "problem", "answer"])
        prompts.ids += table.column("id").to_pylist()
        prompts.sources += table.column("source").to_pylist()
        prompts.problems += table.column("problem").to_pylist()
        prompts.has_answer += [a is not None for a in table.column("answer").to_pylist()]
        prompts.shard_of += [number] * table.num_rows
    return prompts


def _embed(
    run: RunDirectory, shards: list[str], prompts: _Prompts, rows: np.ndarray, config: EmbedderConfig
) -> np.ndarray:
    """Unit embeddings of prompts[rows], one resumable file per shard."""
    folder = run.prompt_filter.embeddings(embedder_key(config))
    by_shard: dict[int, list[int]] = {}
    for row in rows.tolist():
        by_shard.setdefault(prompts.shard_of[row], []).append(row)
    units = [
        EmbeddingUnit(
            folder / f"{shards[number]}.parquet",
            lambda members=members: ([prompts.ids[r] for r in members], [prompts.problems[r] for r in members]),
        )
        for number, members in sorted(by_shard.items())
    ]
    embedded = run_embedding_units(units, config)
    log.info("prompt filter: embedded %d of %d shards", embedded, len(units))
    ids, vectors = read_embeddings([u.output for u in units])
    position = {prompt_id: k for k, prompt_id in enumerate(ids)}
    missing = [prompts.ids[r] for r in rows.tolist() if prompts.ids[r] not in position]
    if missing:
        raise RuntimeError(f"{folder}: embeddings missing for {len(missing)} prompts (e.g. {missing[:3]})")
    return vectors[[position[prompts.ids[r]] for r in rows.tolist()]]


def run_prompt_filter(
    job: JobConfig, run: RunDirectory, base_dir: Path, *, judge_teacher: Teacher | None = None
) -> StageResult:
    """Stage 2 over the ingested prompt shards. Resumes: done iff `prompt_filter/dropped.parquet`
    exists (then it is only read back); embedding shards already written are reused."""
    output = run.prompt_filter
    finished = filter_outputs.finished(output, samples=False)
    if finished is not None:
        return finished

    dedup, decontam = job.dedup, job.decontamination
    shards = run.prompt_shards()
    prompts = _read_prompts(run, shards)
    rank = keep_order([not a for a in prompts.has_answer], prompts.ids)
    matches = RowMatches.of(len(prompts.ids))
    audit: list[DecontamAudit] = []

    if dedup.enabled and dedup.prompts.exact:
        exact_pass(matches, prompts.problems, rank)

    decontam_config = decontam_embedder(decontam, dedup.embedder)
    # Every prompt that survives exact dedup is embedded (once per model): the units then depend on
    # the prompts alone, and a resumed run finds them complete.
    embedded_rows = matches.alive_rows()
    matrices: dict[str, np.ndarray] = {}

    def vectors_of(config: EmbedderConfig) -> VectorsOf:
        def vectors(rows: np.ndarray) -> np.ndarray:
            key = embedder_key(config)
            if key not in matrices:
                matrices[key] = _embed(run, shards, prompts, embedded_rows, config)
            return matrices[key][np.searchsorted(embedded_rows, rows)]

        return vectors

    if decontam.enabled and decontam.prompts and decontam.benchmarks:
        decontaminator = Decontaminator.from_config(
            decontam,
            encode=cached_encoder(run.benchmark_embeddings, decontam_config) if decontam.embedding.enabled else None,
            judge=build_judge(job, judge_teacher),
            base_dir=base_dir,
        )
        decontam_pass(matches, decontaminator, prompts.problems, vectors_of(decontam_config))
        checked = sorted(matches.contamination)
        audit = decontaminator.audit_rows(
            STAGE, [prompts.ids[r] for r in checked], [matches.contamination[r] for r in checked],
            lambda k: prompts.problems[checked[k]],
        )

    if dedup.enabled and dedup.prompts.near:
        deduplicator = NearDeduplicator(
            dedup.prompts.threshold, search=dedup.search, same_numbers=dedup.prompts.same_numbers
        )
        near_pass(matches, deduplicator, vectors_of(dedup.embedder), rank, texts=prompts.problems)
        log.info("prompt filter: near-duplicate search %s", deduplicator.search.plan)

    dropped = [_dropped(prompts, matches, row) for row in np.flatnonzero(~matches.alive).tolist()]
    return filter_outputs.commit(
        output, to_table(audit, DecontamAudit), to_table(dropped, DroppedPrompt), matches.counters, samples=False
    )


def _dropped(prompts: _Prompts, matches: RowMatches, row: int) -> DroppedPrompt:
    reason = matches.reason[row]
    decision = matches.contamination.get(row)
    if reason == CONTAMINATED and decision is not None and decision.match is not None:
        return DroppedPrompt(
            id=prompts.ids[row],
            source=prompts.sources[row],
            reason="contaminated",
            similarity=decision.match.score,
            benchmark=decision.match.benchmark,
            benchmark_item=decision.match.item_id,
            detector=decision.match.detector,
            problem=prompts.problems[row],
        )
    return DroppedPrompt(
        id=prompts.ids[row],
        source=prompts.sources[row],
        reason=reason,  # type: ignore[arg-type]
        duplicate_of=prompts.ids[int(matches.duplicate_of[row])],
        similarity=float(matches.score[row]),
        problem=prompts.problems[row],
    )
