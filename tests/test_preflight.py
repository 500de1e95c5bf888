"""Preflight: what `validate` and the start of `run` find without loading a model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import MATH_ROWS, job_yaml, write_jsonl

from distillery.operators.verifiers.sandbox import resolve_mechanism
from distillery.pipeline.preflight import Finding, check_job
from distillery.schemas.job import load_job

CHAT_TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}<|assistant|>"


def model_folder(path: Path, *, context: int = 2048, tokenizer: bool = True, template: bool = True) -> Path:
    """A model folder as save_pretrained writes it, without weights (preflight never reads them)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"],
                                                  "max_position_embeddings": context}))
    if tokenizer:
        (path / "tokenizer.json").write_text("{}")
        config = {"chat_template": CHAT_TEMPLATE} if template else {}
        (path / "tokenizer_config.json").write_text(json.dumps(config))
    return path


def findings(tmp_path: Path, text: str) -> list[Finding]:
    if not (tmp_path / "prompts.jsonl").exists():
        write_jsonl(tmp_path / "prompts.jsonl", MATH_ROWS)
    job = tmp_path / "job.yaml"
    job.write_text(text)
    return check_job(load_job(job), tmp_path)


def at(found: list[Finding], field: str) -> Finding:
    matches = [f for f in found if f.field == field]
    assert matches, f"no finding at {field}: {found}"
    return matches[0]


def test_a_complete_model_folder_has_no_findings(tmp_path):
    model = model_folder(tmp_path / "model")
    assert findings(tmp_path, job_yaml("prompts.jsonl", model=str(model))) == []


def test_nonexistent_model_path_is_an_error_with_the_fix(tmp_path):
    found = at(findings(tmp_path, job_yaml("prompts.jsonl", model="/nonexistent/model")), "teachers.t.model")
    assert found.level == "error"
    assert "model folder not found: /nonexistent/model" in found.message
    assert "config.json" in found.fix


def test_on_a_cluster_a_missing_model_folder_is_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    found = at(findings(tmp_path, job_yaml("prompts.jsonl", model="/models/on-gpu-nodes")), "teachers.t.model")
    assert found.level == "warning" and "every node that runs a replica needs it" in found.message


def test_model_path_relative_to_the_job_file_is_named_absolutely(tmp_path, monkeypatch):
    model_folder(tmp_path / "models" / "m")
    monkeypatch.chdir(tmp_path.parent)
    found = at(findings(tmp_path, job_yaml("prompts.jsonl", model="models/m")), "teachers.t.model")
    assert found.level == "error" and "beside the job file" in found.message
    assert found.fix == f"write it as an absolute path: {tmp_path / 'models' / 'm'}"


def test_folder_without_tokenizer_or_chat_template(tmp_path):
    bare = model_folder(tmp_path / "bare", tokenizer=False)
    found = at(findings(tmp_path, job_yaml("prompts.jsonl", model=str(bare))), "teachers.t.model")
    assert found.level == "error" and "no tokenizer" in found.message

    base = model_folder(tmp_path / "base", template=False)
    found = at(findings(tmp_path, job_yaml("prompts.jsonl", model=str(base))), "teachers.t.model")
    assert found.level == "error" and "no chat template" in found.message and "Instruct" in found.fix

    (base / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    assert findings(tmp_path, job_yaml("prompts.jsonl", model=str(base))) == []


def test_gguf_file_is_not_a_model_folder(tmp_path):
    gguf = tmp_path / "model.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    found = at(findings(tmp_path, job_yaml("prompts.jsonl", model=str(gguf))), "teachers.t.model")
    assert found.level == "error" and "does not load .gguf" in found.message


def test_max_tokens_must_fit_the_context(tmp_path):
    model = model_folder(tmp_path / "model", context=512)
    text = job_yaml("prompts.jsonl", model=str(model), max_tokens=600).replace("    max_model_len: 1024\n", "")
    found = at(findings(tmp_path, text), "teachers.t.sampling.max_tokens")
    assert found.level == "error" and "context of 512 tokens (the model)" in found.message

    # max_model_len past the model's own context: vLLM would refuse to start.
    text = job_yaml("prompts.jsonl", model=str(model), max_tokens=100)
    found = at(findings(tmp_path, text), "teachers.t.max_model_len")
    assert found.level == "error" and "set max_model_len to at most 512" in found.fix

    text = job_yaml("prompts.jsonl", model=str(model_folder(tmp_path / "big")), max_tokens=900)
    found = at(findings(tmp_path, text), "teachers.t.sampling.max_tokens")
    assert found.level == "warning" and "only 124 tokens" in found.message


def test_bundled_model_prepared_or_preparable(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILLERY_CACHE", str(tmp_path / "cache"))
    text = job_yaml("prompts.jsonl", model="bundled:smollm2-135m")
    found = at(findings(tmp_path, text), "teachers.t.model")
    assert found.level == "warning" and "not prepared yet" in found.message and "distillery prepare" in found.fix

    model_folder(tmp_path / "cache" / "models" / "smollm2-135m")
    assert findings(tmp_path, text) == []

    found = at(findings(tmp_path, job_yaml("prompts.jsonl", model="bundled:smollm3")), "teachers.t.model")
    assert found.level == "error" and "unknown bundled model 'smollm3'" in found.message


def test_teacher_name_typo_in_the_decontamination_judge(tmp_path):
    model = model_folder(tmp_path / "model")
    extra = "decontamination:\n  judge: {enabled: true, teacher: tt}\n"
    found = at(findings(tmp_path, job_yaml("prompts.jsonl", model=str(model), extra=extra)),
               "decontamination.judge.teacher")
    assert found.level == "error" and "unknown teacher 'tt'" in found.message and found.fix == "did you mean 't'?"


def test_sources_empty_unreadable_or_mapped_wrong(tmp_path):
    model = model_folder(tmp_path / "model")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "garbage.jsonl").write_bytes(bytes(range(256)) * 40)
    write_jsonl(tmp_path / "questions.jsonl", [{"question": "What is 2 + 3?", "answer": "5"}])
    text = job_yaml("prompts.jsonl", model=str(model))
    extra = """
  - name: empty
    format: jsonl
    path: empty.jsonl
  - name: garbage
    format: jsonl
    path: garbage.jsonl
  - name: questions
    format: jsonl
    path: questions.jsonl
    fields: {problem: problem}
"""
    text = text.replace("teachers:", extra.lstrip("\n") + "teachers:", 1)
    found = findings(tmp_path, text)
    assert "has no rows" in at(found, "sources[1]").message
    assert "could be read as jsonl" in at(found, "sources[2].format").message
    mapping = at(found, "sources[3].fields.problem")
    assert "column 'problem' is in none of the first 1 rows (columns: answer, question)" in mapping.message
    assert mapping.fix == "did you mean fields.problem: question?"
    assert all(f.level == "warning" for f in found)


def test_code_domain_needs_a_working_sandbox(tmp_path, monkeypatch):
    model = model_folder(tmp_path / "model")
    extra = "  domains:\n    code: {type: code, sandbox: bubblewrap}\n"
    text = job_yaml("prompts.jsonl", model=str(model), extra=extra)
    monkeypatch.setenv("PATH", str(tmp_path / "no-binaries"))
    resolve_mechanism.cache_clear()
    try:
        found = at(findings(tmp_path, text), "verification.domains.code.sandbox")
    finally:
        monkeypatch.undo()
        resolve_mechanism.cache_clear()
    assert found.level == "error" and "`bwrap` not installed" in found.message
    assert "apt-get install -y bubblewrap" in found.fix


@pytest.mark.parametrize("level", ["error", "warning"])
def test_finding_reads_as_field_message_fix(level):
    text = str(Finding(level, "teachers.t.model", "gone", "give a folder"))  # type: ignore[arg-type]
    assert text == f"{level}: teachers.t.model: gone\n    fix: give a folder"
