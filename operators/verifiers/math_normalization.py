"""The text of a math answer made ready for math-verify: LaTeX it mishandles rewritten, units taken
off where they are spelled as units, word answers and clock times recognised.

math-verify's own unit stripping (latex2sympy2_extended, `units=True`) cuts any trailing letter it
takes for a unit: `3t` becomes 3, `a^2+b^2+2ab` becomes a^2+b^2+2, `\\pi r^2 h` becomes \\pi r^2, and
`5\\text{ m}` and `5\\text{ cm}` both become 5. We turn that off and take a unit off only where it is
spelled as one: a `\\text{...}` (or `\\mathrm`, `\\mbox`...) group at the end, or a known unit word
after a space (`10 cm^2`, `125 miles`). The unit is kept beside the value, so two answers with
different units never compare equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TEXT_COMMAND = r"\\(?:mathrm|text|textrm|textnormal|mathit|textit|mathbf|textbf|operatorname|mbox)\s*"
# \mathrm{e} is Euler's number and \mathrm{i} the imaginary unit; math-verify would read them as
# text or as a plain symbol.
_CONSTANT = re.compile(_TEXT_COMMAND + r"\{\s*([ei])\s*\}|\{\\rm\s+([ei])\s*\}")
# A text group that only closing braces follow would otherwise be read as a unit and cut together
# with those braces (`\frac{1}{\text{cm}}` -> `\frac{1}{`): unwrap it instead.
_TRAILING_NESTED_TEXT = re.compile(_TEXT_COMMAND + r"\{([^{}]*)\}(?=\s*\}+\s*$)")
_DEGREE_SIGN = r"(?:\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|°|\\degree)"
_DEGREES = re.compile(_DEGREE_SIGN)
_DEGREE_NUMBER = re.compile(r"(\d+(?:\.\d+)?)\s*" + _DEGREE_SIGN)
_TRIG = re.compile(r"\\(?:sin|cos|tan|cot|sec|csc)\b")
# 10\,000, 10~000 and 10 000: thousands separators written as spaces.
_SPACED_THOUSANDS = re.compile(r"(?<=\d)(?:\\[,;:! ]|~)(?=\d{3}(?!\d))")
_PLAIN_SPACED_NUMBER = re.compile(r"(?<![\d.,])\d{1,3}(?: \d{3})+(?![\d.,])")
_MIXED_NUMBER = re.compile(r"^(\d+)\s+(\d+)\s*/\s*(\d+)$")
_MATH_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_DOLLAR = re.compile(r"(?<!\\)\$")
_TRAILING_BACKSLASH = re.compile(r"(?<!\\)\\$")  # "185\" (a cut-off command), not a "\\" line break
# "$125$ miles": a math span followed by its unit in words.
_SPAN_THEN_WORDS = re.compile(r"^\$([^$]+)\$(\s+[A-Za-z][A-Za-z ]*)$")

# Words that are units when they end an answer after a space (plurals too). Single letters (m, s,
# h, t) are not here: a plain `5 m` may be a product with a variable; `5\text{ m}` is a unit.
_UNIT_WORDS = frozenset(
    {
        "mm", "cm", "dm", "km", "nm", "mi", "mile", "in", "inch", "ft", "foot", "feet", "yd", "yard", "meter",
        "metre", "centimeter", "centimetre", "millimeter", "millimetre", "kilometer", "kilometre", "mg", "kg",
        "gram", "kilogram", "lb", "pound", "oz", "ounce", "ton", "tonne", "ml", "mL", "liter", "litre", "gallon",
        "sec", "second", "min", "minute", "hr", "hour", "day", "week", "month", "year", "mph", "kph", "kmh",
        "dollar", "cent", "euro", "unit", "degree", "radian", "point", "square", "sq", "cubic", "cu"
    }
)
_UNIT_WORD = "|".join(sorted(_UNIT_WORDS, key=len, reverse=True))
_UNIT_POWER = r"(?:\s*\^\s*(?:\{\s*\d\s*\}|\d))?"
_PLAIN_UNIT = re.compile(
    r"(?<=[\d}])\s+((?:(?:square|sq|cubic|cu)\s+)?(?:" + _UNIT_WORD + r")(?:e?s)?" + _UNIT_POWER + r")\s*$"
)
# A text group at the end of an answer, after a value: `5\text{ cm}`, `15\mbox{ cm}^2`.
_TEXT_UNIT = re.compile(r"(?<=[\w}).\s])\s*" + _TEXT_COMMAND + r"\{\s*([^{}]*?)\s*\}(" + _UNIT_POWER + r")\s*$")
_UNIT_TEXT = re.compile(r"^[A-Za-z][A-Za-z .'/\\^{}0-9-]*$")

# A word answer: letters and spaces only ("odd", "\text{Even}", "no solution"); a plain word needs three
# letters (`ab` is a product), except "no".
_WORD_ANSWER = re.compile(
    r"^(?:" + _TEXT_COMMAND + r"\{\s*([A-Za-z][A-Za-z ]*[A-Za-z])\s*\}"
    r"|([A-Za-z]{3,}|[Nn][Oo]|[A-Za-z]{2,}(?: [A-Za-z]+)+))$"
)
_CLOCK = re.compile(r"^\d{1,2}:\d{2}(?::\d{2})?(?:\s*\\?(?:text\{)?\s*[AaPp]\.?\s*[Mm]\.?\}?)?$")


def _strip_delimiters(text: str) -> str:
    for opening, closing in _MATH_DELIMITERS:
        if text.startswith(opening) and text.endswith(closing) and len(text) > len(opening) + len(closing):
            return text[len(opening) : -len(closing)].strip()
    return text


def _degrees(text: str) -> str:
    """Degrees inside a trigonometric function become radians (`\\sin 30^\\circ` = 1/2); elsewhere the
    degree sign goes (`30^\\circ` = 30)."""
    if _TRIG.search(text):
        text = _DEGREE_NUMBER.sub(r"(\\frac{\\pi}{180}\\cdot \1)", text)
    return _DEGREES.sub("", text)


def normalize_math_answer(answer: str) -> str:
    """Rewrite the LaTeX that math-verify's own normalization mishandles."""
    text = _strip_delimiters(answer.strip())
    text = _SPAN_THEN_WORDS.sub(r"\1\2", text)
    if len(_DOLLAR.findall(text)) == 1:  # a stray delimiter: "0.3333$"
        text = _DOLLAR.sub("", text).strip()
    text = _TRAILING_BACKSLASH.sub("", text).strip()
    text = _CONSTANT.sub(lambda m: m.group(1) or m.group(2), text)
    text = _TRAILING_NESTED_TEXT.sub(r"{\1}", text)
    text = _degrees(text)
    text = _SPACED_THOUSANDS.sub("", text)
    text = _PLAIN_SPACED_NUMBER.sub(lambda m: m.group(0).replace(" ", ""), text)
    text = _MIXED_NUMBER.sub(r"\1\\frac{\2}{\3}", text.strip())
    return text.strip()


def _unit_key(unit: str) -> str:
    """One spelling per unit: `cm^{2}` = `cm^2`, `units` = `unit`, `Miles` = `mile`."""
    key = re.sub(r"[\s{}\\]", "", unit).lower()
    key = re.sub(r"^(?:square|sq)(.+)$", r"\1^2", key)
    key = re.sub(r"^(?:cubic|cu)(.+)$", r"\1^3", key)
    base, _, power = key.partition("^")
    if len(base) > 3 and base.endswith("es") and base[:-2] in _UNIT_WORDS:
        base = base[:-2]
    elif len(base) > 2 and base.endswith("s"):
        base = base[:-1]
    return f"{base}^{power}" if power else base


@dataclass(frozen=True, slots=True)
class MathAnswer:
    """An answer's text for parsing, its unit (None when it has none), for a word answer the words
    it is compared by, and whether it is a clock time (`12:00`, which sympy reads as 12/0)."""

    text: str
    unit: str | None
    words: str | None
    clock: bool = False


def read_math_answer(raw: str) -> MathAnswer:
    text = normalize_math_answer(raw)
    if _CLOCK.match(text):
        return MathAnswer(text, None, None, clock=True)
    word = _WORD_ANSWER.match(text)
    if word:
        return MathAnswer(text, None, " ".join((word.group(1) or word.group(2)).lower().split()))
    unit: str | None = None
    match = _TEXT_UNIT.search(text)
    if match and _UNIT_TEXT.match(match.group(1)) and text[: match.start()].strip():
        unit, text = _unit_key(match.group(1) + match.group(2)), text[: match.start()].strip()
    else:
        match = _PLAIN_UNIT.search(text)
        if match:
            unit, text = _unit_key(match.group(1)), text[: match.start()].strip()
    return MathAnswer(text, unit, None)
