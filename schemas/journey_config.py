"""The journey section of the job file: wrong-then-corrected traces built from rejection sampling's
own rejects (stage 4).

```yaml
journey:
  enabled: true
  share: 0.1              # target share of journey rows in the reasoning split
  max_per_prompt: 1
  order: hardest_first    # lowest pass rate first; or random (seeded)
  locate: compare         # compare (no model) or critic (a teacher names the wrong step)
  bridge: splice          # splice (the correct sample's reasoning) or continue (the teacher continues)
  rewrite: false          # the teacher smooths the joins; kept only if the error and its fix survive
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from distillery.schemas.base import Section

Locator = Literal["compare", "critic"]
Bridge = Literal["splice", "continue"]


class JourneyConfig(Section):
    enabled: bool = False
    share: float = Field(
        default=0.1,
        gt=0.0,
        lt=1.0,
        description="target share of journey rows in the reasoning split: the stage builds at most "
        "share / (1 - share) traces per selected shortcut sample",
    )
    max_per_prompt: int = Field(default=1, ge=1, description="journey traces kept per prompt")
    order: Literal["hardest_first", "random"] = Field(
        default="hardest_first", description="which eligible prompts first: lowest pass rate, or a seeded shuffle"
    )
    seed: int = Field(default=0, description="seed of `order: random`")
    locate: Locator = Field(
        default="compare",
        description="compare: the first step whose results contradict the correct sample's (or the gold); "
        "critic: a teacher names the first wrong step",
    )
    bridge: Bridge = Field(
        default="splice",
        description="splice: reflection then the correct sample's reasoning (fresh restart); continue: the "
        "teacher continues from the wrong prefix and the reflection (fix and continue)",
    )
    rewrite: bool = Field(default=False, description="the teacher smooths the joins into one chain of thought")
    teacher: str | None = Field(
        default=None,
        description="teacher (a key of `teachers`) for critic, continue and rewrite; default: the teacher "
        "that wrote the samples",
    )
    max_step_chars: int = Field(
        default=600, ge=50, description="a paragraph longer than this is split into sentences (steps)"
    )

    @property
    def needs_teacher(self) -> bool:
        return self.locate == "critic" or self.bridge == "continue" or self.rewrite
