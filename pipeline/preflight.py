"""What can be checked about a job without loading a model: `distillery validate` prints these
findings, and `distillery run` refuses to start (before Ray) when one of them is an error.

The job file itself is already valid here (`load_job`); these checks look at the world around it:
the model folders and the Hugging Face cache, the models' config and tokenizer files, the sources'
first rows, the benchmark data, the sandbox. Nothing here imports vLLM or torch.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from distillery.operators.dedup.embedder import EmbedderError, resolve_embedding_model
from distillery.operators.sources.readers import RowReadError, read_source
from distillery.operators.teachers.bundled import (
    BUNDLED_PREFIX,
    BundledModelError,
    bundled_gguf,
    bundled_model_dir,
    is_bundled,
)
from distillery.operators.verifiers.sandbox import resolve_interpreter, resolve_mechanism
from distillery.schemas.job import JobConfig, SourceConfig
from distillery.schemas.teacher_config import OpenAITeacherConfig, VLLMTeacherConfig
from distillery.schemas.verifier_config import CodeVerifierConfig

Level = Literal["error", "warning"]

SOURCE_SAMPLE_ROWS = 20
"""Rows of each local source read to check its format and field mapping."""

PROMPT_ROOM_TOKENS = 256
"""Fewer tokens than this left for the prompt under max_model_len is warned about."""

CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length")
"""config.json keys that hold a model's context length, in the order vLLM prefers them."""

FIELD_ALIASES = {
    "problem": ("problem", "question", "prompt", "instruction", "query", "input", "text"),
    "answer": ("answer", "solution", "final_answer", "gold", "target", "label", "output"),
    "id": ("id", "idx", "uid", "unique_id"),
    "domain": ("domain", "category", "subject"),
    "tests": ("tests", "test_cases", "input_output", "test_list", "test"),
}
"""Columns that usually hold each field, suggested when the mapped column is absent."""

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tiktoken.model")
CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
CONVERSION_PACKAGES = ("torch", "transformers", "gguf", "accelerate")
"""What converting a bundled GGUF model needs (`distillery prepare`)."""

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    field: str
    """Where in the job file, e.g. `teachers.t.model`."""
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.level}: {self.field}: {self.message}\n    fix: {self.fix}"


class PreflightError(RuntimeError):
    """The job cannot run as written; `findings` say where and how to fix it."""

    def __init__(self, origin: str, findings: list[Finding]) -> None:
        self.findings = findings
        errors = [f for f in findings if f.level == "error"]
        super().__init__(f"{origin}: the job cannot run ({len(errors)} error(s)):\n" + format_findings(findings))


def format_findings(findings: list[Finding]) -> str:
    return "\n".join(f"  {f}" for f in sorted(findings, key=lambda f: f.level != "error"))


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "error"]


def check_job(job: JobConfig, base_dir: Path, *, models: bool = True) -> list[Finding]:
    """Every finding about `job`. `models=False` skips the teachers' model files (a run whose
    teachers a test double provides)."""
    findings: list[Finding] = []
    used = _teacher_references(job, findings)
    for name, teacher in job.teachers.items():
        where = f"teachers.{name}"
        if name not in used:
            findings.append(
                Finding("warning", where, "defined but no section uses it", "remove it, or name it in `generation:`")
            )
        elif models and isinstance(teacher, VLLMTeacherConfig):
            findings += _vllm_teacher(where, teacher, base_dir)
        elif isinstance(teacher, OpenAITeacherConfig):
            findings += _openai_teacher(where, teacher)
    for index, source in enumerate(job.sources):
        findings += _source(f"sources[{index}]", source, base_dir)
    findings += _benchmarks(job)
    findings += _embedders(job)
    findings += _sandboxes(job)
    return findings


# --- teachers ----------------------------------------------------------------------------------


def _teacher_references(job: JobConfig, findings: list[Finding]) -> set[str]:
    """Names of the teachers some enabled section uses; an unknown name is an error finding.

    Every `teacher` field of every section counts (generation, judge, decontamination judge,
    journey, ...), so a section added later is checked without being listed here."""
    used = {job.generation.teacher, *job.generation.domain_teachers.values()}
    for where, name in _teacher_fields(job, ""):
        if name in job.teachers:
            used.add(name)
            continue
        hint = difflib.get_close_matches(name, sorted(job.teachers), n=1)
        fix = f"did you mean {hint[0]!r}?" if hint else f"define it under `teachers:` (known: {sorted(job.teachers)})"
        findings.append(Finding("error", where, f"unknown teacher {name!r}", fix))
    return used


def _teacher_fields(section: BaseModel, path: str) -> Iterator[tuple[str, str]]:
    if getattr(section, "enabled", True) is False:
        return
    for key in type(section).model_fields:
        if path == "" and key == "teachers":
            continue
        value = getattr(section, key)
        where = f"{path}.{key}" if path else key
        if key == "teacher" and isinstance(value, str):
            yield where, value
        elif isinstance(value, BaseModel):
            yield from _teacher_fields(value, where)


def _vllm_teacher(where: str, teacher: VLLMTeacherConfig, base_dir: Path) -> list[Finding]:
    findings: list[Finding] = []
    folder = _model_folder(f"{where}.model", teacher.model, base_dir, findings)
    context = teacher.max_model_len
    if folder is not None:
        if not (folder / "config.json").is_file():
            findings.append(
                Finding("error", f"{where}.model", f"no config.json in {folder}", _MODEL_FOLDER_FIX)
            )
            return findings
        if not any((folder / f).is_file() for f in TOKENIZER_FILES):
            findings.append(
                Finding(
                    "error",
                    f"{where}.model",
                    f"no tokenizer in {folder} (none of {', '.join(TOKENIZER_FILES)})",
                    "save the tokenizer into the model folder (tokenizer.save_pretrained(folder))",
                )
            )
        elif not _has_chat_template(folder):
            findings.append(
                Finding(
                    "error",
                    f"{where}.model",
                    f"the tokenizer in {folder} has no chat template; vLLM teachers render every prompt "
                    "(system prompt, then `prompt_template` as the user turn) with it",
                    "use a chat (Instruct) model, or add a `chat_template` to its tokenizer_config.json "
                    "(or a chat_template.jinja file)",
                )
            )
        findings += _context(where, teacher, folder)
        context = context or _model_context(folder)
    max_tokens = teacher.sampling.max_tokens
    if context is not None and max_tokens >= context:
        findings.append(
            Finding(
                "error",
                f"{where}.sampling.max_tokens",
                f"{max_tokens} leaves no room for the prompt in a context of {context} tokens "
                f"({'max_model_len' if teacher.max_model_len else 'the model'})",
                f"lower max_tokens below {context - PROMPT_ROOM_TOKENS}, or raise max_model_len",
            )
        )
    elif context is not None and context - max_tokens < PROMPT_ROOM_TOKENS:
        findings.append(
            Finding(
                "warning",
                f"{where}.sampling.max_tokens",
                f"only {context - max_tokens} tokens of the {context}-token context are left for the prompt; "
                "longer prompts are dead-lettered",
                "lower max_tokens, or raise max_model_len",
            )
        )
    return findings


_MODEL_FOLDER_FIX = (
    "point `model` at a Hugging Face model folder (config.json and tokenizer files, as save_pretrained "
    "writes them) or give a hub name such as Qwen/Qwen2.5-7B-Instruct"
)


def _model_folder(where: str, model: str, base_dir: Path, findings: list[Finding]) -> Path | None:
    """The folder holding the model's files, when they are on this machine; findings say why not."""
    if is_bundled(model):
        return _bundled_folder(where, model, findings)
    path = Path(model).expanduser()
    beside_job = base_dir / path
    if not path.exists() and not path.is_absolute() and beside_job.exists():
        findings.append(
            Finding("error", where, f"{model} is not in the current directory ({Path.cwd()}) but beside the job "
                    "file: model paths are opened from the directory the run starts in",
                    f"write it as an absolute path: {beside_job.resolve()}")
        )
        return None
    if path.exists():
        if path.is_file():
            gguf = " (vLLM does not load .gguf files: convert it into a folder first)" if path.suffix == ".gguf" else ""
            findings.append(Finding("error", where, f"{path} is a file, not a model folder{gguf}", _MODEL_FOLDER_FIX))
            return None
        return path
    if _looks_like_path(model):
        # On a cluster the driver's node may lack a folder that the replicas' nodes have.
        level: Level = "warning" if os.environ.get("RAY_ADDRESS") else "error"
        elsewhere = "; on a cluster every node that runs a replica needs it" if level == "warning" else ""
        findings.append(
            Finding(level, where, f"model folder not found: {path} (model paths are opened from the current "
                    f"directory, {Path.cwd()}){elsewhere}", _MODEL_FOLDER_FIX)
        )
        return None
    return _hub_folder(where, model, findings)


def _looks_like_path(model: str) -> bool:
    # A hub name is `name` or `namespace/name`; anything else can only be meant as a path.
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model or model.endswith("/")


def _bundled_folder(where: str, model: str, findings: list[Finding]) -> Path | None:
    name = model.removeprefix(BUNDLED_PREFIX)
    folder = bundled_model_dir(name)
    if (folder / "config.json").is_file():
        return folder
    try:
        bundled_gguf(name)
    except BundledModelError as exc:
        findings.append(Finding("error", where, f"{model} cannot be prepared: {exc}", "see the message"))
        return None
    missing = [p for p in CONVERSION_PACKAGES if not _installed(p)]
    if missing:
        findings.append(
            Finding(
                "error",
                where,
                f"{model} is not prepared in {folder}, and converting it needs {', '.join(missing)}",
                "pip install 'distillery[cpu]' (or the packages named), then `distillery prepare JOB`",
            )
        )
        return None
    findings.append(
        Finding(
            "warning",
            where,
            f"{model} is not prepared yet ({folder} is missing); each replica would convert it when it starts",
            "run `distillery prepare JOB` once first (about 10 s)",
        )
    )
    return None


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def _hub_folder(where: str, model: str, findings: list[Finding]) -> Path | None:
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(model)
    except HFValidationError as exc:
        findings.append(Finding("error", where, f"{model!r} is neither a folder nor a hub name: {exc}",
                                _MODEL_FOLDER_FIX))
        return None
    cached = try_to_load_from_cache(model, "config.json")
    if isinstance(cached, str):
        return Path(cached).parent
    if hub_offline():
        findings.append(
            Finding(
                "error",
                where,
                f"{model} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE "
                "is set, so it cannot be downloaded",
                f"download it where there is network (`hf download {model}`, with HF_HOME pointing at the same "
                "cache), or give the model's folder",
            )
        )
    else:
        findings.append(
            Finding(
                "warning",
                where,
                f"{model} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}); each node downloads "
                "it when its engine starts",
                f"download it once first (`hf download {model}`) to see the download fail or succeed now",
            )
        )
    return None


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _has_chat_template(folder: Path) -> bool:
    if any((folder / f).is_file() for f in CHAT_TEMPLATE_FILES):
        return True
    return bool(_read_json(folder / "tokenizer_config.json").get("chat_template"))


def _model_context(folder: Path) -> int | None:
    config = _read_json(folder / "config.json")
    for section in (config, config.get("text_config") or {}):
        for key in CONTEXT_KEYS:
            value = section.get(key)
            if isinstance(value, int) and value > 0:
                return value
    return None


def _context(where: str, teacher: VLLMTeacherConfig, folder: Path) -> list[Finding]:
    derived = _model_context(folder)
    scaled = bool(_read_json(folder / "config.json").get("rope_scaling"))
    # With rope scaling vLLM derives a longer context than config.json states: nothing to compare.
    if derived is None or scaled or teacher.max_model_len is None or teacher.max_model_len <= derived:
        return []
    return [
        Finding(
            "error",
            f"{where}.max_model_len",
            f"{teacher.max_model_len} is longer than the model's context ({derived}, max_position_embeddings "
            "in config.json); vLLM refuses to start",
            f"set max_model_len to at most {derived}",
        )
    ]


def _openai_teacher(where: str, teacher: OpenAITeacherConfig) -> list[Finding]:
    if teacher.api_key_env and not os.environ.get(teacher.api_key_env):
        return [
            Finding(
                "warning",
                f"{where}.api_key_env",
                f"the environment variable {teacher.api_key_env} is not set here; requests that need a key fail",
                f"export {teacher.api_key_env}=... (on a cluster: pass it in `--runtime-env-json` env_vars)",
            )
        ]
    return []


# --- data --------------------------------------------------------------------------------------


def _source(where: str, source: SourceConfig, base_dir: Path) -> list[Finding]:
    if source.format == "hf":
        return _hub_dataset(f"{where}.dataset", source.dataset, base_dir)
    location = base_dir / str(source.path)
    try:
        rows = list(islice(read_source(source, base_dir), SOURCE_SAMPLE_ROWS))
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        return [Finding("error", f"{where}.format", f"{location} cannot be read as {source.format}: {exc}",
                        "check `format` and that `path` is the right file")]
    if not rows:
        return [Finding("warning", where, f"source {source.name!r} has no rows ({location} is empty)",
                        "point `path` at the file that holds the prompts")]
    unreadable = [r for _, r in rows if isinstance(r, RowReadError)]
    if len(unreadable) == len(rows):
        return [
            Finding(
                "warning",
                f"{where}.format",
                f"none of the first {len(rows)} rows of {location} could be read as {source.format}: "
                f"{unreadable[0].reason}",
                "check `format` (jsonl: one JSON object per line) and that `path` is the right file",
            )
        ]
    records = [r for _, r in rows if isinstance(r, dict)]
    if not records:
        return [Finding("warning", where, f"the first rows of {location} are not objects with named fields",
                        "each row must be a JSON object (jsonl) or a table row (parquet)")]
    columns = sorted({k for r in records for k in r})
    fields = source.fields
    mapped = {
        "problem": fields.problem,
        "answer": fields.answer if source.require_answer else None,
        "domain": fields.domain,
        "id": fields.id,
        "tests": fields.tests,
    }
    findings = []
    for key, column in mapped.items():
        if column is None or any(column in r for r in records):
            continue
        hint = difflib.get_close_matches(column, columns, n=1) or [c for c in FIELD_ALIASES[key] if c in columns]
        fix = f"did you mean fields.{key}: {hint[0]}?" if hint else f"map fields.{key} to one of the columns"
        findings.append(
            Finding(
                "warning",
                f"{where}.fields.{key}",
                f"column {column!r} is in none of the first {len(records)} rows (columns: {', '.join(columns)}); "
                "rows without it are dead-lettered",
                fix,
            )
        )
    return findings


def _hub_dataset(where: str, dataset: str | None, base_dir: Path | None) -> list[Finding]:
    """A hub data set (not a local folder) must be in the cache when the machine is offline."""
    if dataset is None or (base_dir is not None and (base_dir / dataset).exists()) or Path(dataset).exists():
        return []
    if _dataset_cached(dataset):
        return []
    if hub_offline():
        return [
            Finding(
                "error",
                where,
                f"data set {dataset!r} is not in the local Hugging Face caches and HF_HUB_OFFLINE is set",
                "download it where there is network (datasets.load_dataset with the same HF_HOME), or save it "
                "to a local file and give its path",
            )
        ]
    return [
        Finding("warning", where, f"data set {dataset!r} is not cached here; the run downloads it",
                "nothing, if this machine may download; else save it to a local file and give its path")
    ]


def _dataset_cached(dataset: str) -> bool:
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    hub = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=dataset, repo_type="dataset")
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    processed = Path(os.environ.get("HF_DATASETS_CACHE", home / "datasets")) / dataset.replace("/", "___")
    return hub.is_dir() or processed.is_dir()


def _benchmarks(job: JobConfig) -> list[Finding]:
    # Local benchmark files are checked when the job is loaded (BenchmarkConfig); hub ones here.
    if not job.decontamination.enabled:
        return []
    findings = []
    for index, benchmark in enumerate(job.decontamination.benchmarks):
        if benchmark.dataset is not None:
            findings += _hub_dataset(f"decontamination.benchmarks[{index}].dataset", benchmark.dataset, None)
    return findings


def _embedders(job: JobConfig) -> list[Finding]:
    wanted = {}
    if job.dedup.enabled and (job.dedup.prompts.near or job.dedup.responses.within_prompt
                              or job.dedup.responses.across_corpus):
        wanted["dedup.embedder.model"] = job.dedup.embedder
    decontam = job.decontamination
    if decontam.enabled and decontam.benchmarks and decontam.embedding.enabled:
        wanted["decontamination.embedder.model"] = decontam.embedder or job.dedup.embedder
    findings = []
    for where, embedder in wanted.items():
        try:
            model = resolve_embedding_model(embedder.model)
        except EmbedderError as exc:
            findings.append(Finding("error", where, str(exc), "install the package named, or give a model folder"))
            continue
        if is_bundled(embedder.model) or Path(model).expanduser().exists():
            continue
        if _looks_like_path(model):
            findings.append(Finding("error", where, f"embedding model folder not found: {model}",
                                    "give a sentence-transformers folder or hub name"))
            continue
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(model, "config.json"), str) and (embedder.offline or hub_offline()):
            findings.append(
                Finding(
                    "error",
                    where,
                    f"{model} is not in the local Hugging Face cache, and the embedder loads offline",
                    f"download it (`hf download {model}`), or set `offline: false` to let the run download it",
                )
            )
    return findings


# --- sandbox -----------------------------------------------------------------------------------


def _sandboxes(job: JobConfig) -> list[Finding]:
    findings = []
    for domain, verifier in job.verification.domains.items():
        if not isinstance(verifier, CodeVerifierConfig):
            continue
        where = f"verification.domains.{domain}.sandbox"
        try:
            interpreter = resolve_interpreter(verifier.python, verifier.site_packages)
            mechanism = resolve_mechanism(verifier.sandbox, interpreter)
        except (FileNotFoundError, RuntimeError) as exc:
            findings.append(
                Finding(
                    "error",
                    where,
                    f"the {domain} verifier cannot run programs here: {exc}",
                    "install bubblewrap (Debian/Ubuntu: apt-get install -y bubblewrap); `distillery doctor` "
                    "shows what this machine supports. `sandbox: unsafe` runs programs without isolation "
                    "(only for code you trust)",
                )
            )
            continue
        if mechanism not in ("bubblewrap", "unshare"):
            findings.append(
                Finding("warning", where, "generated programs run with rlimits only, without any isolation",
                        "install bubblewrap (Debian/Ubuntu: apt-get install -y bubblewrap)")
            )
    return findings
