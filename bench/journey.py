"""Journey-trace benchmark: traces built from real chain-of-thought data and from a finished run.

    python bench/journey.py --cot PATH [--run RUN_DIR] [--max-step-chars 600]

`--cot`: a JSONL of problems, each with several scored responses (`question` or `problem`, `gt`, the
responses in `code`; such as Qwen2.5-Math's `eval_rm_maj_example` outputs). Every response is
verified by our math verifier (the file's own `score` is not used), then the journey builder runs
with `locate: compare`, `bridge: splice` (no model) on every prompt with at least one wrong and one
correct response. `--run`: the `samples/` and `journey/` tables of a run (e.g. the demo's), whose
shipped traces are verified again here.

Prints, for each: eligible prompts, traces built per 100 eligible, the share of traces whose final
answer verifies (shipped ones: must be 100%), the share whose trace contains the located wrong step
verbatim, distinct reflection openings, and the mean trace length against the shortcut trace it was
spliced from.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from distillery.operators.filters.registry import build_filters
from distillery.operators.journey.builder import JourneyBuilder
from distillery.operators.journey.locate import locate_by_comparison
from distillery.operators.journey.plan import eligible, is_wrong_attempt, prompt_pools
from distillery.operators.journey.reflect import OPENINGS
from distillery.operators.journey.steps import attempt_of, split_steps
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.operators.teachers.think_split import split_think
from distillery.operators.verifiers.pool import VerifierPool
from distillery.pipeline.run_directory import RunDirectory
from distillery.schemas.arrow import from_table
from distillery.schemas.filter_config import FiltersConfig
from distillery.schemas.journey_config import JourneyConfig
from distillery.schemas.records import Generation, JourneySample, Prompt, generation_id, prompt_id
from distillery.schemas.verifier_config import VerificationConfig

MATH = VerificationConfig(workers=2, timeout_s=10, domains={"math": {"type": "math"}})


@dataclass
class Figures:
    eligible: int = 0
    traces: list[JourneySample] = field(default_factory=list)
    verbatim: int = 0
    trace_chars: list[int] = field(default_factory=list)
    shortcut_chars: list[int] = field(default_factory=list)
    not_located: Counter[str] = field(default_factory=Counter)

    def print(self, title: str, shipped_verified: tuple[int, int] | None = None) -> None:
        built = len(self.traces)
        accepted = [t for t in self.traces if t.accepted]
        openings = {next((o for o in OPENINGS if t.journey.reflection.startswith(o)), "?") for t in self.traces}
        print(f"== {title}")
        print(f"eligible prompts:                         {self.eligible}")
        print(f"traces built per 100 eligible:            {100 * built / max(1, self.eligible):.1f} ({built})")
        print(f"traces whose final answer verifies:       {100 * len(accepted) / max(1, built):.1f}%")
        if shipped_verified is not None:
            good, total = shipped_verified
            print(f"shipped traces re-verified correct:       {100 * good / max(1, total):.1f}% ({good}/{total})")
        print(f"traces holding the wrong step verbatim:   {100 * self.verbatim / max(1, built):.1f}%")
        print(f"distinct reflection openings:             {len(openings)} of {len(OPENINGS)}")
        if self.trace_chars:
            trace, shortcut = statistics.mean(self.trace_chars), statistics.mean(self.shortcut_chars)
            print(f"mean length, journey vs shortcut (chars): {trace:.0f} vs {shortcut:.0f} ({trace / shortcut:.2f}x)")
        if self.not_located:
            print(f"builder drops:                            {dict(self.not_located)}")


def _measure(
    figures: Figures, trace: JourneySample, wrong: Generation, shortcut: Generation | None, step_chars: int
) -> None:
    figures.traces.append(trace)
    steps = split_steps(attempt_of(wrong).text, step_chars)
    if steps[trace.journey.error_step - 1].text in trace.reasoning:
        figures.verbatim += 1
    figures.trace_chars.append(len(trace.reasoning) + len(trace.answer))
    if shortcut is not None:
        figures.shortcut_chars.append(len(shortcut.reasoning) + len(shortcut.answer))


def _cot_samples(path: Path, pool: VerifierPool) -> tuple[list[Prompt], dict[str, list[Generation]]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    prompts, samples = [], {}
    filters = build_filters(FiltersConfig())
    for number, row in enumerate(rows):
        problem = row.get("question") or row.get("problem")
        if not problem or not isinstance(row.get("code"), list):
            raise SystemExit(f"{path}: row {number}: needs `question` (or `problem`) and a `code` list of responses")
        prompt = Prompt(
            id=prompt_id(problem, "cot"),
            source="cot",
            source_row=number,
            domain="math",
            problem=problem,
            answer=str(row["gt"]),
        )
        prompts.append(prompt)
        drawn = []
        for index, text in enumerate(row["code"]):
            split = split_think(text)
            drawn.append(
                Generation(
                    id=generation_id(prompt.id, 0, index),
                    prompt_id=prompt.id,
                    round=0,
                    index=index,
                    source="cot",
                    domain="math",
                    teacher="cot",
                    model="cot",
                    sampling="{}",
                    seed=0,
                    text=text,
                    reasoning=split.reasoning,
                    answer=split.answer,
                    think_well_formed=split.well_formed,
                    prompt_tokens=0,
                    completion_tokens=max(1, len(text) // 4),
                    finish_reason="stop",
                )
            )
        verdicts = pool.verify_blocking("math", prompt.answer, None, [s.answer for s in drawn])
        decided = []
        for sample, verdict in zip(drawn, verdicts, strict=True):
            checks = [f.apply(prompt, sample) for f in filters]
            accepted = verdict.verdict == "correct" and all(c.keep for c in checks)
            decided.append(
                sample.model_copy(
                    update={"verdicts": [verdict], "filters": checks, "accepted": accepted, "selected": accepted}
                )
            )
        samples[prompt.id] = decided
    return prompts, samples


def bench_cot(path: Path, step_chars: int) -> None:
    config = JourneyConfig(enabled=True, locate="compare", bridge="splice", max_step_chars=step_chars)
    with VerifierPool(MATH) as pool:
        prompts, samples = _cot_samples(path, pool)
        builder = JourneyBuilder(config, pool, build_filters(FiltersConfig()), {"cot": ChatFormat()})
        figures = Figures()
        gold_only = located = 0
        for prompt in prompts:
            group = samples[prompt.id]
            (pool_stats,) = prompt_pools(group)
            if pool_stats.wrong and not pool_stats.accepted:
                # No correct sample: what `bridge: continue` would start from (the gold alone locates).
                for wrong in (s for s in group if is_wrong_attempt(s)):
                    gold_only += 1
                    extracted = wrong.verdicts[0].extracted
                    steps = split_steps(attempt_of(wrong).text, step_chars)
                    located += (
                        locate_by_comparison(
                            steps, problem=prompt.problem, reference=None, gold=prompt.answer, wrong_answer=extracted
                        )
                        is not None
                    )
            if not eligible(pool_stats, config):
                continue
            figures.eligible += 1
            for trace in asyncio.run(builder.build_prompt(prompt, group, quota=1)):
                wrong = next(s for s in group if s.id == trace.journey.wrong_sample_id)
                shortcut = next(s for s in group if s.id == trace.journey.correct_sample_id)
                _measure(figures, trace, wrong, shortcut, step_chars)
        figures.not_located = Counter(builder.counters.reasons)
    figures.print(f"{path.name}: {len(prompts)} prompts, {sum(len(g) for g in samples.values())} responses")
    print(f"wrong attempts of all-wrong prompts located against the gold alone: {located}/{gold_only}")


def bench_run(run_dir: Path) -> None:
    run = RunDirectory(run_dir)
    samples = [s for f in run.samples_files() for s in from_table(pq.read_table(f), Generation)]
    traces = [t for f in run.journey_files() for t in from_table(pq.read_table(f), JourneySample)]
    job = yaml.safe_load((run_dir / "job.yaml").read_text())
    config = JourneyConfig.model_validate(job.get("journey") or {})
    prompts = {
        p.id: p for shard in run.prompt_shards() for p in from_table(pq.read_table(run.prompt_shard(shard)), Prompt)
    }
    by_id = {s.id: s for s in samples}
    figures = Figures(
        eligible=sum(eligible(p, config) for p in prompt_pools(s for s in samples if s.domain != "general"))
    )
    for trace in traces:
        correct = by_id.get(trace.journey.correct_sample_id or "")
        _measure(figures, trace, by_id[trace.journey.wrong_sample_id], correct, config.max_step_chars)
    shipped = [t for t in traces if t.accepted]
    with VerifierPool(VerificationConfig(workers=1, timeout_s=10, domains={"math": {"type": "math"}})) as pool:
        verdicts = [pool.verify_blocking("math", prompts[t.prompt_id].answer, None, [t.answer])[0] for t in shipped]
    good = sum(v.verdict == "correct" for v in verdicts)
    figures.print(f"run {run_dir}: {len(samples)} samples, {len(traces)} journey traces", (good, len(shipped)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cot", type=Path, help="JSONL of problems with several scored responses each")
    parser.add_argument("--run", type=Path, help="a finished run directory with journey traces")
    parser.add_argument("--max-step-chars", type=int, default=JourneyConfig().max_step_chars)
    args = parser.parse_args()
    if not args.cot and not args.run:
        parser.error("give --cot PATH and/or --run RUN_DIR")
    if args.cot:
        bench_cot(args.cot, args.max_step_chars)
    if args.run:
        bench_run(args.run)


if __name__ == "__main__":
    main()
