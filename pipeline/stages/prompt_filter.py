"""Stage 2, prompt filter: prompt dedup and benchmark decontamination, before any teacher time is spent.

Order: exact duplicates (after `normalize_for_matching`), then decontamination of the survivors,
then near duplicates among the clean ones, so a contaminated prompt is never the representative
that clean prompts are dropped for. The representative of a duplicate group is the first prompt
by (has no gold answer, id): verifiable prompts are preferred, and the choice depends on nothing
but the prompts themselves (not on shard order or timing).

The driver holds, per prompt, its id, source, whether it has a gold answer, its shard number and,
during exact dedup, its `exact_key`: about 260 bytes a prompt as Python objects (measured; 1M prompts,
about 260 MB), plus the verdicts of `RowMatches`. Texts and vectors stay in Ray tasks
(`cpu_tasks.run_tasks`), one per shard: exact keys, and decontamination (n-grams, and the embedding
detector on that shard's embedding unit), which returns the text of a prompt only when it matched,
for the judge (which runs in the driver) and the audit. Near duplicates, the one global view, are one
task that gathers the vectors of the prompts alive (`matching_tasks.near_duplicates_task`). An
embedding unit reads its shard's problems only when it is not written yet, and the driver reads
back the problems of the dropped prompts for `dropped.parquet`.

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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillery.operators.counters import OperatorCounters
from distillery.operators.decontam.decontaminator import Decontaminator
from distillery.operators.decontam.judge import ContaminationJudge
from distillery.operators.decontam.matches import Match
from distillery.operators.dedup.deduplicator import NearDeduplicator, keep_order
from distillery.operators.dedup.matching import (
    CONTAMINATED,
    NEAR_DUPLICATE,
    RowMatches,
    exact_pass,
    found_decontam_pass,
)
from distillery.operators.dedup.normalize import exact_key
from distillery.operators.teachers.base import Teacher
from distillery.pipeline.run_directory import RunDirectory
from distillery.pipeline.runtime.cpu_tasks import run_tasks
from distillery.pipeline.runtime.embedding_workers import (
    EmbeddingUnit,
    cached_encoder,
    embedder_key,
    run_embedding_units,
)
from distillery.pipeline.stages import filter_outputs
from distillery.pipeline.stages.base import Stage, StageContext, StageResult
from distillery.pipeline.stages.matching_tasks import benchmark_matches, near_duplicates_task, task_decontaminator
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
    """What the driver holds per prompt, row-aligned across the shards: no texts."""

    ids: list[str]
    sources: list[str]
    has_answer: list[bool]
    shard_of: list[int]
    shard_paths: list[str]
    shard_start: list[int]
    """The first row of each shard."""

    def by_shard(self, rows: np.ndarray) -> dict[int, list[int]]:
        """rows grouped by shard number (shards in order, rows in order)."""
        groups: dict[int, list[int]] = {}
        for row in rows.tolist():
            groups.setdefault(self.shard_of[row], []).append(row)
        return groups

    def positions(self, number: int, rows: Sequence[int]) -> list[int]:
        """The rows' positions inside shard `number`."""
        return [row - self.shard_start[number] for row in rows]

    def problems(self, rows: np.ndarray) -> dict[int, str]:
        """row -> problem for the given rows, read back from their shards."""
        found: dict[int, str] = {}
        for number, members in self.by_shard(rows).items():
            texts = shard_problems(self.shard_paths[number], self.positions(number, members))
            found.update(zip(members, texts, strict=True))
        return found


def _read_prompts(run: RunDirectory, shards: list[str]) -> _Prompts:
    prompts = _Prompts([], [], [], [], [str(run.prompt_shard(s)) for s in shards], [])
    for number, path in enumerate(prompts.shard_paths):
        table = pq.read_table(path, columns=["id", "source", "answer"])
        prompts.shard_start.append(len(prompts.ids))
        prompts.ids += table.column("id").to_pylist()
        prompts.sources += table.column("source").to_pylist()
        prompts.has_answer += pc.is_valid(table.column("answer")).to_pylist()
        prompts.shard_of += [number] * table.num_rows
    return prompts


def shard_problems(shard: str, positions: Sequence[int]) -> list[str]:
    """The problems at `positions` of one prompt shard."""
    problems = pq.read_table(shard, columns=["problem"]).column("problem")
    return problems.take(pa.array(positions, pa.int64())).to_pylist()


def shard_problems_of(shard: str, ids: list[str], positions: Sequence[int]) -> tuple[list[str], list[str]]:
    """Embedding-unit reader: (ids, problems) of the prompts at `positions` of one shard."""
    return ids, shard_problems(shard, positions)


def exact_keys_unit(shard: str) -> list[str]:
    """Task: the `exact_key` of every problem of one prompt shard, in row order."""
    return [exact_key(p) for p in pq.read_table(shard, columns=["problem"]).column("problem").to_pylist()]


def decontam_unit(
    config: DecontaminationConfig,
    base_dir: Path,
    benchmark_cache: Path,
    embedder: EmbedderConfig,
    shard: str,
    positions: list[int],
    ids: list[str],
    embeddings: str | None,
) -> dict[int, tuple[list[Match], str]]:
    """Task: the benchmark matches of the prompts at `positions` of one shard (their `ids`): n-grams,
    and with `embeddings` (that shard's embedding unit) the embedding detector. Returns {position in
    the shard: (matches, the problem)} for prompts with a match only."""
    decontaminator = task_decontaminator(config, base_dir, benchmark_cache, embedder)
    texts = shard_problems(shard, positions)
    found = benchmark_matches(decontaminator, texts, texts, embeddings, ids)
    return {positions[k]: (matches, texts[k]) for k, matches in enumerate(found) if matches}


def _embed(run: RunDirectory, prompts: _Prompts, rows: np.ndarray, config: EmbedderConfig) -> dict[int, str]:
    """Unit embeddings of prompts[rows], one resumable file per shard: shard number -> its file. A
    unit reads its shard's problems only when it is not done yet."""
    folder = run.prompt_filter.embeddings(embedder_key(config))
    units, files = [], {}
    for number, members in prompts.by_shard(rows).items():
        path = prompts.shard_paths[number]
        ids, positions = [prompts.ids[r] for r in members], prompts.positions(number, members)
        output = folder / Path(path).name
        units.append(EmbeddingUnit(output, shard_problems_of, (path, ids, positions)))
        files[number] = str(output)
    embedded = run_embedding_units(units, config)
    log.info("prompt filter: embedded %d of %d shards", embedded, len(units))
    return files


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
    prompts = _read_prompts(run, run.prompt_shards())
    rank = keep_order([not a for a in prompts.has_answer], prompts.ids)
    matches = RowMatches.of(len(prompts.ids))
    audit: list[DecontamAudit] = []

    if dedup.enabled and dedup.prompts.exact:
        # The keys, not the texts, come back from one task per shard.
        shard_keys = run_tasks(exact_keys_unit, [(path,) for path in prompts.shard_paths])
        exact_pass(matches, [key for keys in shard_keys for key in keys], rank)

    decontam_config = decontam_embedder(decontam, dedup.embedder)
    # Every prompt that survives exact dedup is embedded (once per model): the units then depend on
    # the prompts alone, and a resumed run finds them complete.
    embedded_rows = matches.alive_rows()
    unit_files: dict[str, dict[int, str]] = {}

    def embeddings(config: EmbedderConfig) -> dict[int, str]:
        key = embedder_key(config)
        if key not in unit_files:
            unit_files[key] = _embed(run, prompts, embedded_rows, config)
        return unit_files[key]

    if decontam.enabled and decontam.prompts and decontam.benchmarks:
        decontaminator = Decontaminator.from_config(
            decontam,
            encode=cached_encoder(run.benchmark_embeddings, decontam_config) if decontam.embedding.enabled else None,
            judge=build_judge(job, judge_teacher),
            base_dir=base_dir,
        )
        files = embeddings(decontam_config) if decontaminator.needs_vectors else {}
        shards = prompts.by_shard(matches.alive_rows())
        calls = [
            (
                decontam,
                base_dir,
                run.benchmark_embeddings,
                decontam_config,
                prompts.shard_paths[number],
                prompts.positions(number, members),
                [prompts.ids[r] for r in members],
                files.get(number),
            )
            for number, members in shards.items()
        ]
        found: dict[int, list[Match]] = {}
        texts: dict[int, str] = {}
        for number, hits in zip(shards, run_tasks(decontam_unit, calls), strict=True):
            for position, (evidence, text) in hits.items():
                found[prompts.shard_start[number] + position] = evidence
                texts[prompts.shard_start[number] + position] = text
        checked = sum(len(members) for members in shards.values())
        # The judge and the audit only ask for the texts of rows with a match: those came back.
        decided, decisions = found_decontam_pass(matches, decontaminator, found, checked, texts.__getitem__)
        audit = decontaminator.audit_rows(
            STAGE, [prompts.ids[r] for r in decided], decisions, lambda k: texts[decided[k]]
        )

    if dedup.enabled and dedup.prompts.near:
        rows = matches.alive_rows()
        near = OperatorCounters(NearDeduplicator.name)
        if len(rows):
            ids = [prompts.ids[r] for r in rows.tolist()]
            # The global view, in one task: the vectors of the prompts alive, never their texts.
            ((result, near),) = run_tasks(
                near_duplicates_task,
                [
                    (
                        list(embeddings(dedup.embedder).values()),
                        ids,
                        rank[rows],
                        dedup.prompts.threshold,
                        dedup.search,
                        NearDeduplicator.name,
                        (prompts.shard_paths, ids) if dedup.prompts.same_numbers else None,
                    )
                ],
            )
            matches.apply_duplicates(rows, result, NEAR_DUPLICATE)
            log.info("prompt filter: %d near duplicates among %d prompts", near.dropped, len(rows))
        matches.counters.add(near)

    dropped_rows = np.flatnonzero(~matches.alive)
    problems = prompts.problems(dropped_rows)
    dropped = [_dropped(prompts, matches, row, problems[row]) for row in dropped_rows.tolist()]
    return filter_outputs.commit(
        output, to_table(audit, DecontamAudit), to_table(dropped, DroppedPrompt), matches.counters, samples=False
    )


def _dropped(prompts: _Prompts, matches: RowMatches, row: int, problem: str) -> DroppedPrompt:
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
            problem=problem,
        )
    return DroppedPrompt(
        id=prompts.ids[row],
        source=prompts.sources[row],
        reason=reason,  # type: ignore[arg-type]
        duplicate_of=prompts.ids[int(matches.duplicate_of[row])],
        similarity=float(matches.score[row]),
        problem=problem,
    )
