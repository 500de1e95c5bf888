"""Language mixing (R1): the reasoning and answer must stay in the prompt's script.

The expected scripts are those the prompt is written in (any script holding a real share of it,
so a prompt that quotes a foreign phrase allows that script); a prompt with almost no words
("2+3=?") takes the response's own main script. What the response writes in other scripts is the
foreign share. Scripts, not languages, are compared: English against French is not detected.
"""

from __future__ import annotations

import re
from collections import Counter

from distillery.operators.filters.base import SampleFilter
from distillery.operators.text import script_words
from distillery.schemas.filter_config import LanguageMixFilterConfig
from distillery.schemas.records import Generation, Prompt

# A script with at least this share of the prompt's words is one the response may use.
_PROMPT_SCRIPT_SHARE = 0.2


class LanguageMixFilter(SampleFilter):
    name = "language_mix"

    def __init__(self, config: LanguageMixFilterConfig) -> None:
        super().__init__()
        self.config = config
        self.exempt = re.compile(config.exempt_pattern) if config.exempt_pattern else None
        self.skip_domains = frozenset(config.skip_domains)

    def expected_scripts(self, prompt_words: Counter[str], response_words: Counter[str]) -> set[str]:
        if sum(prompt_words.values()) >= self.config.min_prompt_words:
            total = sum(prompt_words.values())
            return {s for s, n in prompt_words.items() if n / total >= _PROMPT_SCRIPT_SHARE}
        if response_words:
            return {response_words.most_common(1)[0][0]}
        return set()

    def decide(self, prompt: Prompt, sample: Generation) -> tuple[bool, str]:
        if prompt.domain in self.skip_domains or (self.exempt and self.exempt.search(prompt.problem)):
            return True, ""
        prompt_words = script_words(prompt.problem)
        response_words = script_words(f"{sample.reasoning}\n{sample.answer}")
        expected = self.expected_scripts(prompt_words, response_words)
        if "greek" not in expected:
            # Greek letters outside LaTeX are math (θ, Δx, πr²) in a non-Greek text.
            response_words.pop("greek", None)
        total = sum(response_words.values())
        foreign = Counter({s: n for s, n in response_words.items() if s not in expected})
        count = sum(foreign.values())
        if not total or count < self.config.min_foreign_words:
            return True, ""
        share = count / total
        if share <= self.config.max_foreign_share:
            return True, ""
        scripts = ", ".join(f"{s} {n}" for s, n in foreign.most_common())
        return False, (
            f"{share:.0%} of {total} words in a script the prompt does not use ({scripts}; "
            f"expected {'/'.join(sorted(expected))})"
        )
