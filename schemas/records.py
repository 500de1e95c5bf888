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
FailureKind = Literal["permanent", "transient"]
"""permanent: the input itself fails (a bad row, a prompt longer than the context, a request the server
rejects as invalid): dead-lettered. transient: the infrastructure failed (an engine died, a server kept
answering 5xx or timing out): retried, and again on a rerun; never written off as data."""

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
    failure: FailureKind = Field(default="permanent", description="permanent (bad input) or transient (retried)")


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
    """One row of the final dataset (`dataset/<split>/`). `prompt` and `completion` are `messages`
    cut before its last turn: TRL takes a row with both for conversational prompt-completion data
    and trains on the completion only (the think block included); LLaMA-Factory reads `messages`."""

    id: str = Field(description="row id (hash of the sample id)")
    prompt_id: str = Field(description="the prompt's id in the run's `prompts/` table")
    sample_id: str = Field(description="the sample's id in the run's `samples/` table")
    messages: list[Message] = Field(description="the whole conversation: user turn, then the assistant turn")
    prompt: list[Message] = Field(description="`messages[:-1]`: the turns before the answer (TRL's prompt)")
    completion: list[Message] = Field(description="`messages[-1:]`: the assistant turn, `<think>` block included")
    problem: str = Field(description="the problem text as the source gave it (no template)")
    reasoning: str = Field(description="the teacher's reasoning (inside `<think>`)")
    answer: str = Field(description="the teacher's final answer (after `</think>`)")
    domain: str = Field(description="math, code, general, ...: which verifier or judge decided")
    source: str = Field(description="the job's source the prompt came from")
    kind: Kind = Field(description="shortcut (verified answer), journey, general (judged), no_cot (direct answer)")
    teacher: str = Field(description="the job's name for the teacher")
    model: str = Field(description="the teacher's model")
    sampling: str = Field(description="the sampling parameters, as JSON")
    completion_tokens: int = Field(description="tokens the teacher generated for this sample")
    verdicts: list[Verdict] = Field(description="every verifier's and the judge's verdict on the sample")
    pass_rate: float = Field(description="share of the prompt's samples that were accepted (difficulty)")
    config_hash: str = Field(description="the hash of the job that made the row")
    journey: JourneyInfo | None = Field(default=None, description="kind journey: how the trace was built")


class JourneyInfo(Record):
    """How a journey trace was made: the wrong attempt, where it went wrong, and the way back."""

    wrong_sample_id: str = Field(description="the rejected sample whose prefix opens the trace")
    correct_sample_id: str | None = Field(description="the accepted sample spliced in (null for bridge continue)")
    error_step: int = Field(description="the located wrong step of the attempt, counted from 1")
    locator: str = Field(description="compare or critic")
    bridge: str = Field(description="splice or continue")
    reflection: str = Field(description="the sentence that names the error, as it stands in the trace")
    rewritten: bool = Field(default=False, description="the teacher's rewrite of the joins was kept")


class JourneySample(Generation):
    """A journey trace: a `Generation` (verified and filtered like any sample) with how it was built.
    The `journey/` table."""

    journey: JourneyInfo


SFTRecord.model_rebuild()


def assistant_turn(reasoning: str, answer: str) -> str:
    """The assistant message as R1 was trained on it."""
    return f"<think>\n{reasoning}\n</think>\n\n{answer}"
