"""duckdb over a run directory: one view per stage output."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa

VIEWS = {
    "prompts": "prompts/*.parquet",
    "dead_letter": "dead_letter/*.parquet",
    "dropped_prompts": "prompt_filter/dropped.parquet",
    "samples": "samples/*.parquet",
    "journey": "journey/*.parquet",
    "dropped_responses": "response_filter/dropped.parquet",
    "decontam_audit": "decontam_audit/*.parquet",
    "dataset": "dataset/*/*.parquet",
}

EXAMPLES = [
    (
        "acceptance by source and domain",
        "SELECT source, domain, count(*) AS samples, avg(accepted::int) AS acceptance "
        "FROM samples GROUP BY ALL ORDER BY ALL",
    ),
    (
        "why samples were rejected",
        "SELECT split_part(rejection_reason, ':', 1) AS reason, count(*) AS n FROM samples "
        "WHERE NOT selected GROUP BY ALL ORDER BY n DESC",
    ),
    ("inputs that never became prompts", "SELECT stage, source, row, reason FROM dead_letter ORDER BY ALL LIMIT 20"),
    (
        "prompts dropped as duplicates or benchmark leaks, with the evidence",
        "SELECT p.reason, p.problem, a.benchmark, a.detector, a.score, a.evidence FROM dropped_prompts p "
        "LEFT JOIN decontam_audit a ON a.item_id = p.id",
    ),
    (
        "how many samples each filter dropped",
        "SELECT operator, value FROM stage_counters WHERE stage = 'generate' AND operator LIKE 'filter:%' "
        "AND counter = 'dropped' ORDER BY value DESC",
    ),
    (
        "a dataset row with its prompt",
        "SELECT d.id, p.problem, d.answer, d.pass_rate FROM dataset d JOIN prompts p ON p.id = d.prompt_id LIMIT 5",
    ),
]


COUNTER_FIELDS = ("seen", "kept", "dropped")


def stage_counters(run_dir: Path) -> pa.Table:
    """(stage, operator, counter, value) rows from `report.json`: seen, kept, dropped and one
    `reason:<why>` row per drop reason of every operator of every stage."""
    rows: dict[str, list[object]] = {"stage_number": [], "stage": [], "operator": [], "counter": [], "value": []}
    report_file = run_dir / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    for stage, entry in report.items():
        if not isinstance(entry, dict):
            continue
        for operator in entry.get("counters", []):
            pairs = [(name, operator[name]) for name in COUNTER_FIELDS]
            pairs += [(f"reason:{why}", n) for why, n in sorted(operator["reasons"].items())]
            for counter, value in pairs:
                rows["stage_number"].append(entry["number"])
                rows["stage"].append(stage)
                rows["operator"].append(operator["name"])
                rows["counter"].append(counter)
                rows["value"].append(int(value))
    return pa.table(rows, schema=pa.schema([
        ("stage_number", pa.int32()), ("stage", pa.string()), ("operator", pa.string()),
        ("counter", pa.string()), ("value", pa.int64()),
    ]))


def connect(run_dir: Path) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    """An in-memory duckdb with a view per stage that has output; returns the views made."""
    if not (run_dir / "config_hash").exists():
        raise FileNotFoundError(f"{run_dir} is not a distillery run directory (no config_hash)")
    con = duckdb.connect()
    made = []
    for view, pattern in VIEWS.items():
        files = sorted(f for f in run_dir.glob(pattern) if not f.name.startswith("."))
        if not files:
            continue
        file_list = ", ".join(f"'{f.as_posix()}'" for f in files)
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet([{file_list}], union_by_name=true)")
        made.append(view)
    counters = stage_counters(run_dir)
    if counters.num_rows:
        con.register("_stage_counters", counters)
        con.execute("CREATE VIEW stage_counters AS SELECT * FROM _stage_counters")
        made.append("stage_counters")
    return con, made


def describe(run_dir: Path) -> str:
    con, views = connect(run_dir)
    lines = [f"run {run_dir}", ""]
    for view in views:
        count = con.execute(f"SELECT count(*) FROM {view}").fetchone()
        lines.append(f"  {view:<18} {count[0] if count else 0:>8} rows")
    lines += ["", "example queries (distillery inspect RUN 'SQL'):"]
    for title, sql in EXAMPLES:
        lines += [f"  -- {title}", f"  {sql}"]
    return "\n".join(lines)


def query(run_dir: Path, sql: str) -> str:
    con, _ = connect(run_dir)
    return str(con.sql(sql))
