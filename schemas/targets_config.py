"""What a run aims at (`targets:` in the job file): rows per split, the domain mix, the margin.

Targets are left out of the job's config hash (`JobConfig.config_hash`): they say how much to make,
not how a sample is made, so a rerun with a raised target continues the same run directory and
reuses every sample it holds.
"""

from __future__ import annotations

import math

from pydantic import Field, model_validator

from distillery.schemas.base import Section

SHARE_TOLERANCE = 1e-6
"""How far the shares of a mix may sum from 1 (YAML decimals are not exact)."""


class SplitTarget(Section):
    rows: int = Field(ge=0, description="rows of this split in the final dataset")
    mix: dict[str, float] = Field(
        default_factory=dict,
        description="domain -> share of the rows (summing to 1) or row count (summing to rows); "
        "empty: any mix of the split's domains, in the sources' proportions",
    )

    @model_validator(mode="after")
    def _mix(self) -> SplitTarget:
        if not self.mix:
            return self
        values = list(self.mix.values())
        if any(v < 0 for v in values):
            raise ValueError("mix: shares and counts must not be negative")
        if all(float(v).is_integer() for v in values) and sum(values) == self.rows:
            return self
        if all(v <= 1 for v in values) and abs(sum(values) - 1) <= SHARE_TOLERANCE:
            return self
        raise ValueError(
            f"mix: give shares that sum to 1 (these sum to {sum(values):g}) or row counts that sum to rows "
            f"({self.rows})"
        )

    def domain_rows(self) -> dict[str, int]:
        """Rows per mix domain; shares are rounded by largest remainder, so the counts sum to `rows`."""
        if all(float(v).is_integer() for v in self.mix.values()) and sum(self.mix.values()) == self.rows:
            return {d: int(v) for d, v in self.mix.items()}
        exact = {d: self.rows * share for d, share in self.mix.items()}
        counts = {d: math.floor(x) for d, x in exact.items()}
        leftover = self.rows - sum(counts.values())
        for domain in sorted(exact, key=lambda d: (counts[d] - exact[d], d))[:leftover]:
            counts[domain] += 1
        return counts


class TargetsConfig(Section):
    reasoning: SplitTarget | None = Field(default=None, description="the reasoning split (every non-general domain)")
    general: SplitTarget | None = Field(default=None, description="the general split (domain `general`)")
    journey_share: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description="share of the reasoning rows that are journey rows when the journey stage is on: the same "
        "setting as `journey.share` (give it in either place; two different values are an error)",
    )
    margin: float = Field(
        default=0.1,
        ge=0.0,
        le=2.0,
        description="generation aims this far above each target: dedup and decontamination remove some rows",
    )
    seed: int = Field(default=0, description="seed of the order prompts are visited in, per source and domain")
    max_top_up_passes: int = Field(
        default=3,
        ge=0,
        description="times a run goes back to generation when the final selection falls short and prompts remain",
    )

    @model_validator(mode="after")
    def _general_mix(self) -> TargetsConfig:
        if self.general is not None and set(self.general.mix) - {"general"}:
            raise ValueError("general.mix: the general split has the one domain `general`; leave mix out")
        return self
