"""The job file: YAML, validated by pydantic before anything loads.

`load_job` turns every problem into one `JobFileError` whose message names the file, the key and
the fix, e.g. `jobs/x.yaml: generation.max_round: unknown key; did you mean 'max_rounds'?`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator

from distillery.schemas.base import Section
from distillery.schemas.budget_config import SamplingBudgetConfig
from distillery.schemas.dedup_config import DecontaminationConfig, DedupConfig
from distillery.schemas.filter_config import FiltersConfig
from distillery.schemas.general_config import GeneralConfig
from distillery.schemas.journey_config import JourneyConfig
from distillery.schemas.judge_config import JudgeConfig, judge_placement_error
from distillery.schemas.targets_config import TargetsConfig
from distillery.schemas.teacher_config import TeacherConfig
from distillery.schemas.verifier_config import VerificationConfig

UNHASHED_KEYS = frozenset({"output", "targets"})
"""Top-level keys that do not change how any output is made: where it is written, and how much of it
to make (a raised target continues the run and reuses its samples)."""


class JobFileError(ValueError):
    """An invalid job file; the message says where and how to fix it."""


class FieldMap(Section):
    """Which source column holds what. `None` means the source has no such column."""

    problem: str = "problem"
    answer: str | None = "answer"
    domain: str | None = None
    id: str | None = None
    tests: str | None = None


class SourceConfig(Section):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    format: Literal["jsonl", "parquet", "hf"]
    path: str | None = Field(default=None, description="jsonl/parquet file or folder, relative to the job file")
    dataset: str | None = Field(default=None, description="hf: a hub name or a local dataset folder")
    subset: str | None = None
    split: str = "train"
    fields: FieldMap = Field(default_factory=FieldMap)
    domain: str = Field(default="math", description="domain of rows without a domain field")
    require_answer: bool = Field(default=True, description="rows without a gold answer are dead-lettered")
    limit: int | None = Field(default=None, ge=1)
    max_dead_letter_share: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="more of the source's rows dead-lettered than this is reported at the end of ingest "
        "(fatal with `run --strict`): it usually means a wrong `format` or `fields` mapping",
    )

    @model_validator(mode="after")
    def _location(self, info: ValidationInfo) -> SourceConfig:
        if self.format in ("jsonl", "parquet"):
            if not self.path:
                raise ValueError(f"format {self.format!r} needs `path: FILE`")
            if self.dataset:
                raise ValueError("`dataset` is for format 'hf'; use `path` for files")
            base = (info.context or {}).get("base_dir")
            resolved = Path(base) / self.path if base else Path(self.path)
            if not resolved.exists():
                raise ValueError(f"file not found: {resolved} (paths are relative to the job file)")
        elif not self.dataset:
            raise ValueError("format 'hf' needs `dataset: NAME_OR_PATH`")
        return self


class GenerationConfig(Section):
    teacher: str = Field(description="name of the teacher (a key of `teachers`) that samples prompts")
    domain_teachers: dict[str, str] = Field(default_factory=dict, description="domain -> teacher override")
    keep_per_prompt: int = Field(default=1, ge=1, description="correct samples kept per prompt")
    max_rounds: int = Field(default=2, ge=1, description="sampling rounds per prompt (adaptive resampling)")
    shard_size: int = Field(default=64, ge=1, description="prompts per unit of work (a resumable shard)")
    shards_in_flight: int = Field(
        default=4, ge=1, description="shards each replica (and each journey worker) works on at once"
    )
    sampling_budget: SamplingBudgetConfig | None = Field(
        default=None, description="adaptive n per round (schemas/budget_config.py); none: the teacher's n each round"
    )


class JobConfig(Section):
    name: str = Field(min_length=1)
    output: str | None = Field(default=None, description="run directory; `--output` overrides it")
    license: str = Field(
        default="unknown",
        description="the dataset's license for its card (an SPDX id such as apache-2.0, or unknown/other); "
        "teacher outputs also carry the teacher's terms",
    )
    sources: list[SourceConfig] = Field(min_length=1)
    teachers: dict[str, TeacherConfig] = Field(min_length=1)
    generation: GenerationConfig
    verification: VerificationConfig = Field(default_factory=VerificationConfig)
    filters: FiltersConfig = Field(default_factory=FiltersConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    decontamination: DecontaminationConfig = Field(default_factory=DecontaminationConfig)
    judge: JudgeConfig | None = Field(default=None, description="the LLM judge (schemas/judge_config.py)")
    general: GeneralConfig = Field(default_factory=GeneralConfig, description="the general (non-reasoning) split")
    targets: TargetsConfig | None = Field(
        default=None, description="rows and mix to build to (schemas/targets_config.py); none: every prompt"
    )
    journey: JourneyConfig = Field(default_factory=JourneyConfig, description="journey traces (stage 4)")

    @field_validator("sources")
    @classmethod
    def _unique_sources(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        names = [s.name for s in sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {dupes}")
        return sources

    @model_validator(mode="after")
    def _teacher_names(self) -> JobConfig:
        known = sorted(self.teachers)
        refs = {"generation.teacher": self.generation.teacher}
        refs |= {f"generation.domain_teachers.{d}": t for d, t in self.generation.domain_teachers.items()}
        if self.judge is not None:
            refs["judge.teacher"] = self.judge.teacher
        if self.journey.teacher is not None:
            refs["journey.teacher"] = self.journey.teacher
        for where, name in refs.items():
            if name not in self.teachers:
                hint = difflib.get_close_matches(name, known, n=1)
                fix = f"did you mean {hint[0]!r}?" if hint else f"define it under `teachers:` (known: {known})"
                raise ValueError(f"{where}: unknown teacher {name!r}; {fix}")
        if self.judge is not None:
            generating = {self.generation.teacher, *self.generation.domain_teachers.values()}
            problem = judge_placement_error(self.judge, self.teachers, generating)
            if problem:
                raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _one_journey_share(self) -> JobConfig:
        share = self.targets.journey_share if self.targets is not None else None
        if share is None:
            return self
        if "share" in self.journey.model_fields_set and self.journey.share != share:
            raise ValueError(
                f"targets.journey_share ({share}) and journey.share ({self.journey.share}) are one setting; "
                "give it once"
            )
        self.journey.share = share
        return self

    _written: dict[str, Any] | None = PrivateAttr(default=None)

    def config_hash(self) -> str:
        """What identifies the run's output: the job as written, less `UNHASHED_KEYS`.

        Hashing what the user wrote (not every resolved default) means a distillery upgrade that
        adds a setting does not orphan a multi-day run; a changed job file still changes the hash.
        """
        written = self._written if self._written is not None else self.model_dump(mode="json")
        hashed = {k: v for k, v in written.items() if k not in UNHASHED_KEYS}
        canonical = json.dumps(hashed, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def teacher_for(self, domain: str) -> str:
        return self.generation.domain_teachers.get(domain, self.generation.teacher)


def _members(annotation: Any) -> list[Any]:
    """What an annotation may hold: Annotated and Optional unwrapped, unions flattened."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) if a is not type(None) for m in _members(a)]
    return [annotation]


def _is_tag(model: Any, part: Any) -> bool:
    """`part` is the tag of a member of a discriminated union (a field fixed to one Literal value)."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return False
    return any(
        typing.get_origin(f.annotation) is Literal and typing.get_args(f.annotation) == (part,)
        for f in model.model_fields.values()
    )


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[list[Any], list[str]]:
    """Follow an error's `loc` through the models: (the path to show, with the tags pydantic adds for
    discriminated unions left out; the keys allowed where the path ends)."""
    shown: list[Any] = []
    current: Any = model
    for part in loc[:-1]:
        members = _members(current)
        tagged = [m for m in members if _is_tag(m, part)] if len(members) > 1 else []
        if tagged:
            current = tagged[0]
            continue
        shown.append(part)
        node = members[0] if len(members) == 1 else None
        if typing.get_origin(node) in (list, dict):
            current = typing.get_args(node)[-1]
        elif isinstance(node, type) and issubclass(node, BaseModel) and part in node.model_fields:
            current = node.model_fields[part].annotation
        else:
            current = None
    shown.extend(loc[-1:])
    members = _members(current)
    node = members[0] if len(members) == 1 else None
    allowed = list(node.model_fields) if isinstance(node, type) and issubclass(node, BaseModel) else []
    return shown, allowed


def _format_error(err: dict[str, Any]) -> str:
    shown, allowed = _walk(JobConfig, tuple(err["loc"]))
    where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in shown).replace(".[", "[")
    where = where or "(top level)"
    if err["type"] == "extra_forbidden":
        hint = difflib.get_close_matches(str(shown[-1]), allowed, n=1)
        fix = f"did you mean {hint[0]!r}?" if hint else f"allowed keys: {', '.join(allowed)}"
        return f"{where}: unknown key; {fix}"
    if err["type"] == "missing":
        return f"{where}: required key is missing; add it"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] not in ("value_error", "assertion_error") and "input" in err:
        msg += f" (got {err['input']!r})"
    return f"{where}: {msg}"


def parse_job(data: Any, *, base_dir: Path, origin: str) -> JobConfig:
    if not isinstance(data, dict):
        raise JobFileError(f"{origin}: the job file must be a YAML mapping of keys (name, sources, ...)")
    try:
        job = JobConfig.model_validate(data, context={"base_dir": str(base_dir)})
    except ValidationError as exc:
        lines = [_format_error(e) for e in exc.errors()]
        raise JobFileError(f"{origin}: invalid job file\n  " + "\n  ".join(lines)) from None
    job._written = data
    return job


def load_job(path: str | Path) -> JobConfig:
    """Read and validate a job file. Relative paths in it are relative to the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise JobFileError(f"{path}: no such job file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise JobFileError(f"{path}: not valid YAML: {exc}") from None
    return parse_job(data, base_dir=path.resolve().parent, origin=str(path))


def job_base_dir(job_path: str | Path) -> Path:
    return Path(job_path).resolve().parent
