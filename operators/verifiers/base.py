"""The verifier interface. A verifier decides whether one response answers one prompt correctly.

Verifiers run inside worker processes (`VerifierPool`), never on the teacher's event loop. Each has
a `name` and a `version` (recorded in every verdict), parses a prompt's gold data once
(`prepare_gold`), and checks responses against it (`check`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any

from distillery.schemas.records import Verdict, VerdictLabel


class GoldError(ValueError):
    """The prompt's gold data cannot be used by this verifier."""


class Verifier(ABC):
    name: str
    version: str
    deadline_s: float | None = None
    """The hard wall-clock deadline one check needs, when it needs more than the pool's default."""

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    @abstractmethod
    def prepare_gold(self, answer: str | None, tests: str | None) -> Any:
        """Parse the gold data once per prompt. Raise GoldError when it is unusable."""

    @abstractmethod
    def check(self, gold: Any, response: str) -> tuple[VerdictLabel, str | None, str]:
        """(verdict, extracted answer, detail) for one response (the text after `</think>`)."""

    def verdict(self, gold: Any, response: str) -> Verdict:
        start = time.perf_counter()
        try:
            label, extracted, detail = self.check(gold, response)
        except Exception as exc:  # a verifier bug is an `error` verdict, never an accepted sample
            label, extracted, detail = "error", None, f"{type(exc).__name__}: {exc}"
        return Verdict(
            verifier=self.label,
            verdict=label,
            extracted=extracted,
            detail=detail,
            elapsed_ms=(time.perf_counter() - start) * 1000,
        )
