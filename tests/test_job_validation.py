from __future__ import annotations

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
    assert "colour: unknown key; allowed keys: name, output, sources" in _error(tmp_path, text)


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
    good = _job(tmp_path, job_yaml("prompts.jsonl"))
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
