"""The filter interface: a filter looks at one sample and answers (keep, reason)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from distillery.operators.counters import OperatorCounters
from distillery.schemas.records import FilterResult, Generation, Prompt


class SampleFilter(ABC):
    name: str

    def __init__(self) -> None:
        self.counters = OperatorCounters(self.name)

    @abstractmethod
    def decide(self, prompt: Prompt, sample: Generation) -> tuple[bool, str]:
        """(keep, reason); the reason says what was wrong when keep is False."""

    def apply(self, prompt: Prompt, sample: Generation) -> FilterResult:
        keep, reason = self.decide(prompt, sample)
        if keep:
            self.counters.keep()
        else:
            self.counters.drop(reason)
        return FilterResult(filter=self.name, keep=keep, reason=reason)
