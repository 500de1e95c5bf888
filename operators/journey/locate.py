"""Where a wrong attempt first goes wrong.

- `locate_by_comparison` (no model): the first step that states a false piece of arithmetic, gives a
  name a value the correct sample contradicts, or produces the attempt's wrong final value (a value
  neither the correct sample nor the gold holds).
- the critic: a teacher reads the problem, the gold answer and the numbered steps and names the
  first wrong step and the error in one sentence. Its reply is parsed strictly: anything but one
  `STEP <n>: <sentence>` line locates nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from distillery.operators.journey.claims import (
    agrees,
    assignments,
    equations,
    format_number,
    normalize_math,
    numbers,
    same_number,
    spoken,
)
from distillery.operators.journey.steps import Step

CRITIC_PROMPT_VERSION = "journey-critic@1"
CRITIC_MAX_STATEMENT_CHARS = 300
_CRITIC_REPLY = re.compile(r"STEP\s+(\d+)\s*:\s*(\S[^\n]*)")
_INNER_SENTENCE_END = re.compile(r"[.!?]\s+[A-Z]")
_PLAIN_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")


@dataclass(frozen=True, slots=True)
class Location:
    step: Step
    statement: str
    """What is wrong, as a clause ("7 × 8 is 56, not 54")."""
    claim: str
    """The wrong step's claim the error is about (the wrong value, as stated)."""
    correction: str | None
    """The right value, when the locator knows it."""
    locator: str


def _assigned(text: str) -> dict[str, set[str]]:
    values: dict[str, set[str]] = {}
    for assignment in assignments(text):
        values.setdefault(assignment.name, set()).add(format_number(float(assignment.stated)))
    return values


def numeric_answer(answer: str | None) -> str | None:
    """The answer as one plain number (`\\boxed{54}`, `54`, `1{,}000`), else None."""
    if answer is None:
        return None
    plain = normalize_math(answer).replace("\\boxed", "").strip().strip("()").strip()
    return plain if _PLAIN_NUMBER.match(plain) else None


def locate_by_comparison(
    steps: list[Step],
    *,
    problem: str,
    reference: str | None,
    gold: str | None,
    wrong_answer: str | None,
) -> Location | None:
    """`reference` is the correct sample's working (None when there is none: the gold alone decides);
    `wrong_answer` the value the verifier extracted from the wrong attempt."""
    reference_values = _assigned(reference) if reference else {}
    known = set(numbers(reference)) if reference else set()
    gold_value = numeric_answer(gold)
    if gold_value is not None:
        known.add(gold_value)
    wrong_value = numeric_answer(wrong_answer)
    if wrong_value is not None and (
        any(same_number(wrong_value, k) for k in known) or any(same_number(wrong_value, n) for n in numbers(problem))
    ):
        # The wrong value is also a value of the right working or of the problem: it locates nothing.
        wrong_value = None
    for step in steps:
        for equation in equations(step.text):
            if not equation.holds:
                right = format_number(equation.value)
                return Location(
                    step,
                    f"{spoken(equation.expression)} is {right}, not {equation.stated}",
                    equation.stated,
                    right,
                    "compare",
                )
        for assignment in assignments(step.text):
            expected = reference_values.get(assignment.name, set())
            if len(expected) == 1:
                (right,) = expected
                if not agrees(float(right), assignment.stated):
                    return Location(
                        step,
                        f"{assignment.name} should be {right}, not {assignment.stated}",
                        assignment.stated,
                        right,
                        "compare",
                    )
        if wrong_value is not None and any(same_number(wrong_value, n) for n in numbers(step.text)):
            return Location(step, f"{wrong_value} cannot be right here", wrong_value, None, "compare")
    return None


def critic_messages(problem: str, gold: str | None, steps: list[Step]) -> list[dict[str, str]]:
    numbered = "\n\n".join(f"[{s.number}] {s.text}" for s in steps)
    gold_line = f"The correct final answer is: {gold}\n\n" if gold else ""
    return [
        {
            "role": "user",
            "content": (
                "A student's solution to the problem below reaches a wrong final answer. Find the FIRST step "
                "that contains an error.\n\n"
                f"Problem:\n{problem}\n\n{gold_line}"
                f"The solution, in numbered steps:\n{numbered}\n\n"
                "Reply with exactly one line and nothing else, in this form:\n"
                "STEP <number>: <one sentence that states the error and what the right result is>"
            ),
        }
    ]


def parse_critic_reply(reply: str, steps: list[Step]) -> Location | None:
    """The critic's finding, or None for an unclear reply (not exactly one well-formed line, a step
    that does not exist, more than one sentence, an empty or over-long statement)."""
    match = _CRITIC_REPLY.fullmatch(reply.strip())
    if match is None:
        return None
    number, statement = int(match.group(1)), match.group(2).strip()
    if not 1 <= number <= len(steps) or len(statement) > CRITIC_MAX_STATEMENT_CHARS:
        return None
    if _INNER_SENTENCE_END.search(statement.rstrip(".!?")) or len(statement.rstrip(".!? ")) < 3:
        return None
    step = steps[number - 1]
    in_step = numbers(step.text)
    stated = numbers(statement)
    # The claim is the value the critic names that the step states as a result (`7 * 8 = 54`: 54),
    # else the last one it names from the step, else the whole step.
    results = [e.stated for e in equations(step.text)] + [a.stated for a in assignments(step.text)]
    named = [n for n in stated if any(same_number(n, s) for s in in_step)]
    claim = next((n for n in named if any(same_number(n, r) for r in results)), named[-1] if named else step.text)
    correction = next((n for n in stated if not any(same_number(n, s) for s in in_step)), None)
    return Location(step, statement.rstrip("."), claim, correction, "critic")
