"""Format (R1): one well-formed think block where the teacher is a reasoning model, a non-empty
answer after it, and a stated final answer where a rule verifier will look for one."""

from __future__ import annotations

from collections.abc import Callable

from distillery.operators.filters.base import SampleFilter
from distillery.operators.teachers.think_split import THINK_CLOSE, THINK_OPEN
from distillery.operators.verifiers.answer_extraction import extract_final_answer
from distillery.schemas.filter_config import ThinkFormatFilterConfig
from distillery.schemas.records import Generation, Prompt


def never_direct(prompt: Prompt) -> bool:
    return False


class ThinkFormatFilter(SampleFilter):
    name = "think_format"

    def __init__(
        self, config: ThinkFormatFilterConfig, answers_directly: Callable[[Prompt], bool] = never_direct
    ) -> None:
        """`answers_directly(prompt)`: the prompt is meant to be answered without reasoning (a greeting
        in the general split), so no think block is required of it."""
        super().__init__()
        self.require_all = config.require_think is True
        listed = config.require_think if isinstance(config.require_think, list) else []
        self.require_teachers = frozenset(listed)
        self.final_answer_domains = frozenset(config.final_answer_domains)
        self.answers_directly = answers_directly

    def requires_think(self, prompt: Prompt, sample: Generation) -> bool:
        if self.answers_directly(prompt):
            return False
        return self.require_all or sample.teacher in self.require_teachers

    def decide(self, prompt: Prompt, sample: Generation) -> tuple[bool, str]:
        opens, closes = sample.text.count(THINK_OPEN), sample.text.count(THINK_CLOSE)
        if (opens or closes) and not sample.think_well_formed:
            return False, f"malformed think block ({opens} opening, {closes} closing tags, or text before it)"
        if self.requires_think(prompt, sample):
            if not sample.think_well_formed:
                return False, "no think block"
            if not sample.reasoning.strip():
                return False, "empty think block"
        if not sample.answer.strip():
            return False, "empty answer"
        if prompt.domain in self.final_answer_domains and extract_final_answer(sample.answer) is None:
            return False, "no final answer stated (\\boxed{...} or 'the answer is ...')"
        return True, ""
