"""Turn one raw source row into a `Prompt`, or into a `DeadLetter` that says what is wrong with it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from distillery.operators.counters import OperatorCounters
from distillery.schemas.job import SourceConfig
from distillery.schemas.records import DeadLetter, Prompt, prompt_id, stable_hash

RAW_LIMIT = 2000


def raw_json(row: Any) -> str:
    text = json.dumps(row, ensure_ascii=False, default=repr)
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT] + "...(truncated)"


def dead_letter(stage: str, source: str, row_number: int | None, reason: str, raw: Any) -> DeadLetter:
    return DeadLetter(
        id=stable_hash("dead", stage, source, str(row_number), reason),
        stage=stage,
        source=source,
        row=row_number,
        reason=reason,
        raw=raw_json(raw),
    )


class RowError(ValueError):
    """A row that cannot become a prompt."""


def _text(row: dict[str, Any], column: str, what: str, *, required: bool) -> str | None:
    value = row.get(column)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        if required:
            raise RowError(f"missing {what} (column {column!r})")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RowError(f"{what} (column {column!r}) must be text, got {type(value).__name__}")
    text = str(value)
    if "\ufffd" in text:
        raise RowError(f"{what} (column {column!r}) holds undecodable bytes (U+FFFD)")
    if required and not text.strip():
        raise RowError(f"empty {what} (column {column!r})")
    return text


def _tests(row: dict[str, Any], column: str | None) -> str | None:
    if column is None or row.get(column) is None:
        return None
    value = row[column]
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=repr)


@dataclass
class PromptBuilder:
    source: SourceConfig

    def __post_init__(self) -> None:
        self.counters = OperatorCounters(f"source:{self.source.name}")

    def build(self, row: Any, row_number: int) -> Prompt | DeadLetter:
        try:
            prompt = self._build(row, row_number)
        except RowError as exc:
            self.counters.drop(str(exc).split(" (", 1)[0])
            return dead_letter("ingest", self.source.name, row_number, str(exc), row)
        self.counters.keep()
        return prompt

    def _build(self, row: Any, row_number: int) -> Prompt:
        if not isinstance(row, dict):
            raise RowError(f"row must be an object with named fields, got {type(row).__name__}")
        fields = self.source.fields
        problem = _text(row, fields.problem, "problem", required=True)
        assert problem is not None
        answer = (
            _text(row, fields.answer, "gold answer", required=self.source.require_answer) if fields.answer else None
        )
        tests = _tests(row, fields.tests)
        domain = (_text(row, fields.domain, "domain", required=False) if fields.domain else None) or self.source.domain
        source_id = _text(row, fields.id, "id", required=False) if fields.id else None
        used = {c for c in (fields.problem, fields.answer, fields.domain, fields.id, fields.tests) if c}
        metadata = {k: v for k, v in row.items() if k not in used}
        return Prompt(
            id=prompt_id(problem, self.source.name),
            source=self.source.name,
            source_row=row_number,
            source_id=source_id,
            domain=domain.strip().lower(),
            problem=problem.strip(),
            answer=answer.strip() if answer is not None else None,
            tests=tests,
            metadata=json.dumps(metadata, ensure_ascii=False, default=repr),
        )
