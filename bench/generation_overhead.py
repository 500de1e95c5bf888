"""Output tokens/s of distillery's generation stage against a plain vLLM script, in one run.

Both sides use the same model, prompts, sampling parameters, per-request seeds and engine
arguments. The plain side hands every request to `LLM.generate` at once (the engine's best case);
distillery's side is the real stage: a Ray actor with the async engine, the per-prompt loop,
verification in worker processes, filters, and Parquet writes. Engine loading is excluded on both
sides. Sides alternate for `--repeats` rounds; medians and their ratio are printed.

    python bench/generation_overhead.py [--prompts 16] [--repeats 3] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("DISTILLERY_RAY_DASHBOARD", "0")

PROBLEMS = [
    "What is {a} + {b}?",
    "Tom has {a} apples and buys {b} more. How many apples does he have now?",
    "What is {a} times {b}?",
    "A shelf holds {a} books and {b} are removed. How many books are left?",
]


def prompts(count: int) -> list[dict[str, str]]:
    rows = []
    for i in range(count):
        a, b = 3 + i, 2 + (i * 7) % 11
        template = PROBLEMS[i % len(PROBLEMS)]
        answer = {0: a + b, 1: a + b, 2: a * b, 3: a - b}[i % len(PROBLEMS)]
        rows.append({"id": f"b{i}", "problem": template.format(a=a, b=b), "answer": str(answer), "domain": "math"})
    return rows


def job_dict(data: Path, n: int, max_tokens: int, count: int) -> dict:
    return {
        "name": "bench",
        "sources": [{"name": "bench", "format": "jsonl", "path": str(data)}],
        "teachers": {
            "smollm2": {
                "backend": "vllm",
                "model": "bundled:smollm2-135m",
                "dtype": "bfloat16",
                "max_model_len": 2048,
                "gpu_memory_utilization": 0.3,
                "enforce_eager": True,
                "device": "cpu",
                "prompt_template": "{problem}\nPut your final answer within \\boxed{}.",
                "sampling": {"n": n, "temperature": 0.7, "top_p": 0.95, "max_tokens": max_tokens, "seed": 0},
            }
        },
        # One round, every prompt in flight at once: the same work the plain script does.
        "generation": {
            "teacher": "smollm2",
            "keep_per_prompt": n,
            "max_rounds": 1,
            "shard_size": max(1, count // 4),
            "shards_in_flight": 4,
        },
        "verification": {"workers": 1, "timeout_s": 10},
    }


def plain_vllm(job_file: Path) -> tuple[int, float, int]:
    """The baseline: vLLM's offline LLM, called directly."""
    from vllm import LLM, SamplingParams

    from distillery.operators.teachers.chat_format import ChatFormat
    from distillery.operators.teachers.vllm_engine import engine_args
    from distillery.schemas.job import load_job
    from distillery.schemas.records import Prompt, prompt_id, request_seed

    job = load_job(job_file)
    config = job.teachers["smollm2"]
    llm = LLM(**engine_args(config, on_cpu=True))
    tokenizer = llm.get_tokenizer()
    chat = ChatFormat(config.prompt_template, config.system_prompt)
    rows = [json.loads(line) for line in Path(job.sources[0].path).read_text().splitlines()]
    texts, params = [], []
    for row in rows:
        p = Prompt(
            id=prompt_id(row["problem"], "bench"),
            source="bench",
            source_row=0,
            domain="math",
            problem=row["problem"],
            answer=row["answer"],
        )
        texts.append(tokenizer.apply_chat_template(chat.messages(p), tokenize=False, add_generation_prompt=True))
        params.append(
            SamplingParams(
                n=config.sampling.n,
                temperature=config.sampling.temperature,
                top_p=config.sampling.top_p,
                max_tokens=config.sampling.max_tokens,
                seed=request_seed(config.sampling.seed, p.id, 0),
            )
        )
    start = time.perf_counter()
    outputs = llm.generate(texts, params, use_tqdm=False)
    seconds = time.perf_counter() - start
    tokens = sum(len(c.token_ids) for o in outputs for c in o.outputs)
    samples = sum(len(o.outputs) for o in outputs)
    del llm
    gc.collect()
    return tokens, seconds, samples


def distillery_stage(job_file: Path, run_dir: Path) -> tuple[int, float, int]:
    import ray

    from distillery.pipeline.run_directory import RunDirectory
    from distillery.pipeline.runner import connect_ray
    from distillery.pipeline.stages.base import default_teacher_factory
    from distillery.pipeline.stages.generate import GenerationDispatch
    from distillery.pipeline.stages.ingest import run_ingest
    from distillery.schemas.job import job_base_dir, load_job

    job = load_job(job_file)
    run = RunDirectory(run_dir)
    run.bind(job)
    run_ingest(job, job_base_dir(job_file), run)
    connect_ray()
    summary = GenerationDispatch(job, run, default_teacher_factory).run()
    ray.shutdown()
    samples = pq.read_table(run.samples, columns=["id"]).num_rows
    return int(summary["completion_tokens"]), float(summary["seconds"]), samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="distillery-bench-"))
    data = work / "prompts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in prompts(args.prompts)))
    job_file = work / "job.yaml"
    job_file.write_text(yaml.safe_dump(job_dict(data, args.n, args.max_tokens, args.prompts)))

    plain, ours = [], []
    for repeat in range(args.repeats):
        run_dir = work / f"run{repeat}"
        sides = (
            ("plain vLLM      ", lambda: plain_vllm(job_file), plain),
            ("distillery stage", lambda: distillery_stage(job_file, run_dir), ours),  # noqa: B023 - called at once
        )
        for side, measure, results in sides:
            tokens, seconds, samples = measure()
            results.append(tokens / seconds)
            print(
                f"repeat {repeat}: {side} {samples} samples, {tokens:6d} tokens in {seconds:6.1f}s "
                f"= {tokens / seconds:7.1f} tok/s",
                flush=True,
            )

    plain_median, ours_median = statistics.median(plain), statistics.median(ours)
    print(
        f"\nprompts {args.prompts}, n {args.n}, max_tokens {args.max_tokens}, repeats {args.repeats}, "
        f"cores {os.cpu_count()}"
    )
    print(f"plain vLLM       median {plain_median:7.1f} output tok/s")
    print(f"distillery stage median {ours_median:7.1f} output tok/s")
    print(f"ratio (distillery / plain): {ours_median / plain_median:.3f}  (target >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
