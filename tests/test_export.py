"""`distillery export`: the dataset as messages, sharegpt, alpaca or OpenAI rows, and LLaMA-Factory's
`dataset_info.json` checked against the schema LLaMA-Factory documents (data/README.md) and reads
(data/parser.py, data/loader.py). Installing llamafactory itself takes minutes, over the suite's budget."""

from __future__ import annotations

import json
import os
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest

from distillery.operators.writers.exports import ExportError, convert, to_alpaca
from distillery.pipeline.commands.cli import main

# LLaMA-Factory's documented dataset description: keys of an entry, of `columns` and of `tags`.
ENTRY_KEYS = {
    "hf_hub_url", "ms_hub_url", "script_url", "cloud_file_name", "file_name", "formatting", "ranking", "subset",
    "split", "folder", "num_samples", "columns", "tags",
}
COLUMN_KEYS = {
    "prompt", "query", "response", "history", "messages", "system", "tools", "images", "videos", "audios",
    "chosen", "rejected", "kto_tag",
}
TAG_KEYS = {"role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag"}
TAG_DEFAULTS = {
    "role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
    "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system",
}
FILE_TYPES = {"arrow": "arrow", "csv": "csv", "json": "json", "jsonl": "json", "parquet": "parquet", "txt": "text"}


def read_rows(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_llama_factory_info(dataset_dir: Path) -> dict[str, list[dict]]:
    """Every entry of `dataset_dir/dataset_info.json` as LLaMA-Factory would read it; returns its rows."""
    info = json.loads((dataset_dir / "dataset_info.json").read_text())
    loaded = {}
    for name, entry in info.items():
        assert set(entry) <= ENTRY_KEYS, f"{name}: unknown keys {set(entry) - ENTRY_KEYS}"
        assert entry.get("formatting", "alpaca") in {"alpaca", "sharegpt", "openai"}
        columns, tags = entry.get("columns", {}), {**TAG_DEFAULTS, **entry.get("tags", {})}
        assert set(columns) <= COLUMN_KEYS and set(entry.get("tags", {})) <= TAG_KEYS
        local = dataset_dir / entry["file_name"]
        files = sorted(local.iterdir()) if local.is_dir() else [local]
        kinds = {FILE_TYPES.get(f.suffix[1:]) for f in files}
        assert len(kinds) == 1 and None not in kinds, f"{name}: files of one allowed type, got {files}"
        rows = [row for f in files for row in read_rows(f)]
        assert rows, f"{name}: no rows (LLaMA-Factory cannot train on an empty dataset)"
        for row in rows:
            if entry.get("formatting", "alpaca") == "alpaca":
                prompt, response = columns.get("prompt", "instruction"), columns.get("response", "output")
                assert isinstance(row[prompt], str) and isinstance(row[response], str) and row[response]
                continue
            turns = row[columns.get("messages", "conversations")]
            if turns and turns[0][tags["role_tag"]] == tags["system_tag"]:
                turns = turns[1:]
            # humans (and observations) at odd positions, the model at even ones, ending with the model
            for i, turn in enumerate(turns):
                expected = (tags["user_tag"], tags["observation_tag"]) if i % 2 == 0 else (
                    tags["assistant_tag"], tags["function_tag"])
                assert turn[tags["role_tag"]] in expected and isinstance(turn[tags["content_tag"]], str)
            assert len(turns) % 2 == 0 and turns
        loaded[name] = rows
    return loaded


ROW = {
    "id": "r1",
    "messages": [
        {"role": "user", "content": "What is 2 + 3?"},
        {"role": "assistant", "content": "<think>\nadd\n</think>\n\n\\boxed{5}"},
    ],
}


def test_each_format_holds_the_conversation():
    (messages,), (sharegpt,), (alpaca,), (openai,) = (convert([ROW], f) for f in ("messages", "sharegpt", "alpaca",
                                                                                    "openai"))
    assert messages == {"id": "r1", "messages": ROW["messages"]}
    assert sharegpt["conversations"] == [
        {"from": "human", "value": "What is 2 + 3?"},
        {"from": "gpt", "value": "<think>\nadd\n</think>\n\n\\boxed{5}"},
    ]
    assert alpaca == {"id": "r1", "instruction": "What is 2 + 3?", "input": "", "output": ROW["messages"][1]["content"]}
    assert openai == {"messages": ROW["messages"]}  # OpenAI's files hold nothing else
    system = {"id": "r2", "messages": [{"role": "system", "content": "Be brief."}, *ROW["messages"]]}
    assert to_alpaca(system)["system"] == "Be brief."
    two_turns = {"id": "r3", "messages": ROW["messages"] * 2}
    with pytest.raises(ExportError, match="row r3: alpaca holds one user turn"):
        to_alpaca(two_turns)


def test_the_run_dataset_info_is_what_llama_factory_reads(demo_like_run):
    rows = check_llama_factory_info(demo_like_run / "dataset")
    reasoning = rows["test_reasoning"]
    assert reasoning[0]["messages"][-1]["content"].startswith("<think>\n")


@pytest.mark.parametrize(
    ("export_format", "file_format"),
    [("messages", "jsonl"), ("sharegpt", "parquet"), ("alpaca", "jsonl"), ("openai", "jsonl")],
)
def test_export_command(demo_like_run, tmp_path, capsys, export_format, file_format):
    out = tmp_path / export_format
    argv = ["export", str(demo_like_run), "--format", export_format, "--out", str(out), "--file-format", file_format]
    assert main(argv) == 0
    assert "reasoning:" in capsys.readouterr().out
    originals = pq.read_table(demo_like_run / "dataset" / "reasoning").to_pylist()
    exported = read_rows(out / f"reasoning.{file_format}")
    assert len(exported) == len(originals) > 0
    loaded = check_llama_factory_info(out)
    assert sorted(loaded) == ["test_general", "test_reasoning"]
    by_id = {r["id"]: r for r in originals}
    if export_format == "openai":
        assert all(set(r) == {"messages"} for r in exported)
        assert sorted(r["messages"][0]["content"] for r in exported) == sorted(
            r["messages"][0]["content"] for r in originals)
    else:
        answer = {"messages": lambda r: r["messages"][-1]["content"], "sharegpt": lambda r: r["conversations"][-1][
            "value"], "alpaca": lambda r: r["output"]}[export_format]
        assert all(answer(r) == by_id[r["id"]]["messages"][-1]["content"] for r in exported)
    # other trainers read it with `datasets`
    data = datasets.load_dataset(
        "json" if file_format == "jsonl" else "parquet",
        data_files=str(out / f"reasoning.{file_format}"),
        split="train",
        cache_dir=str(tmp_path / "cache"),
    )
    assert len(data) == len(originals)


def test_export_of_a_folder_without_a_dataset_says_so(tmp_path, capsys):
    os.makedirs(tmp_path / "run")
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "out")]) == 2
    assert "no dataset here" in capsys.readouterr().err
