"""Verifier benchmark: math verifications per second and sandboxed code test runs per second.

    python bench/verifiers.py --data DIR [--workers 2] [--repeats 3] [--only math|suites|code]
                              [--suites tests/data/math_grader_suites.jsonl]

Math: the 800 real chain-of-thought responses of `math_cot_100.jsonl` (gold `gt`, responses `code`)
through a `VerifierPool` (the worker processes and deadlines the pipeline uses), with the agreement
rate against the file's recorded `score` (another grader's verdicts) and every disagreement with a
one-line reason. Code: the canonical solutions of `HumanEval.jsonl.gz` in the sandbox; all must pass.
`--data` is a folder holding both files: `math_cot_100.jsonl` is public in the QwenLM/Qwen2.5-Math
repository (`evaluation/data/eval_rm_maj_example/`), `HumanEval.jsonl.gz` in openai/human-eval (`data/`).
Suites: the labelled cases of other graders' test suites (Math-Verify, MARIO_EVAL, NeMo-Skills,
hendrycks math; `tests/data/math_grader_suites.jsonl`): per suite, the cases, how many we agree with,
how many we decide otherwise by a listed convention, and false positives (we say correct, the suite
says not equal), with the per-case check times.
Rates are medians over `--repeats` passes after a warm-up pass; targets on 2 cores: 200 math
verifications/s and 30 sandboxed test runs/s.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

from distillery.operators.verifiers.pool import VerifierPool
from distillery.schemas.records import Verdict
from distillery.schemas.verifier_config import CodeVerifierConfig, MathVerifierConfig, VerificationConfig

DEFAULT_SUITES = Path(__file__).resolve().parents[1] / "tests" / "data" / "math_grader_suites.jsonl"
SLOW_CHECK_MS = 1000


async def _run_all(pool: VerifierPool, domain: str, items: list[tuple[str | None, str | None, str]]) -> list[Verdict]:
    return list(await asyncio.gather(*(pool.verify(domain, a, t, r) for a, t, r in items)))


def _timed_passes(pool: VerifierPool, domain: str, items: list[tuple[str | None, str | None, str]],
                  repeats: int) -> tuple[list[Verdict], float, list[float]]:
    """(verdicts, rate of the first pass, rates of the passes after it). The first pass parses each
    prompt's gold (once per worker); later ones reuse it, as the samples of one prompt do."""
    asyncio.run(_run_all(pool, domain, items[:1] * 2 * pool.config.workers))  # start the workers
    start = time.perf_counter()
    asyncio.run(_run_all(pool, domain, items))
    first = len(items) / (time.perf_counter() - start)
    rates, verdicts = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        verdicts = asyncio.run(_run_all(pool, domain, items))
        rates.append(len(items) / (time.perf_counter() - start))
    return verdicts, first, rates


def _reason(verdict: Verdict, gold: str, their_pred: str, their_score: bool) -> str:
    ours = f"ours {verdict.verdict} (read {verdict.extracted!r})"
    theirs = f"theirs {'correct' if their_score else 'incorrect'} (read {their_pred!r})"
    detail = f"; {verdict.detail}" if verdict.detail else ""
    return f"gold {gold!r}: {ours}, {theirs}{detail}"


def bench_math(data: Path, workers: int, repeats: int) -> None:
    rows = [json.loads(line) for line in (data / "math_cot_100.jsonl").read_text().splitlines() if line.strip()]
    items, meta = [], []
    for row in rows:
        for j, (response, score, pred) in enumerate(zip(row["code"], row["score"], row["pred"], strict=True)):
            items.append((row["gt"], None, response))
            meta.append((row["idx"], j, row["gt"], pred, bool(score)))
    config = VerificationConfig(workers=workers, timeout_s=10, domains={"math": MathVerifierConfig()})
    with VerifierPool(config) as pool:
        verdicts, first, rates = _timed_passes(pool, "math", items, repeats)
    agree = [(v.verdict == "correct") == m[4] for v, m in zip(verdicts, meta, strict=True)]
    labels: dict[str, int] = {}
    for v in verdicts:
        labels[v.verdict] = labels.get(v.verdict, 0) + 1
    elapsed = sorted(v.elapsed_ms for v in verdicts)
    slowest = max(zip(verdicts, meta, strict=True), key=lambda p: p[0].elapsed_ms)
    print(f"math: {len(items)} responses of {len(rows)} problems, {workers} worker(s)")
    print(f"  verifications/s: median {statistics.median(rates):.0f} over {repeats} passes "
          f"({', '.join(f'{r:.0f}' for r in rates)}); first pass {first:.0f} (gold parsed); "
          "target 200")
    print(f"  verdicts: {labels}")
    print(f"  per check: median {statistics.median(elapsed):.2f} ms, p99 {elapsed[int(len(elapsed) * 0.99)]:.1f} ms, "
          f"slowest {slowest[0].elapsed_ms:.0f} ms (problem {slowest[1][0]}, response {slowest[1][1]}, "
          f"read {slowest[0].extracted!r}); over the {config.timeout_s:g}s deadline: {labels.get('timeout', 0)}")
    print(f"  agreement with the recorded scores: {sum(agree)}/{len(agree)} ({100 * sum(agree) / len(agree):.1f}%)")
    for verdict, (idx, j, gold, pred, score), same in zip(verdicts, meta, agree, strict=True):
        if not same:
            print(f"    problem {idx} response {j}: {_reason(verdict, gold, pred, score)}")


def _rounding(domain: str) -> int:
    """A suite case's domain names the float_rounding its suite states: `math`, or `math@2`."""
    return int(domain.partition("@")[2] or MathVerifierConfig().float_rounding)


def bench_suites(path: Path, workers: int) -> bool:
    """Agreement with the graders' labelled suites; False when a disagreement is not listed."""
    cases = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    domains = {c["domain"]: MathVerifierConfig(float_rounding=_rounding(c["domain"])) for c in cases}
    config = VerificationConfig(workers=workers, timeout_s=10, domains=domains)
    items = [(c["domain"], c["gold"], c["response"] or "") for c in cases]
    with VerifierPool(config) as pool:
        asyncio.run(_run_all_domains(pool, items[:1] * 2 * workers))  # start the workers
        verdicts = asyncio.run(_run_all_domains(pool, items))
    print(f"suites: {len(cases)} labelled cases from {path.name}, {workers} worker(s)")
    print(f"  {'suite':<16}{'cases':>7}{'agreed':>8}{'convention':>12}{'false pos.':>12}{'unlisted':>10}")
    unlisted_total = 0
    rows = list(zip(cases, verdicts, strict=True))
    for suite in dict.fromkeys(c["suite"] for c in cases):
        mine = [(c, v) for c, v in rows if c["suite"] == suite]
        agreed = sum((v.verdict == "correct") == c["expected"] for c, v in mine)
        listed = sum(bool(c.get("convention")) for c, _ in mine)
        false_pos = sum(v.verdict == "correct" and not c["expected"] for c, v in mine)
        unlisted = sum((v.verdict == "correct") != c["expected"] and not c.get("convention") for c, v in mine)
        unlisted_total += unlisted
        print(f"  {suite:<16}{len(mine):>7}{agreed:>8}{listed:>12}{false_pos:>12}{unlisted:>10}")
    elapsed = sorted(v.elapsed_ms for v in verdicts)
    slowest_case, slowest = max(rows, key=lambda p: p[1].elapsed_ms)
    print(f"  per case: median {statistics.median(elapsed):.1f} ms, p99 {elapsed[int(len(elapsed) * 0.99)]:.0f} ms, "
          f"slowest {slowest.elapsed_ms:.0f} ms ({slowest_case['suite']} {slowest_case['case']}); "
          f"over {SLOW_CHECK_MS} ms: {sum(e > SLOW_CHECK_MS for e in elapsed)}; "
          f"timeouts: {sum(v.verdict == 'timeout' for v in verdicts)}")
    for case, verdict in rows:
        if (verdict.verdict == "correct") != case["expected"] and not case.get("convention"):
            print(f"    UNLISTED {case['suite']} {case['case']}: gold {case['gold']!r}, we say {verdict.verdict} "
                  f"(read {verdict.extracted!r}; {verdict.detail})")
    return unlisted_total == 0


async def _run_all_domains(pool: VerifierPool, items: list[tuple[str, str | None, str]]) -> list[Verdict]:
    return list(await asyncio.gather(*(pool.verify(domain, gold, None, response) for domain, gold, response in items)))


def bench_code(data: Path, workers: int, repeats: int) -> bool:
    with gzip.open(data / "HumanEval.jsonl.gz", "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    items = [
        (None, json.dumps({"test": r["test"], "entry_point": r["entry_point"]}),
         f"```python\n{r['prompt']}{r['canonical_solution']}\n```")
        for r in rows
    ]
    config = VerificationConfig(workers=workers, domains={"code": CodeVerifierConfig()})
    with VerifierPool(config) as pool:
        verdicts, first, rates = _timed_passes(pool, "code", items, repeats)
    failed = [(r["task_id"], v) for r, v in zip(rows, verdicts, strict=True) if v.verdict != "correct"]
    slowest = max(zip(rows, verdicts, strict=True), key=lambda p: p[1].elapsed_ms)
    elapsed = sorted(v.elapsed_ms for v in verdicts)
    print(f"code: {len(items)} HumanEval canonical solutions in the sandbox, {workers} worker(s)")
    print(f"  sandboxed test runs/s: median {statistics.median(rates):.1f} over {repeats} passes "
          f"({', '.join(f'{r:.1f}' for r in rates)}); first pass {first:.1f}; target 30")
    print(f"  per run: median {statistics.median(elapsed):.0f} ms, slowest {slowest[1].elapsed_ms:.0f} ms "
          f"({slowest[0]['task_id']}); over the deadline: {sum(v.verdict == 'timeout' for v in verdicts)}")
    print(f"  passed: {len(items) - len(failed)}/{len(items)}")
    for task, verdict in failed:
        print(f"    FAILED {task}: {verdict.verdict}: {verdict.detail}")
    return not failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="folder with math_cot_100.jsonl and HumanEval.jsonl.gz")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--suites", type=Path, default=DEFAULT_SUITES, help="the graders' labelled cases (JSONL)")
    parser.add_argument("--only", choices=["math", "suites", "code"])
    args = parser.parse_args(argv)
    if args.only != "suites" and args.data is None:
        parser.error("--data DIR is needed for the math and code parts (see the docstring for the files)")
    ok = True
    if args.only in (None, "math"):
        bench_math(args.data, args.workers, args.repeats)
    if args.only in (None, "suites"):
        ok = bench_suites(args.suites, args.workers) and ok
    if args.only in (None, "code"):
        ok = bench_code(args.data, args.workers, args.repeats) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

