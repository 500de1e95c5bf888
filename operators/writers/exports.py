"""Dataset rows in the shapes other trainers read, and LLaMA-Factory's `dataset_info.json` entries.

Pure conversions of one dataset row (a dict with `id` and `messages`, as `dataset/<split>/` stores it):
- `messages`: `{"id", "messages": [{"role", "content"}]}` (axolotl `chat_template`, OpenRLHF `input_key`);
- `sharegpt`: `{"id", "conversations": [{"from": "human"|"gpt"|"system", "value"}]}` (LLaMA-Factory's default);
- `alpaca`: `{"id", "instruction", "input", "output"[, "system"]}`, for single-turn rows;
- `openai`: `{"messages": [...]}` and nothing else, as OpenAI's fine-tuning files are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

ExportFormat = Literal["messages", "sharegpt", "alpaca", "openai"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("messages", "sharegpt", "alpaca", "openai")

SHAREGPT_ROLES = {"user": "human", "assistant": "gpt", "system": "system"}
MESSAGE_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "system_tag": "system",
}
SHAREGPT_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "system_tag": "system",
}

Row = dict[str, Any]


class ExportError(ValueError):
    """A row that the chosen format cannot hold; the message names the row."""


def _messages(row: Row) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"]} for m in row["messages"]]


def to_messages(row: Row) -> Row:
    return {"id": row["id"], "messages": _messages(row)}


def to_sharegpt(row: Row) -> Row:
    return {
        "id": row["id"],
        "conversations": [{"from": SHAREGPT_ROLES[m["role"]], "value": m["content"]} for m in _messages(row)],
    }


def to_alpaca(row: Row) -> Row:
    messages = _messages(row)
    system = [m["content"] for m in messages if m["role"] == "system"]
    turns = [m for m in messages if m["role"] != "system"]
    if [m["role"] for m in turns] != ["user", "assistant"] or len(system) > 1:
        roles = [m["role"] for m in messages]
        raise ExportError(f"row {row['id']}: alpaca holds one user turn and one answer, this row has {roles}")
    out: Row = {"id": row["id"], "instruction": turns[0]["content"], "input": "", "output": turns[1]["content"]}
    if system:
        out["system"] = system[0]
    return out


def to_openai(row: Row) -> Row:
    return {"messages": _messages(row)}


CONVERTERS: dict[ExportFormat, Callable[[Row], Row]] = {
    "messages": to_messages,
    "sharegpt": to_sharegpt,
    "alpaca": to_alpaca,
    "openai": to_openai,
}


def convert(rows: list[Row], export_format: ExportFormat) -> list[Row]:
    converter = CONVERTERS[export_format]
    return [converter(row) for row in rows]


def llama_factory_entry(file_name: str, export_format: ExportFormat, has_system: bool = False) -> dict[str, object]:
    """One `dataset_info.json` entry (LLaMA-Factory data/README.md) for a file or folder of rows."""
    if export_format == "alpaca":
        columns = {"prompt": "instruction", "query": "input", "response": "output"}
        if has_system:
            columns["system"] = "system"
        return {"file_name": file_name, "formatting": "alpaca", "columns": columns}
    if export_format == "sharegpt":
        return {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations"},
            "tags": dict(SHAREGPT_TAGS),
        }
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages"},
        "tags": dict(MESSAGE_TAGS),
    }


def llama_factory_info(
    name: str, files: dict[str, str], export_format: ExportFormat = "messages", has_system: bool = False
) -> dict[str, object]:
    """The registry of a folder: entry `<name>_<split>` for each split -> its file or folder. Leave empty
    splits out: LLaMA-Factory fails on a dataset with no rows."""
    return {
        f"{name}_{split}": llama_factory_entry(path, export_format, has_system) for split, path in sorted(files.items())
    }
