"""Words and scripts as the filters and policies count them, in any script.

Chinese and Japanese have no spaces, so a CJK character (or a Hangul syllable) counts as one word,
and a run of letters of another script counts as one word. Notation is not language: code, LaTeX
math, commands and URLs are removed before scripts are counted.
"""

from __future__ import annotations

from collections import Counter

import regex

_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}"
# One alternative per script, so a word's script is the name of the group that matched it.
_SCRIPT_WORD = regex.compile(
    r"(?P<cjk>[\p{Han}\p{Hiragana}\p{Katakana}])"
    r"|(?P<hangul>\p{Hangul})"
    r"|(?P<latin>\p{Latin}[\p{Latin}\p{M}]*)"
    r"|(?P<cyrillic>\p{Cyrillic}[\p{Cyrillic}\p{M}]*)"
    r"|(?P<greek>\p{Greek}[\p{Greek}\p{M}]*)"
    r"|(?P<arabic>\p{Arabic}[\p{Arabic}\p{M}]*)"
    r"|(?P<hebrew>\p{Hebrew}[\p{Hebrew}\p{M}]*)"
    r"|(?P<devanagari>\p{Devanagari}[\p{Devanagari}\p{M}]*)"
    r"|(?P<thai>\p{Thai}[\p{Thai}\p{M}]*)"
    r"|(?P<other>\p{L})"
)
_WORD = regex.compile(rf"[{_CJK}]|[^\W{_CJK}]+")

_NOTATION = [
    regex.compile(r"(?ms)^[ \t]*(```|~~~).*?(?:^[ \t]*\1|\Z)"),  # fenced code, closed or not
    regex.compile(r"`[^`\n]+`"),
    regex.compile(r"(?s)\$\$.*?\$\$"),
    regex.compile(r"(?s)\\\[.*?\\\]"),
    regex.compile(r"(?s)\\begin\{([A-Za-z]+\*?)\}.*?\\end\{\1\}"),
    regex.compile(r"(?s)\\\(.*?\\\)"),
    regex.compile(r"(?<!\\)\$[^$\n]+?(?<!\\)\$"),
    regex.compile(r"https?://\S+"),
    regex.compile(r"\\[A-Za-z]+"),
]
# Function and unit names that sit in plain text as notation, in any language's reasoning.
_NOTATION_WORDS = frozenset(
    {
        *("sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "lim", "max", "min", "gcd", "lcm", "mod"),
        *("det", "arg", "sup", "inf", "cm", "mm", "km", "kg", "mg", "ml", "ms", "kb", "mb", "gb"),
    }
)


def strip_notation(text: str) -> str:
    for pattern in _NOTATION:
        text = pattern.sub(" ", text)
    return text


def script_words(text: str) -> Counter[str]:
    """Words per script after notation is removed. Single letters (variables) and notation words
    such as `sin` or `cm` are not counted; Greek letters are counted as `greek` (the caller decides
    whether they are notation)."""
    counts: Counter[str] = Counter()
    for match in _SCRIPT_WORD.finditer(strip_notation(text)):
        script = match.lastgroup
        assert script is not None
        word = match.group()
        if script not in ("cjk", "hangul", "other") and (len(word) < 2 or word.lower() in _NOTATION_WORDS):
            continue
        counts[script] += 1
    return counts


def words(text: str) -> list[str]:
    """Lower-cased words and numbers, a CJK character being one word (for repetition and length)."""
    return [w.lower() for w in _WORD.findall(text)]
