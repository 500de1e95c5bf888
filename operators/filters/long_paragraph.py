"""Long paragraphs (R1): a wall of text in the reasoning is unreadable, whatever it says."""

from __future__ import annotations

import re

from distillery.operators.filters.base import SampleFilter
from distillery.operators.text import words
from distillery.schemas.filter_config import LongParagraphFilterConfig
from distillery.schemas.records import Generation, Prompt

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


class LongParagraphFilter(SampleFilter):
    name = "long_paragraph"

    def __init__(self, config: LongParagraphFilterConfig) -> None:
        super().__init__()
        self.max_chars = config.max_chars
        self.max_words = config.max_words

    def decide(self, prompt: Prompt, sample: Generation) -> tuple[bool, str]:
        for number, paragraph in enumerate(_PARAGRAPH_BREAK.split(sample.reasoning), start=1):
            text = paragraph.strip()
            if self.max_chars is not None and len(text) > self.max_chars:
                return False, f"paragraph {number} of the reasoning has {len(text)} characters (limit {self.max_chars})"
            if self.max_words is not None:
                count = len(words(text))
                if count > self.max_words:
                    return False, f"paragraph {number} of the reasoning has {count} words (limit {self.max_words})"
        return True, ""
