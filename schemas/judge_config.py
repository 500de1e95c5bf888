"""The LLM judge's section of the job file: which teacher judges, and where it runs.

```yaml
judge:
  teacher: v3                  # a key of `teachers`
  domains: [science]           # no rule verifier: the judge compares the answer with the gold answer
  unparseable_gold: true       # a gold answer the rule verifier cannot parse goes to the judge
  second_opinion: off          # confirm: the judge must agree with the rule verifier's `correct`
                               # rescue: the judge may overturn the rule verifier's `incorrect`
```
The general split's prompts (domain `general`) have no gold answer: the judge scores them
(`general.min_score`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from distillery.schemas.base import Section
from distillery.schemas.teacher_config import TeacherConfig, VLLMTeacherConfig


class JudgeConfig(Section):
    teacher: str = Field(description="the teacher (a key of `teachers`) that judges")
    domains: list[str] = Field(
        default_factory=list, description="domains without a rule verifier, judged against their gold answer"
    )
    unparseable_gold: bool = Field(
        default=True, description="when a rule verifier cannot parse a prompt's gold answer, the judge decides"
    )
    second_opinion: Literal["off", "confirm", "rescue"] = Field(
        default="off",
        description="confirm: a rule `correct` also needs the judge's `correct`; rescue: a rule `incorrect` "
        "is accepted when the judge says `correct` (answers in forms the rules cannot read)",
    )
    max_answer_chars: int = Field(
        default=4000, ge=100, description="longer answers are shown to the judge as their start and end"
    )


def judge_placement_error(judge: JudgeConfig, teachers: dict[str, TeacherConfig], generating: set[str]) -> str | None:
    """Why this judge cannot run where it is needed, or None. The judge runs inside every replica of
    every generating teacher; a vLLM engine other than the replica's own would be a second engine on
    the same GPUs."""
    config = teachers.get(judge.teacher)
    if not isinstance(config, VLLMTeacherConfig):
        return None
    others = sorted(generating - {judge.teacher})
    if not others:
        return None
    return (
        f"judge.teacher {judge.teacher!r} is a vLLM engine, so only its own replicas can run it, but "
        f"{', '.join(repr(o) for o in others)} also generate(s). Judge with the generating teacher, or serve "
        "the judge model (vllm serve) and name a `backend: openai` teacher for it"
    )
