"""The text form that matching (exact keys, n-grams, embeddings) works on.

Two renderings of one problem should meet here: `$x + y$` and `$x+y$`, `\\dfrac` and `\\frac`,
"Find" and "find". Case is folded only outside math, where it carries no meaning; inside math `A`
and `a` are different symbols. Ids keep using `records.normalize_text` (whitespace only), so this
form can improve without changing any id.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from distillery.schemas.records import stable_hash

# Inline `$...$` follows pandoc's rule (no space after the opening `$`, none before the closing one,
# no digit right after it), so prices like "$2 per egg ... $3" are not mistaken for math.
_MATH = re.compile(
    r"\$\$(?P<display>.+?)\$\$"
    r"|\\\[(?P<bracket>.+?)\\\]"
    r"|\\\((?P<paren>.+?)\\\)"
    r"|\$(?!\s)(?P<inline>(?:[^$\n]|\n(?!\n))*?[^\s$])\$(?!\d)",
    re.DOTALL,
)
# Spacing and sizing commands change how math looks, never what it says.
_LATEX_NOISE = re.compile(r"\\(?:[,;:!> ]|quad\b|qquad\b|displaystyle\b|textstyle\b|left\b|right\b|limits\b)|~")
_FRAC_VARIANTS = re.compile(r"\\[dt]frac\b")
_COMMAND_THEN_LETTER = re.compile(r"(\\[A-Za-z]+)\s+(?=[A-Za-z])")
_SPACE = re.compile(r"\s+")
_QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "−": "-", "–": "-", "—": "-"})
_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
_WORD = re.compile(r"\w+")


def _normalize_math(math: str) -> str:
    math = _FRAC_VARIANTS.sub(r"\\frac", _LATEX_NOISE.sub(" ", math))
    # Whitespace in math is insignificant except where it ends a command name (`\cdot x`).
    math = _COMMAND_THEN_LETTER.sub("\\1\x00", math)
    return _SPACE.sub("", math).replace("\x00", " ")


def normalize_for_matching(text: str) -> str:
    """NFKC, unified quotes and dashes, math compacted, prose lower-cased, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    parts: list[str] = []
    last = 0
    for match in _MATH.finditer(text):
        parts.append(text[last : match.start()].lower())
        body = next(group for group in match.groups() if group is not None)
        # Delimiters are dropped: `$5$` and `5` are the same statement.
        parts.append(_normalize_math(body))
        last = match.end()
    parts.append(text[last:].lower())
    return _SPACE.sub(" ", "".join(parts)).strip()


def exact_key(text: str) -> str:
    """Two texts are exact duplicates iff their keys are equal."""
    return stable_hash("match", normalize_for_matching(text))


def word_tokens(normalized: str) -> list[str]:
    """Word tokens of a normalized text for n-gram matching (case-folded: n-grams want recall)."""
    return _WORD.findall(normalized.lower())


def numbers(normalized: str) -> Counter[str]:
    """The numbers of a text, as a multiset. Sentence embeddings barely see numbers, so two problems
    that differ only in them embed almost identically; their numbers tell them apart."""
    return Counter(n.replace(",", "") for n in _NUMBER.findall(normalized))


def number_signature(normalized: str) -> str:
    """The sorted numbers of a text: equal signatures, same numbers."""
    return " ".join(sorted(numbers(normalized).elements()))


def number_agreement(ours: Counter[str], theirs: Counter[str]) -> float:
    """Shared numbers over the numbers of the text that has more (1.0 when neither has any)."""
    if not ours and not theirs:
        return 1.0
    return sum((ours & theirs).values()) / max(ours.total(), theirs.total())
