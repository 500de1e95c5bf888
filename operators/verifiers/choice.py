"""Multiple choice: read the option letter the response settles on, compare it with the gold letter.

Final forms read (the last one wins): `\\boxed{B}` (also `\\boxed{\\text{(B)}}`, `\\boxed{B) 42}`),
"the answer is (B)" / "Answer: B" / "the correct option is B", a bold "**B**" / "**(B)**", and a
last line that is only the letter ("(B)", "B."). A letter inside prose ("option A is wrong") is
never read as the answer.
"""

from __future__ import annotations

import re

from distillery.operators.verifiers.answer_extraction import final_answer_region, last_boxed
from distillery.operators.verifiers.base import GoldError, Verifier
from distillery.schemas.records import VerdictLabel

_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mathit|textit)\s*\{([^{}]*)\}")


class ChoiceVerifier(Verifier):
    name = "choice"
    version = "1"

    def __init__(self, letters: str = "ABCDEFGHIJ") -> None:
        self.letters = letters
        cls = f"[{re.escape(letters)}]"
        # The letter alone, possibly in parentheses, then nothing but punctuation or an option text.
        self._letter_alone = re.compile(rf"^\(?({cls})\)?(?:[.:)]?(?:\s.*)?)$", re.DOTALL)
        # Words match in any case; the letter only in upper case ("the answer is a prime" is no "A").
        self._patterns = [
            re.compile(
                rf"(?i:\b(?:final\s+)?(?:answer|option|choice)\s+(?:is|would\s+be|will\s+be)\s*:?\s*"
                rf"(?:\*\*)?(?:option\s+|choice\s+)?)\(?({cls})\)?(?:\*\*)?(?![A-Za-z0-9])"
            ),
            re.compile(
                rf"(?:^|\n)[ \t>*#_]*(?i:(?:final\s+)?answer)[ \t*_]*[:：][ \t*_]*(?i:option\s+|choice\s+)?"
                rf"\(?({cls})\)?(?![A-Za-z0-9])"
            ),
            re.compile(rf"\*\*\s*\(?({cls})\)?[.:]?\s*\*\*"),
            re.compile(rf"(?:^|\n)[ \t]*\(?({cls})\)?[.)]?[ \t]*$"),
        ]

    def prepare_gold(self, answer: str | None, tests: str | None) -> str:
        letter = (answer or "").strip().strip("()").strip().upper()
        if len(letter) != 1 or letter not in self.letters:
            raise GoldError(f"gold {answer!r} is not one of the letters {self.letters}")
        return letter

    def extract(self, response: str) -> str | None:
        """The chosen letter, or None when the response commits to none."""
        region = final_answer_region(response)
        if region is None:
            return None
        found: list[tuple[int, str]] = []
        boxed = last_boxed(region)
        if boxed is not None:
            inner = _WRAPPERS.sub(r"\1", boxed).strip()
            match = self._letter_alone.match(inner)
            if match:
                found.append((region.rfind(boxed), match.group(1)))
        for pattern in self._patterns:
            for match in pattern.finditer(region):
                found.append((match.start(1), match.group(1)))
        return max(found)[1] if found else None

    def check(self, gold: str, response: str) -> tuple[VerdictLabel, str | None, str]:
        letter = self.extract(response)
        if letter is None:
            return "invalid", None, f"no chosen option ({self.letters[0]}-{self.letters[-1]}) in a final form"
        return ("correct" if letter == gold else "incorrect"), letter, ""
