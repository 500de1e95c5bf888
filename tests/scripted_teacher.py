"""A test double for the teacher interface: answers from a script instead of a model.

Used beside the real vLLM teacher tests (test_teacher_integration.py), to test the loop's logic
quickly and exactly.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from pathlib import Path

from distillery.operators.teachers.base import Completion, Teacher, TeacherResponse
from distillery.schemas.teacher_config import SamplingConfig


class ScriptedTeacher(Teacher):
    """`script` maps a substring of the user turn to the completions of each round, in order;
    a completion ending in "<TRUNCATED>" comes back with finish reason `length`; the text
    "<FAIL>" makes the request fail permanently (as a prompt longer than the context does);
    "<CRASH:path>" kills the whole process the first time (it leaves `path` behind, so the retry goes
    through); "<FLAKY:path>" fails transiently (as an overloaded server does) while `path` does not
    exist, and "<FLAKY:path:k>" creates it on the k-th failure (default 1)."""

    def __init__(
        self, script: dict[str, list[list[str]]], n: int = 4, name: str = "scripted", delay_s: float = 0.0
    ) -> None:
        self.name = name
        self.model = "scripted-model"
        self.sampling = SamplingConfig(n=n, temperature=0.7, top_p=0.95, max_tokens=64, seed=0)
        self.script = script
        self.delay_s = delay_s
        self.calls: dict[str, int] = {}

    async def sample(self, messages: list[dict[str, str]], *, n: int, seed: int, request_id: str) -> TeacherResponse:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        user = messages[-1]["content"]
        crash = re.search(r"<CRASH:([^>]+)>", user)
        if crash and not os.path.exists(crash.group(1)):
            Path(crash.group(1)).touch()
            os._exit(1)
        flaky = re.search(r"<FLAKY:([^>:]+)(?::(\d+))?>", user)
        if flaky and not os.path.exists(flaky.group(1)):
            failures = Path(flaky.group(1) + ".failures")
            count = int(failures.read_text()) + 1 if failures.exists() else 1
            failures.write_text(str(count))
            if count >= int(flaky.group(2) or 1):
                Path(flaky.group(1)).touch()
            return TeacherResponse.failed("HTTP 503: server overloaded", "transient")
        key = next((k for k in self.script if k in user), None)
        if key is None or "<FAIL>" in user:
            return TeacherResponse.failed(f"no script for {user[:40]!r}", "permanent")
        round_ = self.calls.get(key, 0)
        self.calls[key] = round_ + 1
        rounds = self.script[key]
        texts = rounds[min(round_, len(rounds) - 1)]
        rng = random.Random(seed)
        completions = []
        for i in range(n):
            text = texts[i % len(texts)]
            truncated = text.endswith("<TRUNCATED>")
            text = text.removesuffix("<TRUNCATED>")
            completions.append(
                Completion(
                    index=i,
                    text=text,
                    completion_tokens=len(text.split()) + rng.randint(0, 3),
                    finish_reason="length" if truncated else "stop",
                )
            )
        return TeacherResponse(prompt_tokens=len(user.split()), completions=completions)


def scripted_factory(script: dict[str, list[list[str]]], n: int = 4):  # type: ignore[no-untyped-def]
    """A teacher-factory builder for GenerationStage: every teacher name gets this script."""

    def builder(name, config):  # type: ignore[no-untyped-def]
        return lambda: ScriptedTeacher(script, n=n, name=name)

    return builder
