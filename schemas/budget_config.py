"""The adaptive sampling budget of the job file (`generation.sampling_budget`)."""

from __future__ import annotations

from pydantic import Field, model_validator

from distillery.schemas.base import Section


class SamplingBudgetConfig(Section):
    """How many samples a prompt gets, decided round by round instead of a fixed `n` per round.

    The first round draws `first_round_n`. Each later round draws the fewest samples that bring the
    accepted ones up to `keep_per_prompt` at the pass rate observed so far, with the share of
    `confidence` that falls to one of the rounds left (`generation.max_rounds`): the draws are spread
    over the rounds, so a prompt that passes early stops before drawing the rest, and a prompt at 1/4
    gets more draws than one at 3/4. A prompt with nothing accepted once its `max_samples_per_prompt`
    are spent is given up.

    `give_up_below_pass_rate` (off by default) also gives up a prompt early once its pass rate is
    confidently (`confidence`) below that floor, i.e. each row from it would cost more than
    1 / floor samples. It trades the hardest prompts, often the most instructive ones, for cost:
    turn it on when there are more prompts than the targets need.
    """

    max_samples_per_prompt: int = Field(default=16, ge=1, description="samples one prompt may get over all rounds")
    first_round_n: int = Field(default=4, ge=1, description="samples of the first round, before any pass rate is known")
    max_round_n: int = Field(default=16, ge=1, le=128, description="most samples one round (one request) asks for")
    confidence: float = Field(
        default=0.8,
        gt=0.0,
        lt=1.0,
        description="wanted chance that the rounds left bring the accepted samples still missing (each round "
        "aims at 1 - (1 - confidence) ** (1 / rounds left)); also how sure the floor's test must be",
    )
    give_up_below_pass_rate: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description="give a prompt up once its pass rate is confidently below this (each row would cost more "
        "than 1 / this samples): trades the hardest prompts for cost; none: every prompt gets its whole budget",
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
