"""The filters a job turns on, in the order they run (the order of `FiltersConfig`'s fields)."""

from __future__ import annotations

from collections.abc import Callable

from distillery.operators.filters.base import SampleFilter
from distillery.operators.filters.code_block import CodeBlockFilter
from distillery.operators.filters.language_mix import LanguageMixFilter
from distillery.operators.filters.length import LengthFilter
from distillery.operators.filters.long_paragraph import LongParagraphFilter
from distillery.operators.filters.repetition import RepetitionFilter
from distillery.operators.filters.think_format import ThinkFormatFilter, never_direct
from distillery.operators.filters.truncation import TruncationFilter
from distillery.schemas.filter_config import FiltersConfig
from distillery.schemas.records import Prompt


def build_filters(
    config: FiltersConfig, answers_directly: Callable[[Prompt], bool] = never_direct
) -> list[SampleFilter]:
    """`answers_directly(prompt)` says which prompts are answered without reasoning (the general
    split's trivial prompts): the think-format filter does not ask them for a think block."""
    filters: list[SampleFilter] = []
    if config.truncation.enabled:
        filters.append(TruncationFilter())
    if config.think_format.enabled:
        filters.append(ThinkFormatFilter(config.think_format, answers_directly))
    if config.length.enabled:
        filters.append(LengthFilter(config.length))
    if config.repetition.enabled:
        filters.append(RepetitionFilter(config.repetition))
    if config.language_mix.enabled:
        filters.append(LanguageMixFilter(config.language_mix))
    if config.long_paragraph.enabled:
        filters.append(LongParagraphFilter(config.long_paragraph))
    if config.code_block.enabled:
        filters.append(CodeBlockFilter(config.code_block))
    return filters
