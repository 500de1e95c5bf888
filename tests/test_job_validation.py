from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MATH_ROWS, job_yaml, write_jsonl

from distillery.pipeline.commands.cli import main
from distillery.schemas.job import JobFileError, load_job

ROOT = Path(__file__).resolve().parents[1]


def _job(tmp_path: Path, text: str) -> Path:
    write_jsonl(tmp_path / "prompts.jsonl", MATH_ROWS)
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(JobFileError) as info:
        load_job(_job(tmp_path, text))
    return str(info.value)


def test_demo_job_is_valid():
    job = load_job(ROOT / "jobs" / "demo.yaml")
    assert job.teachers[job.generation.teacher].model == "bundled:smollm2-135m"


def test_unknown_key_names_the_key_and_suggests_the_fix(tmp_path):
    text = job_yaml("prompts.jsonl").replace("max_rounds:", "max_round:")
    message = _error(tmp_path, text)
    assert "generation.max_round: unknown key; did you mean 'max_rounds'?" in message
    assert "job.yaml" in message


def test_unknown_key_without_close_match_lists_allowed_keys(tmp_path):
    text = job_yaml("prompts.jsonl") + "colour: blue\n"
    message = _error(tmp_path, text)
    assert "colour: unknown key; allowed keys: name, output, " in message and "sources, teachers" in message


def test_wrong_type_names_the_field_and_the_value(tmp_path):
    text = job_yaml("prompts.jsonl").replace("keep_per_prompt: 1", "keep_per_prompt: lots")
    message = _error(tmp_path, text)
    assert "generation.keep_per_prompt" in message and "'lots'" in message


def test_missing_source_file_is_reported_with_its_path(tmp_path):
    message = _error(tmp_path, job_yaml("nowhere.jsonl"))
    assert "sources[0]" in message and "file not found" in message and "nowhere.jsonl" in message


def test_unknown_teacher_name_suggests_the_defined_one(tmp_path):
    text = job_yaml("prompts.jsonl").replace("teacher: t\n", "teacher: tt\n")
    assert "generation.teacher: unknown teacher 'tt'; did you mean 't'?" in _error(tmp_path, text)


def test_missing_required_section(tmp_path):
    text = job_yaml("prompts.jsonl")
    text = text[: text.index("generation:")]
    assert "generation: required key is missing" in _error(tmp_path, text)


def test_not_yaml_and_not_a_mapping(tmp_path):
    assert "not valid YAML" in _error(tmp_path, "name: [unclosed")
    assert "must be a YAML mapping" in _error(tmp_path, "- a\n- b\n")


def test_validate_command_exit_codes(tmp_path, capsys):
    good = _job(tmp_path, job_yaml("prompts.jsonl", model="bundled:smollm2-135m"))
    assert main(["validate", str(good)]) == 0
    assert "valid" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(job_yaml("prompts.jsonl").replace("shard_size", "shard_sise"))
    assert main(["validate", str(bad)]) == 2
    assert "did you mean 'shard_size'" in capsys.readouterr().err


def test_invalid_job_fails_before_any_model_loads(tmp_path):
    bad = _job(tmp_path, job_yaml("prompts.jsonl", model="bundled:smollm2-135m").replace("n: 4", "n: -1"))
    out = tmp_path / "run"
    probe = (
        "import sys; from distillery.pipeline.commands.cli import main;"
        "rc = main(['run', sys.argv[1], '--output', sys.argv[2]]);"
        "assert 'vllm' not in sys.modules, 'vllm was imported'; assert 'torch' not in sys.modules; sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(bad), str(out)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert "teachers.t.sampling.n" in proc.stderr and "greater than or equal to 1" in proc.stderr
    assert not out.exists()


# --- the mistakes of a first job file: each one's message comes before any model loads ---------

NO_MODEL_PROBE = (
    "import sys, ray; from distillery.pipeline.commands.cli import main; rc = main(sys.argv[1:]);"
    "assert 'vllm' not in sys.modules, 'vllm was imported'; assert 'torch' not in sys.modules, 'torch was imported';"
    "assert not ray.is_initialized(), 'Ray was started'; sys.exit(rc)"
)


def cli_without_models(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`distillery ARGS` in a fresh interpreter that fails if vLLM or torch was imported or Ray started."""
    environment = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "RAY_ADDRESS")} | (env or {})
    return subprocess.run(
        [sys.executable, "-c", NO_MODEL_PROBE, *args], capture_output=True, text=True, timeout=120, env=environment
    )


def test_nonexistent_model_path_fails_validate_and_run_before_ray(tmp_path):
    job = _job(tmp_path, job_yaml("prompts.jsonl", model="/nonexistent/model"))
    checked = cli_without_models("validate", str(job))
    assert checked.returncode == 2, checked.stderr
    assert "teachers.t.model: model folder not found: /nonexistent/model" in checked.stderr
    assert "fix: point `model` at a Hugging Face model folder" in checked.stderr

    out = tmp_path / "run"
    ran = cli_without_models("run", str(job), "--output", str(out))
    assert ran.returncode == 2, ran.stderr
    assert "the job cannot run" in ran.stderr and "model folder not found" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert not out.exists()


def test_wrong_field_mapping_is_a_warning_and_strict_validate_fails(tmp_path):
    text = job_yaml("prompts.jsonl", model="bundled:smollm2-135m").replace("problem: problem", "problem: question")
    job = _job(tmp_path, text)
    checked = cli_without_models("validate", str(job))
    assert checked.returncode == 0, checked.stderr
    assert "valid" in checked.stdout
    assert "warning: sources[0].fields.problem: column 'question' is in none of the first 5 rows" in checked.stdout
    assert "fix: did you mean fields.problem: problem?" in checked.stdout
    strict = cli_without_models("validate", "--strict", str(job))
    assert strict.returncode == 2 and "fields.problem" in strict.stderr


def test_teacher_name_typo_in_the_judge_section(tmp_path):
    job = _job(tmp_path, job_yaml("prompts.jsonl", model="bundled:smollm2-135m", extra="judge:\n  teacher: tt\n"))
    out = tmp_path / "run"
    ran = cli_without_models("run", str(job), "--output", str(out))
    assert ran.returncode == 2, ran.stderr
    assert "judge.teacher: unknown teacher 'tt'; did you mean 't'?" in ran.stderr
    assert not out.exists()


def test_missing_benchmark_file(tmp_path):
    extra = "decontamination:\n  benchmarks:\n    - aime_2024.jsonl:problem\n"
    job = _job(tmp_path, job_yaml("prompts.jsonl", model="bundled:smollm2-135m", extra=extra))
    ran = cli_without_models("run", str(job), "--output", str(tmp_path / "run"))
    assert ran.returncode == 2, ran.stderr
    assert "decontamination.benchmarks[0]: benchmark file not found" in ran.stderr and "aime_2024.jsonl" in ran.stderr


def test_hub_model_offline_and_not_cached(tmp_path):
    job = _job(tmp_path, job_yaml("prompts.jsonl", model="Qwen/Qwen2.5-0.5B-Instruct"))
    env = {"HF_HOME": str(tmp_path / "hf")}
    online = cli_without_models("validate", str(job), env=env)
    assert online.returncode == 0, online.stderr
    assert "is not in the local Hugging Face cache" in online.stdout and "downloads it" in online.stdout
    offline = cli_without_models("validate", str(job), env=env | {"HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 2
    assert "HF_HUB_OFFLINE is set" in offline.stderr and "hf download Qwen/Qwen2.5-0.5B-Instruct" in offline.stderr
