from __future__ import annotations

import pytest

from distillery.operators.teachers.think_split import split_think


@pytest.mark.parametrize(
    ("text", "reasoning", "answer", "well_formed"),
    [
        ("<think>\nadd them\n</think>\n\nThe answer is \\boxed{5}.", "add them", "The answer is \\boxed{5}.", True),
        ("add them\n</think>\n\n\\boxed{5}", "add them", "\\boxed{5}", True),  # <think> was in the prompt
        ("2 + 3 = 5", "", "2 + 3 = 5", False),  # a model that writes no tags
        ("<think>\nstill thinking when max_tokens hit", "still thinking when max_tokens hit", "", False),
        ("<think>a</think><think>b</think>answer", "a</think><think>b", "answer", False),
        ("preamble <think>r</think>answer", "r", "answer", False),
        ("", "", "", False),
    ],
)
def test_split_think(text, reasoning, answer, well_formed):
    split = split_think(text)
    assert (split.reasoning, split.answer, split.well_formed) == (reasoning, answer, well_formed)
