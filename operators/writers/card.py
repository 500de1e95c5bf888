"""The dataset card (`dataset/README.md`): YAML front matter the Hugging Face hub and `datasets` read
(configs, license, task categories, size, tags), then what a person choosing or training on the data
needs: the schema, counts, lengths, acceptance, teachers, verifiers, filters, decontamination.

Pure: it takes the numbers (`CardFacts`) and returns text; the dataset stage gathers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

UNKNOWN_LICENSES = frozenset({"unknown", "other"})
SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
)
LARGEST_SIZE_CATEGORY = "n>100M"
TAGS = ("reasoning", "chain-of-thought", "distillation", "synthetic", "rejection-sampling", "sft", "distillery")
TASK_CATEGORIES = ("text-generation", "question-answering")


@dataclass(frozen=True)
class SplitFacts:
    name: str
    rows: int
    files: str
    """Its data files relative to the dataset folder (a glob, as the hub's `data_files` takes it)."""
    by_source: dict[str, int] = field(default_factory=dict)
    by_domain: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    completion_tokens: dict[str, int] = field(default_factory=dict)
    """Percentile name (p50, p90, ...) -> completion tokens."""


@dataclass(frozen=True)
class AcceptanceFacts:
    source: str
    domain: str
    samples: int
    accepted: int
    rows: int


@dataclass(frozen=True)
class ColumnFacts:
    name: str
    type: str
    description: str


@dataclass(frozen=True)
class CardFacts:
    name: str
    config_hash: str
    license: str
    splits: list[SplitFacts]
    columns: list[ColumnFacts]
    acceptance: list[AcceptanceFacts]
    teachers: dict[str, str]
    """Teacher name -> "model, sampling as JSON"."""
    verifiers: dict[str, int]
    """`name@version` -> verdicts it gave."""
    filters: dict[str, str]
    """Filter name -> its settings, as JSON."""
    benchmarks: list[str]
    removals: dict[str, int] = field(default_factory=dict)
    """`stage: reason` -> rows removed (duplicates, benchmark leaks)."""
    leaks: dict[str, int] = field(default_factory=dict)
    """Benchmark -> items of this run it condemned."""
    distillery_version: str = ""


def size_category(rows: int) -> str:
    return next((label for bound, label in SIZE_CATEGORIES if rows < bound), LARGEST_SIZE_CATEGORY)


def front_matter(facts: CardFacts) -> dict[str, object]:
    """The hub's metadata; one config per split that has rows (an empty split would be a config
    `load_dataset` cannot build anything from)."""
    filled = [s for s in facts.splits if s.rows]
    configs: list[dict[str, object]] = []
    for i, split in enumerate(filled):
        config: dict[str, object] = {
            "config_name": split.name,
            "data_files": [{"split": "train", "path": split.files}],
        }
        if i == 0:
            config["default"] = True
        configs.append(config)
    return {
        "pretty_name": facts.name,
        "license": facts.license,
        "task_categories": list(TASK_CATEGORIES),
        "size_categories": [size_category(sum(s.rows for s in facts.splits))],
        "tags": list(TAGS),
        "configs": configs,
    }


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "-"


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines


def _license_lines(facts: CardFacts) -> list[str]:
    teacher_terms = (
        "Teacher outputs carry the terms of the teacher model's license and of its provider: check them "
        "before you publish or train on this data."
    )
    if facts.license in UNKNOWN_LICENSES:
        return [
            f"License: `{facts.license}`. Set `license:` in the job file (an SPDX id such as `apache-2.0`) "
            "once you know it. " + teacher_terms
        ]
    return [f"License: `{facts.license}` (from the job file). " + teacher_terms]


def _loading_lines(facts: CardFacts) -> list[str]:
    filled = [s.name for s in facts.splits if s.rows]
    empty = [s.name for s in facts.splits if not s.rows]
    lines = ["## Loading", "", "```python", "from datasets import load_dataset"]
    lines += [f'{s} = load_dataset("path/to/this/folder", "{s}", split="train")' for s in filled]
    lines += ["```", ""]
    if empty:
        names = ", ".join(f"`{s}/`" for s in empty)
        lines += [
            f"Empty: {names} (0 rows; the folder holds a Parquet file with the schema and no row groups, and is "
            "left out of `configs` and `dataset_info.json`). Globs over every split still load; `datasets` "
            "reads the empty split alone only with `streaming=True`.",
            "",
        ]
    return lines


def _training_lines() -> list[str]:
    return [
        "## Training",
        "",
        "Each row carries `messages` and the same conversation cut before the answer: `prompt` "
        "(`messages[:-1]`) and `completion` (`messages[-1:]`). TRL's `SFTTrainer` takes a row with `prompt` "
        "and `completion` as conversational prompt-completion data and by default computes the loss on the "
        "completion only, which is the whole assistant turn, `<think>` block included:",
        "",
        "```python",
        "from datasets import load_dataset",
        "from trl import SFTConfig, SFTTrainer",
        'train = load_dataset("path/to/this/folder", "reasoning", split="train")',
        'trainer = SFTTrainer(model="your/student", train_dataset=train, args=SFTConfig(output_dir="out"))',
        "trainer.train()",
        "```",
        "",
        "Use the student's own chat template (TRL uses the tokenizer's; in LLaMA-Factory set `template:` to "
        "the student's family, e.g. `smollm2` for SmolLM2, `llama3`, `qwen3`), not another model's: `qwen`, "
        "for one, injects Qwen's default system prompt into every row. `assistant_only_loss=True` (training "
        "on `messages`) needs a chat template with `{% generation %}` markers; the `prompt`/`completion` "
        "columns give the same loss without one. DeepSeek-R1-Distill templates remove whatever sits inside "
        "`<think>` from assistant turns, which would train the student on answers alone.",
        "",
        "LLaMA-Factory: this folder holds `dataset_info.json` (sharegpt format over `messages`); set "
        "`dataset_dir:` to it and `dataset:` to an entry's name.",
        "",
    ]


def dataset_card(facts: CardFacts) -> str:
    meta = yaml.safe_dump(front_matter(facts), sort_keys=False, allow_unicode=True)
    total = sum(s.rows for s in facts.splits)
    lines = ["---", meta.rstrip("\n"), "---", "", f"# {facts.name}", ""]
    built_by = f"distillery {facts.distillery_version}".strip()
    lines += [
        f"{total} rows of SFT data (long chain-of-thought reasoning, and general answers) built by {built_by} "
        f"(job config hash `{facts.config_hash}`): a teacher sampled several answers per prompt and only "
        "those its verifier (or judge) accepted and the quality filters kept became rows. Rejected samples "
        "stay in the run's `samples/` table with their reasons.",
        "",
        *_license_lines(facts),
        "",
    ]
    lines += _loading_lines(facts)
    lines += ["## Splits", ""]
    lines += _table(
        ["split", "rows", "by source", "by domain", "by kind"],
        [[f"`{s.name}`", s.rows, _counts(s.by_source), _counts(s.by_domain), _counts(s.by_kind)] for s in facts.splits],
    )
    percentiles = sorted({p for s in facts.splits for p in s.completion_tokens}, key=lambda p: float(p[1:]))
    if percentiles:
        lines += ["", "Completion length (teacher tokens per row):", ""]
        lines += _table(
            ["split", *percentiles],
            [[f"`{s.name}`", *(s.completion_tokens.get(p, "-") for p in percentiles)] for s in facts.splits if s.rows],
        )
    lines += ["", "## Acceptance", "", "Samples the teacher drew, those accepted, and the rows they became:", ""]
    lines += _table(
        ["source", "domain", "samples", "accepted", "acceptance", "rows"],
        [
            [a.source, a.domain, a.samples, a.accepted, f"{a.accepted / a.samples:.1%}" if a.samples else "-", a.rows]
            for a in facts.acceptance
        ],
    )
    lines += ["", "## Teachers and sampling", ""]
    lines += [f"- `{name}`: {detail}" for name, detail in sorted(facts.teachers.items())]
    lines += ["", "## Verifiers and filters", ""]
    lines += [f"- verifier `{name}`: {n} verdicts" for name, n in sorted(facts.verifiers.items())]
    lines += [f"- filter `{name}`: `{settings}`" for name, settings in sorted(facts.filters.items())]
    lines += ["", "## Decontamination", ""]
    if facts.benchmarks:
        lines.append("Checked against: " + ", ".join(f"`{b}`" for b in facts.benchmarks) + ".")
    else:
        lines.append("No benchmarks were listed in the job: rows were not checked for benchmark leaks.")
    if facts.leaks:
        lines += ["", "Items condemned per benchmark: " + _counts(facts.leaks) + "."]
    lines += ["", "Removed before the dataset was written: " + _counts(facts.removals) + "."]
    lines += ["", "## Columns", ""]
    columns = [[f"`{c.name}`", f"`{c.type}`", c.description] for c in facts.columns]
    lines += _table(["column", "type", "meaning"], columns)
    lines += [""]
    lines += _training_lines()
    return "\n".join(lines)
