"""Records that flow between stages. Every stage output is Parquet with the Arrow schema of one of
these models (see `schemas.arrow`); every table has an `id`, and rows about a prompt carry
`prompt_id`, so duckdb joins them.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

VerdictLabel = Literal["correct", "incorrect", "invalid", "timeout", "error"]
Kind = Literal["shortcut", "journey", "general", "no_cot"]

_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """The form ids are computed from: NFKC, trimmed, runs of whitespace collapsed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def stable_hash(*parts: str, length: int = 16) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:length]


def prompt_id(problem: str, source: str) -> str:
    """Deterministic: the same normalized problem from the same source always has the same id."""
    return stable_hash("prompt", source, normalize_text(problem))


def generation_id(prompt: str, round_: int, index: int) -> str:
    return f"{prompt}-r{round_}-{index}"


def request_seed(base_seed: int, prompt: str, round_: int) -> int:
    """The seed of one sampling request, derived from what identifies it, so a resumed run draws the
    same samples as an uninterrupted one."""
    return int(stable_hash("seed", str(base_seed), prompt, str(round_), length=8), 16) & 0x7FFFFFFF


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Prompt(Record):
    id: str
    source: str
    source_row: int = Field(description="0-based row number in the source")
    source_id: str | None = Field(default=None, description="the id the source gave the row, if any")
    domain: str
    problem: str
    answer: str | None = Field(default=None, description="gold answer (math, choice, exact)")
    tests: str | None = Field(default=None, description="test cases as JSON (code)")
    metadata: str = Field(default="{}", description="other source fields, as JSON")


class DeadLetter(Record):
    id: str
    stage: str
    source: str
    row: int | None = None
    prompt_id: str | None = None
    reason: str
    raw: str = Field(default="", description="the offending input, as JSON, truncated")


class Verdict(Record):
    verifier: str = Field(description="name@version")
    verdict: VerdictLabel
    extracted: str | None = None
    detail: str = ""
    elapsed_ms: float = 0.0
    gold_unparseable: bool = Field(
        default=False, description="the verifier could not parse the gold answer (the judge may decide instead)"
    )


class FilterResult(Record):
    filter: str
    keep: bool
    reason: str = ""


class Generation(Record):
    """One sampled completion with everything decided about it. The `samples/` table."""

    id: str
    prompt_id: str
    round: int
    index: int
    source: str
    domain: str
    teacher: str
    model: str
    sampling: str = Field(description="sampling parameters, as JSON")
    seed: int
    text: str
    reasoning: str
    answer: str
    think_well_formed: bool
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    verdicts: list[Verdict] = Field(default_factory=list)
    filters: list[FilterResult] = Field(default_factory=list)
    accepted: bool = False
    selected: bool = False
    rejection_reason: str | None = None


class Message(Record):
    role: Literal["system", "user", "assistant"]
    content: str


class SFTRecord(Record):
    """One row of the final dataset (`dataset/<split>/`): TRL reads `messages` directly."""

    id: str
    prompt_id: str
    sample_id: str
    messages: list[Message]
    prompt: str
    reasoning: str
    answer: str
    domain: str
    source: str
    kind: Kind
    teacher: str
    model: str
    sampling: str
    verdicts: list[Verdict]
    pass_rate: float
    config_hash: str


def assistant_turn(reasoning: str, answer: str) -> str:
    """The assistant message as R1 was trained on it."""
    return f"<think>\n{reasoning}\n</think>\n\n{answer}"
