"""Building to a target: which prompts are visited first, and which rows make the final mix.

Pure logic over ids and counts (the pipeline reads and writes the tables):
- `target_groups`: the targets as groups of domains with a row count each (a mix domain is a group of
  its own; a split without a mix is one group of all its domains; a split without a target is a group
  without a row count, which takes every row);
- `visit_order`: a deterministic shuffle of each (source, domain), interleaved in proportion, so a run
  stopped at any point has visited a fair sample of every source;
- `choose_rows`: exactly the target count of each group, the earliest visited first.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from distillery.operators.select.general_policy import GENERAL_DOMAIN
from distillery.schemas.records import stable_hash
from distillery.schemas.targets_config import TargetsConfig

Split = Literal["reasoning", "general"]
OutcomeStatus = Literal["met", "short", "untargeted"]
ShortfallReason = Literal["sources ran out", "yield too low"]


def split_of(domain: str) -> Split:
    return "general" if domain == GENERAL_DOMAIN else "reasoning"


@dataclass(frozen=True, slots=True)
class TargetGroup:
    """Domains built to one row count (`rows` None: no target, every row is taken)."""

    name: str
    split: Split
    domains: frozenset[str]
    rows: int | None

    def covers(self, domain: str) -> bool:
        return domain in self.domains


def target_groups(targets: TargetsConfig, domains: Iterable[str]) -> list[TargetGroup]:
    """The groups of a run whose prompts have these domains. A domain that a split's mix leaves out
    belongs to no group: it is not generated and not selected."""
    present = sorted(set(domains))
    groups: list[TargetGroup] = []
    for split in ("reasoning", "general"):
        in_split = [d for d in present if split_of(d) == split]
        target = getattr(targets, split)
        if target is None:
            if in_split:
                groups.append(TargetGroup(split, split, frozenset(in_split), None))
        elif target.mix:
            groups += [TargetGroup(d, split, frozenset({d}), n) for d, n in sorted(target.domain_rows().items())]
        else:
            groups.append(TargetGroup(split, split, frozenset(in_split), target.rows))
    return groups


def group_of(groups: Sequence[TargetGroup], domain: str) -> TargetGroup | None:
    return next((g for g in groups if g.covers(domain)), None)


def goal(rows: int, margin: float, survival: float | None) -> int:
    """Accepted rows generation aims at for a target of `rows`: the margin on top, and scaled up by
    the share of rows that survived dedup and decontamination last time (when that is known)."""
    aim = rows * (1.0 + margin)
    if survival is not None and 0.0 < survival < 1.0:
        aim /= survival
    return math.ceil(aim - 1e-9)


def visit_order(ids: Sequence[str], sources: Sequence[str], domains: Sequence[str], seed: int) -> list[int]:
    """Positions of `ids` in the order they are visited: each (source, domain) shuffled by a seeded
    hash of the ids, then the groups interleaved by progress through each group (the k-th of n prompts
    sits at (k + 0.5) / n), so every prefix of the order holds each group in proportion to its size.
    The order depends only on the prompt ids, their sources and domains, and the seed."""
    members: dict[tuple[str, str], list[int]] = defaultdict(list)
    for position, key in enumerate(zip(sources, domains, strict=True)):
        members[key].append(position)
    keyed: list[tuple[float, str, int]] = []
    for positions in members.values():
        shuffled = sorted(positions, key=lambda p: stable_hash("visit", str(seed), ids[p]))
        size = len(shuffled)
        keyed += [((k + 0.5) / size, stable_hash("tie", str(seed), ids[p]), p) for k, p in enumerate(shuffled)]
    return [p for _, _, p in sorted(keyed)]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A row that may enter the dataset: a selected sample that survived dedup and decontamination."""

    sample_id: str
    domain: str
    visit_rank: int
    """Where its prompt stands in the visit order."""
    round: int
    index: int
    journey: bool = False
    """A journey trace (stage 4) rather than a sample."""


@dataclass
class TargetOutcome:
    group: str
    split: Split
    target: int | None
    selected: int = 0
    candidates: int = 0
    """Rows that could be selected (after dedup and decontamination)."""
    accepted: int = 0
    """Selected samples before dedup and decontamination (what generation counted)."""
    prompts_left: int = 0
    """Prompts of the group not visited yet."""
    status: OutcomeStatus = "untargeted"
    reason: ShortfallReason | None = None

    @property
    def shortfall(self) -> int:
        return max(0, (self.target or 0) - self.selected)

    @property
    def survival(self) -> float | None:
        """Share of the accepted rows that survived dedup and decontamination."""
        return self.candidates / self.accepted if self.accepted else None

    def describe(self) -> str:
        if self.status == "untargeted":
            return f"{self.group}: {self.selected} rows (no target: every row)"
        if self.status == "met":
            return f"{self.group}: {self.selected} of {self.target} rows: met"
        return (
            f"{self.group}: {self.selected} of {self.target} rows: short by {self.shortfall} ({self.reason}; "
            f"{self.accepted} accepted, {self.candidates} after dedup and decontamination, "
            f"{self.prompts_left} prompts not visited)"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "group": self.group,
            "split": self.split,
            "target": self.target,
            "selected": self.selected,
            "shortfall": self.shortfall,
            "candidates": self.candidates,
            "accepted": self.accepted,
            "prompts_left": self.prompts_left,
            "status": self.status,
            "reason": self.reason,
        }


@dataclass
class MixSelection:
    chosen: set[str] = field(default_factory=set)
    """Sample ids that become dataset rows."""
    outcomes: list[TargetOutcome] = field(default_factory=list)

    def needs_more(self) -> bool:
        """Some target fell short while its group still has prompts to visit."""
        return any(o.status == "short" and o.prompts_left > 0 for o in self.outcomes)

    def as_report(self) -> dict[str, object]:
        return {"outcomes": [o.as_dict() for o in self.outcomes], "needs_more": self.needs_more()}

    def card_section(self) -> str:
        """The dataset card's account of the targets: met, or short by how much and why."""
        lines = ["", "## Targets", ""]
        lines += [f"- {o.describe()}" for o in self.outcomes]
        return "\n".join(lines) + "\n"


def choose_rows(
    groups: Sequence[TargetGroup],
    candidates: Iterable[Candidate],
    accepted: dict[str, int],
    prompts_left: dict[str, int],
    journey_share: float = 0.0,
) -> MixSelection:
    """Exactly each group's target count, the earliest visited prompts first (then round, index);
    every candidate of a group without a target. `accepted` and `prompts_left` are per group. Of a
    reasoning target, `journey_share` of the rows are journey traces where there are enough (the
    rest, and any journey rows missing, are samples)."""
    by_group: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        group = group_of(groups, candidate.domain)
        if group is not None:
            by_group[group.name].append(candidate)
    selection = MixSelection()
    for group in groups:
        ranked = sorted(by_group[group.name], key=lambda c: (c.visit_rank, c.round, c.index))
        if group.rows is None:
            taken = ranked
        else:
            share = journey_share if group.split == "reasoning" else 0.0
            journeys = [c for c in ranked if c.journey][: round(group.rows * share)]
            shortcuts = [c for c in ranked if not c.journey][: group.rows - len(journeys)]
            taken = journeys + shortcuts
        selection.chosen |= {c.sample_id for c in taken}
        outcome = TargetOutcome(
            group.name,
            group.split,
            group.rows,
            selected=len(taken),
            candidates=len(ranked),
            accepted=accepted.get(group.name, 0),
            prompts_left=prompts_left.get(group.name, 0),
        )
        if group.rows is not None:
            outcome.status = "met" if len(taken) >= group.rows else "short"
            if outcome.status == "short":
                outcome.reason = "yield too low" if outcome.prompts_left else "sources ran out"
        selection.outcomes.append(outcome)
    return selection
