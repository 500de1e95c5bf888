"""The stage contract: every stage of a run has a name, says what it reads, and runs once per run.

A stage's `run` does only the units that are not done (`RunDirectory.units`: a unit is done iff
its file exists), so calling it again after a crash continues where it stopped, and calling it on a
finished run reads its result back. What a stage counted, the ids it excludes downstream and what
it reports travel in its `StageResult`; the runner merges them into `report.json`.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from distillery.operators.counters import CounterSet
from distillery.operators.teachers.base import Teacher
from distillery.operators.teachers.registry import build_teacher
from distillery.pipeline.run_directory import RunDirectory
from distillery.schemas.job import JobConfig
from distillery.schemas.teacher_config import TeacherConfig

TeacherFactoryBuilder = Callable[[str, TeacherConfig], Callable[[], Teacher]]


def default_teacher_factory(name: str, config: TeacherConfig) -> Callable[[], Teacher]:
    return functools.partial(build_teacher, name, config)


@dataclass
class StageContext:
    """What every stage sees: the job, where it runs, and what earlier stages excluded."""

    job: JobConfig
    run: RunDirectory
    base_dir: Path
    """Where the job file's relative paths are resolved."""
    teacher_factory: TeacherFactoryBuilder = default_teacher_factory
    excluded_prompts: set[str] = field(default_factory=set)
    excluded_samples: set[str] = field(default_factory=set)
    strict: bool = False
    """A source in bad health after ingest stops the run (`distillery run --strict`)."""

    def absorb(self, result: StageResult) -> None:
        self.excluded_prompts |= result.excluded_prompts
        self.excluded_samples |= result.excluded_samples


@dataclass
class StageResult:
    counters: CounterSet = field(default_factory=CounterSet)
    excluded_prompts: set[str] = field(default_factory=set)
    """Prompt ids later stages skip (duplicates, benchmark leaks)."""
    excluded_samples: set[str] = field(default_factory=set)
    """Sample ids later stages skip (near-duplicate or contaminated responses)."""
    report: dict[str, object] = field(default_factory=dict)
    """Anything else the stage reports (timings, row counts)."""

    def as_report(self) -> dict[str, object]:
        return {**self.report, "counters": self.counters.as_list()}


class Stage(ABC):
    name: ClassVar[str]
    reads: ClassVar[tuple[str, ...]]
    """The run-directory tables (or `sources`) the stage reads."""

    @abstractmethod
    def run(self, context: StageContext) -> StageResult: ...
