"""What a sampling budget and the loop cut save: teacher tokens per accepted row, in one run on the
same prompts and the same CPU teacher (the bundled SmolLM2 on vLLM's CPU backend), keep_per_prompt 1:

- fixed: n = 16 samples per prompt in one round (the OpenThoughts3 / NeMo-Skills practice);
- adaptive: `generation.sampling_budget` as it ships (first round 4, at most 16 per prompt, the
  next rounds sized from the pass rate seen and spread over `--rounds` rounds);
- adaptive + floor: the same with the opt-in `give_up_below_pass_rate` (`--floor`): a prompt whose
  pass rate is confidently below the floor is given up early. It trades the hardest prompts for cost.

Every side runs the real rejection sampler (filters and the math verifier in worker processes) on one
engine, loaded once, with the loop cut (`repetition_detection`, the product default unless
`--loop-cut` says otherwise). Teacher tokens are completion tokens. "At equal accepted rows" compares
the tokens each side had spent, going through the prompts in order, when it reached R accepted rows
(R: the fewer of the two sides' totals). The tokens-per-row ratio comes with a 90% interval from a
paired bootstrap over prompts. Goal: adaptive <= 0.5x fixed.

Expected figures, free of the sampling noise of one run: each policy replayed many times on the fixed
side's 16 samples per prompt, drawn in shuffled orders (the same real samples, the real
`SamplingPolicy.round_n`), and an oracle that knows which prompts pass: it skips the prompts none of
whose 16 samples passed and stops each other prompt at its first pass (no draw is wasted on a prompt
that never passes, none is made after a pass; what is left is the price of a row itself).

The loop cut: every request in which the engine cut a loop is sent again, same seed and n, without
`repetition_detection`. A rerun that reproduces the cut text shows how far the loop would have run
(the tokens the cut saved); the CPU backend's numerics depend on the batch, so some reruns take
another path, and the line also gives the ceiling (every cut loop run to max_tokens). With the cut
samples replaced by their reruns: the share of tokens in samples finishing `length` or `repetition`
with and without the cut, and whether an uncut sample would have been accepted (a cut that cost a row).

A 135M teacher passes few samples, so its runs mostly measure what finding out that a prompt never
passes costs. `--recorded FILE` replays a real teacher's recorded responses instead (one row per
prompt with a list of responses; no engine loads): the replay teacher, the R1 filters and the math
verifier grade them, and every policy, fixed n=16 too, draws from each prompt's responses with
replacement (a prompt's few recorded responses stand for its sample distribution; tokens are
characters / 4, the same for every side).

    python bench/budget.py [--prompts jobs/data/demo_prompts.jsonl] [--problem-field problem]
                           [--answer-field answer] [--template T] [--limit 21] [--max-tokens 256] [--rounds 4]
                           [--floor 0.2] [--loop-cut MIN,MAX,COUNT]
e.g. on GSM8K rows (question, answer ending "#### 18"):
    python bench/budget.py --prompts gsm8k.jsonl --problem-field question --limit 24
and on Qwen2.5-Math's recorded MATH responses (`eval_rm_maj_example/math_cot_100.jsonl`, 8 a problem):
    python bench/budget.py --recorded math_cot_100.jsonl --problem-field question --answer-field gt \
                           --responses-field code --limit 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from distillery.operators.teachers.base import WASTED_FINISHES

if TYPE_CHECKING:
    from distillery.operators.select.rejection import PromptOutcome, RejectionSampler, SamplingPolicy
    from distillery.operators.teachers.vllm_engine import VLLMTeacher
    from distillery.schemas.records import Generation, Prompt

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = "{problem}\nPut your final answer within \\boxed{}."
"""The demo job's prompt template."""
FIXED_N = 16
FIRST_ROUND_N = 4
MAX_ROUNDS = 4
"""As jobs/r1_800k.yaml: rounds cost latency, not tokens (a prompt's samples share its cached prefix)."""
FLOOR = 0.2
"""The opt-in floor of the third side: a prompt confidently below one pass in five is given up."""
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
INTERVAL = (0.05, 0.95)
REPLAYS = 300
"""Shuffled orders of the fixed side's samples per prompt, for the expected figures."""


@dataclass
class SideResult:
    name: str
    outcomes: list[PromptOutcome]
    seconds: float
    uncut: dict[str, Generation]
    """Sample id -> the same sample drawn again without the loop cut (only samples that were cut)."""

    def tokens_per_prompt(self, cut: bool = True) -> list[int]:
        return [sum(self._tokens(s, cut) for s in o.samples) for o in self.outcomes]

    def _tokens(self, sample: Generation, cut: bool) -> int:
        return (sample if cut else self.uncut.get(sample.id, sample)).completion_tokens

    @property
    def rows_per_prompt(self) -> list[int]:
        return [sum(s.selected for s in o.samples) for o in self.outcomes]

    @property
    def tokens(self) -> int:
        return sum(self.tokens_per_prompt())

    @property
    def rows(self) -> int:
        return sum(self.rows_per_prompt)

    @property
    def samples(self) -> list[Generation]:
        return [s for o in self.outcomes for s in o.samples]

    def wasted_share(self, cut: bool) -> float:
        """Share of completion tokens in samples finishing `length` or `repetition`."""
        wasted = 0
        for sample in self.samples:
            finish = (sample if cut else self.uncut.get(sample.id, sample)).finish_reason
            wasted += self._tokens(sample, cut) if finish in WASTED_FINISHES else 0
        total = sum(self.tokens_per_prompt(cut))
        return wasted / total if total else 0.0

    def tokens_at_rows(self, rows: int) -> int:
        """Tokens spent, prompt by prompt in order, when `rows` accepted rows were reached."""
        spent = reached = 0
        for tokens, got in zip(self.tokens_per_prompt(), self.rows_per_prompt, strict=True):
            if reached >= rows:
                break
            spent += tokens
            reached += got
        return spent


def _gold_rows(path: Path, problem_field: str, answer_field: str, limit: int) -> list[dict[str, str]]:
    """Rows with a problem and an answer; others (the demo file has a malformed line on purpose) are skipped."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get(problem_field), str) and row.get(answer_field) is not None:
            rows.append({"problem": row[problem_field], "answer": str(row[answer_field])})
    if not rows:
        raise SystemExit(f"{path}: no row has a text field {problem_field!r} and a field {answer_field!r}")
    return rows[:limit]


def _prompts(rows: list[dict[str, str]]) -> list[Prompt]:
    from distillery.schemas.records import Prompt, prompt_id

    return [
        Prompt(
            id=prompt_id(r["problem"], "bench"),
            source="bench",
            source_row=i,
            domain="math",
            problem=r["problem"],
            answer=r["answer"],
        )
        for i, r in enumerate(rows)
    ]


async def _side(name: str, sampler: RejectionSampler, prompts: list[Prompt]) -> SideResult:
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(sampler.run(p) for p in prompts))
    seconds = time.perf_counter() - started
    print(f"{name}: done in {seconds:.0f} s", file=sys.stderr, flush=True)
    return SideResult(name, list(outcomes), seconds, {})


async def _uncut(side: SideResult, sampler: RejectionSampler, teacher: VLLMTeacher) -> None:
    """Draw each request with a cut sample again without the loop cut, into `side.uncut`."""
    for outcome in side.outcomes:
        rounds = sorted({s.round for s in outcome.samples if s.finish_reason == "repetition"})
        for round_ in rounds:
            drawn = [s for s in outcome.samples if s.round == round_]
            response = await teacher.sample(
                sampler.messages(outcome.prompt),
                n=len(drawn),
                seed=drawn[0].seed,
                request_id=f"{outcome.prompt.id}-r{round_}-uncut",
            )
            if response.error is not None:
                raise SystemExit(f"the uncut rerun of {outcome.prompt.id} round {round_} failed: {response.error}")
            again = {c.index: c for c in response.completions}
            for sample in (s for s in drawn if s.finish_reason == "repetition"):
                completion = again[sample.index]
                uncut = sampler.generation(outcome.prompt, round_, sample.seed, response.prompt_tokens, completion)
                side.uncut[sample.id] = await sampler.assess(outcome.prompt, uncut)


def _loop_cut_report(side: SideResult, max_tokens: int) -> str:
    cut = [s for s in side.samples if s.finish_reason == "repetition"]
    if not cut:
        return f"{side.name}: no loop cut; share of tokens in length/repetition samples {side.wasted_share(True):.1%}"
    # The CPU backend's numerics depend on the batch, so a rerun alone may leave the cut sample's path.
    same = [s for s in cut if side.uncut[s.id].text.startswith(s.text)]
    saved = sum(side.uncut[s.id].completion_tokens - s.completion_tokens for s in same)
    finishes = Counter(side.uncut[s.id].finish_reason for s in same)
    ceiling = sum(max_tokens - s.completion_tokens for s in cut)
    accepted = sum(side.uncut[s.id].accepted for s in cut)
    return (
        f"{side.name}: {len(cut)} samples cut ({sum(s.completion_tokens for s in cut)} tokens); drawn again without "
        f"the cut, {len(same)} reproduced the cut text and ran on by {saved} tokens (finishing {dict(finishes)}), "
        f"{len(cut) - len(same)} took another path; {accepted} of the reruns would have been accepted; had every "
        f"cut loop run to max_tokens, the cut saved {ceiling} tokens ({ceiling / (side.tokens + ceiling):.1%}). "
        f"Share of tokens in length/repetition samples: {side.wasted_share(cut=True):.1%} with the loop cut, "
        f"{side.wasted_share(cut=False):.1%} without (cut samples replaced by their reruns)"
    )


def _per_row(tokens: list[int], rows: list[int], picks: list[int]) -> float:
    got = sum(rows[i] for i in picks)
    return sum(tokens[i] for i in picks) / got if got else float("nan")


def _interval(side: SideResult, fixed: SideResult) -> tuple[float, float]:
    """90% interval of (side tokens/row) / (fixed tokens/row), resampling prompts with replacement."""
    rng = random.Random(BOOTSTRAP_SEED)
    count = len(fixed.outcomes)
    a_tokens, a_rows = side.tokens_per_prompt(), side.rows_per_prompt
    f_tokens, f_rows = fixed.tokens_per_prompt(), fixed.rows_per_prompt
    ratios = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        picks = [rng.randrange(count) for _ in range(count)]
        ratio = _per_row(a_tokens, a_rows, picks) / _per_row(f_tokens, f_rows, picks)
        if ratio == ratio:  # a resample with no fixed or no adaptive row has no ratio
            ratios.append(ratio)
    ratios.sort()
    if not ratios:
        return float("nan"), float("nan")
    return ratios[int(INTERVAL[0] * len(ratios))], ratios[min(int(INTERVAL[1] * len(ratios)), len(ratios) - 1)]


Pool = list[tuple[bool, int]]
"""One prompt's samples as (accepted, completion tokens)."""


def _pools(side: SideResult) -> list[Pool]:
    return [[(s.accepted, s.completion_tokens) for s in o.samples] for o in side.outcomes]


def _draw(pool: Pool, taken: int, n: int, rng: random.Random, with_replacement: bool) -> Pool:
    """The next n draws from a prompt's samples: the next n of a shuffled pool, or n drawn with
    replacement (a pool smaller than the budget stands for the prompt's sample distribution)."""
    if with_replacement:
        return [rng.choice(pool) for _ in range(n)]
    return pool[taken : taken + n]


def _replayed(policy: SamplingPolicy, pools: list[Pool], with_replacement: bool = False) -> tuple[float, float]:
    """(tokens per row, rows per prompt) of `policy` drawing from each prompt's samples in shuffled
    orders (or with replacement), expected over REPLAYS orders."""
    rng = random.Random(BOOTSTRAP_SEED)
    tokens = rows = 0
    for _ in range(REPLAYS):
        for samples in pools:
            pool = list(samples)
            rng.shuffle(pool)
            drawn = accepted = 0
            for round_ in range(policy.max_rounds):
                n = policy.round_n(FIXED_N, drawn, accepted, round_)
                if n == 0 or (drawn >= len(pool) and not with_replacement):
                    break
                taken = _draw(pool, drawn, n, rng, with_replacement)
                drawn += len(taken)
                tokens += sum(t for _, t in taken)
                accepted += sum(a for a, _ in taken)
            rows += min(accepted, policy.keep_per_prompt)
    return (tokens / rows if rows else float("nan")), rows / (REPLAYS * len(pools))


def _oracle(pools: list[Pool], with_replacement: bool = False) -> float:
    """Tokens per row of an oracle on each prompt's samples in shuffled orders (or drawn with
    replacement): no draw for a prompt none of whose samples passed, and a stop at each other
    prompt's first pass."""
    rng = random.Random(BOOTSTRAP_SEED)
    tokens = rows = 0
    for _ in range(REPLAYS):
        for samples in pools:
            if not any(a for a, _ in samples):
                continue
            pool = list(samples)
            rng.shuffle(pool)
            for taken in range(FIXED_N * len(pool)):
                accepted, spent = _draw(pool, taken, 1, rng, with_replacement)[0]
                tokens += spent
                if accepted:
                    rows += 1
                    break
    return tokens / rows if rows else float("nan")


def _loop_cut(text: str) -> dict[str, int] | None:
    """`repetition_detection` from MIN_PATTERN,MAX_PATTERN,MIN_COUNT; None for off."""
    if text == "off":
        return None
    low, high, count = (int(x) for x in text.split(","))
    return {"min_pattern_size": low, "max_pattern_size": high, "min_count": count}


def _policies(args: argparse.Namespace, replayed: bool = False) -> dict[str, SamplingPolicy]:
    """The sides: fixed n=16, the adaptive budget as it ships, and with the opt-in floor; replayed
    only, also one sample a round (the fewest tokens rounds can buy, at the most latency)."""
    from distillery.operators.select.rejection import SamplingPolicy
    from distillery.schemas.budget_config import SamplingBudgetConfig

    budget = SamplingBudgetConfig(max_samples_per_prompt=FIXED_N, first_round_n=args.first_round_n)
    policies = {
        f"fixed n={FIXED_N}": SamplingPolicy(1, 1),
        "adaptive": SamplingPolicy(1, args.rounds, budget),
        f"adaptive + floor {args.floor:g}": SamplingPolicy(
            1, args.rounds, budget.model_copy(update={"give_up_below_pass_rate": args.floor})
        ),
    }
    if replayed:
        one_by_one = budget.model_copy(update={"first_round_n": 1, "max_round_n": 1})
        policies[f"one a round, {FIXED_N} rounds"] = SamplingPolicy(1, FIXED_N, one_by_one)
        policies[f"one a round + floor {args.floor:g}"] = SamplingPolicy(
            1, FIXED_N, one_by_one.model_copy(update={"give_up_below_pass_rate": args.floor})
        )
    return policies


def _print_replayed(
    args: argparse.Namespace, pools: list[Pool], fixed_per_row: float, how: str, *, with_replacement: bool = False
) -> None:
    for name, policy in list(_policies(args, replayed=True).items())[1:]:
        per_row, rows_per_prompt = _replayed(policy, pools, with_replacement)
        print(
            f"expected, {how}: {name} {per_row:.0f} tok/row ({rows_per_prompt:.2f} rows per prompt), "
            f"ratio {per_row / fixed_per_row:.2f}x (goal <= 0.50x)"
        )
    oracle = _oracle(pools, with_replacement)
    print(
        f"oracle (no draw on a prompt that never passes, none after a pass): {oracle:.0f} tok/row, "
        f"ratio {oracle / fixed_per_row:.2f}x"
    )


def _recorded(args: argparse.Namespace) -> None:
    """--recorded: a real teacher's recorded responses (the replay teacher, the real filters and math
    verifier grade them), each prompt's few responses standing for its sample distribution: every
    policy draws from them with replacement, fixed n=16 too. No engine loads."""
    from distillery.operators.filters.registry import build_filters
    from distillery.operators.select.rejection import RejectionSampler, SamplingPolicy
    from distillery.operators.teachers.chat_format import ChatFormat
    from distillery.operators.teachers.replay import ReplayTeacher
    from distillery.operators.verifiers.pool import VerifierPool
    from distillery.schemas.filter_config import FiltersConfig
    from distillery.schemas.teacher_config import ReplayTeacherConfig
    from distillery.schemas.verifier_config import VerificationConfig

    rows = _gold_rows(args.recorded, args.problem_field, args.answer_field, args.limit)
    prompts = _prompts(rows)
    config = ReplayTeacherConfig(
        backend="replay",
        path=str(args.recorded),
        fields={"problem": args.problem_field, "responses": args.responses_field},
        model=args.recorded.stem,
    )
    teacher = ReplayTeacher("recorded", config)
    with VerifierPool(VerificationConfig(workers=1, timeout_s=10)) as pool:
        sampler = RejectionSampler(
            teacher, pool, build_filters(FiltersConfig()), SamplingPolicy(1, 1), ChatFormat(prompt_template="{problem}")
        )

        async def every_prompt() -> list[PromptOutcome]:
            return list(await asyncio.gather(*(sampler.run(p) for p in prompts)))

        outcomes = asyncio.run(every_prompt())
    pools = [[(s.accepted, s.completion_tokens) for s in o.samples] for o in outcomes]
    rates = [sum(a for a, _ in pool) / len(pool) for pool in pools if pool]
    print(
        f"{len(prompts)} prompts of {args.recorded.name}, {sum(map(len, pools))} recorded responses "
        f"(tokens: characters / {config.chars_per_token:g}); pass rate per prompt: median "
        f"{statistics.median(rates):.2f}, never passing {sum(r == 0 for r in rates)}, always passing "
        f"{sum(r == 1 for r in rates)}; keep_per_prompt 1, budget: first round {args.first_round_n}, at most "
        f"{FIXED_N} per prompt, {args.rounds} rounds"
    )
    fixed_per_row, fixed_rows = _replayed(SamplingPolicy(1, 1), pools, with_replacement=True)
    print(
        f"expected, drawing with replacement: fixed n={FIXED_N} {fixed_per_row:.0f} tok/row "
        f"({fixed_rows:.2f} rows per prompt)"
    )
    _print_replayed(args, pools, fixed_per_row, "drawing with replacement", with_replacement=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=Path, default=ROOT / "jobs" / "data" / "demo_prompts.jsonl")
    parser.add_argument("--problem-field", default="problem", help="the column holding the problem")
    parser.add_argument("--answer-field", default="answer", help="the gold (a worked solution's box or #### line)")
    parser.add_argument("--template", default=TEMPLATE, help="the teacher's prompt template ({problem} is replaced)")
    parser.add_argument("--limit", type=int, default=21)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--first-round-n", type=int, default=FIRST_ROUND_N, help="the budget's first_round_n")
    parser.add_argument("--rounds", type=int, default=MAX_ROUNDS, help="generation.max_rounds of the adaptive sides")
    parser.add_argument("--floor", type=float, default=FLOOR, help="give_up_below_pass_rate of the third side")
    parser.add_argument(
        "--loop-cut",
        default=None,
        help="repetition_detection as MIN_PATTERN,MAX_PATTERN,MIN_COUNT, or off; default: the product default",
    )
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.2)
    parser.add_argument(
        "--recorded",
        type=Path,
        default=None,
        help="JSONL of a real teacher's recorded responses, one row per prompt: replayed, no engine",
    )
    parser.add_argument("--responses-field", default="generations", help="with --recorded: the list of responses")
    args = parser.parse_args()
    if args.recorded is not None:
        _recorded(args)
        return

    from distillery.operators.filters.registry import build_filters
    from distillery.operators.select.rejection import RejectionSampler
    from distillery.operators.teachers.chat_format import ChatFormat
    from distillery.operators.teachers.vllm_engine import VLLMTeacher
    from distillery.operators.verifiers.pool import VerifierPool
    from distillery.schemas.filter_config import FiltersConfig
    from distillery.schemas.teacher_config import SamplingConfig, VLLMTeacherConfig
    from distillery.schemas.verifier_config import VerificationConfig

    rows = _gold_rows(args.prompts, args.problem_field, args.answer_field, args.limit)
    prompts = _prompts(rows)
    sampling: dict[str, object] = {
        "n": FIXED_N,
        "temperature": 0.7,
        "top_p": 0.95,
        "max_tokens": args.max_tokens,
        "seed": 0,
    }
    if args.loop_cut is not None:
        sampling["repetition_detection"] = _loop_cut(args.loop_cut)
    config = VLLMTeacherConfig(
        model="bundled:smollm2-135m",
        dtype="bfloat16",
        max_model_len=1024,
        gpu_memory_utilization=args.gpu_memory_utilization,
        enforce_eager=True,
        device="cpu",
        prompt_template=args.template,
        sampling=sampling,
    )
    chat = ChatFormat(prompt_template=config.prompt_template)
    teacher = VLLMTeacher("smollm2", config)
    uncut_sampling = SamplingConfig.model_validate({**config.sampling.model_dump(), "repetition_detection": None})
    policies = _policies(args)
    try:
        with VerifierPool(VerificationConfig(workers=1, timeout_s=10)) as pool:
            filters = build_filters(FiltersConfig())

            def sampler(policy: SamplingPolicy) -> RejectionSampler:
                return RejectionSampler(teacher, pool, filters, policy, chat)

            async def all_sides() -> list[SideResult]:
                # One event loop for all: the async engine belongs to the loop of its first request.
                sides = [await _side(name, sampler(policy), prompts) for name, policy in policies.items()]
                if config.sampling.repetition_detection is not None:
                    teacher.sampling = uncut_sampling
                    for side, policy in zip(sides, policies.values(), strict=True):
                        await _uncut(side, sampler(policy), teacher)
                return sides

            sides = asyncio.run(all_sides())
    finally:
        teacher.close()

    fixed = sides[0]
    detection = config.sampling.repetition_detection
    print(
        f"{len(prompts)} prompts from {args.prompts.name}, template {args.template!r}, max_tokens {args.max_tokens}, "
        f"keep_per_prompt 1, "
        f"budget: first round {args.first_round_n}, at most {FIXED_N} per prompt, {args.rounds} rounds; "
        f"loop cut {detection.model_dump() if detection else 'off'}"
    )
    print(
        f"{'side':<24}{'samples':>8}{'rows':>6}{'tokens':>9}{'tok/row':>9}{'med tok/prompt':>15}"
        f"{'wasted':>8}{'seconds':>9}"
    )
    for side in sides:
        per_row = side.tokens / side.rows if side.rows else float("nan")
        print(
            f"{side.name:<24}{len(side.samples):>8}{side.rows:>6}{side.tokens:>9}{per_row:>9.0f}"
            f"{statistics.median(side.tokens_per_prompt()):>15.0f}{side.wasted_share(cut=True):>8.1%}{side.seconds:>9.1f}"
        )
    for side in sides:
        reasons = Counter((s.rejection_reason or "").split(":", 1)[0] for s in side.samples if not s.selected)
        print(f"{side.name}: not selected because {dict(reasons.most_common(6))}")
        print(f"{side.name}: prompts {dict(Counter(o.status for o in side.outcomes))}")
        print(f"{side.name}: finish reasons {dict(Counter(s.finish_reason for s in side.samples))}")
    for side in sides[1:]:
        equal = min(fixed.rows, side.rows)
        if not equal:
            print(f"{side.name}: no accepted rows to compare")
            continue
        at_fixed, at_side = fixed.tokens_at_rows(equal), side.tokens_at_rows(equal)
        low, high = _interval(side, fixed)
        per_row = (side.tokens / side.rows) / (fixed.tokens / fixed.rows)
        print(
            f"{side.name}: at {equal} accepted rows fixed {at_fixed / equal:.0f} tok/row, {side.name} "
            f"{at_side / equal:.0f} tok/row: ratio {at_side / at_fixed:.2f}x (goal <= 0.50x); "
            f"tokens/row ratio {per_row:.2f}x, 90% interval {low:.2f}-{high:.2f}"
        )
    fixed_per_row = fixed.tokens / fixed.rows if fixed.rows else float("nan")
    _print_replayed(args, _pools(fixed), fixed_per_row, "replaying the fixed side's samples")
    for side in sides:
        print(_loop_cut_report(side, args.max_tokens))


if __name__ == "__main__":
    main()
