"""Length bounds: completion tokens, and the size of the answer that follows the reasoning (R1's
summary part should be a summary, not a second chain of thought)."""

from __future__ import annotations

from distillery.operators.filters.base import SampleFilter
from distillery.schemas.filter_config import LengthFilterConfig
from distillery.schemas.records import Generation, Prompt


class LengthFilter(SampleFilter):
    name = "length"

    def __init__(self, config: LengthFilterConfig) -> None:
        super().__init__()
        self.config = config
        self.long_answer_domains = frozenset(config.long_answer_domains)

    def decide(self, prompt: Prompt, sample: Generation) -> tuple[bool, str]:
        tokens = sample.completion_tokens
        if tokens < self.config.min_completion_tokens:
            return False, f"{tokens} completion tokens (minimum {self.config.min_completion_tokens})"
        limit = self.config.max_completion_tokens
        if limit is not None and tokens > limit:
            return False, f"{tokens} completion tokens (maximum {limit})"
        limit = self.config.max_answer_chars
        if prompt.domain in self.long_answer_domains or not sample.reasoning.strip():
            return True, ""
        if limit is not None and len(sample.answer) > limit:
            return False, f"answer after the reasoning has {len(sample.answer)} characters (maximum {limit})"
        return True, ""
