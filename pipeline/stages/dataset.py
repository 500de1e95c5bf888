"""Stage 6, dataset: select and mix; the final dataset, its card and LLaMA-Factory's `dataset_info.json`.

Rows are built shard by shard (a prompt's samples all live in one shard, so its pass rate is local),
one Ray task per samples unit (`pipeline/runtime/cpu_tasks.py`) that commits its own files into a
staging folder; the folder is swapped into place whole: a reader never sees half a dataset, and
rerunning the stage rebuilds it identically. The driver holds ids only (the excluded and chosen
sample ids, stored once in the object store) and each unit's row counts.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distillery.operators.journey.rows import journey_record
from distillery.operators.select.general_policy import GENERAL_DOMAIN, GeneralPolicy
from distillery.operators.select.mix import MixSelection
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.operators.writers.card import dataset_card
from distillery.operators.writers.exports import llama_factory_info
from distillery.operators.writers.sft import pass_rates, sft_record
from distillery.pipeline.run_directory import RunDirectory
from distillery.pipeline.runtime.cpu_tasks import run_tasks, shared
from distillery.pipeline.stages.base import Stage, StageContext, StageResult
from distillery.pipeline.stages.dataset_card import card_facts
from distillery.pipeline.stages.target_plan import select_mix
from distillery.schemas.arrow import arrow_schema, from_table, to_table
from distillery.schemas.job import JobConfig
from distillery.schemas.records import Generation, JourneySample, Kind, Prompt, SFTRecord

SPLITS = ("reasoning", "general")


def split_of(domain: str) -> str:
    return "general" if domain == GENERAL_DOMAIN else "reasoning"


class DatasetStage(Stage):
    """One unit: the `dataset/` folder, rebuilt whole each run (it is cheap next to generation)."""

    name = "dataset"
    reads = ("prompts", "samples", "journey", "response_filter")

    def run(self, context: StageContext) -> StageResult:
        selection = None
        if context.job.targets is not None:
            selection = select_mix(context.job, context.run, context.excluded_prompts, context.excluded_samples)
        rows = build_dataset(context.job, context.run, context.excluded_samples, selection)
        if selection is None:
            return StageResult(report={"rows": rows})
        return StageResult(report={"rows": rows, **selection.as_report()})


def build_dataset(
    job: JobConfig,
    run: RunDirectory,
    excluded_samples: set[str] | None = None,
    selection: MixSelection | None = None,
) -> dict[str, int]:
    """`selection`: with targets, the rows to take (operators/select/mix.py); else every selected sample.

    Each samples unit is one task (`write_dataset_unit`) that reads its files, builds its rows and
    commits them into the staging folder; the driver merges the tasks' row counts."""
    staging = run.staging_dir("dataset")
    counts: dict[str, Counter[str]] = {}
    # Ids every task filters by, stored once (object store) rather than copied into each task.
    excluded = shared(pa.array(sorted(excluded_samples or ()), pa.string()))
    chosen = shared(pa.array(sorted(selection.chosen), pa.string())) if selection is not None else None
    files = sorted(p for p in run.samples.glob("*.parquet") if not p.name.startswith("."))
    calls = [(job, run, str(f), str(staging), excluded, chosen) for f in files]
    for unit_counts in run_tasks(write_dataset_unit, calls):
        for split, domains in unit_counts.items():
            counts.setdefault(split, Counter()).update(domains)
    for split in SPLITS:
        if split not in counts:
            # An empty split still has its file and schema, so readers of `dataset/*/*.parquet` never
            # fail; it has no row groups, which every reader (datasets included) takes for 0 rows.
            run.units.commit_empty(arrow_schema(SFTRecord), staging / split / "part-empty.parquet")
            counts[split] = Counter()
    filled = {split: split for split, c in counts.items() if c.total()}
    (staging / "dataset_info.json").write_text(json.dumps(llama_factory_info(job.name, filled), indent=2))
    card = dataset_card(card_facts(job, run, staging, SPLITS))
    if selection is not None:
        card += selection.card_section()
        run.units.commit_json(selection.as_report(), staging / run.targets_outcome.name)
    (staging / "README.md").write_text(card)
    run.units.commit_folder(staging, run.dataset)
    return {split: sum(c.values()) for split, c in counts.items()}


def _ids_in(ids: pa.Array, among: pa.Array) -> set[str]:
    """The ids of `ids` that are in `among` (a unit's few, not all of `among`)."""
    return set(pc.filter(ids, pc.is_in(ids, value_set=among)).to_pylist())


def write_dataset_unit(
    job: JobConfig,
    run: RunDirectory,
    samples_path: str,
    staging_path: str,
    excluded_ids: pa.Array,
    chosen_ids: pa.Array | None,
) -> dict[str, dict[str, int]]:
    """Task: one samples unit's dataset rows (its samples and its journey traces), committed into the
    staging folder, one file per split. Returns split -> domain -> rows."""
    samples_file, staging = Path(samples_path), Path(staging_path)
    config_hash = job.config_hash()
    chats = {
        name: ChatFormat(prompt_template=t.prompt_template, system_prompt=t.system_prompt)
        for name, t in job.teachers.items()
    }
    general = GeneralPolicy(job.general)
    counts: dict[str, Counter[str]] = {}
    prompts = {p.id: p for p in from_table(pq.read_table(run.prompts_of_unit(samples_file.stem)), Prompt)}
    table = pq.read_table(samples_file)
    journey_file = run.journey_unit(samples_file.stem)
    trace_table = pq.read_table(journey_file) if run.units.is_done(journey_file) else None
    unit_ids = (
        table["id"] if trace_table is None else pa.chunked_array([*table["id"].chunks, *trace_table["id"].chunks])
    )
    unit_ids = unit_ids.combine_chunks()
    excluded = _ids_in(unit_ids, excluded_ids)
    chosen = _ids_in(unit_ids, chosen_ids) if chosen_ids is not None else None
    samples = from_table(table, Generation)
    rates = pass_rates(samples)
    rows: dict[str, list[SFTRecord]] = {}
    for sample in samples:
        if not sample.selected or sample.id in excluded:
            continue
        if chosen is not None and sample.id not in chosen:
            continue
        split = split_of(sample.domain)
        prompt = prompts[sample.prompt_id]
        chat: ChatFormat = chats[sample.teacher]
        kind: Kind = "shortcut"
        if general.applies(prompt):
            # The user turn as the general policy put it to the teacher; its instruction to think
            # (a system prompt) is not part of the row.
            chat, kind = general.chat(chat, prompt), general.row_kind(prompt, sample)
            if kind == "no_cot":
                # A no-CoT row holds no reasoning, even where a reasoning teacher thought anyway.
                sample = sample.model_copy(update={"reasoning": ""})
        record = sft_record(prompt, sample, chat, rates[sample.prompt_id], config_hash, kind=kind)
        rows.setdefault(split, []).append(record)
        counts.setdefault(split, Counter())[sample.domain] += 1
    # Journey traces (stage 4) made from this unit: the verified ones, less stage 5's drops.
    traces = from_table(trace_table, JourneySample) if trace_table is not None else []
    for trace in traces:
        if trace.accepted and trace.id not in excluded and (chosen is None or trace.id in chosen):
            prompt = prompts[trace.prompt_id]
            record = journey_record(prompt, trace, chats[trace.teacher], rates[trace.prompt_id], config_hash)
            rows.setdefault(split_of(trace.domain), []).append(record)
            counts.setdefault(split_of(trace.domain), Counter())[trace.domain] += 1
    for split, records in rows.items():
        run.units.commit(to_table(records, SFTRecord), staging / split / f"{samples_file.stem}.parquet")
    return {split: dict(c) for split, c in counts.items()}
