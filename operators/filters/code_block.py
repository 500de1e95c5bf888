"""Code blocks in the reasoning of a non-code prompt (R1): a math chain of thought that switches to
writing programs is not what the student should learn to do."""

from __future__ import annotations

import re

from distillery.operators.filters.base import SampleFilter
from distillery.schemas.filter_config import CodeBlockFilterConfig
from distillery.schemas.records import Generation, Prompt

_FENCE = re.compile(r"^[ \t]*(?:```|~~~)", re.MULTILINE)


class CodeBlockFilter(SampleFilter):
    name = "code_block"

    def __init__(self, config: CodeBlockFilterConfig) -> None:
        super().__init__()
        self.code_domains = frozenset(config.code_domains)

    def decide(self, prompt: Prompt, sample: Generation) -> tuple[bool, str]:
        if prompt.domain in self.code_domains:
            return True, ""
        fence = _FENCE.search(sample.reasoning)
        if fence is None:
            return True, ""
        line = sample.reasoning.count("\n", 0, fence.start()) + 1
        return False, f"fenced code block in the reasoning of a {prompt.domain} prompt (line {line})"
