"""Math answers checked with math-verify, behind our own answer extraction, normalisation and guards.

math-verify's default extraction falls back to the last number anywhere in the text, which accepts
"I think it's not 5... (500 words) ... 5" style guesses. We read the final answer ourselves, only
from explicit final forms (`answer_extraction`), and hand math-verify a clean `\\boxed{...}`.

math-verify says "equal" too easily in places: it compares numbers after rounding
to `float_rounding` places and chops tiny differences, so 1/2004! equals 1/2006!, 1/2^99 equals
1/2^98 and 0.1234567 equals 0.1234568; and its unit stripping cuts trailing letters, so `3t` equals
3 and 1 - 1/e equals 1 + 1/e. We turn its unit stripping off and take units off ourselves
(`math_normalization`), and re-check every "equal" it returns (`_Guard`): exact numbers are compared
exactly, a decimal against a fraction at the decimal's own places, expressions in variables at a
sample point, and sets / tuples / intervals only against their own kind.

It also says "not equal" to some equal answers; for those we give a second opinion
(`_equal_by_value`) that the guard then checks like any "equal": an inequality is compared as the
set it describes (`-2 \\le x \\le 7` = `[-2, 7]`), `i` alone is the imaginary unit, decimal
exponents are exact (`x^{0.5}` = `\\sqrt{x}`), and numbers in scientific notation are rounded
after scaling.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any

import sympy
from latex2sympy2_extended import NormalizationConfig
from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
from sympy import Basic, FiniteSet, Float, Integer, Interval, MatrixBase, Rational, Tuple, Union

from distillery.operators.verifiers.answer_extraction import extract_final_answer, last_boxed
from distillery.operators.verifiers.base import GoldError, Verifier
from distillery.operators.verifiers.math_normalization import MathAnswer, normalize_math_answer, read_math_answer
from distillery.schemas.records import VerdictLabel

__all__ = ["MathGold", "MathVerifier", "extract_final_answer", "last_boxed", "normalize_math_answer"]

# It warns on every call that its own timeouts are off; the worker deadline covers that.
logging.getLogger("math_verify").setLevel(logging.ERROR)

# math-verify's defaults less its unit stripping (we take units off ourselves, see module doc).
_PARSE_CONFIG = [
    LatexExtractionConfig(
        normalization_config=NormalizationConfig(
            basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="all", equations=False
        )
    ),
    ExprExtractionConfig(),
]

_PLAIN_DECIMAL = re.compile(r"\s*[+-]?\d*\.(\d+)\s*")
_SET_BRACES = re.compile(r"\\\{|\\lbrace")

# Evaluating an exact value is skipped past these sizes: a power tower would hang the check.
_MAX_EXPONENT = 100_000
_MAX_BITS = 2_000_000
_MAX_FACTORIAL = 20_000
# A root of a higher degree (2^{1/2^{1000}}) makes sympy's own comparison run for minutes.
_MAX_ROOT_DEGREE_BITS = 64
_SAMPLE_POINT = (Rational(7, 3), Rational(11, 5), Rational(13, 7), Rational(17, 11), Rational(19, 13))
_SECOND_POINT = (Rational(5, 2), Rational(23, 17), Rational(29, 19), Rational(31, 23), Rational(37, 29))
# Where a function that sees the sign appears, the second point has negative coordinates: |x| and x
# agree at every positive point. Elsewhere variables are taken positive, as in (r_0/(r+r_0))^{1/2} =
# r_0^{1/2}/(r+r_0)^{1/2}.
_SIGNED_POINT = (Rational(-5, 2), Rational(23, 17), Rational(-29, 19), Rational(31, 23), Rational(-37, 29))
_SIGN_SENSITIVE = (sympy.Abs, sympy.sign, sympy.floor, sympy.ceiling, sympy.Piecewise, sympy.Max, sympy.Min)
_RELATIVE_EQUALITY = sympy.Float("1e-40")
_IMAGINARY_UNIT = "i"
_EITHER = re.compile(r"\bor\b|\\lor\b|\\vee\b")


@dataclass(frozen=True)
class MathGold:
    answer: MathAnswer
    parsed: list[Any]

    @property
    def text(self) -> str:
        return self.answer.text


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


def _huge_root(expr: Any) -> bool:
    """A power whose exponent is a fraction of enormous denominator (2^{1/2^{1000}}): sympy's own
    comparison of it runs for minutes."""
    if not isinstance(expr, Basic):
        return False
    for node in sympy.preorder_traversal(expr):
        # A power tower is left to the worker's deadline: its exponent is not cheap to evaluate.
        if isinstance(node, sympy.Pow) and not node.exp.free_symbols and _cheap_to_evaluate(node.exp):
            exponent = node.exp.doit()
            if isinstance(exponent, Rational) and int(exponent.q).bit_length() > _MAX_ROOT_DEGREE_BITS:
                return True
    return False


def _exactly(expr: Basic) -> Basic:
    """Decimals read as the exact decimals they are (0.5 as 1/2)."""
    return expr.xreplace({f: Rational(str(f)) for f in expr.atoms(Float)})


def _exact_value(expr: Basic) -> Rational | None:
    """The exact rational value of a numeric expression, or None when it is not rational or too
    costly to compute."""
    if not isinstance(expr, sympy.Expr) or expr.free_symbols or not _cheap_to_evaluate(expr):
        return None
    value = _exactly(expr).doit()
    return value if isinstance(value, Rational) else None


def _terminates(value: Rational) -> bool:
    """Whether the decimal expansion of a rational ends (denominator 2^a 5^b)."""
    return _places(value) is not None


def _places(value: Rational) -> int | None:
    """The decimal places a terminating rational is written with (3/8 = 0.375: 3), else None."""
    q, twos, fives = int(value.q), 0, 0
    while q % 2 == 0:
        q, twos = q // 2, twos + 1
    while q % 5 == 0:
        q, fives = q // 5, fives + 1
    return max(twos, fives) if q == 1 else None


def _decimal_places(text: str) -> int | None:
    match = _PLAIN_DECIMAL.fullmatch(text)
    return len(match.group(1)) if match else None


def _short(value: Any) -> str:
    if isinstance(value, Rational) and max(int(value.p).bit_length(), int(value.q).bit_length()) > 100:
        return f"~{sympy.N(value, 8)}"  # str() of a 5,000-digit integer raises (int_max_str_digits)
    text = str(value)
    return text if len(text) <= 40 else f"{text[:18]}...{text[-18:]}"


def _relation_as_set(expr: Any, either: bool = False) -> Any:
    """An inequality (or a chain / conjunction of them) in one variable as the set of reals it
    describes: `-2 \\le x \\le 7` -> [-2, 7], `1 \\le |z| \\le 3/2` -> [-3/2, -1] U [1, 3/2],
    `0 < f(x) < 1` -> (0, 1), `x < 0 or x > 2` -> a union. `x \\in S` is S. Anything else comes
    back unchanged."""
    if isinstance(expr, sympy.Eq) and isinstance(expr.lhs, sympy.Symbol) and isinstance(expr.rhs, sympy.Set):
        return expr.rhs
    if either and isinstance(expr, FiniteSet) and len(expr.args) > 1:
        # math-verify reads "x < -1 or x > 1" as the list {x < -1, x > 1}.
        sets = [_relation_as_set(a) for a in expr.args]
        if all(isinstance(a, sympy.Set) for a in sets):
            return Union(*sets)
        return expr
    relations = (sympy.StrictLessThan, sympy.LessThan, sympy.StrictGreaterThan, sympy.GreaterThan, sympy.Ne)
    parts = expr.args if isinstance(expr, sympy.And | sympy.Or) else (expr,)
    if not parts or not all(isinstance(p, relations) for p in parts):
        return expr
    applied = expr.atoms(sympy.core.function.AppliedUndef)
    variables = applied if applied else expr.free_symbols
    if len(variables) != 1 or (applied and expr.free_symbols - next(iter(applied)).free_symbols):
        return expr
    real = sympy.Dummy("t", real=True)
    try:
        return expr.xreplace({next(iter(variables)): real}).as_set()
    except (NotImplementedError, TypeError, ValueError):
        return expr


def _with_imaginary_unit(gold: Any, pred: Any) -> tuple[Any, Any]:
    """`i` as the imaginary unit when it is the only symbol of both answers (`i(2-i)` = `1+2i`)."""
    symbols: set[sympy.Symbol] = set()
    for expr in (gold, pred):
        if not isinstance(expr, sympy.Expr):
            return gold, pred
        symbols |= expr.free_symbols
    # The parser gives `i` assumptions of its own (not real), so it is found by name.
    if {str(s) for s in symbols} != {_IMAGINARY_UNIT}:
        return gold, pred
    unit = dict.fromkeys(symbols, sympy.I)
    return gold.xreplace(unit), pred.xreplace(unit)


def _rounded(value: Rational, places: int) -> Rational:
    unit = Rational(1, 10**places)
    return Integer(math.floor(value / unit + Rational(1, 2))) * unit


class _Guard:
    """Finds the "equal" verdicts that are not."""

    def __init__(self, float_rounding: int) -> None:
        self.tolerance = 10.0**-float_rounding

    def check(self, gold: Basic, gold_text: str, pred: Basic, pred_text: str) -> str | None:
        """A reason the two differ, or None when nothing contradicts the "equal"."""
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
        if isinstance(gold, Union) and isinstance(pred, Union):
            if len(gold.args) != len(pred.args):
                return "different numbers of intervals"
            pairs = zip(sorted(gold.args, key=sympy.default_sort_key), sorted(pred.args, key=sympy.default_sort_key),
                        strict=True)
            return next((r for g, p in pairs if (r := self._compare(g, "", p, ""))), None)
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
            return self._compare_exact(gold, gold_exact, pred, pred_exact)
        return self._compare_inexact(gold, gold_text, pred, pred_text)

    @staticmethod
    def _compare_exact(gold: sympy.Expr, gold_exact: Rational, pred: sympy.Expr, pred_exact: Rational) -> str | None:
        if gold_exact == pred_exact:
            return None
        reason = f"exact values differ: {_short(gold_exact)} vs {_short(pred_exact)}"
        if gold.has(Float) == pred.has(Float):
            return reason
        # One side is a decimal, the other a fraction: 0.333333 stands for 1/3 when it is 1/3
        # rounded or cut at its own last digit (2.3148148\times10^{-3} for 1/432 too). A fraction
        # with a finite expansion must match exactly.
        rational, decimal = (gold_exact, pred_exact) if pred.has(Float) else (pred_exact, gold_exact)
        places = _places(decimal)
        if places is None or _terminates(rational) or (decimal >= 0) != (rational >= 0):
            return reason
        unit = Rational(1, 10**places)
        cut = Integer(math.floor(abs(rational) / unit)) * unit
        if abs(decimal) in (cut, _rounded(abs(rational), places)):
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

    @staticmethod
    def _compare_at_point(gold: sympy.Expr, pred: sympy.Expr) -> str | None:
        """Expressions in variables: compare their values at a sample point, exactly when rational."""
        if gold.free_symbols != pred.free_symbols:
            return "different variables: " + ", ".join(sorted(map(str, gold.free_symbols ^ pred.free_symbols)))
        return _differ_at(gold, pred, _SAMPLE_POINT)


def _differ_at(gold: sympy.Expr, pred: sympy.Expr, sample: tuple[Rational, ...]) -> str | None:
    """Where two expressions in the same variables differ at the point `sample`; None when they
    agree there (or cannot be evaluated there)."""
    symbols = sorted(gold.free_symbols | pred.free_symbols, key=str)
    if len(symbols) > len(sample) or not (_cheap_to_evaluate(gold) and _cheap_to_evaluate(pred)):
        return None
    point = dict(zip(symbols, sample, strict=False))
    gold_at, pred_at = _exactly(gold).subs(point), _exactly(pred).subs(point)
    gold_exact, pred_exact = _exact_value(gold_at), _exact_value(pred_at)
    where = ", ".join(f"{s}={v}" for s, v in point.items())
    if gold_exact is not None and pred_exact is not None:
        return None if gold_exact == pred_exact else f"differ at {where}"
    gold_value, pred_value = sympy.N(gold_at, 50), sympy.N(pred_at, 50)
    if not (gold_value.is_finite and pred_value.is_finite and gold_value.is_number and pred_value.is_number):
        return None
    scale = max(abs(gold_value), abs(pred_value), 1)
    return None if abs(gold_value - pred_value) <= _RELATIVE_EQUALITY * scale else f"differ at {where}"


def _equal_by_value(gold: Any, pred: Any, float_rounding: int) -> bool:
    """A second opinion where math-verify says "not equal": two plain expressions are equal if they
    agree at two sample points (in the same variables, taken positive unless a function of the sign
    appears), or, for numbers, if they agree rounded to
    `float_rounding` places after evaluation (math-verify rounds a decimal before it scales it, so
    2.3148148\\times10^{-3} misses 1/432). The guard still checks every such "equal"."""
    if not (isinstance(gold, sympy.Expr) and isinstance(pred, sympy.Expr)):
        return False
    if isinstance(gold, sympy.Symbol) or isinstance(pred, sympy.Symbol) or _is_percent(gold) or _is_percent(pred):
        return False
    if not (_cheap_to_evaluate(gold) and _cheap_to_evaluate(pred)):
        return False
    if gold.free_symbols or pred.free_symbols:
        if gold.free_symbols != pred.free_symbols:
            return False
        second = _SIGNED_POINT if gold.has(*_SIGN_SENSITIVE) or pred.has(*_SIGN_SENSITIVE) else _SECOND_POINT
        return _differ_at(gold, pred, _SAMPLE_POINT) is None and _differ_at(gold, pred, second) is None \
            and _evaluates(gold, _SAMPLE_POINT)
    gold_value, pred_value = sympy.N(_exactly(gold), 30), sympy.N(_exactly(pred), 30)
    if not (gold_value.is_number and pred_value.is_number and gold_value.is_finite and pred_value.is_finite):
        return False
    if not (gold_value.is_extended_real and pred_value.is_extended_real):
        return abs(gold_value - pred_value) <= _RELATIVE_EQUALITY * max(abs(gold_value), abs(pred_value), 1)
    scale = 10**float_rounding
    return math.floor(gold_value * scale + 0.5) == math.floor(pred_value * scale + 0.5)


def _evaluates(expr: sympy.Expr, sample: tuple[Rational, ...]) -> bool:
    """Whether an expression has a finite value at the sample point (so agreeing there means something)."""
    symbols = sorted(expr.free_symbols, key=str)
    value = sympy.N(_exactly(expr).subs(dict(zip(symbols, sample, strict=False))), 20)
    return bool(value.is_number and value.is_finite)


class MathVerifier(Verifier):
    name = "math"
    version = "3"

    def __init__(self, float_rounding: int = 6) -> None:
        self.float_rounding = float_rounding
        self._guard = _Guard(float_rounding)

    @staticmethod
    def _parse(expression: str) -> list[Any]:
        # Timeouts off: math-verify's signal-based ones fail outside the main thread; the worker
        # process running us is killed on a wall-clock deadline instead.
        parsed = parse(
            f"\\boxed{{{expression}}}",
            extraction_config=_PARSE_CONFIG,
            fallback_mode="no_fallback",
            parsing_timeout=None,
        )
        either = bool(_EITHER.search(expression))
        return [_relation_as_set(p, either) if isinstance(p, Basic) else p for p in parsed]

    def prepare_gold(self, answer: str | None, tests: str | None) -> MathGold:
        if not answer or not answer.strip():
            raise GoldError("no gold answer")
        # A gold may be a whole worked solution; its box (or final-answer statement) is the answer.
        read = read_math_answer(last_boxed(answer) or extract_final_answer(answer) or answer)
        parsed = [] if read.words is not None else self._parse(read.text)
        if read.words is None and _first_expr(parsed) is None:
            raise GoldError(f"gold answer {answer!r} does not parse")
        return MathGold(answer=read, parsed=parsed)

    def check(self, gold: MathGold, response: str) -> tuple[VerdictLabel, str | None, str]:
        extracted = extract_final_answer(response)
        if extracted is None:
            return "invalid", None, "no final answer (\\boxed{}, 'the answer is' or 'Answer:' after </think>)"
        pred = read_math_answer(extracted)
        if gold.answer.unit and pred.unit and gold.answer.unit != pred.unit:
            return "incorrect", extracted, f"units differ: {gold.answer.unit} vs {pred.unit}"
        if _squeezed(pred.text) == _squeezed(gold.text):
            return "correct", extracted, ""
        if gold.answer.clock and pred.clock:
            return "incorrect", extracted, "different clock times"
        if gold.answer.words is not None or pred.words is not None:
            same = gold.answer.words == pred.words
            return ("correct" if same else "incorrect"), extracted, "" if same else "compared as words"
        predicted = self._parse(pred.text)
        pred_expr = _first_expr(predicted)
        if pred_expr is None:
            return "invalid", extracted, "final answer does not parse"
        gold_expr = _first_expr(gold.parsed)
        if _huge_root(gold_expr) or _huge_root(pred_expr):
            return "invalid", extracted, "a root of too high a degree to compare"
        gold_expr, pred_expr = _with_imaginary_unit(gold_expr, pred_expr)
        equal = verify([gold_expr], [pred_expr], float_rounding=self.float_rounding, timeout_seconds=None)
        if not equal and not _equal_by_value(gold_expr, pred_expr, self.float_rounding):
            return "incorrect", extracted, ""
        reason = self._guard.check(gold_expr, gold.text, pred_expr, pred.text)
        if reason:
            opinion = "math-verify said equal" if equal else "equal by value"
            return "incorrect", extracted, f"{opinion}; {reason}"
        return "correct", extracted, ""


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)
