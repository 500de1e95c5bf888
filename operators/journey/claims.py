"""The intermediate results a step claims: plain arithmetic (`7 \\times 8 = 54`) and values given to
names (`x = 5`), read from LaTeX or plain text.

Only what can be checked without a model is read: an equation whose left side is numbers and
operators only, whose right side is one number, standing alone (not `2x + 3 = 5`, not `50%`).
Anything else is not a claim; a claim is never guessed.
"""

from __future__ import annotations

import ast
import itertools
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

MAX_EXPONENT = 64
MAX_MAGNITUDE = 1e30
"""Evaluation stops beyond these: a power tower in a wrong attempt must not hang the stage."""

_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_TEXT = re.compile(r"\\(?:text|mathrm|textbf|mbox)\s*\{[^{}]*\}")
_THOUSANDS = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+)(?![\d.])")
_TIMES_LETTER = re.compile(r"(?<=\d)\s*[x×]\s*(?=\d)")
_REPLACEMENTS = (
    (r"\times", "*"),
    (r"\cdot", "*"),
    (r"\div", "/"),
    ("÷", "/"),
    ("×", "*"),
    ("·", "*"),
    ("−", "-"),
    (r"\left", ""),
    (r"\right", ""),
    (r"\,", " "),
    (r"\!", ""),
    (r"\;", " "),
    (r"\quad", " "),
    ("{,}", ""),
    (r"\approx", "≈"),
    (r"\neq", "≠"),
    (r"\ne", "≠"),
    (r"\leq", "≤"),
    (r"\geq", "≥"),
    ("$", " "),
    (r"\(", " "),
    (r"\)", " "),
    (r"\[", " "),
    (r"\]", " "),
    ("{", "("),
    ("}", ")"),
    ("**", "^"),
)
# A chain of `=`-joined arithmetic: digits, operators, brackets, spaces.
_CHAIN = re.compile(r"[\d.+\-*/^() \t]+(?:=[\d.+\-*/^() \t]+)+")
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
# `name = number`, the number standing alone (not the start of `x = 3 + 4`, not `3.5`'s `3`).
_ASSIGNMENT = re.compile(
    r"(?<![\w\\)])([A-Za-z](?:_\(?\w+\)?)?)\s*=\s*(-?\d+(?:\.\d+)?)(?![\w(^%])(?!\.\d)(?!\s*[-+*/^=(\d])"
)
NUMBER_TOKEN = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w])")
_BEFORE_FORBIDDEN = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_)|!\\'")
_AFTER_FORBIDDEN = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_(|!^%'")
_EXPRESSION_START = set("0123456789(")

_OPERATORS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


@dataclass(frozen=True, slots=True)
class Equation:
    """`expression = stated`, where the expression evaluates to `value`."""

    expression: str
    stated: str
    value: float

    @property
    def holds(self) -> bool:
        return agrees(self.value, self.stated)


@dataclass(frozen=True, slots=True)
class Assignment:
    """`name = stated`: a value the step gives a name."""

    name: str
    stated: str


def normalize_math(text: str) -> str:
    """LaTeX and typography reduced to plain arithmetic notation (units and prose left as letters)."""
    text = _TEXT.sub(" ", text)
    previous = None
    while previous != text:
        previous, text = text, _FRAC.sub(r"((\1)/(\2))", text)
    for old, new in _REPLACEMENTS:
        text = text.replace(old, new)
    text = _THOUSANDS.sub(lambda m: m.group(1).replace(",", ""), text)
    return _TIMES_LETTER.sub("*", text)


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            if abs(right) > MAX_EXPONENT or (abs(left) > 1 and abs(right) * math.log10(abs(left)) > 30):
                raise ValueError("power too large to check")
            result = left**right
        elif type(node.op) in _OPERATORS:
            result = _OPERATORS[type(node.op)](left, right)
        else:
            raise ValueError("operator not checked")
        if isinstance(result, complex) or not math.isfinite(result) or abs(result) > MAX_MAGNITUDE:
            raise ValueError("result out of range")
        return result
    raise ValueError("not plain arithmetic")


def evaluate(expression: str) -> float | None:
    """The value of plain arithmetic (`^` is a power), or None when it is anything else."""
    source = expression.replace("^", "**").strip()
    if not source or not re.search(r"\d", source):
        return None
    try:
        return _evaluate(ast.parse(source, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None


def agrees(value: float, stated: str) -> bool:
    """The stated number is `value`, to the precision it was written with (1/3 = 0.33 holds)."""
    decimals = len(stated.partition(".")[2])
    tolerance = 10.0**-decimals if decimals else 1e-9
    return abs(value - float(stated)) <= tolerance + 1e-9 * abs(value)


def equations(text: str) -> list[Equation]:
    """Every checkable `expression = number` of the text, in order. An expression must start with a
    digit or a bracket and stand alone: `2x + 3 = 5`, `f(2) = 4` and `1/2 = 50%` are not read."""
    plain = normalize_math(text)
    found: list[Equation] = []
    for match in _CHAIN.finditer(plain):
        chain = match.group(0)
        start = match.start() + len(chain) - len(chain.lstrip())
        end = match.start() + len(chain.rstrip(" \t."))
        parts = [p.strip() for p in plain[start:end].split("=")]
        pairs = list(itertools.pairwise(parts))
        for k, (left, right) in enumerate(pairs):
            if k == 0 and plain[start - 1 : start] in _BEFORE_FORBIDDEN:
                continue
            if k == len(pairs) - 1 and plain[end : end + 1] in _AFTER_FORBIDDEN:
                continue
            if not _NUMBER.match(right) or _NUMBER.match(left) or left[:1] not in _EXPRESSION_START:
                continue
            value = evaluate(left)
            if value is not None:
                found.append(Equation(" ".join(left.split()), right, value))
    return found


def assignments(text: str) -> list[Assignment]:
    return [Assignment(m.group(1), m.group(2)) for m in _ASSIGNMENT.finditer(normalize_math(text))]


def numbers(text: str) -> list[str]:
    """Every number the text states, as written after normalization (`1,000` -> `1000`)."""
    return NUMBER_TOKEN.findall(normalize_math(text))


def same_number(a: str, b: str) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    except ValueError:
        return False


def format_number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def spoken(expression: str) -> str:
    """`7*8` -> `7 × 8`, `((1)/(2))*24` -> `(1/2) × 24`, for a reflection."""
    previous = None
    while previous != expression:
        # Brackets normalize_math put around single numbers and around a whole fraction are dropped.
        previous = expression
        expression = re.sub(r"\((-?\d+(?:\.\d+)?)\)", r"\1", expression)
        expression = re.sub(r"\(\(([^()]*)\)\)", r"(\1)", expression)
    spaced = re.sub(r"\s*([*/+^])\s*", lambda m: f" {'×' if m.group(1) == '*' else m.group(1)} ", expression)
    spaced = re.sub(r"(?<=[\d)])\s*-\s*", " - ", spaced)
    return " ".join(spaced.split()).replace(" ^ ", "^")
