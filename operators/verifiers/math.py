"""Math answers checked with math-verify, behind our own answer extraction and guards.

math-verify's default extraction falls back to the last number anywhere in the text, which accepts
"I think it's not 5... (500 words) ... 5" style guesses. We read the final answer ourselves, only
from explicit final forms (`answer_extraction`), and hand math-verify a clean `\\boxed{...}`.

math-verify also says "equal" too easily in a few places (ENVIRONMENT.md): it compares numbers
after rounding to `float_rounding` places and chops tiny differences, so 1/2004! equals 1/2006!,
1/2^99 equals 1/2^98 and 0.1234567 equals 0.1234568; and its unit stripping cuts a trailing
`\\mathrm{e}}`, so 1 - 1/e equals 1 + 1/e. We rewrite the LaTeX it mishandles before parsing, and
re-check every "equal" it returns (`_false_positive`): exact numbers are compared exactly, inexact
ones by relative difference, expressions in variables at a sample point, and sets / tuples /
intervals only against their own kind.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any

import sympy
from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
from sympy import Basic, FiniteSet, Float, Integer, Interval, MatrixBase, Rational, Tuple, Union

from distillery.operators.verifiers.answer_extraction import extract_final_answer, last_boxed
from distillery.operators.verifiers.base import GoldError, Verifier
from distillery.schemas.records import VerdictLabel

__all__ = ["MathGold", "MathVerifier", "extract_final_answer", "last_boxed", "normalize_math_answer"]

# It warns on every call that its own timeouts are off; the worker deadline covers that.
logging.getLogger("math_verify").setLevel(logging.ERROR)

_PARSE_CONFIG = [LatexExtractionConfig(), ExprExtractionConfig()]

_TEXT_COMMAND = r"\\(?:mathrm|text|textrm|mathit|textit|mathbf|textbf|operatorname|mbox)\s*"
# \mathrm{e} is Euler's number and \mathrm{i} the imaginary unit; math-verify would read them as
# text (a unit, stripped) or as a plain symbol.
_CONSTANT = re.compile(_TEXT_COMMAND + r"\{\s*([ei])\s*\}|\{\\rm\s+([ei])\s*\}")
# A text group that only closing braces follow is what math-verify's unit stripper truncates
# together with those braces (`\frac{1}{\text{cm}}` -> `\frac{1}{`): unwrap it instead.
_TRAILING_NESTED_TEXT = re.compile(_TEXT_COMMAND + r"\{([^{}]*)\}(?=\s*\}+\s*$)")
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|°|\\degree")
# 10\,000 and 10~000: thousands separators written as LaTeX spaces.
_SPACED_THOUSANDS = re.compile(r"(?<=\d)(?:\\[,;:! ]|~)(?=\d{3}(?!\d))")
_MATH_DELIMITERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
_PLAIN_DECIMAL = re.compile(r"\s*[+-]?\d*\.(\d+)\s*")
_SET_BRACES = re.compile(r"\\\{|\\lbrace")

# Evaluating an exact value is skipped past these sizes: a power tower would hang the check.
_MAX_EXPONENT = 100_000
_MAX_BITS = 2_000_000
_MAX_FACTORIAL = 20_000
_SAMPLE_POINT = (Rational(7, 3), Rational(11, 5), Rational(13, 7), Rational(17, 11), Rational(19, 13))


def normalize_math_answer(answer: str) -> str:
    """Rewrite the LaTeX that math-verify's own normalization mishandles."""
    text = answer.strip()
    for opening, closing in _MATH_DELIMITERS:
        if text.startswith(opening) and text.endswith(closing) and len(text) > len(opening) + len(closing):
            text = text[len(opening) : -len(closing)].strip()
            break
    text = _CONSTANT.sub(lambda m: m.group(1) or m.group(2), text)
    text = _TRAILING_NESTED_TEXT.sub(r"{\1}", text)
    text = _DEGREES.sub("", text)
    return _SPACED_THOUSANDS.sub("", text).strip()


@dataclass(frozen=True)
class MathGold:
    text: str
    parsed: list[Any]


def _first_expr(parsed: list[Any]) -> Basic | MatrixBase | None:
    return next((p for p in parsed if isinstance(p, (Basic, MatrixBase))), None)


def _is_percent(expr: Basic) -> bool:
    return any(isinstance(a, sympy.UnevaluatedExpr) for a in sympy.preorder_traversal(expr))


def _at_most(expr: Basic, limit: float) -> bool:
    """A number, or a constant expression cheap to evaluate, whose size is at most `limit`."""
    if expr.is_Number:
        return abs(expr) <= limit
    if expr.free_symbols or not _cheap_to_evaluate(expr):
        return False
    try:
        return abs(float(sympy.N(expr, 15))) <= limit
    except (TypeError, ValueError, OverflowError):
        return False


def _bits(expr: Basic) -> float:
    """log2 of the size of a constant expression that is cheap to evaluate."""
    size = abs(sympy.N(expr, 15))
    return float(sympy.log(size, 2).evalf(15)) if size > 1 else 0.0


def _cheap_to_evaluate(expr: Basic) -> bool:
    """No power or factorial whose exact value would take long to compute: powers of at most
    _MAX_BITS bits with exponents up to _MAX_EXPONENT (2^{2^{7}} is fine, a power tower is not),
    factorials of at most _MAX_FACTORIAL."""
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Pow):
            if not _at_most(node.exp, _MAX_EXPONENT):
                return False
            if not node.base.free_symbols and abs(float(node.exp)) * _bits(node.base) > _MAX_BITS:
                return False
        elif isinstance(node, (sympy.factorial, sympy.factorial2, sympy.binomial, sympy.gamma)) and not all(
            _at_most(a, _MAX_FACTORIAL) for a in node.args
        ):
            return False
    return True


def _exact_value(expr: Basic) -> Rational | None:
    """The exact rational value of a numeric expression (decimals read as the exact decimals they
    are), or None when it is not rational or too costly to compute."""
    if not isinstance(expr, sympy.Expr) or expr.free_symbols or not _cheap_to_evaluate(expr):
        return None
    exact = expr.xreplace({f: Rational(str(f)) for f in expr.atoms(Float)})
    value = exact.doit()
    return value if isinstance(value, Rational) else None


def _terminates(value: Rational) -> bool:
    """Whether the decimal expansion of a rational ends (denominator 2^a 5^b)."""
    q = int(value.q)
    for prime in (2, 5):
        while q % prime == 0:
            q //= prime
    return q == 1


def _decimal_places(text: str) -> int | None:
    match = _PLAIN_DECIMAL.fullmatch(text)
    return len(match.group(1)) if match else None


def _short(value: Any) -> str:
    if isinstance(value, Rational) and max(int(value.p).bit_length(), int(value.q).bit_length()) > 100:
        return f"~{sympy.N(value, 8)}"  # str() of a 5,000-digit integer raises (int_max_str_digits)
    text = str(value)
    return text if len(text) <= 40 else f"{text[:18]}...{text[-18:]}"


class _Guard:
    """Finds the "equal" verdicts of math-verify that are not."""

    def __init__(self, float_rounding: int) -> None:
        self.tolerance = 10.0**-float_rounding

    def check(self, gold: Basic, gold_text: str, pred: Basic, pred_text: str) -> str | None:
        """A reason the two differ, or None when nothing contradicts math-verify's "equal"."""
        gold, pred = self._unwrap_assignment(gold, pred), self._unwrap_assignment(pred, gold)
        kind_reason = self._kinds(gold, gold_text, pred, pred_text)
        if kind_reason:
            return kind_reason
        return self._compare(gold, gold_text, pred, pred_text)

    @staticmethod
    def _unwrap_assignment(expr: Basic, other: Basic) -> Basic:
        # "x = 4" against "4": math-verify compares the right-hand side; so do we.
        if isinstance(expr, sympy.Eq) and isinstance(expr.lhs, sympy.Symbol) and not isinstance(other, sympy.Eq):
            return expr.rhs
        return expr

    @staticmethod
    def _kind(expr: Basic, text: str) -> str:
        if isinstance(expr, Interval):
            return "open interval" if expr.left_open and expr.right_open else "interval"
        if isinstance(expr, Union):
            return "interval"
        if isinstance(expr, FiniteSet):
            return "set" if _SET_BRACES.search(text) else "list"
        if isinstance(expr, Tuple):
            return "tuple"
        return "value"

    def _kinds(self, gold: Basic, gold_text: str, pred: Basic, pred_text: str) -> str | None:
        kinds = {self._kind(gold, gold_text), self._kind(pred, pred_text)}
        # "(1, 2)" is an open interval or an ordered pair; either way it is not the set {1, 2}.
        if "set" in kinds and kinds & {"tuple", "open interval"}:
            return f"different kinds: {self._kind(gold, gold_text)} vs {self._kind(pred, pred_text)}"
        if "interval" in kinds and len(kinds) > 1:
            return f"different kinds: {self._kind(gold, gold_text)} vs {self._kind(pred, pred_text)}"
        return None

    def _compare(self, gold: Any, gold_text: str, pred: Any, pred_text: str) -> str | None:
        if isinstance(gold, Interval) and isinstance(pred, Interval):
            if (gold.left_open, gold.right_open) != (pred.left_open, pred.right_open):
                return "open and closed interval ends differ"
            return self._compare(gold.start, "", pred.start, "") or self._compare(gold.end, "", pred.end, "")
        if isinstance(gold, Tuple | Interval) and isinstance(pred, Tuple | Interval):
            gold_items, pred_items = self._items(gold), self._items(pred)
            if len(gold_items) != len(pred_items):
                return None
            return next((r for g, p in zip(gold_items, pred_items, strict=True) if (r := self._compare(g, "", p, ""))),
                        None)
        if isinstance(gold, MatrixBase) and isinstance(pred, MatrixBase):
            if gold.shape != pred.shape:
                return None
            return next((r for g, p in zip(gold, pred, strict=True) if (r := self._compare(g, "", p, ""))), None)
        if isinstance(gold, FiniteSet | Tuple) and isinstance(pred, FiniteSet | Tuple):
            return self._compare_sets(list(gold.args), list(pred.args))
        if isinstance(gold, sympy.Expr) and isinstance(pred, sympy.Expr):
            return self._compare_values(gold, gold_text, pred, pred_text)
        return None

    @staticmethod
    def _items(expr: Basic) -> list[Basic]:
        return [expr.start, expr.end] if isinstance(expr, Interval) else list(expr.args)

    def _compare_sets(self, gold: list[Basic], pred: list[Basic]) -> str | None:
        if len(gold) != len(pred):
            return None
        unmatched = list(pred)
        for element in gold:
            partner = next((p for p in unmatched if self._compare(element, "", p, "") is None), None)
            if partner is None:
                return f"no element of the answer matches {_short(element)}"
            unmatched.remove(partner)
        return None

    def _compare_values(self, gold: sympy.Expr, gold_text: str, pred: sympy.Expr, pred_text: str) -> str | None:
        if _is_percent(gold) or _is_percent(pred):
            return None
        if gold.free_symbols or pred.free_symbols:
            return self._compare_at_point(gold, pred)
        gold_exact, pred_exact = _exact_value(gold), _exact_value(pred)
        if gold_exact is not None and pred_exact is not None:
            return self._compare_exact(gold, gold_exact, gold_text, pred, pred_exact, pred_text)
        return self._compare_inexact(gold, gold_text, pred, pred_text)

    def _compare_exact(self, gold: sympy.Expr, gold_exact: Rational, gold_text: str,
                       pred: sympy.Expr, pred_exact: Rational, pred_text: str) -> str | None:
        if gold_exact == pred_exact:
            return None
        reason = f"exact values differ: {_short(gold_exact)} vs {_short(pred_exact)}"
        if gold.has(Float) == pred.has(Float):
            return reason
        # One side is a decimal, the other a fraction: 0.333333 stands for 1/3 when it is 1/3
        # rounded or cut at its own last digit. A fraction with a finite expansion must match exactly.
        if pred.has(Float):
            rational, decimal, places = gold_exact, pred_exact, _decimal_places(pred_text)
        else:
            rational, decimal, places = pred_exact, gold_exact, _decimal_places(gold_text)
        if places is None or _terminates(rational):
            return reason
        unit = Rational(1, 10**places)
        cut = Integer(math.floor(abs(rational) / unit)) * unit
        rounded = Integer(math.floor(abs(rational) / unit + Rational(1, 2))) * unit
        if abs(decimal) in (cut, rounded) and (decimal >= 0) == (rational >= 0):
            return None
        return reason

    def _compare_inexact(self, gold: sympy.Expr, gold_text: str, pred: sympy.Expr, pred_text: str) -> str | None:
        if not (_cheap_to_evaluate(gold) and _cheap_to_evaluate(pred)):
            return None
        gold_value, pred_value = sympy.N(gold, 30), sympy.N(pred, 30)
        if not (gold_value.is_extended_real and pred_value.is_extended_real):
            return None
        if not (gold_value.is_finite and pred_value.is_finite):
            return None if gold_value == pred_value else "different infinities"
        scale = max(abs(gold_value), abs(pred_value))
        difference = abs(gold_value - pred_value)
        if scale == 0 or difference <= self.tolerance * scale:
            return None
        # A decimal written to k places approximates the other side if it is off by less than one
        # unit in its last place (and is not just a run of zeros standing for a tiny number).
        places = _decimal_places(pred_text) if pred.has(Float) else _decimal_places(gold_text)
        if places is not None and difference <= 10.0**-places and difference <= 1e-3 * scale:
            return None
        return f"numbers differ: {sympy.N(gold_value, 8)} vs {sympy.N(pred_value, 8)}"

    def _compare_at_point(self, gold: sympy.Expr, pred: sympy.Expr) -> str | None:
        """Expressions in variables: compare their values at a sample point, exactly when rational."""
        symbols = sorted(gold.free_symbols | pred.free_symbols, key=str)
        if len(symbols) > len(_SAMPLE_POINT) or not (_cheap_to_evaluate(gold) and _cheap_to_evaluate(pred)):
            return None
        point = dict(zip(symbols, _SAMPLE_POINT, strict=False))
        gold_at, pred_at = gold.subs(point), pred.subs(point)
        gold_exact, pred_exact = _exact_value(gold_at), _exact_value(pred_at)
        where = ", ".join(f"{s}={v}" for s, v in point.items())
        if gold_exact is not None and pred_exact is not None:
            return None if gold_exact == pred_exact else f"differ at {where}"
        gold_value, pred_value = sympy.N(gold_at, 50), sympy.N(pred_at, 50)
        if not (gold_value.is_real and pred_value.is_real and gold_value.is_finite and pred_value.is_finite):
            return None
        scale = max(abs(gold_value), abs(pred_value), 1)
        return None if abs(gold_value - pred_value) <= sympy.Float("1e-40") * scale else f"differ at {where}"


class MathVerifier(Verifier):
    name = "math"
    version = "2"

    def __init__(self, float_rounding: int = 6) -> None:
        self.float_rounding = float_rounding
        self._guard = _Guard(float_rounding)

    @staticmethod
    def _parse(expression: str) -> list[Any]:
        # Timeouts off: math-verify's signal-based ones fail outside the main thread; the worker
        # process running us is killed on a wall-clock deadline instead.
        return parse(
            f"\\boxed{{{expression}}}",
            extraction_config=_PARSE_CONFIG,
            fallback_mode="no_fallback",
            parsing_timeout=None,
        )

    def prepare_gold(self, answer: str | None, tests: str | None) -> MathGold:
        if not answer or not answer.strip():
            raise GoldError("no gold answer")
        # A gold may be a whole worked solution; its box is the answer.
        text = normalize_math_answer(last_boxed(answer) or answer)
        parsed = self._parse(text)
        if _first_expr(parsed) is None:
            raise GoldError(f"gold answer {answer!r} does not parse")
        return MathGold(text=text, parsed=parsed)

    def check(self, gold: MathGold, response: str) -> tuple[VerdictLabel, str | None, str]:
        extracted = extract_final_answer(response)
        if extracted is None:
            return "invalid", None, "no final answer (\\boxed{}, 'the answer is' or 'Answer:' after </think>)"
        text = normalize_math_answer(extracted)
        predicted = self._parse(text)
        pred_expr = _first_expr(predicted)
        if pred_expr is None:
            return "invalid", extracted, "final answer does not parse"
        if not verify(gold.parsed, predicted, float_rounding=self.float_rounding, timeout_seconds=None):
            return "incorrect", extracted, ""
        gold_expr = _first_expr(gold.parsed)
        reason = self._guard.check(gold_expr, gold.text, pred_expr, text)
        if reason:
            return "incorrect", extracted, f"math-verify said equal; {reason}"
        return "correct", extracted, ""
