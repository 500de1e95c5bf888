"""An LLM judge for borderline embedding matches, as in LMSYS's decontaminator: the nearest
benchmark items come from the embedding index, then a teacher is asked "is this the same problem?".

The prompt is versioned (recorded in every audit row), and the reply is parsed strictly: after any
`<think>` block, the last line must be SAME or DIFFERENT; anything else is `invalid`, which leaves
the embedding decision as it was.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from distillery.operators.teachers.base import Teacher
from distillery.operators.teachers.think_split import split_think
from distillery.schemas.records import stable_hash

JUDGE_PROMPT_VERSION = "same-problem@1"
JUDGE_PROMPT = """You decide whether two problems are the same problem.
They are the SAME problem when they ask for the same quantity about the same objects under the same
conditions and numbers, even if worded, ordered or formatted differently, or translated.
They are DIFFERENT when any number, condition or the quantity asked for differs, or they are unrelated.

Problem A:
{ours}

Problem B:
{benchmark}

Reply with one word: SAME or DIFFERENT."""

_LABEL = re.compile(r"^[\s*_`'\"]*(SAME|DIFFERENT)[\s*_`'\".!]*$", re.IGNORECASE)
JudgeLabel = Literal["same", "different", "invalid"]


@dataclass(frozen=True, slots=True)
class JudgeVerdict:
    label: JudgeLabel
    reply: str


def parse_judge_reply(text: str) -> JudgeLabel:
    answer = split_think(text).answer
    lines = [line for line in answer.splitlines() if line.strip()]
    match = _LABEL.match(lines[-1]) if lines else None
    if match is None:
        return "invalid"
    return "same" if match.group(1).upper() == "SAME" else "different"


class ContaminationJudge:
    name = "judge"
    prompt_version = JUDGE_PROMPT_VERSION

    def __init__(self, teacher: Teacher, *, concurrency: int = 16, seed: int = 0) -> None:
        self.teacher = teacher
        self.concurrency = concurrency
        self.seed = seed

    async def judge(self, ours: str, benchmark: str) -> JudgeVerdict:
        messages = [{"role": "user", "content": JUDGE_PROMPT.format(ours=ours, benchmark=benchmark)}]
        request_id = "judge-" + stable_hash(JUDGE_PROMPT_VERSION, ours, benchmark)
        response = await self.teacher.sample(messages, n=1, seed=self.seed, request_id=request_id)
        if response.error is not None or not response.completions:
            return JudgeVerdict("invalid", f"request failed: {response.error or 'no completion'}")
        text = response.completions[0].text
        return JudgeVerdict(parse_judge_reply(text), text)

    async def judge_all(self, pairs: Sequence[tuple[str, str]]) -> list[JudgeVerdict]:
        limit = asyncio.Semaphore(self.concurrency)

        async def one(ours: str, benchmark: str) -> JudgeVerdict:
            async with limit:
                return await self.judge(ours, benchmark)

        return list(await asyncio.gather(*(one(o, b) for o, b in pairs)))

    def judge_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[JudgeVerdict]:
        """Blocking form for the stages (they run outside any event loop)."""
        return asyncio.run(self.judge_all(pairs)) if pairs else []
