"""Quality-filter sections of the job file."""

from __future__ import annotations

from pydantic import Field

from distillery.schemas.teacher_config import Section


class TruncationFilterConfig(Section):
    enabled: bool = True


class FiltersConfig(Section):
    truncation: TruncationFilterConfig = Field(default_factory=TruncationFilterConfig)
