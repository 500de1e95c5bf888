"""Short factual answers: the response's final answer against the gold string (or any of a JSON list of
aliases), exactly or after normalization (case, punctuation, articles, spacing; SQuAD-style)."""

from __future__ import annotations

import json
import re
import string
import unicodedata

from distillery.operators.verifiers.answer_extraction import extract_final_answer, final_answer_region
from distillery.operators.verifiers.base import GoldError, Verifier
from distillery.schemas.records import VerdictLabel

_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation + "“”‘’«»¿¡")
_SPACE = re.compile(r"\s+")


def normalize_answer(text: str) -> str:
    """NFKC, LaTeX text wrappers and `$` removed, case-folded, no punctuation or articles, single spaces."""
    text = unicodedata.normalize("NFKC", text)
    text = _TEXT_COMMAND.sub(r"\1", text).replace("$", "")
    text = text.casefold().translate(_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


class ExactVerifier(Verifier):
    name = "exact"
    version = "1"

    def __init__(self, normalize: bool = True, max_answer_chars: int = 200) -> None:
        self.normalize = normalize
        self.max_answer_chars = max_answer_chars

    def _key(self, text: str) -> str:
        return normalize_answer(text) if self.normalize else text.strip()

    def prepare_gold(self, answer: str | None, tests: str | None) -> tuple[str, ...]:
        if answer is None or not answer.strip():
            raise GoldError("no gold answer")
        aliases: list[str] = [answer]
        if answer.lstrip().startswith("["):
            try:
                decoded = json.loads(answer)
            except json.JSONDecodeError:
                decoded = None
            if isinstance(decoded, list) and decoded and all(isinstance(a, str) for a in decoded):
                aliases = decoded
        keys = tuple(dict.fromkeys(k for k in (self._key(a) for a in aliases) if k))
        if not keys:
            raise GoldError(f"gold {answer!r} is empty after normalization")
        return keys

    def extract(self, response: str) -> str | None:
        """The explicit final answer; failing that, a short one-line answer read whole."""
        explicit = extract_final_answer(response)
        if explicit is not None:
            return explicit
        region = final_answer_region(response)
        if region is None:
            return None
        region = region.strip()
        if region and "\n" not in region and len(region) <= self.max_answer_chars:
            return region
        return None

    def check(self, gold: tuple[str, ...], response: str) -> tuple[VerdictLabel, str | None, str]:
        extracted = self.extract(response)
        if extracted is None:
            return "invalid", None, "no final answer (boxed, 'the answer is', or a short one-line reply)"
        key = self._key(extracted)
        if key in gold:
            return "correct", extracted, ""
        return "incorrect", extracted, f"normalized {key!r} is not among {len(gold)} gold form(s)"
