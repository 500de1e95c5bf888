"""A wrong attempt cut into steps: paragraphs, or sentences where a paragraph is long.

Steps are spans of the attempt's own text, so the trace's wrong prefix is the attempt verbatim up to
and including the wrong step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from distillery.schemas.records import Generation

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
# A sentence ends at . ! ? followed by space and a capital, a digit, a formula or a bracket; "3.5"
# has no space after its dot, so decimals never end one.
_SENTENCE_END = re.compile(r"(?<=[.!?])[ \t]+(?=[A-Z0-9\\$(\[])")


@dataclass(frozen=True, slots=True)
class Step:
    number: int
    """Counted from 1, as the critic sees them."""
    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class Attempt:
    """Where a sample's working is: the reasoning, or (a teacher without think tags) the answer text."""

    text: str
    in_reasoning: bool


def attempt_of(sample: Generation) -> Attempt:
    if sample.reasoning.strip():
        return Attempt(sample.reasoning, True)
    return Attempt(sample.answer, False)


def _spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Non-blank spans of text[start:end], leading and trailing whitespace trimmed."""
    chunk = text[start:end]
    left = len(chunk) - len(chunk.lstrip())
    right = len(chunk.rstrip())
    if right <= left:
        return []
    return [(start + left, start + right)]


def split_steps(text: str, max_step_chars: int) -> list[Step]:
    paragraphs: list[tuple[int, int]] = []
    position = 0
    for brk in _PARAGRAPH_BREAK.finditer(text):
        paragraphs += _spans(text, position, brk.start())
        position = brk.end()
    paragraphs += _spans(text, position, len(text))
    spans: list[tuple[int, int]] = []
    for start, end in paragraphs:
        if end - start <= max_step_chars:
            spans.append((start, end))
            continue
        cut = start
        for boundary in _SENTENCE_END.finditer(text, start, end):
            spans += _spans(text, cut, boundary.start())
            cut = boundary.end()
        spans += _spans(text, cut, end)
    return [Step(k + 1, s, e, text[s:e]) for k, (s, e) in enumerate(spans)]
