"""Dedup and decontamination benchmark.

    python bench/dedup.py --benchmarks-dir DIR                    # both parts
    python bench/dedup.py --part synthetic                        # 100K and 1M synthetic embeddings
    python bench/dedup.py --part benchmarks --benchmarks-dir DIR  # rephrasings of benchmark problems

Part 1 plants near-duplicate pairs among synthetic 384-d unit vectors (clustered like real
sentence embeddings: topics of uneven size) and times the near-duplicate search and keep rule at
each size in a fresh process, so peak memory (ru_maxrss) is that size's own. It prints the recall of
the planted pairs and the growth from the smallest to the largest size.

Part 2 loads aime24, amc23, gsm8k, minerva_math and olympiadbench (`NAME.jsonl`) from
--benchmarks-dir, and checks our own rephrasings of some of their problems (written below) and
problems unrelated to them: MATH test problems (math_cot_100.jsonl, a different benchmark) and a
few written here. It prints per-detector recall and false-positive rates. Public copies of these
files are in the QwenLM/Qwen2.5-Math repository under `evaluation/data/` (`NAME/test.jsonl`;
math_cot_100.jsonl is 100 problems of `eval_rm_maj_example/math_cot_100.jsonl`).
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


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def synthetic_child(n: int, seed: int, threads: int) -> None:
    """One size, in its own process: prints a JSON line with time, memory and recall."""
    import faiss

    from distillery.operators.dedup.neighbors import NeighborSearch, keep_first

    if threads:
        faiss.omp_set_num_threads(threads)

    vectors, originals, copies = synthetic_vectors(n, seed)
    planted_cosine = np.einsum("ij,ij->i", vectors[originals], vectors[copies])
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    search = NeighborSearch()
    cpu_start = _cpu_seconds()
    start = time.perf_counter()
    links = search.links(vectors, THRESHOLD)
    searched = time.perf_counter()
    result = keep_first(n, links)
    done = time.perf_counter()
    cpu = _cpu_seconds() - cpu_start
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
                "cpu_s": cpu,
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


def run_synthetic(sizes: list[int], seed: int, threads: int) -> None:
    print(
        f"== near-duplicate search over synthetic {DIM}-d embeddings (threshold {THRESHOLD}, "
        f"{threads or 'all'} thread(s))"
    )
    rows = []
    for n in sizes:
        proc = subprocess.run(
            [sys.executable, __file__, "--synthetic-child", str(n), "--seed", str(seed), "--threads", str(threads)],
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
            f"(CPU {row['cpu_s']:6.1f}s)  "
            f"peak RSS {row['peak_rss_mib']:7.0f} MiB (data alone {row['data_rss_mib']:.0f})  "
            f"planted {row['planted']:,} (min cos {row['planted_min_cos']:.3f})  recall {row['recall']:.4f}  "
            f"links {row['links']:,}  dropped {row['dropped']:,}"
        )
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        time_ratio = last["total_s"] / first["total_s"]
        cpu_ratio = last["cpu_s"] / first["cpu_s"]
        memory_ratio = last["peak_rss_mib"] / first["peak_rss_mib"]
        print(
            f"growth {first['n']:,} -> {last['n']:,} ({last['n'] / first['n']:.0f}x rows): "
            f"wall time {time_ratio:.1f}x, CPU time {cpu_ratio:.1f}x, peak memory {memory_ratio:.1f}x "
            "(wall time is noisy on a shared machine; CPU time less so)"
        )


# Our own rewordings of benchmark problems: same problem, same numbers, different words.
# (benchmark, item id, rephrasing)
REPHRASINGS: list[tuple[str, str, str]] = [
    (
        "aime24",
        "60",
        "Aya walks 9 km each morning and then stops at a café. Walking at s km/h, the outing lasts "
        "4 hours in total, t minutes of which she spends in the café. At s+2 km/h the outing lasts 2 hours 24 "
        "minutes, again with t minutes in the café. How many minutes does the outing take, café time included, "
        "if she walks at s + 1/2 km/h?",
    ),
    (
        "aime24",
        "65",
        "A tetrahedron ABCD has opposite edges equal: AB = CD = sqrt(41), AC = BD = sqrt(80) and "
        "BC = AD = sqrt(89). Some interior point I is equidistant from all four faces, and that common distance "
        "equals m*sqrt(n)/p with m, p coprime positive integers and n squarefree. Compute m + n + p.",
    ),
    (
        "aime24",
        "70",
        "Two rectangles ABCD and EFGH are positioned so that the points D, E, C, F lie on one line, "
        "and A, D, H, G are concyclic. Given BC = 16, AB = 107, FG = 17 and EF = 184, find the length CE.",
    ),
    (
        "aime24",
        "75",
        "In the town of Aimeville there are 900 people. 195 of them have a diamond ring, 367 have "
        "golf clubs and 562 have a garden spade; every one of the 900 also has a bag of candy hearts. Exactly two "
        "of these items are owned by 437 residents, and exactly three by 234 residents. How many residents own "
        "all four items?",
    ),
    (
        "aime24",
        "85",
        "ABCDEF is a convex hexagon whose sides are all equal and whose opposite sides are pairwise "
        "parallel. Extending the segments AB, CD and EF forms a triangle with sides 200, 240 and 300. What is the "
        "side length of the hexagon?",
    ),
    (
        "amc23",
        "0",
        "Alicia and Beth live in towns A and B, which are 45 miles apart. They start biking toward "
        "each other at the same moment, Alicia at 18 mph from A and Beth at 12 mph from B. How far from A are "
        "they when they meet?",
    ),
    (
        "amc23",
        "8",
        "A frog named Flora begins at 0 on the number line and only jumps to the right. Each jump, "
        "independently of the others, has positive integer length m with probability 1/2^m. Find the probability "
        "that she ever lands exactly on 10; if it equals m/n in lowest terms, give m+n.",
    ),
    (
        "amc23",
        "23",
        "Maureen tracks the average of her quiz scores. Scoring 11 on the next quiz would raise her "
        "average by 1, and scoring 11 on each of the next three quizzes would raise it by 2. What is her average "
        "right now?",
    ),
    (
        "amc23",
        "32",
        "Coinland uses coins worth 6, 10 and 15 cents. Let x be the largest price in cents that "
        "cannot be paid exactly with these coins. Find the sum of the digits of x.",
    ),
    (
        "amc23",
        "45",
        "A domino covering two adjacent cells, horizontal or vertical, is hidden on a 3 by 3 board. "
        "Each turn you name a cell and learn whether the domino covers it. What is the fewest number of turns "
        "that guarantees you have named at least one covered cell?",
    ),
    (
        "gsm8k",
        "0",
        "Every day Janet's ducks produce 16 eggs. She eats 3 of them at breakfast and uses 4 to bake "
        "muffins for her friends. The rest she sells at the farmers' market at $2 per egg. How many dollars does "
        "she earn at the market each day?",
    ),
    (
        "gsm8k",
        "200",
        "Each morning Baldur draws 5 pails of water from the well and each afternoon he draws 6 "
        "pails. A pail holds 5 liters. How many liters does he draw per day?",
    ),
    (
        "gsm8k",
        "400",
        "John drinks 2 glasses of milk, each glass holding 8 ounces. Milk contains 3 calories per "
        "ounce. How many calories did he take in?",
    ),
    (
        "gsm8k",
        "600",
        "At the gym Jamaal has been lifting an 8-pound weight. He raises it by 50 percent, finds "
        "that too heavy, and switches to one that is 2 pounds lighter than the increased weight. How many pounds "
        "does he lift now?",
    ),
    (
        "gsm8k",
        "800",
        "In a bowling game Pierson scored 278 points, while Nikita scored 11 points more than half "
        "of Pierson's score. What was their combined total?",
    ),
    (
        "gsm8k",
        "1000",
        "On Monday Doctor Jones will be at the clinic for nine hours. Rounds take twenty minutes for "
        "each of his 9 inpatients, and he also has ten appointments lasting thirty minutes each. How many hours "
        "remain for updating his records?",
    ),
    (
        "gsm8k",
        "1200",
        "If you multiply the number of coffee mugs in the teachers' lounge by four and add eight, "
        "you get 40. How many mugs are there?",
    ),
    (
        "minerva_math",
        "0",
        "The two Magellan telescopes each have a 6.5 m diameter. In one setup the effective "
        "focal length is 72 m. If a planet's angular diameter is 45 arcseconds when observed, what is the "
        "diameter in cm of its image at this focus?",
    ),
    (
        "minerva_math",
        "45",
        "A star cluster consists of 10^6 stars, each with the Sun's absolute magnitude of +5. "
        "If the cluster lies 10 pc away, what is its total (combined) magnitude?",
    ),
    ("minerva_math", "90", "Solve x'' - x = t^2 + t + 1 for a polynomial solution x(t)."),
    (
        "minerva_math",
        "180",
        "Light has wavelength 408 nm. Determine its frequency in s^-1, written as n x 10^x "
        "with n given to 3 decimal places.",
    ),
    (
        "minerva_math",
        "225",
        "Helium dissolved in a plate glass slab is removed by putting the slab in a vacuum "
        "furnace at 400 degrees C. Initially the helium concentration is uniform. After 10 minutes under vacuum at "
        "400 C, at what depth below the surface, in micrometers, has the helium concentration fallen to one third "
        "of its starting value? Take the diffusion coefficient of He in the glass at this temperature to be "
        "3.091 x 10^-6 cm^2/s.",
    ),
    (
        "olympiadbench",
        "1606",
        "Xenia picks a positive integer N of at most 5000 and then chooses 20 distinct "
        "positive integers a_1, ..., a_20 with a_k congruent to N modulo k for every k from 1 to 20. In each move "
        "Sergey names a set S of positive integers no larger than 20, and Xenia answers with the set of values "
        "a_k for k in S, without saying which value belongs to which index. How many moves does Sergey need to "
        "be certain of N?",
    ),
    (
        "olympiadbench",
        "2151",
        "For an integer n >= 1, find the largest number of pairwise disjoint pairs drawn "
        "from {1, 2, ..., n} such that the sums of the pairs are all distinct and none exceeds n.",
    ),
    (
        "olympiadbench",
        "2409",
        "Triangle ABC has a right angle at B, with AB = n(n+1) and AC = (n+1)(n+4) for a "
        "positive integer n. For how many positive integers n below 100000 is BC an integer?",
    ),
    ("olympiadbench", "2611", "Find the smallest positive integer n for which gcd(n^3, n!) is at least 100."),
    (
        "olympiadbench",
        "2925",
        "A fair coin is tossed n times. What is the smallest positive integer n such that "
        "the chance that all tosses give the same outcome is below 10 percent?",
    ),
    (
        "olympiadbench",
        "3087",
        "Two square tiles, each of area 9, lie exactly on top of each other. The upper tile "
        "is turned about its center through an acute angle theta, after which the overlap has area 8. Find "
        "sin(theta) + cos(theta).",
    ),
]

# Problems written here, on the benchmarks' topics but not the same problems.
UNRELATED_WRITTEN: list[str] = [
    "A cyclist rides 30 km at 15 km/h and then 20 km at 10 km/h. What is her average speed for the whole trip?",
    "Tom buys 4 notebooks at $3 each and 2 pens at $1.50 each. How much change does he get from a $20 bill?",
    "How many positive divisors does 360 have?",
    "Find the remainder when 7^100 is divided by 13.",
    "A rectangle has perimeter 50 and area 150. Find the length of its diagonal.",
    "In how many ways can 5 different books be arranged on a shelf if two particular books must be adjacent?",
    "A tank is filled by one pipe in 6 hours and emptied by another in 9 hours. If both are open, how long "
    "does it take to fill the empty tank?",
    "The sum of three consecutive odd integers is 87. What is the largest of them?",
    "Sarah reads 25 pages a day. Her book has 400 pages and she has already read 150. How many more days "
    "does she need to finish it?",
    "A bakery sells muffins for $2 and cookies for $0.75. On Monday it sold 40 muffins and 120 cookies. How "
    "much money did it make?",
    "Compute the sum of the interior angles of a convex decagon, in degrees.",
    "A radioactive sample halves every 5 days. What fraction of it remains after 20 days?",
    "Two dice are rolled. What is the probability that the sum is a prime number?",
    "Solve for x: 3x - 7 = 2x + 5.",
    "A circle is inscribed in a square of side 10. What is the area between the square and the circle?",
    "Find all real x with x^2 - 5x + 6 = 0.",
    "A farmer has 12 cows and 30 chickens. How many legs do the animals have in total?",
    "What is the least common multiple of 18, 24 and 40?",
    "A car depreciates by 15% each year. If it costs $20,000 new, what is it worth after 2 years?",
    "A ladder 13 feet long leans against a wall with its foot 5 feet from the wall. How high up the wall "
    "does it reach?",
]


def run_benchmarks(folder: Path) -> None:
    from distillery.operators.decontam.benchmarks import load_benchmarks
    from distillery.operators.decontam.embedding import EmbeddingDetector
    from distillery.operators.decontam.ngram import NgramDetector
    from distillery.operators.dedup.embedder import Embedder
    from distillery.schemas.dedup_config import BenchmarkConfig, EmbeddingDetectorConfig

    specs = [
        "aime24.jsonl:problem",
        "amc23.jsonl:problem",
        "gsm8k.jsonl:question",
        "minerva_math.jsonl:problem",
        "olympiadbench.jsonl:question",
    ]
    configs = [BenchmarkConfig.model_validate(s, context={"base_dir": str(folder)}) for s in specs]
    items = load_benchmarks(configs, base_dir=folder)
    unrelated = [json.loads(line)["question"] for line in (folder / "math_cot_100.jsonl").open()] + UNRELATED_WRITTEN
    print(f"\n== decontamination against {len(items)} items of {len(configs)} benchmarks in {folder}")
    print(
        f"   {len(REPHRASINGS)} rephrasings written here; {len(unrelated)} unrelated problems "
        f"(100 MATH test problems from math_cot_100.jsonl, {len(UNRELATED_WRITTEN)} written here)"
    )

    embedder = Embedder()
    start = time.perf_counter()
    item_vectors = embedder.encode([i.text for i in items])
    embed_s = time.perf_counter() - start
    print(f"   embedded the benchmark items in {embed_s:.1f}s ({len(items) / embed_s:.0f} texts/s, 2 cores)")
    ngram = NgramDetector(items)
    config = EmbeddingDetectorConfig()
    detector = EmbeddingDetector(items, item_vectors, config, floor=0.5)
    rephrased = [text for _, _, text in REPHRASINGS]
    queries = embedder.encode(rephrased + unrelated)
    matches = detector.matches(queries, rephrased + unrelated)
    targets = [(bench, item_id) for bench, item_id, _ in REPHRASINGS]
    own = [[m for m in matches[k] if (m.benchmark, m.item_id) == targets[k]] for k in range(len(REPHRASINGS))]
    others = matches[len(REPHRASINGS) :]
    right = [max((m.score for m in found), default=0.0) for found in own]
    wrong = [max((m.score for m in found), default=0.0) for found in others]
    embedding_hits = [any(m.contaminated for m in found) for found in own]
    embedding_false = [any(m.contaminated for m in found) for found in others]
    ngram_hits = [
        any((m.benchmark, m.item_id) == targets[k] for m in ngram.matches(t)) for k, t in enumerate(rephrased)
    ]
    ngram_false = [bool(ngram.matches(t)) for t in unrelated]
    long_items = [i for i in items if len(i.text.split()) >= 8]
    verbatim = sum(
        any((m.benchmark, m.item_id) == (i.benchmark, i.item_id) for m in ngram.matches(i.text)) for i in long_items
    )
    total = len(REPHRASINGS)
    print(f"   verbatim benchmark items found by the 8-gram detector: {verbatim}/{len(long_items)}")
    print(f"   {'detector (defaults)':<62}{'rephrasings caught':>20}{'unrelated flagged':>20}")
    embedding_label = f"embedding (>= {config.threshold}, or >= {config.numbers_threshold} with numbers agreeing)"
    for label, hits, false in (
        ("8-gram overlap", ngram_hits, ngram_false),
        (embedding_label, embedding_hits, embedding_false),
        (
            "either (what the run applies)",
            [a or b for a, b in zip(ngram_hits, embedding_hits, strict=True)],
            [a or b for a, b in zip(ngram_false, embedding_false, strict=True)],
        ),
    ):
        caught = f"{sum(hits)}/{total} = {np.mean(hits):.3f}"
        flagged = f"{sum(false)}/{len(unrelated)} = {np.mean(false):.3f}"
        print(f"   {label:<62}{caught:>20}{flagged:>20}")
    for text, flagged in zip(unrelated, ngram_false, strict=True):
        if flagged:
            print(f"   8-gram false positive: {ngram.matches(text)[0].evidence}")
    print("   cosine alone, for comparison: threshold, rephrasing recall, false-positive rate")
    for threshold in (0.65, 0.70, 0.75, 0.80, 0.85, 0.90):
        recall = np.mean([s >= threshold for s in right])
        false = np.mean([s >= threshold for s in wrong])
        print(f"   {threshold:9.2f}  {recall:6.3f}  {false:6.3f}")
    order = np.argsort(right)
    print(
        "   lowest rephrasing scores: "
        + ", ".join(f"{targets[k][0]}/{targets[k][1]} {right[k]:.3f}" for k in order[:4])
    )
    print(
        "   highest unrelated scores: "
        + ", ".join(
            f"{max(others[k], key=lambda m: m.score).evidence} ({max(others[k], key=lambda m: m.score).benchmark})"
            for k in np.argsort(wrong)[::-1][:4]
            if others[k]
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["all", "synthetic", "benchmarks"], default="all")
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated synthetic sizes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=0, help="faiss threads (0: all); 1 gives steadier timings on a busy machine"
    )
    parser.add_argument("--synthetic-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--benchmarks-dir", type=Path, help="folder of the benchmark JSONL files (part 2)")
    args = parser.parse_args()
    if args.part in ("all", "benchmarks") and args.benchmarks_dir is None:
        parser.error("--benchmarks-dir is required for the benchmarks part (see the docstring for the files)")
    if args.synthetic_child:
        synthetic_child(args.synthetic_child, args.seed, args.threads)
        return
    if args.part in ("all", "synthetic"):
        run_synthetic([int(s) for s in args.sizes.split(",")], args.seed, args.threads)
    if args.part in ("all", "benchmarks"):
        run_benchmarks(args.benchmarks_dir)


if __name__ == "__main__":
    main()
