"""The adaptive sampling budget of the job file (`generation.sampling_budget`)."""

from __future__ import annotations

from pydantic import Field, model_validator

from distillery.schemas.base import Section


class SamplingBudgetConfig(Section):
    """How many samples a prompt gets, decided round by round instead of a fixed `n` per round.

    The first round draws `first_round_n`. Each later round draws the fewest samples that bring the
    accepted ones up to `keep_per_prompt` with probability `confidence`, at the pass rate observed so
    far; a prompt at 1/4 gets more draws than one at 3/4. A prompt with nothing accepted once its
    `max_samples_per_prompt` are spent is given up. Rounds stay capped by `generation.max_rounds`.
    """

    max_samples_per_prompt: int = Field(default=16, ge=1, description="samples one prompt may get over all rounds")
    first_round_n: int = Field(default=4, ge=1, description="samples of the first round, before any pass rate is known")
    max_round_n: int = Field(default=16, ge=1, le=128, description="most samples one round (one request) asks for")
    confidence: float = Field(
        default=0.8, gt=0.0, lt=1.0, description="wanted chance that a round brings the accepted samples still missing"
    )
    skip_if_pass_rate_above: float | None = Field(
        default=None,
        ge=0.0,
        lt=1.0,
        description="a prompt whose first round passes more often than this is too easy to teach anything: "
        "none of its samples is selected",
    )

    @model_validator(mode="after")
    def _first_round_fits(self) -> SamplingBudgetConfig:
        if self.first_round_n > self.max_samples_per_prompt:
            raise ValueError(
                f"first_round_n ({self.first_round_n}) must not exceed max_samples_per_prompt "
                f"({self.max_samples_per_prompt})"
            )
        return self
