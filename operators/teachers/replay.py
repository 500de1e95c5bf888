"""Recorded generations as a teacher: a dump someone already has (an API run, OpenR1-Math's
`generations` column, NeMo-Skills' `output-rs*.jsonl`) goes through the same verification, filters,
journeys, dedup and dataset as live samples, and no engine loads.

Each prompt's recorded responses come back at once, in round 0, in file order; later rounds get none.
A prompt is matched to its responses by its user turn (the problem rendered with `prompt_template`),
normalized as prompt ids are. A row that cannot be read is skipped and counted (`skipped_rows`),
so one bad line does not lose the others; a prompt left with no response fails permanently.
"""

from __future__ import annotations

import glob
import json
import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from distillery.operators.teachers.base import Completion, Teacher, TeacherResponse
from distillery.schemas.records import normalize_text
from distillery.schemas.teacher_config import ReplayTeacherConfig

log = logging.getLogger(__name__)

_ROUND = re.compile(r"-r(\d+)$")
"""The round in a sampler's request id (`<prompt id>-r<round>`)."""


class ReplayFileError(ValueError):
    """A recorded-generations file that cannot be read at all."""


@dataclass(frozen=True, slots=True)
class RecordedResponse:
    text: str
    reasoning: str | None
    finish_reason: str
    completion_tokens: int


def replay_files(config: ReplayTeacherConfig) -> list[Path]:
    return [Path(p) for p in sorted(glob.glob(config.path))]


def _rows(path: Path, fmt: str) -> Any:
    """(row number, row) of one file; a JSONL line that is not a JSON object comes back as None."""
    if fmt == "parquet":
        table = pq.read_table(path)
        for number, row in enumerate(table.to_pylist()):
            yield number, row
        return
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            yield number, row if isinstance(row, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _item(row: dict[str, Any], column: str | None, index: int | None) -> Any:
    """A column's value; per_prompt columns hold lists, one entry per response."""
    if column is None:
        return None
    value = row.get(column)
    if index is None:
        return value
    return value[index] if isinstance(value, list) and index < len(value) else None


class RecordedGenerations:
    """Every recorded response of a file set, by normalized user turn."""

    def __init__(self, config: ReplayTeacherConfig) -> None:
        self.config = config
        self.by_turn: dict[str, list[RecordedResponse]] = defaultdict(list)
        self.skipped_rows = 0
        files = replay_files(config)
        if not files:
            raise ReplayFileError(f"replay file not found: {config.path}")
        for path in files:
            fmt = config.format or ("parquet" if path.suffix == ".parquet" else "jsonl")
            for number, row in _rows(path, fmt):
                if not self._add(row):
                    self.skipped_rows += 1
                    log.warning("replay %s row %d: no problem text or no response text; skipped", path, number)

    def _turn(self, problem: str) -> str:
        # str.replace, as ChatFormat renders it: templates hold LaTeX braces such as \boxed{}.
        return normalize_text(self.config.prompt_template.replace("{problem}", problem))

    def _response(self, row: dict[str, Any], text_column: str | None, index: int | None) -> RecordedResponse | None:
        fields = self.config.fields
        text = _text(_item(row, text_column, index))
        if text is None:
            return None
        tokens = _item(row, fields.completion_tokens, index)
        if not isinstance(tokens, int) or isinstance(tokens, bool):
            tokens = max(1, math.ceil(len(text) / self.config.chars_per_token))
        return RecordedResponse(
            text=text,
            reasoning=_text(_item(row, fields.reasoning, index)),
            finish_reason=_text(_item(row, fields.finish_reason, index)) or "stop",
            completion_tokens=tokens,
        )

    def _add(self, row: dict[str, Any] | None) -> bool:
        if row is None:
            return False
        fields = self.config.fields
        problem = _text(row.get(fields.problem))
        if problem is None:
            return False
        if self.config.layout == "per_response":
            response = self._response(row, fields.response, None)
            responses = [response] if response is not None else []
        else:
            listed = row.get(fields.responses or "")
            count = len(listed) if isinstance(listed, list) else 0
            responses = [r for i in range(count) if (r := self._response(row, fields.responses, i)) is not None]
        self.by_turn[self._turn(problem)].extend(responses)
        return bool(responses)

    def responses(self, user_turn: str) -> list[RecordedResponse]:
        return self.by_turn.get(normalize_text(user_turn), [])


class ReplayTeacher(Teacher):
    def __init__(self, name: str, config: ReplayTeacherConfig) -> None:
        self.name = name
        self.model = config.model
        self.sampling = config.sampling
        self.config = config
        self.recorded = RecordedGenerations(config)

    def __repr__(self) -> str:
        return f"ReplayTeacher(name={self.name!r}, path={self.config.path!r})"

    async def sample(self, messages: list[dict[str, str]], *, n: int, seed: int, request_id: str) -> TeacherResponse:
        recorded = self.recorded.responses(messages[-1]["content"])
        if not recorded:
            return TeacherResponse.failed(f"no recorded response for this prompt in {self.config.path}", "permanent")
        round_ = _ROUND.search(request_id)
        if round_ is not None and int(round_.group(1)) > 0:
            return TeacherResponse()  # every recorded response went out in round 0
        completions = [
            Completion(
                index=i,
                text=r.text,
                completion_tokens=r.completion_tokens,
                finish_reason=r.finish_reason,
                reasoning=r.reasoning,
            )
            for i, r in enumerate(recorded)
        ]
        return TeacherResponse(prompt_tokens=0, completions=completions)
