"""A run shaped like the demo's (math rows verified, general rows judged, one benchmark leak), made by
the pipeline on local Ray with the scripted teacher; the report, card, export and TRL tests read it.
The demo itself runs the same stages with the real CPU teacher (test_teacher_integration.py)."""

from __future__ import annotations

from pathlib import Path

from conftest import job_yaml, write_jsonl
from scripted_teacher import scripted_factory

from distillery.pipeline.runner import run_job

MATH_ROWS = [
    {"id": "m1", "problem": "What is 2 + 3?", "answer": "5", "domain": "math"},
    {"id": "m2", "problem": "What is 10 - 4?", "answer": "6", "domain": "math"},
    {"id": "m3", "problem": "What is 6 times 7?", "answer": "42", "domain": "math"},
    {"id": "m4", "problem": "What is 1 + 1?", "answer": "2", "domain": "math"},
    {"id": "m5", "problem": "What is 9 + 1?", "answer": "10", "domain": "math"},
    {"id": "m6", "problem": "How many positive divisors does 36 have?", "answer": "9", "domain": "math"},
]
GENERAL_ROWS = [
    {"id": "g1", "problem": "Hello!", "domain": "general"},
    {"id": "g2", "problem": "Write a haiku about the sea.", "domain": "general"},
    {"id": "g3", "problem": "Tell me a joke about cats.", "domain": "general"},
]
BENCHMARK_ROWS = [
    {"id": "bench-1", "problem": "How many positive divisors does 36 have?"},
    {"id": "bench-2", "problem": "Find the remainder when 2^{10} is divided by 7."},
]
# Judge turns quote the request, so their keys come first (the scripted teacher takes the first match).
SCRIPT = {
    "Request:\nHello!": [["SCORE: 9"]],
    "Request:\nWrite a haiku": [["SCORE: 8"]],
    "Request:\nTell me a joke": [["SCORE: 2"]],
    "2 + 3": [["<think>\nTwo plus three: count up from two, three steps.\n</think>\n\n\\boxed{5}", "\\boxed{6}"]],
    "10 - 4": [["The answer is 7."], ["<think>\nTen take away four leaves six.\n</think>\n\nThe answer is 6."]],
    "6 times 7": [["<think>\nsix sevens\n</think>\n\n\\boxed{42}<TRUNCATED>"]],
    "1 + 1": [["no idea"]],
    "9 + 1": [["<think>\nNine and one more is ten.\n</think>\n\n#### 10", "<think>\nnine, ten\n</think>\n\n#### 11"]],
    "divisors": [["\\boxed{9}"]],
    "Hello!": [["Hi! How can I help you today?"]],
    "haiku": [["<think>\nFive, seven, five syllables.\n</think>\n\nWaves fold into foam"]],
    "joke": [["<think>\nKeep it short.\n</think>\n\nCats do not tell jokes."]],
}


def make_run(folder: Path, *, general: bool = True) -> Path:
    """The run directory of a demo-like job under `folder`; `general=False` leaves the general split empty."""
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "prompts.jsonl", MATH_ROWS + (GENERAL_ROWS if general else []))
    write_jsonl(folder / "benchmark.jsonl", BENCHMARK_ROWS)
    text = job_yaml("prompts.jsonl", n=2, max_rounds=2, keep=1).replace(
        "    fields: {problem: problem, answer: answer, domain: domain, id: id}\n",
        "    fields: {problem: problem, answer: answer, domain: domain, id: id}\n    require_answer: false\n",
    )
    text += "judge: {teacher: t}\ndecontamination:\n  benchmarks: [benchmark.jsonl:problem]\n"
    (folder / "job.yaml").write_text(text)
    return run_job(folder / "job.yaml", str(folder / "run"), teacher_factory=scripted_factory(SCRIPT)).run_dir
