"""Verifier construction from job-file sections."""

from __future__ import annotations

from distillery.operators.verifiers.base import Verifier
from distillery.operators.verifiers.math import MathVerifier
from distillery.schemas.verifier_config import MathVerifierConfig, VerifierConfig


def build_verifier(config: VerifierConfig) -> Verifier:
    if isinstance(config, MathVerifierConfig):
        return MathVerifier(float_rounding=config.float_rounding)
    raise TypeError(f"no verifier for config {type(config).__name__}")
