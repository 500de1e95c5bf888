"""Verifier construction from job-file sections."""

from __future__ import annotations

from distillery.operators.verifiers.base import Verifier
from distillery.operators.verifiers.choice import ChoiceVerifier
from distillery.operators.verifiers.code import CodeVerifier
from distillery.operators.verifiers.exact import ExactVerifier
from distillery.operators.verifiers.math import MathVerifier
from distillery.schemas.verifier_config import (
    ChoiceVerifierConfig,
    CodeVerifierConfig,
    ExactVerifierConfig,
    MathVerifierConfig,
    VerifierConfig,
)


def build_verifier(config: VerifierConfig) -> Verifier:
    if isinstance(config, MathVerifierConfig):
        return MathVerifier(float_rounding=config.float_rounding)
    if isinstance(config, CodeVerifierConfig):
        return CodeVerifier(config)
    if isinstance(config, ChoiceVerifierConfig):
        return ChoiceVerifier(letters=config.letters)
    if isinstance(config, ExactVerifierConfig):
        return ExactVerifier(normalize=config.normalize, max_answer_chars=config.max_answer_chars)
    raise TypeError(f"no verifier for config {type(config).__name__}")
