"""Scale benchmark: a replay job over a synthetic corpus of long chain-of-thought traces.

    python bench/scale.py --cot PATH [--sizes 100000 1000000] [--samples-per-prompt 4]
                          [--min-chars 2000] [--max-chars 8000] [--embed-actors N]
                          [--embed-dtype float32|bfloat16|float16] [--keep DIR]

`--cot`: a JSONL of problems with several real responses each (`question`, `gt`, the responses in
`code`; such as Qwen2.5-Math's `eval_rm_maj_example/math_cot_100.jsonl`). For each size the bench
writes, into a temporary folder, `size / samples-per-prompt` prompts (a base problem with its
numbers changed and an opening phrase, so prompts are distinct) and their recorded responses: each
one a trace of `min-chars`..`max-chars` characters cut from the base problem's real responses
(paragraphs resampled, reordered, joined by the hesitations real traces have) and a final answer,
right for about two in three. The job replays them (`backend: replay`: no engine) through ingest,
the prompt filter, verification, the R1 filters, journeys, response dedup (within a prompt and
across the corpus) and the dataset writer, in a fresh process per size; both filter stages check
against a benchmark of a few base problems held out of the corpus.

Prints per size (samples: those of the prompts that reach generation; perturbed problems sometimes
coincide, and ingest and the prompt filter drop the duplicates): wall time, samples/s and samples/s
per core, driver peak RSS (the `run_job` process's ru_maxrss), worker peak RSS (of Ray's worker and
verifier processes, polled, per task or actor class running then; the largest few), seconds per stage,
rows written; then the growth from the smallest to the largest size in samples, time and driver
RSS, and the driver's bytes per prompt (peak RSS growth over prompt growth). The comparison: a GPU
cluster of 8 GPUs at 2,500 output tokens/s each with 6K-token samples makes 8 * 2500 / 6000 = 3.3
samples/s; the CPU stages keep up when samples/s exceeds that.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import get_args

import psutil

from distillery.schemas.dedup_config import EmbedderConfig

GPUS = 8
GPU_TOKENS_PER_S = 2500
TOKENS_PER_SAMPLE = 6000
GPU_SAMPLES_PER_S = GPUS * GPU_TOKENS_PER_S / TOKENS_PER_SAMPLE
RIGHT_SHARE = 0.65
"""Share of synthetic responses whose final answer is the gold one."""
POLL_S = 0.5
PEAKS_SHOWN = 4
"""Worker peaks printed: the largest, per task or actor class."""
HELD_OUT = 10
"""Base problems kept out of the corpus as the decontamination benchmark (prompts and answers are
checked against them by n-grams and embeddings in both filter stages, as a real job's would be)."""
OPENINGS = ("", "Solve: ", "Exercise. ", "Question: ", "Consider the following. ", "Compute the following. ")
HESITATIONS = (
    "Wait, let me double-check that step.",
    "Hmm, let me re-examine this.",
    "Alternatively, approach it another way.",
    "Let me verify this more carefully.",
    "Okay, so going back to the setup:",
    "Actually, let me recompute.",
)
_NUMBER = re.compile(r"\d+")

JOB = """\
name: scale
output: run
sources:
  - name: synthetic
    format: jsonl
    path: prompts.jsonl
    fields: {{problem: problem, answer: answer, domain: domain, id: id}}
teachers:
  recorded:
    backend: replay
    path: recorded.jsonl
    layout: per_prompt
    model: math-cot-resampled
    replicas: {replicas}
generation:
  teacher: recorded
  keep_per_prompt: {keep}
  max_rounds: 1
  shard_size: {shard_size}
  shards_in_flight: 2
verification:
  workers: 1
  timeout_s: 10
  domains:
    math: {{type: math}}
dedup:
  embedder: {{actors: {embed_actors}, dtype: {embed_dtype}}}
decontamination:
  benchmarks:
    - {{name: held_out, path: benchmark.jsonl, field: problem}}
journey:
  enabled: true
  share: 0.1
  max_per_prompt: 1
  locate: compare
  bridge: splice
"""


def load_cot(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    usable = [r for r in rows if r.get("question") and r.get("gt") and r.get("code")]
    if len(usable) <= HELD_OUT:
        raise SystemExit(f"{path}: needs more than {HELD_OUT} rows with `question`, `gt` and a non-empty `code` list")
    return usable


def perturb_question(question: str, rng: random.Random) -> str:
    """The base problem with every number changed (the gold answer stays: verification compares
    the response with it, not with the problem) and an opening phrase."""
    changed = _NUMBER.sub(lambda m: str(rng.randint(2, 10 ** len(m.group(0)) + 9)), question)
    return rng.choice(OPENINGS) + changed


def trace(pools: list[list[str]], base: int, target: int, rng: random.Random) -> str:
    """About `target` characters of paragraphs drawn without repeats: the base problem's own first,
    then (for long traces) a neighbouring problem's, as a trace that recalls a related problem. The
    responses' own final answers (`\\boxed`) are left out: the trace ends with the synthetic one."""
    parts: list[str] = []
    size = 0
    for offset in range(len(pools)):
        pool = list(pools[(base + offset) % len(pools)])
        rng.shuffle(pool)
        for piece in pool:
            # Numbers changed per trace, as another model's arithmetic would differ.
            piece = _NUMBER.sub(lambda m: str(rng.randint(1, 10 ** len(m.group(0)))), piece)
            if parts and rng.random() < 0.3:
                piece = f"{rng.choice(HESITATIONS)} {piece}"
            parts.append(piece)
            size += len(piece) + 2
            if size >= target:
                return "\n\n".join(parts)[:target]
    return "\n\n".join(parts)


def write_corpus(folder: Path, cot: list[dict], samples: int, per_prompt: int, lo: int, hi: int, seed: int) -> int:
    """prompts.jsonl, recorded.jsonl and benchmark.jsonl (the held-out problems), streamed (the
    corpus is never held whole); the prompt count."""
    rng = random.Random(seed)
    cot, held_out = cot[:-HELD_OUT], cot[-HELD_OUT:]
    (folder / "benchmark.jsonl").write_text(
        "".join(json.dumps({"id": f"b{k}", "problem": row["question"]}) + "\n" for k, row in enumerate(held_out))
    )
    pools = [
        [
            p.strip()
            for response in row["code"]
            for p in response.split("\n\n")
            if len(p.strip()) > 20 and "boxed" not in p
        ]
        for row in cot
    ]
    prompts = max(1, samples // per_prompt)
    with (folder / "prompts.jsonl").open("w") as prompt_file, (folder / "recorded.jsonl").open("w") as recorded:
        for k in range(prompts):
            base = k % len(cot)
            problem = perturb_question(cot[base]["question"], rng)
            gold = str(cot[base]["gt"])
            generations = []
            for _ in range(per_prompt):
                answer = gold if rng.random() < RIGHT_SHARE else f"{gold}{rng.randint(1, 9)}"
                body = trace(pools, base, rng.randint(lo, hi), rng)
                generations.append(f"<think>\n{body}\n</think>\n\nThe answer is $\\boxed{{{answer}}}$.")
            prompt_file.write(json.dumps({"id": f"p{k}", "problem": problem, "answer": gold, "domain": "math"}) + "\n")
            recorded.write(json.dumps({"problem": problem, "generations": generations}) + "\n")
    return prompts


class WorkerMemory:
    """Peak RSS of Ray's worker processes (and their verifier children), polled, per task or actor
    class the process was running then (an actor that grows with the corpus shows up by name)."""

    def __init__(self, driver: int) -> None:
        self.driver = driver
        self.peaks: dict[str, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self.stop.wait(POLL_S):
            for process in psutil.process_iter(["pid", "cmdline", "memory_info"]):
                cmdline = process.info["cmdline"] or []
                if process.info["pid"] == self.driver or not cmdline or not cmdline[0].startswith("ray::"):
                    continue
                try:
                    rss = max([process.info["memory_info"].rss] + [c.memory_info().rss for c in process.children()])
                except psutil.Error:
                    continue
                # An actor's process is named by the method it runs: its peak is over all of them.
                running = cmdline[0].removeprefix("ray::").split(".")[0]
                self.peaks[running] = max(rss, self.peaks.get(running, 0))

    def largest(self) -> list[tuple[str, int]]:
        return sorted(self.peaks.items(), key=lambda item: -item[1])[:PEAKS_SHOWN]

    def __enter__(self) -> WorkerMemory:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def run_one(job: Path) -> None:
    """In a fresh process: run the job, print its figures as JSON on the last line."""
    from distillery.pipeline.runner import run_job

    start = time.perf_counter()
    result = run_job(job)
    wall = time.perf_counter() - start
    rows = result.report.get("dataset", {})
    generate = result.report.get("generate", {})
    stages = {name: entry["wall_s"] for name, entry in result.report.items() if isinstance(entry, dict)}
    print(
        json.dumps(
            {
                "wall_s": wall,
                "prompts_generated": generate.get("prompts_generated", 0) if isinstance(generate, dict) else 0,
                "driver_peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "rows": rows.get("rows", {}) if isinstance(rows, dict) else {},
                "stage_s": stages,
            }
        )
    )


def measure(args: argparse.Namespace, cot: list[dict], size: int, folder: Path) -> dict:
    prompts = write_corpus(folder, cot, size, args.samples_per_prompt, args.min_chars, args.max_chars, args.seed)
    cores = os.cpu_count() or 1
    (folder / "job.yaml").write_text(
        JOB.format(
            replicas=args.replicas,
            keep=args.samples_per_prompt,
            shard_size=args.shard_size,
            embed_actors=args.embed_actors,
            embed_dtype=args.embed_dtype,
        )
    )
    env = {**os.environ, "DISTILLERY_RAY_DASHBOARD": "0", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, __file__, "--run-job", str(folder / "job.yaml")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    with WorkerMemory(process.pid) as workers:
        out, _ = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"size {size}: the job failed (exit {process.returncode}); see {folder}/run/logs")
    figures = json.loads(out.strip().splitlines()[-1])
    # Perturbed problems sometimes coincide: ingest and the prompt filter drop those, and only the
    # prompts that reach generation have their samples replayed, verified, filtered and written.
    samples = figures["prompts_generated"] * args.samples_per_prompt
    return {
        "samples": samples,
        "corpus_samples": prompts * args.samples_per_prompt,
        "prompts": figures["prompts_generated"],
        "wall_s": figures["wall_s"],
        "samples_per_s": samples / figures["wall_s"],
        "samples_per_s_core": samples / figures["wall_s"] / cores,
        "driver_peak_rss": figures["driver_peak_rss"],
        "worker_peaks": workers.largest(),
        "rows": figures["rows"],
        "stage_s": figures["stage_s"],
    }


def mib(value: float) -> str:
    return f"{value / 2**20:.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cot", type=Path, help="JSONL with question, gt and a `code` list of responses")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="samples per run")
    parser.add_argument("--samples-per-prompt", type=int, default=4)
    parser.add_argument("--min-chars", type=int, default=2000)
    parser.add_argument("--max-chars", type=int, default=8000)
    parser.add_argument("--shard-size", type=int, default=1000, help="prompts per ingest shard")
    parser.add_argument("--replicas", type=int, default=2, help="replay replicas (each verifies its shards)")
    parser.add_argument(
        "--embed-actors", type=int, default=os.cpu_count() or 1, help="embedding actors (default: one per core)"
    )
    parser.add_argument(
        "--embed-dtype",
        choices=get_args(EmbedderConfig.model_fields["dtype"].annotation),
        default=EmbedderConfig.model_fields["dtype"].default,
        help="dedup.embedder.dtype (bfloat16: faster on CPUs with AMX, such as Sapphire Rapids)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="write the corpora and runs here instead of a temporary folder")
    parser.add_argument("--run-job", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_job is not None:
        run_one(args.run_job)
        return
    if args.cot is None:
        parser.error("--cot is required")
    cot = load_cot(args.cot)
    cores = os.cpu_count() or 1
    print(
        f"{cores} cores; GPU generation rate compared with: {GPUS} GPUs x {GPU_TOKENS_PER_S} tokens/s / "
        f"{TOKENS_PER_SAMPLE} tokens per sample = {GPU_SAMPLES_PER_S:.1f} samples/s"
    )
    results = []
    for size in sorted(args.sizes):
        if args.keep is not None:
            folder = args.keep / f"size-{size}"
            folder.mkdir(parents=True, exist_ok=True)
            result = measure(args, cot, size, folder)
        else:
            with tempfile.TemporaryDirectory(prefix="distillery-scale-") as temporary:
                result = measure(args, cot, size, Path(temporary))
        results.append(result)
        peaks = ", ".join(f"{mib(rss)} ({running})" for running, rss in result["worker_peaks"])
        print(
            f"{result['samples']:>9} samples of {result['prompts']} prompts (of {result['corpus_samples']} in the "
            f"corpus: duplicate prompts are dropped): {result['wall_s']:.0f} s, "
            f"{result['samples_per_s']:.1f} samples/s ({result['samples_per_s_core']:.1f} per core, "
            f"{result['samples_per_s'] / GPU_SAMPLES_PER_S:.1f}x the GPU rate), driver peak "
            f"{mib(result['driver_peak_rss'])}, worker peaks {peaks}, rows {result['rows']}; "
            f"stage seconds {result['stage_s']}",
            flush=True,
        )
    if len(results) > 1:
        small, large = results[0], results[-1]
        print(
            f"growth {small['samples']} -> {large['samples']} samples ({large['samples'] / small['samples']:.1f}x): "
            f"time {large['wall_s'] / small['wall_s']:.2f}x, driver peak RSS "
            f"{large['driver_peak_rss'] / small['driver_peak_rss']:.2f}x, driver bytes per extra prompt "
            f"{(large['driver_peak_rss'] - small['driver_peak_rss']) / (large['prompts'] - small['prompts']):.0f}"
        )


if __name__ == "__main__":
    main()
