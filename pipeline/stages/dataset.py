"""Stage 6, dataset: select and mix; the final dataset, its card and LLaMA-Factory's `dataset_info.json`.

Rows are built shard by shard (a prompt's samples all live in one shard, so its pass rate is local),
written into a staging folder, and the folder is swapped into place whole: a reader never sees half
a dataset, and rerunning the stage rebuilds it identically.
"""

from __future__ import annotations

import json
from collections import Counter

import pyarrow.parquet as pq

from distillery.operators.select.general_policy import GENERAL_DOMAIN, GeneralPolicy
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.operators.writers.sft import pass_rates, sft_record
from distillery.pipeline.run_directory import RunDirectory
from distillery.pipeline.stages.base import Stage, StageContext, StageResult
from distillery.schemas.arrow import from_table, to_table
from distillery.schemas.job import JobConfig
from distillery.schemas.records import Generation, Kind, Prompt, SFTRecord

SPLITS = ("reasoning", "general")


def split_of(domain: str) -> str:
    return "general" if domain == GENERAL_DOMAIN else "reasoning"


class DatasetStage(Stage):
    """One unit: the `dataset/` folder, rebuilt whole each run (it is cheap next to generation)."""

    name = "dataset"
    reads = ("prompts", "samples", "response_filter")

    def run(self, context: StageContext) -> StageResult:
        rows = build_dataset(context.job, context.run, excluded_samples=context.excluded_samples)
        return StageResult(report={"rows": rows})


def build_dataset(job: JobConfig, run: RunDirectory, excluded_samples: set[str] | None = None) -> dict[str, int]:
    excluded = excluded_samples or set()
    staging = run.staging_dir("dataset")
    counts: dict[str, Counter[str]] = {}
    config_hash = job.config_hash()
    chats = {
        name: ChatFormat(prompt_template=t.prompt_template, system_prompt=t.system_prompt)
        for name, t in job.teachers.items()
    }
    general = GeneralPolicy(job.general)
    for samples_file in sorted(p for p in run.samples.glob("*.parquet") if not p.name.startswith(".")):
        shard = samples_file.stem.split("-")[0] + "-" + samples_file.stem.split("-")[1]
        prompts = {p.id: p for p in from_table(pq.read_table(run.prompt_shard(shard)), Prompt)}
        samples = from_table(pq.read_table(samples_file), Generation)
        rates = pass_rates(samples)
        rows: dict[str, list[SFTRecord]] = {}
        for sample in samples:
            if not sample.selected or sample.id in excluded:
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
        for split, records in rows.items():
            run.units.commit(to_table(records, SFTRecord), staging / split / f"{samples_file.stem}.parquet")
    for split in SPLITS:
        if split not in counts:
            # An empty split still has its file and schema: readers of `dataset/*/*.parquet` never fail.
            run.units.commit(to_table([], SFTRecord), staging / split / "part-empty.parquet")
            counts[split] = Counter()
    (staging / "dataset_info.json").write_text(json.dumps(llama_factory_info(job.name, list(counts)), indent=2))
    (staging / "README.md").write_text(dataset_card(job, counts))
    run.units.commit_folder(staging, run.dataset)
    return {split: sum(c.values()) for split, c in counts.items()}


def llama_factory_info(name: str, splits: list[str]) -> dict[str, object]:
    """LLaMA-Factory's dataset registry: sharegpt-style `messages`, one entry per split folder."""
    return {
        f"{name}_{split}": {
            "file_name": split,
            "formatting": "sharegpt",
            "columns": {"messages": "messages"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
                "system_tag": "system",
            },
        }
        for split in sorted(splits)
    }


def dataset_card(job: JobConfig, counts: dict[str, Counter[str]]) -> str:
    lines = [f"# {job.name}", "", f"Built by distillery; config hash `{job.config_hash()}`.", "", "## Rows", ""]
    for split, by_domain in sorted(counts.items()):
        detail = ", ".join(f"{d}: {n}" for d, n in sorted(by_domain.items()))
        lines.append(f"- `{split}/`: {sum(by_domain.values())} rows ({detail})")
    teachers = ", ".join(f"{n} ({t.model})" for n, t in sorted(job.teachers.items()))
    lines += [
        "",
        f"Teachers: {teachers}. Every row's answer passed its verifier; rejected samples are in the run's "
        "`samples/` table with their reasons.",
        "",
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        'ds = load_dataset("parquet", data_files="reasoning/*.parquet", split="train")',
        "```",
        "",
        "TRL's SFTTrainer reads the `messages` column directly. LLaMA-Factory: point `dataset_dir` at this",
        "folder (it holds `dataset_info.json`).",
        "",
        "## Chat template",
        "",
        "The assistant turn is `<think>\\n{reasoning}\\n</think>\\n\\n{answer}`. Train with a template that keeps",
        "the reasoning, such as plain ChatML (LLaMA-Factory `template: qwen`, or the tokenizer's own when it does",
        "not strip think blocks). The DeepSeek-R1-Distill templates remove everything inside `<think>` from",
        "assistant turns, which would train the student on answers alone.",
    ]
    return "\n".join(lines) + "\n"
