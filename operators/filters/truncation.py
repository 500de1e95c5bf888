"""Truncated generations are never accepted: the answer may be cut off or missing."""

from __future__ import annotations

from distillery.operators.filters.base import SampleFilter
from distillery.operators.teachers.think_split import THINK_CLOSE, THINK_OPEN
from distillery.schemas.records import Generation, Prompt


class TruncationFilter(SampleFilter):
    name = "truncation"

    def decide(self, prompt: Prompt, sample: Generation) -> tuple[bool, str]:
        if sample.finish_reason == "length":
            return False, f"hit max_tokens ({sample.completion_tokens} tokens)"
        if sample.text.count(THINK_OPEN) > sample.text.count(THINK_CLOSE):
            return False, "think block never closed"
        return True, ""
