"""Repetition loops: the same sentence, or the same run of words, over and over (the classic failure
of long generations, often until max_tokens)."""

from __future__ import annotations

import re
from collections import Counter

from distillery.operators.filters.base import SampleFilter
from distillery.operators.text import words
from distillery.schemas.filter_config import RepetitionFilterConfig
from distillery.schemas.records import Generation, Prompt

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*|\n+")
_SPACE = re.compile(r"\s+")
_QUOTE_CHARS = 60
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")


class RepetitionFilter(SampleFilter):
    name = "repetition"

    def __init__(self, config: RepetitionFilterConfig) -> None:
        super().__init__()
        self.config = config

    def decide(self, prompt: Prompt, sample: Generation) -> tuple[bool, str]:
        text = f"{sample.reasoning}\n{sample.answer}"
        limit = self.config.max_sentence_repeats
        if limit is not None:
            sentences = Counter(
                s for s in (_SPACE.sub(" ", part).strip().lower() for part in _SENTENCE_END.split(text))
                if len(s) >= self.config.min_sentence_chars
            )
            if sentences:
                sentence, count = sentences.most_common(1)[0]
                if count > limit:
                    return False, f"a sentence occurs {count} times (limit {limit}): {sentence[:_QUOTE_CHARS]!r}"
        limit = self.config.max_ngram_repeats
        if limit is not None:
            size = self.config.ngram_size
            tokens = words(_LATEX_COMMAND.sub(" ", text))
            wordy = [not t.isdigit() for t in tokens]
            # Runs that are mostly numbers are enumerations (cases, tables), not loops of prose.
            grams = Counter(
                tuple(tokens[i : i + size])
                for i in range(len(tokens) - size + 1)
                if 2 * sum(wordy[i : i + size]) >= size
            )
            if grams:
                gram, count = grams.most_common(1)[0]
                if count > limit:
                    shown = " ".join(gram)[:_QUOTE_CHARS]
                    return False, f"a {size}-word sequence occurs {count} times (limit {limit}): {shown!r}"
        return True, ""
