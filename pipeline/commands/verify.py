"""`distillery verify INPUT --out OUTPUT [--job JOB.yaml]`: re-verify an existing data set.

Each input row (JSONL or Parquet) has `id`, `domain`, `response`, and `gold` (math, choice, exact)
or `tests` (code). Each output row (JSONL or Parquet, by the extension of OUTPUT) has `row`, `id`,
`verdict`, `verifier`, `extracted`, `detail` and `elapsed_ms`. A row that cannot be verified (a
missing field, a domain without a verifier, a line that is not JSON) is written too, as `invalid`
with the reason: nothing is dropped.

The verifiers and their settings come from the job file's `verification` section; without one,
every domain name of the default set (math, code, choice, exact) uses its verifier with defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from distillery.pipeline.commands.data_files import DataFileError, data_format, read_rows
from distillery.schemas.verifier_config import (
    ChoiceVerifierConfig,
    CodeVerifierConfig,
    ExactVerifierConfig,
    MathVerifierConfig,
    VerificationConfig,
)

CHUNK_ROWS = 256
OUTPUT_SCHEMA = pa.schema(
    [
        pa.field("row", pa.int64(), nullable=False),
        pa.field("id", pa.string()),
        pa.field("verdict", pa.string(), nullable=False),
        pa.field("verifier", pa.string(), nullable=False),
        pa.field("extracted", pa.string()),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("elapsed_ms", pa.float64(), nullable=False),
    ]
)


def default_verification(workers: int) -> VerificationConfig:
    return VerificationConfig(
        workers=workers,
        domains={
            "math": MathVerifierConfig(),
            "code": CodeVerifierConfig(),
            "choice": ChoiceVerifierConfig(),
            "exact": ExactVerifierConfig(),
        },
    )


def _text_field(row: dict[str, Any], name: str) -> str | None:
    """A string field; structured gold / tests (lists, objects) as their JSON text."""
    value = row.get(name)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


class RowVerifier:
    """Checks rows with a `VerifierPool`, and says what is wrong with rows it cannot check."""

    def __init__(self, config: VerificationConfig) -> None:
        from distillery.operators.verifiers.pool import VerifierPool

        self.config = config
        self.pool = VerifierPool(config)

    def problem(self, number: int, row: dict[str, Any]) -> str | None:
        for name in ("id", "domain", "response"):
            if row.get(name) is None:
                return f"row {number}: missing field {name!r}"
        if not isinstance(row["response"], str):
            return f"row {number}: field 'response' must be text, got {type(row['response']).__name__}"
        spec = self.config.domains.get(str(row["domain"]))
        if spec is None:
            return f"row {number}: no verifier for domain {row['domain']!r} (known: {sorted(self.config.domains)})"
        needed = "tests" if spec.type == "code" else "gold"
        if row.get(needed) is None:
            return f"row {number}: domain {row['domain']!r} ({spec.type}) needs field {needed!r}"
        return None

    async def verify(self, number: int, row: dict[str, Any] | str) -> dict[str, Any]:
        if isinstance(row, str):
            return self._invalid(number, None, row)
        row_id = _text_field(row, "id")
        reason = self.problem(number, row)
        if reason is not None:
            return self._invalid(number, row_id, reason)
        verdict = await self.pool.verify(
            str(row["domain"]), _text_field(row, "gold"), _text_field(row, "tests"), row["response"]
        )
        return {"row": number, "id": row_id, **verdict.model_dump()}

    @staticmethod
    def _invalid(number: int, row_id: str | None, reason: str) -> dict[str, Any]:
        return {
            "row": number,
            "id": row_id,
            "verdict": "invalid",
            "verifier": "none",
            "extracted": None,
            "detail": reason,
            "elapsed_ms": 0.0,
        }

    def close(self) -> None:
        self.pool.close()


class OutputWriter:
    def __init__(self, path: Path) -> None:
        self.kind = data_format(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._parquet = pq.ParquetWriter(path, OUTPUT_SCHEMA) if self.kind == "parquet" else None
        self._jsonl = path.open("w", encoding="utf-8") if self.kind == "jsonl" else None

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self._parquet is not None:
            self._parquet.write_table(pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA))
        elif self._jsonl is not None:
            self._jsonl.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._jsonl is not None:
            self._jsonl.close()


async def verify_file(source: Path, out: Path, config: VerificationConfig) -> Counter[str]:
    """Verify every row of `source` into `out`; the count of each verdict."""
    data_format(out)
    rows = read_rows(source)
    first = next(rows, None)  # reads (and checks) the input before any worker starts
    counts: Counter[str] = Counter()
    verifier = RowVerifier(config)
    writer = OutputWriter(out)
    try:
        chunk = [first] if first is not None else []
        for item in rows:
            chunk.append(item)
            if len(chunk) == CHUNK_ROWS:
                counts.update(await _verify_chunk(verifier, writer, chunk))
                chunk = []
        if chunk or counts.total() == 0:
            counts.update(await _verify_chunk(verifier, writer, chunk))
    finally:
        writer.close()
        verifier.close()
    return counts


async def _verify_chunk(
    verifier: RowVerifier, writer: OutputWriter, chunk: list[tuple[int, dict[str, Any] | str]]
) -> Counter[str]:
    results = await asyncio.gather(*(verifier.verify(number, row) for number, row in chunk))
    writer.write(list(results))
    return Counter(r["verdict"] for r in results)


def run_verify(args: argparse.Namespace) -> int:
    from distillery.schemas.job import load_job

    if args.job is not None:
        config = load_job(args.job).verification
        if args.workers:
            config = config.model_copy(update={"workers": args.workers})
    else:
        config = default_verification(args.workers or 2)
    try:
        counts = asyncio.run(verify_file(args.input, args.out, config))
    except (DataFileError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = ", ".join(f"{label} {n}" for label, n in sorted(counts.items())) or "no rows"
    print(f"verified {counts.total()} row(s): {summary} -> {args.out}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="re-verify a JSONL/Parquet file of responses (rows: id, domain, response, gold or tests)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", type=Path, help="a .jsonl or .parquet file")
    parser.add_argument("--out", "-o", type=Path, required=True, help="where the verdicts go (.jsonl or .parquet)")
    parser.add_argument("--job", type=Path, help="use this job file's `verification` section")
    parser.add_argument("--workers", type=int, help="verifier worker processes (default: the job's, else 2)")
    parser.set_defaults(func=run_verify)
