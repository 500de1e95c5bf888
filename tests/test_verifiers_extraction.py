"""Final-answer extraction from realistic responses: only explicit final forms, never the last number."""

from __future__ import annotations

import pytest

from distillery.operators.verifiers.answer_extraction import extract_final_answer, final_answer_region, last_boxed

LONG_REASONING = r"""To find the area, we first need the side length. The perimeter is $48$, so each side is
$48 / 4 = 12$. Let's double-check: $4 \times 12 = 48$. Good.

Now, the area of a square is side squared:
\[
12^2 = 144
\]

Hmm, but the question asks for the area of the shaded region, which is the square minus the circle
of radius $6$: $144 - 36\pi$. Numerically that's about $30.9$.

Therefore, the area of the shaded region is \(\boxed{144 - 36\pi}\)."""

CASES = [
    ("long reasoning, one box at the end", LONG_REASONING, r"144 - 36\pi"),
    ("intermediate boxes: the last one counts",
     r"First, $\boxed{12}$ is the side. Then the area is $\boxed{144}$.", "144"),
    ("adjacent boxes form one answer", r"The solutions are $\boxed{2}$ and $\boxed{3}$.", "2, 3"),
    ("adjacent boxes with a comma", r"$x = \boxed{-1}, \boxed{4}$", "-1, 4"),
    ("nested braces", r"So $\cos 30^\circ = \boxed{\frac{\sqrt{3}}{2}}$.", r"\frac{\sqrt{3}}{2}"),
    ("fbox", r"Hence \fbox{$\dfrac{1}{2}$}.", r"$\dfrac{1}{2}$"),
    ("only the part after </think>", "<think>Maybe \\boxed{5}? No...</think>\nThe answer is 6.", "6"),
    ("think tags: the answer part's box", "<think>2+2... is it 5? no.</think>\n\n$\\boxed{4}$", "4"),
    ("demo teacher style", "2 + 3 = 5. The answer is 5.", "5"),
    ("demo teacher, no period", "We get 6 in total, so the answer is 6", "6"),
    ("GSM8K style", "She has 3 + 2 = 5 apples.\n#### 5", "5"),
    ("Minerva style", "Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.", r"\frac{1}{2}"),
    ("markdown final answer", "Adding up the parts...\n\n**Final Answer:** 12", "12"),
    ("answer line", "Step 1: ...\nStep 2: ...\nAnswer: 7", "7"),
    ("the answer is, with a math span", r"Thus the answer is $x = 4$ because the line crosses there.", "x = 4"),
    ("a statement after the last box wins", r"So $\boxed{5}$ at first... wait. So the answer is 6.", "6"),
    ("a statement inside a box does not",
     r"$\boxed{\text{the answer is } 5}$", r"\text{the answer is } 5"),
    ("decimal in a statement", "The final answer is 3.5.", "3.5"),
    ("a sentence as the final answer: its value", "Final Answer: The largest $n$ is 34.", "34"),
    ("a sentence with a math span", "Final Answer: The area of the square is $144$.", "$144$"),
    ("boxes in separate math spans joined by 'and'", r"so \(\boxed{1}\) and \(\boxed{-2}\).", "1, -2"),
    ("touching boxes", r"$\boxed{1}\boxed{2}$", "1, 2"),
]

NO_ANSWER = [
    ("numbers but no final form", "First 12, then 144. So 144 - 36 pi, about 30.9 square units."),
    ("an unclosed box", r"So we conclude: \boxed{5"),
    ("a statement with an unclosed box", r"The answer is \boxed{\frac{1}{2}"),
    ("a statement about an unclosed box", r"The answer is boxed: \boxed{5"),
    ("an answer only inside the reasoning", "<think>the answer is 5</think>"),
    ("an unclosed think block", "<think>the answer is \\boxed{5}"),
    ("an empty box", r"\boxed{}"),
]


@pytest.mark.parametrize(("name", "response", "expected"), CASES, ids=[c[0] for c in CASES])
def test_reads_the_final_answer(name: str, response: str, expected: str) -> None:
    assert extract_final_answer(response) == expected


@pytest.mark.parametrize(("name", "response"), NO_ANSWER, ids=[c[0] for c in NO_ANSWER])
def test_no_final_form_means_no_answer(name: str, response: str) -> None:
    assert extract_final_answer(response) is None


def test_final_answer_region() -> None:
    assert final_answer_region("<think>a</think>b</think>c") == "c"
    assert final_answer_region("plain") == "plain"
    assert final_answer_region("<think>never closed") is None


def test_last_boxed_keeps_far_apart_boxes_separate() -> None:
    text = r"We first find $\boxed{3}$ for the width; after a long computation of the height, $\boxed{7}$."
    assert last_boxed(text) == "7"


def test_boxes_apart_without_a_joining_word_stay_apart() -> None:
    assert last_boxed(r"$\boxed{12}$ $\boxed{144}$") == "144"
    assert last_boxed(r"\boxed{1} papers and \boxed{2} bins") == "2"
