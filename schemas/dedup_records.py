"""Records written by dedup and decontamination: what was dropped and why, and the evidence for
every benchmark match (the audit table), so a person can check each decision in duckdb.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from distillery.schemas.records import Record, stable_hash

PromptDropReason = Literal["exact_duplicate", "near_duplicate", "contaminated"]
ResponseDropReason = Literal["near_duplicate_in_prompt", "near_duplicate_in_corpus", "contaminated"]
Detector = Literal["ngram", "embedding", "judge"]


class DroppedPrompt(Record):
    """A prompt that stage 2 keeps out of generation (`prompt_filter/dropped.parquet`)."""

    id: str = Field(description="the prompt's id")
    source: str
    reason: PromptDropReason
    duplicate_of: str | None = Field(default=None, description="the kept prompt it duplicates")
    similarity: float | None = Field(default=None, description="cosine similarity (1.0 for exact duplicates)")
    benchmark: str | None = None
    benchmark_item: str | None = None
    detector: str | None = Field(default=None, description="the detector that decided contamination")
    problem: str


class DroppedResponse(Record):
    """An accepted sample that stage 5 keeps out of the dataset (`response_filter/dropped.parquet`)."""

    id: str = Field(description="the sample's id")
    prompt_id: str
    reason: ResponseDropReason
    duplicate_of: str | None = Field(default=None, description="the kept sample it duplicates")
    similarity: float | None = None
    benchmark: str | None = None
    benchmark_item: str | None = None
    detector: str | None = None


class KeptResponse(Record):
    """An accepted sample that survives stage 5 (`response_filter/kept.parquet`)."""

    id: str
    prompt_id: str


class DecontamAudit(Record):
    """One benchmark match of one item by one detector (`decontam_audit/`)."""

    id: str
    stage: str = Field(description="prompt_filter, response_filter or decontam (the standalone command)")
    item_id: str
    benchmark: str
    benchmark_item: str
    detector: Detector
    score: float = Field(description="n-gram: shared n-grams (or their share); embedding/judge: cosine similarity")
    contaminated: bool = Field(description="whether this match condemns the item (false: a judge said different)")
    evidence: str = Field(description="the first shared n-gram, or the judge's reply")
    item_text: str
    benchmark_text: str
    judge_prompt: str | None = Field(default=None, description="version of the judge prompt")


def audit_id(stage: str, item_id: str, benchmark: str, benchmark_item: str, detector: str) -> str:
    return stable_hash("audit", stage, item_id, benchmark, benchmark_item, detector)


class DecontamResult(Record):
    """A row of `distillery decontam`'s output: one per input row."""

    id: str
    contaminated: bool
    detector: str | None = None
    benchmark: str | None = None
    match_id: str | None = Field(default=None, description="the benchmark item's id")
    score: float | None = None


class DedupResult(Record):
    """A row of `distillery dedup`'s output: one per input row."""

    id: str
    duplicate: bool
    reason: Literal["exact_duplicate", "near_duplicate"] | None = None
    duplicate_of: str | None = Field(default=None, description="the kept row it duplicates")
    score: float | None = Field(default=None, description="cosine similarity (1.0 for exact duplicates)")
