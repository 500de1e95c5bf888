"""Recorded generations as a teacher: a dump someone already has (an API run, OpenR1-Math's
`generations` column, NeMo-Skills' `output-rs*.jsonl`) goes through the same verification, filters,
journeys, dedup and dataset as live samples, and no engine loads.

Each prompt's recorded responses come back at once, in round 0, in file order; later rounds get none.
A prompt is matched to its responses by its user turn (the problem rendered with `prompt_template`),
normalized as prompt ids are. A row that cannot be read is skipped and counted (`skipped_rows`),
so one bad line does not lose the others; a prompt left with no response fails permanently.

A dump can be far larger than memory (1M responses of 5-30K characters), so a replica keeps only an
index: per row, a 64-bit hash of its user turn and where the row is (a JSONL line's byte offset, a
Parquet row's number), in sorted NumPy arrays: 20 bytes a row. A prompt's rows are read back
from the files when it is sampled.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from distillery.operators.teachers.base import Completion, Teacher, TeacherResponse
from distillery.schemas.records import normalize_text
from distillery.schemas.teacher_config import ReplayTeacherConfig

log = logging.getLogger(__name__)

PARQUET_SCAN_BATCH_ROWS = 1024
"""Rows a Parquet dump is read in while it is indexed."""
PARQUET_CACHED_ROW_GROUPS = 4
"""Row groups of a Parquet dump a replica keeps decoded (a shard's prompts are often neighbours)."""
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


def _jsonl_row(line: bytes) -> dict[str, Any] | None:
    """A JSONL line's object; a line that is not a JSON object comes back as None."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) else None


def _rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(location, row) of one file, streamed: a JSONL line's byte offset, or a Parquet row's number."""
    if fmt == "parquet":
        number = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_SCAN_BATCH_ROWS):
            for row in batch.to_pylist():
                yield number, row
                number += 1
        return
    with path.open("rb") as lines:
        offset = 0
        for line in lines:
            if line.strip():
                yield offset, _jsonl_row(line)
            offset += len(line)


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


def _turn_key(turn: str) -> int:
    return int.from_bytes(hashlib.blake2b(turn.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


class RecordedGenerations:
    """The recorded responses of a file set, looked up by normalized user turn through an index of
    turn hashes and row locations; the texts stay in the files."""

    def __init__(self, config: ReplayTeacherConfig) -> None:
        self.config = config
        self.files = replay_files(config)
        if not self.files:
            raise ReplayFileError(f"replay file not found: {config.path}")
        self.formats = [config.format or ("parquet" if p.suffix == ".parquet" else "jsonl") for p in self.files]
        self.skipped_rows = 0
        keys: list[int] = []
        files: list[int] = []
        locations: list[int] = []
        for number, (path, fmt) in enumerate(zip(self.files, self.formats, strict=True)):
            for location, row in _rows(path, fmt):
                turn = self._row_turn(row)
                if turn is None:
                    self.skipped_rows += 1
                    log.warning("replay %s row at %d: no problem text or no response text; skipped", path, location)
                    continue
                keys.append(_turn_key(turn))
                files.append(number)
                locations.append(location)
        # A stable sort keeps each prompt's rows in file order.
        order = np.argsort(np.array(keys, dtype=np.int64), kind="stable")
        self.keys = np.array(keys, dtype=np.int64)[order]
        self.file_of = np.array(files, dtype=np.int32)[order]
        self.location = np.array(locations, dtype=np.int64)[order]

    def _turn(self, problem: str) -> str:
        # str.replace, as ChatFormat renders it: templates hold LaTeX braces such as \boxed{}.
        return normalize_text(self.config.prompt_template.replace("{problem}", problem))

    def _row_turn(self, row: dict[str, Any] | None) -> str | None:
        """The row's normalized user turn, or None when the row has no problem or no response."""
        if row is None:
            return None
        problem = _text(row.get(self.config.fields.problem))
        if problem is None or not self._row_responses(row):
            return None
        return self._turn(problem)

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

    def _row_responses(self, row: dict[str, Any]) -> list[RecordedResponse]:
        fields = self.config.fields
        if self.config.layout == "per_response":
            response = self._response(row, fields.response, None)
            return [response] if response is not None else []
        listed = row.get(fields.responses or "")
        count = len(listed) if isinstance(listed, list) else 0
        return [r for i in range(count) if (r := self._response(row, fields.responses, i)) is not None]

    def _read(self, file: int, location: int) -> dict[str, Any] | None:
        path = self.files[file]
        if self.formats[file] == "parquet":
            return _parquet_row(path, location)
        with path.open("rb") as handle:
            handle.seek(location)
            return _jsonl_row(handle.readline())

    def responses(self, user_turn: str) -> list[RecordedResponse]:
        turn = normalize_text(user_turn)
        key = _turn_key(turn)
        first, last = np.searchsorted(self.keys, key, "left"), np.searchsorted(self.keys, key, "right")
        found: list[RecordedResponse] = []
        for i in range(first, last):
            row = self._read(int(self.file_of[i]), int(self.location[i]))
            # The hash narrows the search; the text decides (two turns may share a hash).
            if row is not None and self._row_turn(row) == turn:
                found.extend(self._row_responses(row))
        return found


@functools.lru_cache(maxsize=PARQUET_CACHED_ROW_GROUPS)
def _parquet_row_group(path: Path, group: int) -> list[dict[str, Any]]:
    return pq.ParquetFile(path).read_row_group(group).to_pylist()


def _parquet_row(path: Path, number: int) -> dict[str, Any] | None:
    """Row `number` of a Parquet file, through its row group (prompts of one shard are often neighbours)."""
    metadata = pq.ParquetFile(path).metadata
    for group in range(metadata.num_row_groups):
        rows = metadata.row_group(group).num_rows
        if number < rows:
            return _parquet_row_group(path, group)[number]
        number -= rows
    return None


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
