"""The dataset card and the dataset folder as consumers see them: the hub's front matter, `datasets`
loading by config name, and empty splits that datasets, polars and duckdb all read as 0 rows."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml
from demo_like_run import make_run

from distillery.operators.writers.card import AcceptanceFacts, CardFacts, ColumnFacts, SplitFacts, dataset_card


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def facts(general_rows: int, license: str = "unknown") -> CardFacts:
    return CardFacts(
        name="demo",
        config_hash="abc123",
        license=license,
        splits=[
            SplitFacts("reasoning", 1200, "reasoning/*.parquet", {"s": 1200}, {"math": 1200}, {"shortcut": 1200},
                       {"p50": 300, "p90": 900, "p100": 2000}),
            SplitFacts("general", general_rows, "general/*.parquet"),
        ],
        columns=[ColumnFacts("messages", "list<struct>", "the conversation")],
        acceptance=[AcceptanceFacts("s", "math", 4000, 1300, 1200)],
        teachers={"t": "`m` (vllm)"},
        verifiers={"math@2": 1200},
        filters={"length": "{}"},
        benchmarks=["aime24"],
        removals={"prompts: contaminated": 3},
        leaks={"aime24": 3},
    )


def test_card_front_matter_is_what_the_hub_reads():
    card = dataset_card(facts(general_rows=0))
    meta = front_matter(card)
    assert meta["license"] == "unknown"
    assert meta["size_categories"] == ["1K<n<10K"]
    assert "text-generation" in meta["task_categories"] and "reasoning" in meta["tags"]
    # the empty split is no config (load_dataset could build nothing from it), and the card says so
    assert meta["configs"] == [
        {"config_name": "reasoning", "data_files": [{"split": "train", "path": "reasoning/*.parquet"}], "default": True}
    ]
    assert "Empty: `general/` (0 rows" in card
    assert "teacher model's license" in card and "Set `license:` in the job file" in card
    assert "| s | math | 4000 | 1300 | 32.5% | 1200 |" in card
    assert "| split | p50 | p90 | p100 |" in card and "| `reasoning` | 300 | 900 | 2000 |" in card
    assert "aime24: 3" in card and "prompts: contaminated: 3" in card
    # training advice: the student's own template, and what assistant_only_loss needs
    assert "student's own chat template" in card and "{% generation %}" in card
    assert "template: qwen" not in card
    both = front_matter(dataset_card(facts(general_rows=5, license="apache-2.0")))
    assert [c["config_name"] for c in both["configs"]] == ["reasoning", "general"]
    assert both["license"] == "apache-2.0"


def load(folder: Path, *args: str, cache: Path, **kwargs: object) -> datasets.Dataset:
    return datasets.load_dataset(str(folder), *args, split="train", cache_dir=str(cache), **kwargs)


def test_load_dataset_by_config_and_the_card_counts(demo_like_run, tmp_path):
    dataset = demo_like_run / "dataset"
    reasoning = load(dataset, "reasoning", cache=tmp_path)
    general = load(dataset, "general", cache=tmp_path)
    default = load(dataset, cache=tmp_path)  # the default config, not one merged `train`
    assert len(default) == len(reasoning) > 0 and len(general) > 0
    assert set(reasoning["domain"]) == {"math"} and set(general["domain"]) == {"general"}
    row = reasoning[0]
    assert row["prompt"] == row["messages"][:-1] and row["completion"] == row["messages"][-1:]
    assert row["completion"][0]["role"] == "assistant" and row["completion"][0]["content"].startswith("<think>\n")
    assert isinstance(row["problem"], str)
    card = (dataset / "README.md").read_text()
    assert f"| `reasoning` | {len(reasoning)} |" in card and f"| `general` | {len(general)} |" in card
    assert front_matter(card)["pretty_name"] == "test"
    assert "benchmark: 1" in card  # the leaked divisor problem
    info = json.loads((dataset / "dataset_info.json").read_text())
    assert sorted(info) == ["test_general", "test_reasoning"]


@pytest.fixture(scope="module")
def math_only_run(tmp_path_factory, demo_like_run) -> Path:
    """No general prompts: the general split is empty (demo_like_run first, for its Ray instance)."""
    return make_run(tmp_path_factory.mktemp("math_only"), general=False)


def test_an_empty_split_reads_as_zero_rows_everywhere(math_only_run, tmp_path):
    dataset = math_only_run / "dataset"
    empty = dataset / "general" / "part-empty.parquet"
    assert pq.ParquetFile(empty).metadata.num_row_groups == 0
    assert pq.read_schema(empty).equals(pq.read_schema(next((dataset / "reasoning").glob("*.parquet"))))
    meta = front_matter((dataset / "README.md").read_text())
    assert [c["config_name"] for c in meta["configs"]] == ["reasoning"]
    assert sorted(json.loads((dataset / "dataset_info.json").read_text())) == ["test_reasoning"]
    rows = len(load(dataset, "reasoning", cache=tmp_path))
    assert rows > 0
    # every split alone and the whole folder, with each reader
    whole = str(dataset / "*" / "*.parquet")
    loaded = datasets.load_dataset("parquet", data_files=whole, split="train", cache_dir=str(tmp_path))
    assert len(loaded) == rows and "completion" in loaded.column_names
    # datasets builds no Dataset of 0 rows ("corresponds to no data"); streamed, the split is empty
    streamed = datasets.load_dataset("parquet", data_files=str(empty), split="train", streaming=True)
    assert list(streamed) == [] and "completion" in streamed.features
    for files, expected in ((str(dataset / "general" / "*.parquet"), 0), (whole, rows)):
        assert pl.scan_parquet(files).select(pl.len()).collect().item() == expected
        assert pl.read_parquet(files).height == expected
        assert duckdb.sql(f"SELECT count(*) FROM '{files}'").fetchall() == [(expected,)]
