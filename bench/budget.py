"""What a sampling budget and the loop cut save: teacher tokens per accepted row, in one run on the
same prompts and the same CPU teacher (the bundled SmolLM2 on vLLM's CPU backend), three ways:

- fixed: n = 16 samples per prompt in one round (the OpenThoughts3 / NeMo-Skills practice);
- adaptive: `generation.sampling_budget` (first round 4, at most 16 per prompt, the next rounds
  sized from the pass rate seen), with the default loop cut (`repetition_detection`);
- adaptive, no loop cut: the same without `repetition_detection`.

Every side runs the real rejection sampler (filters and the math verifier in worker processes) on
one engine, loaded once. Teacher tokens are completion tokens. "At equal accepted rows" compares
the tokens each side had spent, going through the prompts in order, when it reached R accepted rows
(R: the fewer of the two sides' totals). Goal: adaptive <= 0.5x fixed. Also printed: the share of
completion tokens that went into samples finishing `length` or `repetition`, with and without the
loop cut.

    python bench/budget.py [--prompts jobs/data/demo_prompts.jsonl] [--limit 21] [--max-tokens 256]
                           [--first-round-n 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXED_N = 16
FIRST_ROUND_N = 4
MAX_ROUNDS = 4
WASTED_FINISHES = ("length", "repetition")


@dataclass
class SideResult:
    name: str
    tokens_per_prompt: list[int]
    rows_per_prompt: list[int]
    wasted_tokens: int
    samples: int
    seconds: float
    reasons: Counter[str]
    """Why samples were not selected (the part of each rejection reason before its first colon)."""
    finishes: Counter[str]

    @property
    def tokens(self) -> int:
        return sum(self.tokens_per_prompt)

    @property
    def rows(self) -> int:
        return sum(self.rows_per_prompt)

    def tokens_at_rows(self, rows: int) -> int:
        """Tokens spent, prompt by prompt in order, when `rows` accepted rows were reached."""
        spent = reached = 0
        for tokens, got in zip(self.tokens_per_prompt, self.rows_per_prompt, strict=True):
            if reached >= rows:
                break
            spent += tokens
            reached += got
        return spent


def _prompts(path: Path, limit: int) -> list[dict[str, str]]:
    """Rows with a problem and an answer; others (the demo file has a malformed line on purpose) are skipped."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("problem"), str) and row.get("answer") is not None:
            rows.append(row)
    return rows[:limit]


async def _side(name: str, sampler, prompts) -> SideResult:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(sampler.run(p) for p in prompts))
    seconds = time.perf_counter() - started
    print(f"{name}: done in {seconds:.0f} s", file=sys.stderr, flush=True)
    wasted = sum(s.completion_tokens for o in outcomes for s in o.samples if s.finish_reason in WASTED_FINISHES)
    return SideResult(
        name,
        [sum(s.completion_tokens for s in o.samples) for o in outcomes],
        [sum(s.selected for s in o.samples) for o in outcomes],
        wasted,
        sum(len(o.samples) for o in outcomes),
        seconds,
        Counter((s.rejection_reason or "").split(":", 1)[0] for o in outcomes for s in o.samples if not s.selected),
        Counter(s.finish_reason for o in outcomes for s in o.samples),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=Path, default=ROOT / "jobs" / "data" / "demo_prompts.jsonl")
    parser.add_argument("--limit", type=int, default=21)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--first-round-n", type=int, default=FIRST_ROUND_N, help="the budget's first_round_n")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.2)
    args = parser.parse_args()

    from distillery.operators.filters.registry import build_filters
    from distillery.operators.select.rejection import RejectionSampler, SamplingPolicy
    from distillery.operators.teachers.chat_format import ChatFormat
    from distillery.operators.teachers.vllm_engine import VLLMTeacher
    from distillery.operators.verifiers.pool import VerifierPool
    from distillery.schemas.budget_config import SamplingBudgetConfig
    from distillery.schemas.filter_config import FiltersConfig
    from distillery.schemas.records import Prompt, prompt_id
    from distillery.schemas.teacher_config import VLLMTeacherConfig
    from distillery.schemas.verifier_config import VerificationConfig

    rows = _prompts(args.prompts, args.limit)
    prompts = [
        Prompt(id=prompt_id(r["problem"], "bench"), source="bench", source_row=i, domain="math",
               problem=r["problem"], answer=str(r["answer"]))
        for i, r in enumerate(rows)
    ]
    config = VLLMTeacherConfig(
        model="bundled:smollm2-135m",
        dtype="bfloat16",
        max_model_len=1024,
        gpu_memory_utilization=args.gpu_memory_utilization,
        enforce_eager=True,
        device="cpu",
        prompt_template="{problem}\nPut your final answer within \\boxed{}.",
        sampling={"n": FIXED_N, "temperature": 0.7, "top_p": 0.95, "max_tokens": args.max_tokens, "seed": 0},
    )
    chat = ChatFormat(prompt_template=config.prompt_template)
    budget = SamplingBudgetConfig(max_samples_per_prompt=FIXED_N, first_round_n=args.first_round_n)
    teacher = VLLMTeacher("smollm2", config)
    cut_on = config.sampling
    cut_off = config.sampling.model_copy(update={"repetition_detection": None})
    try:
        with VerifierPool(VerificationConfig(workers=1, timeout_s=10)) as pool:
            filters = build_filters(FiltersConfig())

            def sampler(policy: SamplingPolicy) -> RejectionSampler:
                return RejectionSampler(teacher, pool, filters, policy, chat)

            async def all_sides() -> list[SideResult]:
                # One event loop for all: the async engine belongs to the loop of its first request.
                teacher.sampling = cut_on
                fixed = await _side("fixed n=16", sampler(SamplingPolicy(1, 1)), prompts)
                adaptive = await _side("adaptive", sampler(SamplingPolicy(1, MAX_ROUNDS, budget)), prompts)
                teacher.sampling = cut_off
                uncut = await _side("adaptive, no loop cut", sampler(SamplingPolicy(1, MAX_ROUNDS, budget)), prompts)
                return [fixed, adaptive, uncut]

            sides = asyncio.run(all_sides())
    finally:
        teacher.close()

    fixed, adaptive, uncut = sides
    print(
        f"{len(prompts)} prompts from {args.prompts}, max_tokens {args.max_tokens}, keep_per_prompt 1, "
        f"budget: first round {args.first_round_n}, at most {FIXED_N} per prompt"
    )
    print(f"{'side':<24}{'samples':>8}{'rows':>6}{'tokens':>9}{'tok/row':>9}{'wasted':>8}{'seconds':>9}")
    for side in sides:
        per_row = side.tokens / side.rows if side.rows else float("nan")
        wasted = side.wasted_tokens / side.tokens if side.tokens else 0.0
        print(
            f"{side.name:<24}{side.samples:>8}{side.rows:>6}{side.tokens:>9}{per_row:>9.0f}{wasted:>8.1%}"
            f"{side.seconds:>9.1f}"
        )
    for side in sides:
        print(f"{side.name}: not selected because {dict(side.reasons.most_common(6))}")
        print(f"{side.name}: finish reasons {dict(side.finishes)}")
    equal = min(fixed.rows, adaptive.rows)
    if equal:
        at_fixed, at_adaptive = fixed.tokens_at_rows(equal), adaptive.tokens_at_rows(equal)
        print(
            f"at {equal} accepted rows: fixed {at_fixed / equal:.0f} tok/row, adaptive {at_adaptive / equal:.0f} "
            f"tok/row; ratio adaptive/fixed {at_adaptive / at_fixed:.2f}x (goal <= 0.50x)"
        )
    for side in (adaptive, uncut):
        share = side.wasted_tokens / side.tokens if side.tokens else 0.0
        print(f"share of tokens in length/repetition samples, {side.name}: {share:.1%}")


if __name__ == "__main__":
    main()
