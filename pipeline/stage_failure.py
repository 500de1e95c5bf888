"""A stage that fails says so in one line: what failed, the likely fix, and where the full
traceback is (a file under RUN/logs/). A 40-line traceback from inside a Ray actor tells a new user
less than that line does; the file keeps every detail for whoever needs them.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

from ray.exceptions import RayActorError

from distillery.pipeline.run_directory import RunDirectory

SUMMARY_CHARS = 300
"""The longest cause shown on the one line (the log has all of it)."""

_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*:")

LIKELY_FIXES: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("less than desired cpu memory utilization",),
        "lower the teacher's gpu_memory_utilization (on vLLM's CPU backend it is the share of one NUMA node's "
        "memory for the KV cache; 0.3 is a safe start) or set VLLM_CPU_KVCACHE_SPACE (GiB)",
    ),
    (
        ("running low on memory",),
        "the node ran out of memory and Ray killed a worker: run fewer replicas or verifier workers, lower "
        "max_model_len or gpu_memory_utilization, or free memory on the node",
    ),
    (
        ("cuda out of memory", "no available memory for the cache blocks", "not enough kv cache"),
        "lower the teacher's max_model_len or max_num_seqs, raise gpu_memory_utilization, or raise "
        "tensor_parallel_size",
    ),
    (
        ("max_model_len", "max_position_embeddings"),
        "set the teacher's max_model_len to at most the model's context (max_position_embeddings in config.json)",
    ),
    (
        (
            "repo id must be in the form",
            "is not a local folder and is not a valid model identifier",
            "does not appear to have a file named",
            "repository not found",
        ),
        "check the teacher's `model`: a Hugging Face model folder (config.json, tokenizer) or a hub name; "
        "`distillery validate JOB` checks it without loading it",
    ),
    (
        ("are not supported for now", "model architectures"),
        "vLLM does not support the model's architecture (`architectures` in its config.json): use a model it "
        "supports, or a newer vLLM",
    ),
    (
        ("operator torchvision::nms does not exist",),
        "pip uninstall -y torchvision torchaudio torchcodec (CUDA builds beside the CPU torch break transformers)",
    ),
    (("no module named 'vllm'",), "install vLLM: pip install 'distillery[cpu]' (CPU) or 'distillery[gpu]'"),
    (("chat template", "chat_template"), "use a model whose tokenizer has a chat template (an Instruct model)"),
    (("bundledmodelerror", "bundled model"), "run `distillery prepare JOB` (see `distillery doctor`)"),
    (
        ("code sandbox", "bwrap", "bubblewrap"),
        "install bubblewrap (apt-get install -y bubblewrap); see `distillery doctor`",
    ),
)


class StageFailed(RuntimeError):
    """A stage raised; the message is the one line the terminal shows."""

    def __init__(self, number: int, stage: str, what: str, fix: str, log: Path) -> None:
        self.number = number
        self.stage = stage
        self.log = log
        super().__init__(f"stage {number} {stage} failed: {what}. Likely fix: {fix}. Full traceback: {log}")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _final_error(traceback_text: str) -> str:
    """The last `SomeError: message` of a traceback, with the lines that continue its message."""
    lines = [line.strip() for line in traceback_text.strip().splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if _ERROR_LINE.match(line)]
    if not starts:
        return lines[-1] if lines else ""
    return " ".join(line for line in lines[starts[-1] :] if not line.startswith("For further information"))


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 3] + "..."


def explain(exc: BaseException) -> tuple[str, str]:
    """(what failed, the likely fix) for an exception a stage raised."""
    chain = list(_chain(exc))
    init_failure = next((e for e in chain if isinstance(e, RayActorError) and e.actor_init_failed), None)
    if init_failure is not None:
        # Ray's message ends with the creation task's own traceback; its last line is the cause.
        what = f"a Ray actor failed to start (a teacher or worker that did not load): {_final_error(str(init_failure))}"
    else:
        what = f"{type(exc).__name__}: {str(exc) or '(no message)'}"
    return _one_line(what), likely_fix("\n".join(f"{type(e).__name__}: {e}" for e in chain))


def likely_fix(error_text: str) -> str:
    """The fix for the first known failure `error_text` mentions."""
    text = error_text.lower()
    return next(
        (fix for patterns, fix in LIKELY_FIXES if any(p in text for p in patterns)),
        "read the traceback; `distillery doctor` checks the environment a run needs",
    )


def record_failure(run: RunDirectory, number: int, stage: str, exc: BaseException) -> StageFailed:
    """Write the traceback under RUN/logs/ and return the exception that says it in one line."""
    run.logs.mkdir(parents=True, exist_ok=True)
    log = run.logs / f"stage-{number}-{stage}-{time.strftime('%Y%m%d-%H%M%S')}.traceback.txt"
    log.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
    what, fix = explain(exc)
    return StageFailed(number, stage, what, fix, log)
