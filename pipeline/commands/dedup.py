"""`distillery decontam` and `distillery dedup`: the run's matching, on an existing data set.

    distillery decontam INPUT --benchmark SPEC [--benchmark SPEC ...] --out OUTPUT [--audit AUDIT]
    distillery dedup INPUT --out OUTPUT

INPUT is JSONL or Parquet with `id` and `problem` (other names: --id-field, --field). OUTPUT
(.jsonl or .parquet) has one row per input row, in input order:
- decontam: `id`, `contaminated`, `detector`, `benchmark`, `match_id`, `score`; --audit writes the
  evidence of every match (both texts, the shared n-gram, the score).
- dedup: `id`, `duplicate`, `reason` (exact_duplicate / near_duplicate), `duplicate_of`, `score`;
  the first row of a duplicate group (in input order) is kept.

A benchmark SPEC is a local JSONL/Parquet path or a Hugging Face dataset name (`NAME[#SUBSET][@SPLIT]`,
split `test` by default), optionally followed by `:FIELD` for the text field, e.g.
`bench/aime24.jsonl:problem`; without a field, `problem`, `question` and `prompt` are tried.
Settings (thresholds, detectors, the embedding model) come from --job's `dedup` and
`decontamination` sections when given, else from the defaults; the options below override them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from pydantic import BaseModel, ValidationError

from distillery.pipeline.commands.data_files import DataFileError, data_format, read_rows
from distillery.schemas.arrow import to_table
from distillery.schemas.dedup_config import (
    BenchmarkConfig,
    DecontaminationConfig,
    DedupConfig,
    EmbedderConfig,
)
from distillery.schemas.dedup_records import DecontamAudit, DecontamResult, DedupResult


class DedupInputError(DataFileError):
    """The command cannot run; the message names the file, row and field."""


def read_items(path: Path, id_field: str, text_field: str) -> tuple[list[str], list[str]]:
    """(ids, texts) of every row; a row without either field is an error naming it."""
    rows: list[dict[str, Any]] = []
    for _, row in read_rows(path):
        if isinstance(row, str):
            raise DedupInputError(f"{path}: {row}")
        rows.append(row)
    ids, texts = [], []
    for number, row in enumerate(rows):
        for name in (id_field, text_field):
            if row.get(name) is None:
                raise DedupInputError(f"{path}: row {number}: missing field {name!r} (fields: {sorted(row)})")
        if not isinstance(row[text_field], str):
            raise DedupInputError(f"{path}: row {number}: field {text_field!r} must be text")
        ids.append(str(row[id_field]))
        texts.append(row[text_field])
    repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
    if repeated:
        raise DedupInputError(f"{path}: ids must be unique; repeated: {repeated[:5]}")
    return ids, texts


def write_rows(rows: list[BaseModel], model: type[BaseModel], path: Path) -> None:
    kind = data_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "parquet":
        pq.write_table(to_table(rows, model), path)
    else:
        with path.open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r.model_dump(), ensure_ascii=False) + "\n" for r in rows)


def _sections(job: Path | None) -> tuple[DedupConfig, DecontaminationConfig, Path]:
    """The job's sections (defaults without a job) and the folder its relative paths start from."""
    if job is None:
        return DedupConfig(), DecontaminationConfig(), Path.cwd()
    from distillery.schemas.job import job_base_dir, load_job

    loaded = load_job(job)
    return loaded.dedup, loaded.decontamination, job_base_dir(job)


def _with(config: BaseModel, **changes: Any) -> Any:
    """A copy with nested `section__key` changes, validated again (so option values are checked)."""
    data = config.model_dump()
    for dotted, value in changes.items():
        if value is None:
            continue
        *parents, key = dotted.split("__")
        target = data
        for parent in parents:
            target = target[parent]
        target[key] = value
    return type(config).model_validate(data)


def decontaminate_file(
    source: Path,
    out: Path,
    config: DecontaminationConfig,
    embedder: EmbedderConfig,
    *,
    base_dir: Path,
    id_field: str = "id",
    text_field: str = "problem",
    audit: Path | None = None,
) -> tuple[int, int]:
    """(rows, contaminated rows) against `config.benchmarks` (relative paths from `base_dir`).
    The judge is not used here: it needs a teacher engine."""
    from distillery.operators.decontam.decontaminator import Decontaminator
    from distillery.operators.dedup.embedder import shared_embedder
    from distillery.operators.dedup.matching import RowMatches, decontam_pass

    data_format(out)
    if audit is not None:
        data_format(audit)
    if not config.benchmarks:
        raise DedupInputError("no benchmark to check against: give --benchmark SPEC (or a job with benchmarks)")
    ids, texts = read_items(source, id_field, text_field)
    config = config.model_copy(update={"judge": config.judge.model_copy(update={"enabled": False})})
    model = shared_embedder(embedder) if config.embedding.enabled else None
    decontaminator = Decontaminator.from_config(config, encode=model.encode if model else None, base_dir=base_dir)
    matches = RowMatches.of(len(ids))
    vectors_of = (lambda rows: model.encode([texts[r] for r in rows.tolist()])) if model is not None else None
    decontam_pass(matches, decontaminator, texts, vectors_of)
    decisions = [matches.contamination[row] for row in range(len(ids))]
    results = [
        DecontamResult(
            id=item_id,
            contaminated=d.contaminated,
            detector=d.match.detector if d.match else None,
            benchmark=d.match.benchmark if d.match else None,
            match_id=d.match.item_id if d.match else None,
            score=d.match.score if d.match else None,
        )
        for item_id, d in zip(ids, decisions, strict=True)
    ]
    write_rows(results, DecontamResult, out)
    if audit is not None:
        write_rows(decontaminator.audit_rows("decontam", ids, decisions, texts.__getitem__), DecontamAudit, audit)
    return len(results), sum(r.contaminated for r in results)


def dedup_file(
    source: Path,
    out: Path,
    config: DedupConfig,
    *,
    id_field: str = "id",
    text_field: str = "problem",
    near: bool = True,
) -> tuple[int, int]:
    """(rows, duplicate rows). The first row of a group in input order is its representative."""
    from distillery.operators.dedup.deduplicator import NearDeduplicator
    from distillery.operators.dedup.embedder import shared_embedder
    from distillery.operators.dedup.matching import RowMatches, exact_pass, near_pass
    from distillery.operators.dedup.normalize import exact_key

    data_format(out)
    ids, texts = read_items(source, id_field, text_field)
    rank = np.arange(len(ids), dtype=np.int64)
    matches = RowMatches.of(len(ids))
    exact_pass(matches, [exact_key(t) for t in texts], rank)
    if near:
        embedder = shared_embedder(config.embedder)
        deduplicator = NearDeduplicator(
            config.prompts.threshold, search=config.search, same_numbers=config.prompts.same_numbers
        )
        near_pass(
            matches, deduplicator, lambda rows: embedder.encode([texts[r] for r in rows.tolist()]), rank, texts=texts
        )
    results = [
        DedupResult(
            id=ids[row],
            duplicate=matches.reason[row] is not None,
            reason=matches.reason[row],  # type: ignore[arg-type]
            duplicate_of=ids[int(matches.duplicate_of[row])] if matches.reason[row] else None,
            score=float(matches.score[row]) if matches.reason[row] else None,
        )
        for row in range(len(ids))
    ]
    write_rows(results, DedupResult, out)
    return len(results), sum(r.duplicate for r in results)


def run_decontam(args: argparse.Namespace) -> int:
    try:
        dedup, decontam, base_dir = _sections(args.job)
        if args.benchmark:
            base_dir = Path.cwd()
            specs = [BenchmarkConfig.model_validate(s, context={"base_dir": str(base_dir)}) for s in args.benchmark]
            decontam = decontam.model_copy(update={"benchmarks": specs})
        config = _with(
            decontam,
            embedding__threshold=args.threshold,
            ngram__n=args.ngram_n,
            ngram__enabled=False if args.no_ngram else None,
            embedding__enabled=False if args.no_embedding else None,
        )
        embedder = _with(decontam.embedder or dedup.embedder, model=args.model)
        rows, contaminated = decontaminate_file(
            args.input,
            args.out,
            config,
            embedder,
            base_dir=base_dir,
            id_field=args.id_field,
            text_field=args.field,
            audit=args.audit,
        )
    except (DedupInputError, ValidationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"checked {rows} row(s) against {len(config.benchmarks)} benchmark(s): "
        f"{contaminated} contaminated -> {args.out}"
    )
    return 0


def run_dedup(args: argparse.Namespace) -> int:
    try:
        dedup, _, _ = _sections(args.job)
        config = _with(
            dedup,
            prompts__threshold=args.threshold,
            prompts__same_numbers=False if args.no_same_numbers else None,
            embedder__model=args.model,
        )
        rows, duplicates = dedup_file(
            args.input, args.out, config, id_field=args.id_field, text_field=args.field, near=not args.exact_only
        )
    except (DedupInputError, ValidationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"checked {rows} row(s): {duplicates} duplicate(s) -> {args.out}")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="a .jsonl or .parquet file with `id` and `problem`")
    parser.add_argument("--out", "-o", type=Path, required=True, help="one row per input row (.jsonl or .parquet)")
    parser.add_argument("--field", default="problem", help="the text field (default: problem)")
    parser.add_argument("--id-field", default="id", help="the id field (default: id)")
    parser.add_argument("--job", type=Path, help="take settings from this job file's dedup/decontamination sections")
    parser.add_argument("--model", help="sentence-transformers model name or path (default: bundled MiniLM)")


def add_decontam_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "decontam",
        help="flag rows that match benchmark problems (n-grams and embeddings), with an audit of each match",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(parser)
    parser.add_argument(
        "--benchmark",
        "-b",
        action="append",
        metavar="SPEC",
        help="FILE[:FIELD] or HF_NAME[#SUBSET][@SPLIT][:FIELD]; repeat for several (default: --job's)",
    )
    parser.add_argument("--audit", type=Path, help="write every match's evidence here (.jsonl or .parquet)")
    parser.add_argument("--threshold", type=float, help="embedding cosine similarity that makes a match")
    parser.add_argument("--ngram-n", type=int, help="words per n-gram (default 8)")
    parser.add_argument("--no-ngram", action="store_true", help="turn the n-gram detector off")
    parser.add_argument("--no-embedding", action="store_true", help="turn the embedding detector off")
    parser.set_defaults(func=run_decontam)


def add_dedup_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dedup",
        help="find exact and near-duplicate rows; the first of each group is kept",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(parser)
    parser.add_argument("--threshold", type=float, help="cosine similarity of near duplicates (default 0.95)")
    parser.add_argument("--exact-only", action="store_true", help="only exact duplicates (no model is loaded)")
    parser.add_argument(
        "--no-same-numbers", action="store_true", help="near duplicates need not contain the same numbers"
    )
    parser.set_defaults(func=run_dedup)
