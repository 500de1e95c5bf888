"""Which prompts get journey traces, and how many: eligibility, order and the budget that follows
from the target share. A pure function of the samples table, so a resumed run plans the same."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from distillery.operators.verifiers.judge import LLMJudge
from distillery.schemas.journey_config import JourneyConfig
from distillery.schemas.records import Generation, Verdict, stable_hash


def is_rule_verdict(verdict: Verdict) -> bool:
    return not verdict.verifier.startswith(LLMJudge.name)


def is_wrong_attempt(sample: Generation) -> bool:
    """Rejected because a rule verifier found its final answer wrong, and for nothing else: not
    truncated, not dropped by a filter, not invalid, not timed out, not unverified."""
    if sample.accepted or sample.finish_reason == "length" or not all(f.keep for f in sample.filters):
        return False
    if not sample.verdicts or any(v.verdict in ("invalid", "timeout", "error") for v in sample.verdicts):
        return False
    return any(is_rule_verdict(v) and v.verdict == "incorrect" for v in sample.verdicts)


@dataclass(frozen=True, slots=True)
class PromptPool:
    """One prompt's raw material."""

    prompt_id: str
    samples: int
    accepted: int
    wrong: int

    @property
    def pass_rate(self) -> float:
        return self.accepted / self.samples if self.samples else 0.0


def prompt_pools(samples: Iterable[Generation]) -> list[PromptPool]:
    counts: dict[str, list[int]] = {}
    for sample in samples:
        entry = counts.setdefault(sample.prompt_id, [0, 0, 0])
        entry[0] += 1
        entry[1] += sample.accepted
        entry[2] += is_wrong_attempt(sample)
    return [PromptPool(p, *c) for p, c in counts.items()]


def journey_budget(shortcut_rows: int, share: float) -> int:
    """Traces that make `share` of the reasoning split next to `shortcut_rows` shortcut rows."""
    return math.floor(shortcut_rows * share / (1.0 - share) + 1e-9)


def eligible(pool: PromptPool, config: JourneyConfig) -> bool:
    if pool.wrong == 0:
        return False
    return pool.accepted > 0 if config.bridge == "splice" else True


def plan_quotas(pools: list[PromptPool], config: JourneyConfig, shortcut_rows: int) -> dict[str, int]:
    """prompt id -> traces wanted, eligible prompts in the configured order until the budget is spent."""
    candidates = [p for p in pools if eligible(p, config)]
    if config.order == "hardest_first":
        candidates.sort(key=lambda p: (p.pass_rate, p.prompt_id))
    else:
        candidates.sort(key=lambda p: stable_hash("journey-order", str(config.seed), p.prompt_id))
    remaining = journey_budget(shortcut_rows, config.share)
    quotas: dict[str, int] = {}
    for pool in candidates:
        if remaining <= 0:
            break
        quotas[pool.prompt_id] = min(config.max_per_prompt, pool.wrong, remaining)
        remaining -= quotas[pool.prompt_id]
    return quotas
