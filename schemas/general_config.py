"""The general (non-reasoning) split: prompts of domain `general` (writing, QA, translation,
role-play, self-cognition), as R1 built its 200K non-reasoning samples.

A policy decides per prompt whether the teacher thinks first: trivial prompts (greetings, thanks,
goodbyes; rule-based) are answered directly, kind `no_cot`; the others get a short chain of thought
then the answer, kind `general`. There is no gold answer: the judge scores each answer, and the
filters apply as for every sample.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from distillery.schemas.base import Section

GREETINGS = [
    r"(hi|hello|hey|hiya|howdy|greetings|yo)( there| everyone| all)?",
    r"good (morning|afternoon|evening|night|day)",
    r"(thanks|thank you|thx|ty)( (so|very) much| a lot)?",
    r"(bye|goodbye|see you|see ya|good bye)( later| soon)?",
    r"how are you( doing| today)?|how's it going|what's up|sup|how do you do",
    r"(ok|okay|cool|nice|great|sure|yes|no)",
    r"你好|您好|嗨|早上好|晚上好|谢谢|谢谢你|再见|拜拜|你好吗",
    r"bonjour|salut|merci|hola|gracias|adiós|adios|hallo|danke|ciao|grazie|привет|спасибо|こんにちは|ありがとう|안녕하세요",
]

THINK_INSTRUCTION = (
    "Before you answer, think briefly: write a short reasoning inside <think> and </think>, "
    "then write your answer after </think>."
)


class GeneralConfig(Section):
    prompt_template: str | None = Field(
        default="{problem}",
        description="user turn of general prompts ({problem} is replaced), instead of the teacher's own "
        "template (which is usually written for reasoning prompts); null: the teacher's template",
    )
    think_instruction: str | None = Field(
        default=THINK_INSTRUCTION,
        description="system prompt for prompts that get a chain of thought (after the teacher's own); "
        "null for a reasoning teacher, which thinks anyway",
    )
    direct_instruction: str | None = Field(
        default=None, description="system prompt for trivial prompts, answered without reasoning"
    )
    trivial_patterns: list[str] = Field(
        default_factory=lambda: list(GREETINGS),
        description="a prompt is trivial when all of it (lower-cased, without punctuation) matches one of these",
    )
    max_trivial_words: int = Field(
        default=0, ge=0, description="prompts of at most this many words are trivial too (0: off)"
    )
    min_score: int = Field(default=7, ge=1, le=10, description="the judge's score (1-10) a general answer needs")

    @field_validator("trivial_patterns")
    @classmethod
    def _compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
        return patterns
