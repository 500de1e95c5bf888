"""The quality filters on real chain-of-thought responses: how many each drops (false positives on
good data are the cost of a filter) and how long each takes per sample.

    python bench/filters.py PATH/math_cot_100.jsonl

The file is JSONL with `question` and `code` (a list of responses), as in the QwenLM/Qwen2.5-Math
repository's `evaluation/data/eval_rm_maj_example/math_cot_100.jsonl` (public). Each response is
scored twice: as an answer, and as the reasoning of an R1-stylen R1-style
sample (`<think>response</think>` + its last line), so the reasoning-only filters see it too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path

from distillery.operators.filters.registry import build_filters
from distillery.operators.teachers.think_split import split_think
from distillery.schemas.filter_config import FiltersConfig
from distillery.schemas.records import Generation, Prompt, prompt_id


def samples(path: Path) -> list[tuple[Prompt, Generation]]:
    pairs = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        prompt = Prompt(id=prompt_id(row["question"], "bench"), source="bench", source_row=0, domain="math",
                        problem=row["question"])
        for i, response in enumerate(row["code"]):
            last = response.strip().rsplit("\n", 1)[-1]
            for text in (response, f"<think>\n{response}\n</think>\n\n{last}"):
                split = split_think(text)
                pairs.append((prompt, Generation(
                    id=f"{prompt.id}-{i}", prompt_id=prompt.id, round=0, index=i, source="bench", domain="math",
                    teacher="t", model="m", sampling="{}", seed=0, text=text, reasoning=split.reasoning,
                    answer=split.answer, think_well_formed=split.well_formed, prompt_tokens=0,
                    completion_tokens=len(text) // 4, finish_reason="stop")))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("responses", type=Path)
    args = parser.parse_args()
    pairs = samples(args.responses)
    filters = build_filters(FiltersConfig())
    print(f"{len(pairs)} samples ({len(pairs) // 2} responses, each as answer and as reasoning)")
    print(f"{'filter':<16}{'dropped':>9}{'share':>8}{'median us':>11}{'p95 us':>9}  top reasons")
    for f in filters:
        times = []
        for prompt, sample in pairs:
            start = time.perf_counter()
            f.apply(prompt, sample)
            times.append((time.perf_counter() - start) * 1e6)
        reasons = Counter(r.split(" (")[0][:50] for r in f.counters.reasons.elements())
        top = "; ".join(f"{r} x{n}" for r, n in reasons.most_common(2))
        p95 = statistics.quantiles(times, n=20)[-1]
        print(f"{f.name:<16}{f.counters.dropped:>9}{f.counters.dropped / f.counters.seen:>8.1%}"
              f"{statistics.median(times):>11.1f}{p95:>9.1f}  {top}")


if __name__ == "__main__":
    main()
