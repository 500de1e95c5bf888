"""The filters a job turns on, in the order they run."""

from __future__ import annotations

from distillery.operators.filters.base import SampleFilter
from distillery.operators.filters.truncation import TruncationFilter
from distillery.schemas.filter_config import FiltersConfig


def build_filters(config: FiltersConfig) -> list[SampleFilter]:
    filters: list[SampleFilter] = []
    if config.truncation.enabled:
        filters.append(TruncationFilter())
    return filters
