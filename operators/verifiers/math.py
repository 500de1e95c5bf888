"""Math answers checked with math-verify, behind our own answer extraction.

math-verify's default extraction falls back to the last number anywhere in the text, which accepts
"I think it's not 5... (500 words) ... 5" style guesses. We read the final answer ourselves, only
from explicit final forms, and hand math-verify a clean `\\boxed{...}` to parse.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from distillery.operators.verifiers.base import GoldError, Verifier
from distillery.schemas.records import VerdictLabel

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_FINAL_STATEMENT = re.compile(
    r"(?:final answer|the answer)\s*(?:is|:|=)\s*:?\s*(?P<ans>[^\n]+?)\s*(?:\.\s*)?$"
    r"|^\s*####\s*(?P<gsm>[^\n]+?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` / `\\fbox{...}`, with nested braces; None if absent or open."""
    matches = list(_BOXED.finditer(text))
    for match in reversed(matches):
        depth, start = 1, match.end()
        for pos in range(start, len(text)):
            char = text[pos]
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    return text[start:pos].strip()
    return None


def extract_final_answer(response: str) -> str | None:
    """The final answer of a response: the last boxed expression, else the last explicit
    "the (final) answer is X" or GSM8K-style "#### X" line. Never "the last number"."""
    boxed = last_boxed(response)
    if boxed:
        return boxed
    statements = list(_FINAL_STATEMENT.finditer(response))
    if not statements:
        return None
    last = statements[-1]
    answer = (last.group("ans") or last.group("gsm") or "").strip().strip("$").strip()
    return answer or None


# It warns on every call that its own timeouts are off; the worker deadline covers that.
logging.getLogger("math_verify").setLevel(logging.ERROR)

_GOLD_CONFIG = [LatexExtractionConfig(), ExprExtractionConfig()]


class MathVerifier(Verifier):
    name = "math"
    version = "1"

    def __init__(self, float_rounding: int = 6) -> None:
        self.float_rounding = float_rounding

    def _parse(self, expression: str) -> list[Any]:
        # Timeouts off: math-verify's signal-based ones fail outside the main thread; the worker
        # process running us is killed on a wall-clock deadline instead.
        return parse(
            f"\\boxed{{{expression}}}",
            extraction_config=_GOLD_CONFIG,
            fallback_mode="no_fallback",
            parsing_timeout=None,
        )

    def prepare_gold(self, answer: str | None, tests: str | None) -> Any:
        if not answer or not answer.strip():
            raise GoldError("no gold answer")
        inner = last_boxed(answer) or answer.strip().strip("$")
        parsed = self._parse(inner)
        if not parsed:
            raise GoldError(f"gold answer {answer!r} does not parse")
        return parsed

    def check(self, gold: Any, response: str) -> tuple[VerdictLabel, str | None, str]:
        extracted = extract_final_answer(response)
        if extracted is None:
            return "invalid", None, "no final answer (\\boxed{} or 'the answer is')"
        predicted = self._parse(extracted)
        if not predicted:
            return "invalid", extracted, "final answer does not parse"
        same = verify(gold, predicted, float_rounding=self.float_rounding, timeout_seconds=None)
        return ("correct" if same else "incorrect"), extracted, ""
