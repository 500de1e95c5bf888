"""ChoiceVerifier (option letters A-J) and ExactVerifier (short factual answers)."""

from __future__ import annotations

import pytest

from distillery.operators.verifiers.base import GoldError
from distillery.operators.verifiers.choice import ChoiceVerifier
from distillery.operators.verifiers.exact import ExactVerifier, normalize_answer

CHOICE = ChoiceVerifier()

CHOICE_READS = [
    (r"So the result is $\boxed{B}$.", "B"),
    (r"\boxed{\text{(C)}}", "C"),
    (r"\boxed{(D) 42}", "D"),
    ("Comparing the options, the answer is (B).", "B"),
    ("The correct answer is **C**.", "C"),
    ("Option A ignores friction, so the answer is B.", "B"),
    ("Answer: E", "E"),
    ("After weighing all four, I pick **(A)**", "A"),
    ("Final answer: J", "J"),
    ("Let me think.\n\n(G)", "G"),
    ("<think>maybe the answer is A</think>\nThe answer is D.", "D"),
    ("The answer is A. Wait, re-reading option C... the answer is C.", "C"),
]

CHOICE_NONE = [
    "Option A is wrong, and option B seems plausible.",
    "The answer is a prime number.",
    "I think it depends on the context.",
    "<think>the answer is B",
]


@pytest.mark.parametrize(("response", "letter"), CHOICE_READS)
def test_choice_reads_final_forms(response: str, letter: str) -> None:
    assert CHOICE.extract(response) == letter


@pytest.mark.parametrize("response", CHOICE_NONE)
def test_choice_ignores_letters_in_prose(response: str) -> None:
    assert CHOICE.extract(response) is None


def test_choice_verdicts() -> None:
    gold = CHOICE.prepare_gold("(b)", None)
    assert CHOICE.check(gold, "The answer is B.")[:2] == ("correct", "B")
    assert CHOICE.check(gold, "The answer is C.")[:2] == ("incorrect", "C")
    assert CHOICE.check(gold, "Hard to say.")[0] == "invalid"


@pytest.mark.parametrize("gold", ["", "BC", "K", "42", None])
def test_choice_gold_must_be_one_allowed_letter(gold: str | None) -> None:
    with pytest.raises(GoldError):
        CHOICE.prepare_gold(gold, None)


def test_choice_letters_are_configurable() -> None:
    verifier = ChoiceVerifier(letters="ABCD")
    assert verifier.extract("The answer is E.") is None
    with pytest.raises(GoldError):
        verifier.prepare_gold("E", None)


EXACT = ExactVerifier()


@pytest.mark.parametrize(
    ("gold", "response", "label"),
    [
        ("Paris", "Paris", "correct"),
        ("Paris", "The answer is paris.", "correct"),
        ("The Beatles", r"\boxed{\text{Beatles}}", "correct"),
        ('["Mount Everest", "Everest"]', "Answer: everest", "correct"),
        ("Paris", "The answer is Lyon.", "incorrect"),
        ("Paris", "I am not sure; it could be\nParis or Lyon.", "invalid"),
        ("Paris", "<think>It is Paris.", "invalid"),
    ],
)
def test_exact_normalized_match(gold: str, response: str, label: str) -> None:
    assert EXACT.check(EXACT.prepare_gold(gold, None), response)[0] == label


def test_exact_without_normalization_is_strict() -> None:
    strict = ExactVerifier(normalize=False)
    gold = strict.prepare_gold("Paris", None)
    assert strict.check(gold, "Paris")[0] == "correct"
    assert strict.check(gold, "paris")[0] == "incorrect"


def test_exact_long_reply_without_final_form_is_invalid() -> None:
    verifier = ExactVerifier(max_answer_chars=10)
    assert verifier.check(verifier.prepare_gold("Paris", None), "It is the capital, Paris")[0] == "invalid"


def test_normalize_answer() -> None:
    assert normalize_answer("  The  Eiffel-Tower! ") == "eiffeltower"
    assert normalize_answer(r"$\text{An apple}$") == "apple"


@pytest.mark.parametrize("gold", [None, " ", "!!!"])
def test_exact_unusable_gold(gold: str | None) -> None:
    with pytest.raises(GoldError):
        EXACT.prepare_gold(gold, None)
