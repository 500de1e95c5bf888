"""Kill a whole run with SIGKILL at seeded random points in every stage, rerun it to the end, and
compare with an uninterrupted run: the same prompt ids, sample ids and dataset row ids, nothing twice.

A replay job over a synthetic dump (no teacher model loads; journeys spliced from its wrong and
right responses, embedding on Ray actors as on a cluster), run through the real CLI on a local Ray:

    .venv/bin/python bench/random_kills.py [--prompts 120] [--kills 5] [--seed 0] [--embed-actors 1]

Each kill picks a stage (seeded; the picks are sorted so the kills walk through the run) and a
delay into it (seeded, up to that stage's duration in the uninterrupted run), and kills the run's
whole process group when the delay has passed in that stage. Prints where each kill landed, the
wall times, and the comparison; exits 1 when the killed-and-resumed run differs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

STAGE_LINE = re.compile(r"stage (\d+) (\w+): (start|done)")
RUN_TIMEOUT_S = 900
JOB = """
name: random-kills
sources:
  - name: dump
    format: jsonl
    path: dump.jsonl
teachers:
  recorded:
    backend: replay
    path: dump.jsonl
    model: synthetic-r1
generation:
  teacher: recorded
  keep_per_prompt: 2
  max_rounds: 1
  shard_size: {shard_size}
  shards_in_flight: 2
verification:
  workers: 1
dedup:
  embedder: {{actors: {embed_actors}}}
journey:
  enabled: true
  share: 0.2
  max_per_prompt: 1
  locate: compare
  bridge: splice
"""


def write_dump(folder: Path, prompts: int, responses: int, seed: int) -> None:
    rng = random.Random(seed)
    with (folder / "dump.jsonl").open("w") as out:
        for i in range(prompts):
            a, b = rng.randint(2, 999), rng.randint(2, 999)
            answers = [a + b if rng.random() < 0.6 else a + b + rng.randint(1, 9) for _ in range(responses)]
            steps = " ".join(f"Step {k}: consider {a} and {b} with care ({rng.random():.6f})." for k in range(8))
            row = {
                "problem": f"Problem {i}: what is {a} + {b}?",
                "answer": str(a + b),
                "generations": [f"<think>\n{steps}\n</think>\n\nSo the sum is \\boxed{{{x}}}." for x in answers],
            }
            out.write(json.dumps(row) + "\n")


@dataclass
class RunLog:
    """A run's stage starts, as seconds since the process started, read from its -v log."""

    started: dict[int, float]
    ended: dict[int, float]
    returncode: int
    seconds: float


def run(job: Path, out: Path, kill: tuple[int, float] | None = None) -> tuple[RunLog, int | None]:
    """Run the CLI; with `kill=(stage, delay)`, SIGKILL its process group `delay` s into that stage
    (or the next stage it reaches). Returns its log and the stage it was killed in."""
    command = [sys.executable, "-m", "distillery.pipeline.commands.cli", "-v", "run", str(job), "--output", str(out)]
    env = {**os.environ, "DISTILLERY_RAY_DASHBOARD": "0", "RAY_DEDUP_LOGS": "0"}
    begin = time.monotonic()
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    started: dict[int, float] = {}
    ended: dict[int, float] = {}

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            match = STAGE_LINE.search(line)
            if match:
                target = started if match.group(3) == "start" else ended
                target[int(match.group(1))] = time.monotonic() - begin

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    killed_in = None
    try:
        while proc.poll() is None and time.monotonic() - begin < RUN_TIMEOUT_S:
            if kill is not None:
                stage, delay = kill
                reached = [s for s in started if s >= stage]
                if reached and time.monotonic() - begin >= started[min(reached)] + delay:
                    killed_in = max(started)
                    os.killpg(proc.pid, signal.SIGKILL)
                    break
            time.sleep(0.02)
        proc.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(timeout=10)
    return RunLog(started, ended, proc.returncode, time.monotonic() - begin), killed_in


def identities(run_dir: Path) -> dict[str, list[str]]:
    con = duckdb.connect()

    def ids(sql: str) -> list[str]:
        return [r[0] for r in con.execute(sql).fetchall()]

    return {
        "prompt ids": ids(f"SELECT id FROM read_parquet('{run_dir}/prompts/*.parquet') ORDER BY id"),
        "sample ids": ids(f"SELECT id FROM read_parquet('{run_dir}/samples/*.parquet') ORDER BY id"),
        "dataset row ids": ids(f"SELECT id FROM read_parquet('{run_dir}/dataset/*/*.parquet') ORDER BY id"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=120)
    parser.add_argument("--responses", type=int, default=4)
    parser.add_argument("--shard-size", type=int, default=8)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--embed-actors", type=int, default=1, help="embedding actors (a cluster's setting; 0: the driver embeds)"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new temporary folder")
    args = parser.parse_args()
    folder = args.workdir or Path(tempfile.mkdtemp(prefix="random-kills-"))
    folder.mkdir(parents=True, exist_ok=True)
    write_dump(folder, args.prompts, args.responses, args.seed)
    job = folder / "job.yaml"
    job.write_text(JOB.format(shard_size=args.shard_size, embed_actors=args.embed_actors))

    reference, _ = run(job, folder / "reference")
    if reference.returncode != 0:
        print(f"the uninterrupted run failed (exit {reference.returncode})")
        return 1
    stages = sorted(reference.started)
    durations = {s: reference.ended.get(s, reference.seconds) - reference.started[s] for s in stages}
    print(f"uninterrupted run: {reference.seconds:.1f} s; stage durations (s): "
          + ", ".join(f"{s}: {durations[s]:.1f}" for s in stages))

    rng = random.Random(args.seed)
    # Every stage first (kills walk through the run in order), then seeded repeats.
    repeats = rng.choices(stages, k=max(0, args.kills - len(stages)))
    picks = sorted(rng.sample(stages, min(args.kills, len(stages))) + repeats)
    killed = folder / "killed"
    total = 0.0
    print("kill  target stage  delay (s)  killed in stage")
    for number, stage in enumerate(picks, start=1):
        delay = rng.uniform(0, durations[stage])
        log, killed_in = run(job, killed, kill=(stage, delay))
        total += log.seconds
        landed = "finished first" if killed_in is None else str(killed_in)
        print(f"{number:>4}  {stage:>12}  {delay:>9.2f}  {landed}")
    final, _ = run(job, killed)
    total += final.seconds
    if final.returncode != 0:
        print(f"the resumed run failed (exit {final.returncode})")
        return 1
    ours, theirs = identities(killed), identities(folder / "reference")
    same = True
    for what in ours:
        duplicates = len(ours[what]) - len(set(ours[what]))
        equal = ours[what] == theirs[what]
        same &= equal and duplicates == 0
        print(f"{what}: {len(ours[what])} (uninterrupted {len(theirs[what])}), duplicates {duplicates}, "
              f"{'same' if equal else 'DIFFERENT'}")
    leftovers = list(killed.rglob(".*.tmp"))
    print(f"temporary files left: {len(leftovers)}; killed-and-resumed wall time {total:.1f} s "
          f"({total / reference.seconds:.2f}x the uninterrupted run)")
    return 0 if same and not leftovers else 1


if __name__ == "__main__":
    sys.exit(main())
