"""Dedup and decontamination benchmark.

    python bench/dedup.py                      # both parts
    python bench/dedup.py --part synthetic     # 100K and 1M synthetic embeddings
    python bench/dedup.py --part benchmarks    # rephrasings of ../shared/benchmarks problems

Part 1 plants near-duplicate pairs among synthetic 384-d unit vectors (clustered like real
sentence embeddings: topics of uneven size) and times the near-duplicate search and keep rule at
each size in a fresh process, so peak memory (ru_maxrss) is that size's own. It prints the recall of
the planted pairs and the growth from the smallest to the largest size.

Part 2 loads aime24, amc23, gsm8k, minerva_math and olympiadbench from ../shared/benchmarks (or
--benchmarks-dir), and checks our own rephrasings of some of their problems (written below) and
problems unrelated to them: MATH test problems (math_cot_100.jsonl, a different benchmark) and a
few written here. It prints per-detector recall and false-positive rates.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DIM = 384
THRESHOLD = 0.90
PLANTED_SHARE = 0.01


def synthetic_vectors(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n unit vectors in topics of uneven size, with n*PLANTED_SHARE disjoint near-duplicate pairs
    (cosine 0.92-0.99). Built in chunks so the data itself is the only large allocation."""
    rng = np.random.default_rng(seed)
    topics = max(8, n // 300)
    centers = rng.standard_normal((topics, DIM), dtype=np.float32)
    weights = rng.lognormal(0.0, 1.0, topics)
    weights /= weights.sum()
    vectors = np.empty((n, DIM), dtype=np.float32)
    step = 1 << 16
    for start in range(0, n, step):
        stop = min(n, start + step)
        topic = rng.choice(topics, size=stop - start, p=weights)
        spread = rng.uniform(0.6, 1.4, size=(stop - start, 1)).astype(np.float32)
        block = centers[topic] * spread + rng.standard_normal((stop - start, DIM), dtype=np.float32)
        vectors[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    pairs = int(n * PLANTED_SHARE)
    chosen = rng.choice(n, size=2 * pairs, replace=False)
    originals, copies = chosen[:pairs], chosen[pairs:]
    # Noise of norm r on a unit vector gives cosine ~ 1/sqrt(1+r^2): r in [0.14, 0.43] -> 0.92-0.99.
    noise = rng.standard_normal((pairs, DIM), dtype=np.float32)
    noise *= (rng.uniform(0.14, 0.43, size=(pairs, 1)) / np.linalg.norm(noise, axis=1, keepdims=True)).astype(
        np.float32
    )
    moved = vectors[originals] + noise
    vectors[copies] = moved / np.linalg.norm(moved, axis=1, keepdims=True)
    return vectors, originals, copies


def synthetic_child(n: int, seed: int) -> None:
    """One size, in its own process: prints a JSON line with time, memory and recall."""
    from distillery.operators.dedup.neighbors import NeighborSearch, keep_first

    vectors, originals, copies = synthetic_vectors(n, seed)
    planted_cosine = np.einsum("ij,ij->i", vectors[originals], vectors[copies])
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    search = NeighborSearch()
    start = time.perf_counter()
    links = search.links(vectors, THRESHOLD)
    searched = time.perf_counter()
    result = keep_first(n, links)
    done = time.perf_counter()
    found = set(zip(links.item.tolist(), links.earlier.tolist(), strict=True))
    planted = {(max(a, b), min(a, b)) for a, b in zip(originals.tolist(), copies.tolist(), strict=True)}
    print(
        json.dumps(
            {
                "n": n,
                "plan": search.plan,
                "search_s": searched - start,
                "keep_s": done - searched,
                "total_s": done - start,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "data_rss_mib": rss_data,
                "planted": len(planted),
                "planted_min_cos": float(planted_cosine.min()),
                "recall": len(planted & found) / len(planted),
                "links": len(links),
                "dropped": int((~result.kept).sum()),
            }
        )
    )


def run_synthetic(sizes: list[int], seed: int) -> None:
    print(f"== near-duplicate search over synthetic {DIM}-d embeddings (threshold {THRESHOLD})")
    rows = []
    for n in sizes:
        proc = subprocess.run(
            [sys.executable, __file__, "--synthetic-child", str(n), "--seed", str(seed)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"size {n} failed:\n{proc.stderr}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"n={n:>9,}  {row['plan']:<28} search {row['search_s']:7.1f}s  keep {row['keep_s']:5.1f}s  "
            f"peak RSS {row['peak_rss_mib']:7.0f} MiB (data alone {row['data_rss_mib']:.0f})  "
            f"planted {row['planted']:,} (min cos {row['planted_min_cos']:.3f})  recall {row['recall']:.4f}  "
            f"links {row['links']:,}  dropped {row['dropped']:,}"
        )
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        time_ratio = last["total_s"] / first["total_s"]
        memory_ratio = last["peak_rss_mib"] / first["peak_rss_mib"]
        print(
            f"growth {first['n']:,} -> {last['n']:,} ({last['n'] / first['n']:.0f}x rows): "
            f"time {time_ratio:.1f}x, peak memory {memory_ratio:.1f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["all", "synthetic", "benchmarks"], default="all")
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated synthetic sizes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--benchmarks-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
    )
    args = parser.parse_args()
    if args.synthetic_child:
        synthetic_child(args.synthetic_child, args.seed)
        return
    if args.part in ("all", "synthetic"):
        run_synthetic([int(s) for s in args.sizes.split(",")], args.seed)


if __name__ == "__main__":
    main()
