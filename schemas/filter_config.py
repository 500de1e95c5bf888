"""Quality-filter sections of the job file: each R1 filter on or off, with its thresholds.

```yaml
filters:
  think_format: {require_think: [r1]}   # teachers that are reasoning models must write <think>...</think>
  language_mix: {max_foreign_share: 0.05}
  long_paragraph: {max_chars: 3000}
  code_block: {code_domains: [code]}
  repetition: {ngram_size: 10, max_ngram_repeats: 8}
  length: {max_completion_tokens: 32768}
  truncation: {enabled: true}
```
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from distillery.schemas.base import Section


class TruncationFilterConfig(Section):
    enabled: bool = True


class ThinkFormatFilterConfig(Section):
    """Think tags, the answer after them, and a final answer where a rule verifier reads one."""

    enabled: bool = True
    require_think: bool | list[str] = Field(
        default=False,
        description="samples must hold exactly one non-empty think block: true for every teacher, or a list of "
        "the teachers that are reasoning models. Malformed tags (two blocks, text before the block) are "
        "rejected either way",
    )
    final_answer_domains: list[str] = Field(
        default_factory=list,
        description="domains whose answer must state a final answer (\\boxed{...}, 'the answer is ...')",
    )


class LengthFilterConfig(Section):
    enabled: bool = True
    min_completion_tokens: int = Field(default=1, ge=0)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    max_answer_chars: int | None = Field(
        default=8000, ge=1, description="longest answer (the summary after the reasoning) of a sample with reasoning"
    )
    long_answer_domains: list[str] = Field(
        default_factory=lambda: ["general"],
        description="domains where the answer is the product (an essay, a story), not a summary: no answer limit",
    )

    @model_validator(mode="after")
    def _bounds(self) -> LengthFilterConfig:
        if self.max_completion_tokens is not None and self.max_completion_tokens < self.min_completion_tokens:
            raise ValueError("max_completion_tokens is below min_completion_tokens")
        return self


class RepetitionFilterConfig(Section):
    """Loops, the classic failure of long generations: a sentence or an n-gram repeated many times."""

    enabled: bool = True
    max_sentence_repeats: int | None = Field(
        default=5, ge=1, description="a sentence may occur this many times; null: no sentence check"
    )
    min_sentence_chars: int = Field(default=16, ge=1, description="shorter sentences are not counted")
    ngram_size: int = Field(default=10, ge=2, description="words (a CJK character is a word) per n-gram")
    max_ngram_repeats: int | None = Field(
        default=8, ge=1, description="an n-gram may occur this many times; null: no n-gram check"
    )


class LanguageMixFilterConfig(Section):
    """Reasoning and answer in the prompt's script: CJK inside an English chain of thought, or Latin
    inside a Chinese one, is mixing. Math, code, numbers and single letters do not count."""

    enabled: bool = True
    max_foreign_share: float = Field(
        default=0.05, ge=0.0, le=1.0, description="largest share of words in a script the prompt does not use"
    )
    min_foreign_words: int = Field(
        default=5, ge=1, description="fewer foreign words than this never reject (a quoted name)"
    )
    min_prompt_words: int = Field(
        default=3, ge=1, description="a prompt with fewer words (e.g. '2+3=?') takes the response's main script"
    )
    exempt_pattern: str | None = Field(
        default=r"(?i)\btranslat|翻译|翻譯|翻訳",
        description="prompts matching this regex are not checked (translation requests)",
    )
    skip_domains: list[str] = Field(default_factory=list)

    @field_validator("exempt_pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return pattern


class LongParagraphFilterConfig(Section):
    enabled: bool = True
    max_chars: int | None = Field(default=3000, ge=1, description="longest paragraph of the reasoning, characters")
    max_words: int | None = Field(
        default=None, ge=1, description="longest paragraph in words (a CJK character is a word)"
    )


class CodeBlockFilterConfig(Section):
    enabled: bool = True
    code_domains: list[str] = Field(
        default_factory=lambda: ["code"], description="domains whose reasoning may hold fenced code blocks"
    )


class FiltersConfig(Section):
    """Filters run in this order; a sample's rejection names the first that dropped it."""

    truncation: TruncationFilterConfig = Field(default_factory=TruncationFilterConfig)
    think_format: ThinkFormatFilterConfig = Field(default_factory=ThinkFormatFilterConfig)
    length: LengthFilterConfig = Field(default_factory=LengthFilterConfig)
    repetition: RepetitionFilterConfig = Field(default_factory=RepetitionFilterConfig)
    language_mix: LanguageMixFilterConfig = Field(default_factory=LanguageMixFilterConfig)
    long_paragraph: LongParagraphFilterConfig = Field(default_factory=LongParagraphFilterConfig)
    code_block: CodeBlockFilterConfig = Field(default_factory=CodeBlockFilterConfig)
