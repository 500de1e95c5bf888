"""Split a completion into its chain of thought and its final answer."""

from __future__ import annotations

from dataclasses import dataclass

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


@dataclass(frozen=True, slots=True)
class ThinkSplit:
    reasoning: str
    answer: str
    well_formed: bool
    """Exactly one think block, closed, with nothing but whitespace before it."""


def split_think(text: str) -> ThinkSplit:
    """`<think>R</think>A` -> (R, A). Tolerates what teachers really emit:
    - no tags at all: empty reasoning, the whole text is the answer (not well formed);
    - a closing tag only (R1-style templates put `<think>` in the prompt): R is what precedes it;
    - an opening tag never closed (a truncated generation): all of it is reasoning, no answer.
    """
    opens, closes = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    if closes == 0:
        if opens == 0:
            return ThinkSplit(reasoning="", answer=text.strip(), well_formed=False)
        head, _, rest = text.partition(THINK_OPEN)
        return ThinkSplit(reasoning=rest.strip(), answer="", well_formed=False)
    # The answer follows the last closing tag; everything before it is reasoning.
    before, _, answer = text.rpartition(THINK_CLOSE)
    head, found, reasoning = before.partition(THINK_OPEN)
    if not found:
        reasoning, head = before, ""
    well_formed = opens <= 1 and closes == 1 and not head.strip()
    return ThinkSplit(reasoning=reasoning.strip(), answer=answer.strip(), well_formed=well_formed)
