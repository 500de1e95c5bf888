"""A stage that fails: one line (what, the likely fix, where the traceback is) and the traceback in RUN/logs/."""

from __future__ import annotations

import functools
import json
import shutil

import pytest
from conftest import MATH_ROWS, job_yaml, write_jsonl

from distillery.operators.teachers.bundled import bundled_model_dir
from distillery.pipeline.commands.cli import main
from distillery.pipeline.runner import run_job
from distillery.pipeline.stage_failure import StageFailed, explain


def failing_factory(name, config):  # type: ignore[no-untyped-def]
    """A teacher that cannot load: its construction inside the replica raises, as a missing model does."""
    return functools.partial(open, "/nonexistent/model/config.json")


def test_a_teacher_that_fails_to_load_is_one_line_and_a_traceback_file(tmp_path, local_ray):
    write_jsonl(tmp_path / "prompts.jsonl", MATH_ROWS)
    job = tmp_path / "job.yaml"
    job.write_text(job_yaml("prompts.jsonl"))
    with pytest.raises(StageFailed) as failed:
        run_job(job, str(tmp_path / "run"), teacher_factory=failing_factory)
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith("stage 3 generate failed: a Ray actor failed to start")
    assert "FileNotFoundError" in message and "/nonexistent/model/config.json" in message
    log = failed.value.log
    assert log.parent == tmp_path / "run" / "logs" and f"Full traceback: {log}" in message
    assert "Traceback" in log.read_text() and "TeacherReplica" in log.read_text()


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        (RuntimeError("Available memory on node 0 (8.7 GiB) is less than desired CPU memory utilization"),
         "lower the teacher's gpu_memory_utilization"),
        (OSError("Repo id must be in the form 'repo_name' or 'namespace/repo_name': '/x/y'"),
         "check the teacher's `model`"),
        (ValueError("Model architectures ['NoSuchForCausalLM'] are not supported for now."),
         "vLLM does not support the model's architecture"),
        (KeyError("something else"), "read the traceback; `distillery doctor`"),
    ],
)
def test_likely_fixes(error, fix):
    what, found = explain(error)
    assert what.startswith(type(error).__name__) and found.startswith(fix)


@pytest.mark.teacher
def test_real_vllm_teacher_that_cannot_load_gives_one_line_and_exit_1(tmp_path, local_ray, capsys):
    """The real engine: a model folder that passes preflight (config, tokenizer, chat template) but
    names an architecture vLLM does not know."""
    source = bundled_model_dir("smollm2-135m")
    if not (source / "config.json").is_file():
        pytest.skip("the bundled teacher is not prepared (make teacher)")
    model = tmp_path / "model"
    model.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        if (source / name).is_file():
            shutil.copy(source / name, model / name)
    config = json.loads((source / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(config | {"architectures": ["NoSuchForCausalLM"]}))
    write_jsonl(tmp_path / "prompts.jsonl", MATH_ROWS)
    job = tmp_path / "job.yaml"
    job.write_text(job_yaml("prompts.jsonl", model=str(model)))
    assert main(["run", str(job), "--output", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    assert line.startswith("error: stage 3 generate failed: a Ray actor failed to start")
    assert "NoSuchForCausalLM" in line and "Full traceback: " in line
    assert list((tmp_path / "run" / "logs").glob("stage-3-generate-*.traceback.txt"))
