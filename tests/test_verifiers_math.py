"""MathVerifier: tables of equivalent and non-equivalent answers (every known math-verify false
positive among them), and the answers it must refuse to read."""

from __future__ import annotations

import pytest

from distillery.operators.verifiers.base import GoldError
from distillery.operators.verifiers.math import MathVerifier, normalize_math_answer

VERIFIER = MathVerifier()

EQUIVALENT = [
    (r"\frac12", "0.5"),
    (r"\frac13", "0.333333"),
    (r"\frac23", "0.666667"),
    (r"-\frac13", "-0.333333"),
    ("0.1", r"\frac{1}{10}"),
    ("1.5", r"\frac{3}{2}"),
    (r"\dfrac{3}{4}", "0.75"),
    (r"\tfrac{3}{4}", r"\frac34"),
    (r"\sqrt{8}", r"2\sqrt{2}"),
    (r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}"),
    ("10000", "10{,}000"),
    ("10000", r"10\,000"),
    ("10000", "10,000"),
    ("30", r"30^\circ"),
    ("30", r"30^{\circ}"),
    ("30", "30°"),
    ("5", r"\$5"),
    ("5", r"5 \text{ cm}"),
    ("4", "x = 4"),
    ("9", r"9\%"),
    (r"50\%", "50"),
    (r"12\frac{3}{5}", r"\frac{63}{5}"),
    (r"\pi", "3.14159265"),
    (r"\pi", "3.141593"),
    (r"\frac{\sqrt2}{100}", "0.014142"),
    (r"x^2+2x+1", "(x+1)^2"),
    (r"1-\frac{1}{\mathrm{e}}", r"1-\frac{1}{e}"),
    (r"1-\frac{1}{\mathrm{e}}", r"\frac{e-1}{e}"),
    (r"\frac{1}{\text{e}}", "e^{-1}"),
    (r"\operatorname{lcm}(4,6)", "12"),
    ("[1,2)", "[1,2)"),
    ("(1,2)", "(1,2)"),
    (r"(-\infty,1)\cup(2,\infty)", r"(-\infty, 1) \cup (2, \infty)"),
    (r"\{1,2\}", r"\{2,1\}"),
    ("2, 3", r"\{3, 2\}"),
    (r"\begin{pmatrix}1\\2\end{pmatrix}", r"\begin{pmatrix}1\\2\end{pmatrix}"),
    (r"\text{Monday}", r"\text{Monday}"),
    (r"\frac{1}{2004!}", r"\frac{1}{2004!}"),
    (r"\frac{1}{(10^{9})!}", r"\frac{1}{(10^{9})!}"),
    (r"\frac{1}{2^{2^{7}}}", "2^{-128}"),
    (r"(10^{1000})^{3}", "10^{3000}"),
]

NOT_EQUIVALENT = [
    # math-verify's known false positives (ENVIRONMENT.md)
    (r"\frac{1}{2004!}", r"\frac{1}{2006!}"),
    (r"\frac{1}{2^{99}}", r"\frac{1}{2^{98}}"),
    ("0.1234567", "0.1234568"),
    (r"1-\frac{1}{\mathrm{e}}", r"1+\frac{1}{\mathrm{e}}"),
    # the same mechanisms elsewhere
    ("10^{-30}", "10^{-31}"),
    (r"\frac{1}{2^{2^{7}}}", r"\frac{1}{2^{2^{7}+1}}"),
    ("3.14159265", "3.14159266"),
    (r"e^{-100}", r"e^{-101}"),
    (r"e^{-100}", "0.000000"),
    (r"x + 10^{-20}", "x"),
    (r"2\pi\mathrm{i}", r"2\pi"),
    (r"\frac13", "0.3333334"),
    (r"\frac13", "0.3333"),
    (r"\frac23", "0.666666"),
    (r"\frac13", "-0.333333"),
    ("10^{30}", "10^{30}+1"),
    ("123456789", "123456788"),
    # kinds: open vs closed intervals, sets vs tuples
    ("(1,2)", "[1,2]"),
    ("[1,2)", "[1,2]"),
    (r"(-\infty, 3)", r"(-\infty, 3]"),
    (r"\{1,2\}", "(1,2)"),
    ("(1,2)", r"\{1,2\}"),
    (r"\text{Monday}", r"\text{Tuesday}"),
    ("5", "6"),
]


@pytest.mark.parametrize(("gold", "answer"), EQUIVALENT)
def test_equivalent_answers_are_correct(gold: str, answer: str) -> None:
    label, extracted, detail = VERIFIER.check(VERIFIER.prepare_gold(gold, None), f"So we get \\boxed{{{answer}}}.")
    assert (label, extracted) == ("correct", answer), detail


@pytest.mark.parametrize(("gold", "answer"), NOT_EQUIVALENT)
def test_different_answers_are_incorrect(gold: str, answer: str) -> None:
    label, extracted, detail = VERIFIER.check(VERIFIER.prepare_gold(gold, None), f"\\boxed{{{answer}}}")
    assert (label, extracted) == ("incorrect", answer), detail


def test_guard_says_why_it_overrode_math_verify() -> None:
    _, _, detail = VERIFIER.check(VERIFIER.prepare_gold("0.1234567", None), r"\boxed{0.1234568}")
    assert detail.startswith("math-verify said equal; exact values differ: 1234567/10000000")


def test_no_final_answer_is_invalid_not_incorrect() -> None:
    gold = VERIFIER.prepare_gold("42", None)
    label, extracted, _ = VERIFIER.check(gold, "We add 40 and 2, which gives 42 apples in total.")
    assert (label, extracted) == ("invalid", None)


def test_unparseable_final_answer_is_invalid() -> None:
    label, _, detail = VERIFIER.check(VERIFIER.prepare_gold("42", None), r"\boxed{\frac{}{}}")
    assert (label, detail) == ("invalid", "final answer does not parse")


def test_unclosed_think_block_has_no_answer() -> None:
    gold = VERIFIER.prepare_gold("6", None)
    assert VERIFIER.check(gold, "<think>so it is \\boxed{6} maybe")[0] == "invalid"


def test_gold_from_a_worked_solution_uses_its_box() -> None:
    gold = VERIFIER.prepare_gold(r"We compute $2+2$ and get $\boxed{4}$.", None)
    assert VERIFIER.check(gold, r"\boxed{4}")[0] == "correct"


@pytest.mark.parametrize("answer", [None, "", "   ", r"\frac{}{}"])
def test_unusable_gold_raises_gold_error(answer: str | None) -> None:
    with pytest.raises(GoldError):
        VERIFIER.prepare_gold(answer, None)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        (r"$1-\frac{1}{\mathrm{e}}$", r"1-\frac{1}{e}"),
        (r"\frac{5}{\text{cm}}", r"\frac{5}{{cm}}"),
        (r"10\,000", "10000"),
        (r"45^{\circ}", "45"),
        (r"2\pi \mathrm{i}", r"2\pi i"),
    ],
)
def test_normalization_keeps_what_math_verify_would_cut(raw: str, normalized: str) -> None:
    assert normalize_math_answer(raw) == normalized
