"""Reading the final answer out of a response, the same way for every rule verifier.

Only explicit final forms count: a `\\boxed{...}` (or `\\fbox{...}`), an "(the final) answer is X" /
"Answer: X" statement, or a GSM8K-style "#### X" line, read from the part after `</think>`. There is
deliberately no "last number in the text" fallback: it turns guesses and intermediate results
into accepted answers.
"""

from __future__ import annotations

import re

from distillery.operators.teachers.think_split import THINK_CLOSE, THINK_OPEN

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)\s*\{")
# What may sit between two boxes that together form one answer: "\boxed{2}, \boxed{3}",
# "\(\boxed{1}\) and \(\boxed{-2}\)", "\boxed{1}\boxed{2}".
_BOX_SEPARATOR = re.compile(
    r"^(?:,|;|and|or|\\quad|\\qquad|\\text\{\s*(?:,|and|or)?\s*\}|\s|\$|\\[()\[\]]|\\[,;:!])*$"
)
# Boxes apart from one another (a space, a line, math delimiters) stay apart without a word joining them.
_BOX_SEPARATOR_HAS_WORD = re.compile(r",|;|\band\b|\bor\b")

# "The final answer is X", "the answer is: X", "Answer: X", "**Final Answer:** X", "#### X".
_STATEMENT = re.compile(
    r"(?:\b(?:the|my|our)\s+(?:final\s+|correct\s+)?answer\s+(?:is|would\s+be|will\s+be)\b\s*:?"
    r"|(?:^|\n)[ \t>*#_]*(?:final\s+)?answer[ \t*_]*[:：][ \t*_]*"
    r"|\bfinal\s+answer[ \t*_]*[:：][ \t*_]*"
    r"|(?:^|\n)[ \t]*####[ \t]*)",
    re.IGNORECASE,
)
_DELIMITED = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
# "The largest $n$ is 34": a sentence stated as the final answer, whose value follows its last "is".
_SENTENCE_VALUE = re.compile(r"^(?:the|a|an|our|this|that|its|their)\b.*\s(?:is|are|equals)\s+(\S.*)$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.(?:\s|$)|\n|;\s|,\s+(?:so|which|because|since|as|and\s+this)\b|\s+(?:because|since)\b")


def final_answer_region(response: str) -> str | None:
    """The part of a response that holds its final answer: after the last `</think>`, or all of it
    when there is no think block. None when a think block is opened and never closed (the
    generation stopped while still reasoning)."""
    if THINK_CLOSE in response:
        return response.rpartition(THINK_CLOSE)[2]
    if THINK_OPEN in response:
        return None
    return response


def _box_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every complete `\\boxed{...}`, nested braces included."""
    spans = []
    for match in _BOX_COMMAND.finditer(text):
        depth, pos = 1, match.end()
        while pos < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[pos], 0)
            pos += 1
        if depth == 0:
            spans.append((match.start(), pos, text[match.end() : pos - 1].strip()))
    return spans


def last_boxed(text: str) -> str | None:
    """Content of the last complete `\\boxed{...}` / `\\fbox{...}`; None if absent or never closed.

    Boxes right next to it, separated only by a comma or "and" (`\\boxed{2}, \\boxed{3}`), are one
    answer and come back joined: "2, 3".
    """
    spans = [s for s in _box_spans(text) if s[2]]
    if not spans:
        return None
    start, _, content = spans[-1]
    parts = [content]
    for prev_start, prev_end, prev_content in reversed(spans[:-1]):
        gap = text[prev_end:start]
        touching = gap == ""
        if prev_end > start or not _BOX_SEPARATOR.match(gap) or not (touching or _BOX_SEPARATOR_HAS_WORD.search(gap)):
            break
        parts.insert(0, prev_content)
        start = prev_start
    return ", ".join(parts)


def _statement_answer(rest: str) -> str | None:
    """The answer that follows an "answer is" phrase: a delimited math span, a box, or the words up
    to the end of the sentence."""
    rest = rest.lstrip(" \t*_:")
    boxed = _box_spans(rest)
    if boxed and boxed[0][0] == 0:
        return boxed[0][2] or None
    if _BOX_COMMAND.match(rest):
        return None  # a box never closed: the generation was cut off
    for opening, closing in _DELIMITED:
        if rest.startswith(opening):
            end = rest.find(closing, len(opening))
            if end > len(opening):
                return rest[len(opening) : end].strip() or None
            return None
    end = _SENTENCE_END.search(rest)
    answer = rest[: end.start()] if end else rest
    answer = answer.strip().strip("*_").strip()
    if _BOX_COMMAND.search(answer):
        return None  # "the answer is boxed: \boxed{5" - a box is the answer's form, and it is broken
    answer = answer.rstrip(".").strip()
    sentence = _SENTENCE_VALUE.match(answer)
    return (sentence.group(1).strip() if sentence else answer) or None


def final_statement(text: str) -> tuple[int, str] | None:
    """(position, answer) of the last explicit final-answer statement in `text`."""
    for match in reversed(list(_STATEMENT.finditer(text))):
        answer = _statement_answer(text[match.end() :])
        if answer:
            return match.start(), answer
    return None


def extract_final_answer(response: str) -> str | None:
    """The final answer of a response: the last `\\boxed{}` or explicit "the (final) answer is X" /
    "Answer: X" / "#### X" statement after `</think>`, whichever comes last. Never "the last number"."""
    region = final_answer_region(response)
    if region is None:
        return None
    spans = [s for s in _box_spans(region) if s[2]]
    statement = final_statement(region)
    # A statement after the last box wins ("... \boxed{5}. So the answer is 6."); one written
    # inside a box ("\boxed{\text{the answer is 5}}") does not.
    if statement is not None and (not spans or statement[0] >= spans[-1][1]):
        return statement[1]
    return last_boxed(region)
