"""Whether a general (non-reasoning) prompt gets a chain of thought, and how it is put to the teacher.

R1's non-reasoning data: a short chain of thought before the answer where it helps, none for
trivial queries such as "hello". The decision is a rule on the prompt's text, so it is the same
when the samples are drawn and when the dataset rows are written.
"""

from __future__ import annotations

import dataclasses
import re

from distillery.operators.teachers.chat_format import ChatFormat
from distillery.operators.text import words
from distillery.schemas.general_config import GeneralConfig
from distillery.schemas.records import Generation, Kind, Prompt

GENERAL_DOMAIN = "general"

_EDGE_PUNCTUATION = re.compile(r"^[\W_]+|[\W_]+$")
_INNER_SPACE = re.compile(r"[\s,]+")


class GeneralPolicy:
    def __init__(self, config: GeneralConfig) -> None:
        self.config = config
        self.trivial = [re.compile(p, re.IGNORECASE) for p in config.trivial_patterns]

    @staticmethod
    def applies(prompt: Prompt) -> bool:
        return prompt.domain == GENERAL_DOMAIN

    def is_trivial(self, prompt: Prompt) -> bool:
        text = _INNER_SPACE.sub(" ", _EDGE_PUNCTUATION.sub("", prompt.problem.strip().lower()))
        if any(p.fullmatch(text) for p in self.trivial):
            return True
        limit = self.config.max_trivial_words
        return limit > 0 and len(words(text)) <= limit and not any(c.isdigit() for c in text)

    def answers_directly(self, prompt: Prompt) -> bool:
        """A general prompt answered without reasoning (kind `no_cot`)."""
        return self.applies(prompt) and self.is_trivial(prompt)

    def chat(self, base: ChatFormat, prompt: Prompt) -> ChatFormat:
        """The teacher's chat format for a general prompt: the general template, and the think (or
        direct) instruction after the teacher's own system prompt."""
        instruction = self.config.direct_instruction if self.is_trivial(prompt) else self.config.think_instruction
        system = "\n\n".join(p for p in (base.system_prompt, instruction) if p) or None
        template = self.config.prompt_template or base.prompt_template
        return dataclasses.replace(base, prompt_template=template, system_prompt=system)

    def row_kind(self, prompt: Prompt, sample: Generation) -> Kind:
        """A row's kind is what it holds: no reasoning is `no_cot`, whatever was asked for."""
        if self.is_trivial(prompt) or not sample.reasoning.strip():
            return "no_cot"
        return "general"
