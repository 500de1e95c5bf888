"""The R1 quality filters on crafted samples: what each must drop, and what it must keep."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from distillery.operators.filters.code_block import CodeBlockFilter
from distillery.operators.filters.language_mix import LanguageMixFilter
from distillery.operators.filters.length import LengthFilter
from distillery.operators.filters.long_paragraph import LongParagraphFilter
from distillery.operators.filters.registry import build_filters
from distillery.operators.filters.repetition import RepetitionFilter
from distillery.operators.filters.think_format import ThinkFormatFilter
from distillery.operators.teachers.think_split import split_think
from distillery.operators.text import script_words, strip_notation, words
from distillery.schemas.filter_config import (
    CodeBlockFilterConfig,
    FiltersConfig,
    LanguageMixFilterConfig,
    LengthFilterConfig,
    LongParagraphFilterConfig,
    RepetitionFilterConfig,
    ThinkFormatFilterConfig,
)
from distillery.schemas.records import Generation, Prompt, prompt_id


def prompt(problem: str, domain: str = "math") -> Prompt:
    return Prompt(id=prompt_id(problem, "s"), source="s", source_row=0, domain=domain, problem=problem, answer="1")


def sample(
    text: str, *, teacher: str = "t", tokens: int = 50, finish: str = "stop", domain: str = "math"
) -> Generation:
    split = split_think(text)
    return Generation(
        id="p-r0-0", prompt_id="p", round=0, index=0, source="s", domain=domain, teacher=teacher, model="m",
        sampling="{}", seed=0, text=text, reasoning=split.reasoning, answer=split.answer,
        think_well_formed=split.well_formed, prompt_tokens=10, completion_tokens=tokens, finish_reason=finish,
    )


def r1(reasoning: str, answer: str = "The answer is \\boxed{1}.") -> str:
    return f"<think>\n{reasoning}\n</think>\n\n{answer}"


ENGLISH_PROBLEM = "Find the number of positive divisors of 36."
ENGLISH_REASONING = (
    "We factor 36 as $2^2 \\cdot 3^2$. The number of divisors is $(2+1)(2+1) = 9$. "
    "Let me double check by listing them: 1, 2, 3, 4, 6, 9, 12, 18, 36. That is nine divisors."
)
CHINESE_PROBLEM = "已知函数 $f(x) = x^2 - 4x + 3$，求 $f(x)$ 的最小值。"
CHINESE_REASONING = (
    "我们先把函数配方：$f(x) = (x-2)^2 - 1$。因为平方项 $(x-2)^2 \\geq 0$，所以当 $x = 2$ 时取得最小值。"
    "代入得 $f(2) = -1$。再用导数验证：\\( f'(x) = 2x - 4 \\)，令其为零得 $x=2$，与配方的结果一致。"
)


class TestLanguageMix:
    f = LanguageMixFilter(LanguageMixFilterConfig())

    def test_chinese_problem_reasoned_in_chinese_with_latex_is_not_mixed(self):
        keep, reason = self.f.decide(prompt(CHINESE_PROBLEM), sample(r1(CHINESE_REASONING, "最小值为 $\\boxed{-1}$。")))
        assert keep, reason

    def test_english_reasoning_with_math_code_and_numbers_is_not_mixed(self):
        text = r1(ENGLISH_REASONING + "\n\n```python\nprint(len([d for d in range(1, 37) if 36 % d == 0]))\n```")
        assert self.f.decide(prompt(ENGLISH_PROBLEM), sample(text)) == (True, "")

    def test_cjk_inside_an_english_chain_of_thought_is_mixed(self):
        switched = ENGLISH_REASONING + " 所以我们需要重新检查一下这个因数分解的过程是否正确无误，然后得到最终的答案。"
        keep, reason = self.f.decide(prompt(ENGLISH_PROBLEM), sample(r1(switched)))
        assert not keep and "cjk" in reason and "expected latin" in reason

    def test_latin_inside_a_chinese_chain_of_thought_is_mixed(self):
        switched = CHINESE_REASONING + " Wait, let me reconsider the vertex form and check the minimum."
        keep, reason = self.f.decide(prompt(CHINESE_PROBLEM), sample(r1(switched)))
        assert not keep and "latin" in reason and "expected cjk" in reason

    def test_a_few_foreign_words_and_greek_letters_are_tolerated(self):
        # One quoted name (under min_foreign_words) and Greek letters used as math symbols.
        text = r1(ENGLISH_REASONING + " The constant θ and Δx play no role; in Chinese one says 九.")
        assert self.f.decide(prompt(ENGLISH_PROBLEM), sample(text))[0]

    def test_a_prompt_without_words_takes_the_response_script(self):
        assert self.f.decide(prompt("$2+3=?$"), sample(r1("二加三等于五，这是基本的加法运算。", "$\\boxed{5}$")))[0]
        mixed = r1("二加三等于五，这是基本的加法运算。 Now in English we check that two plus three makes five.")
        assert not self.f.decide(prompt("$2+3=?$"), sample(mixed))[0]

    def test_translation_requests_and_skipped_domains_are_exempt(self):
        answer = r1("The user wants French.", "Bonjour, comment allez-vous ? Je vais très bien, merci beaucoup.")
        assert self.f.decide(prompt("请把这句话翻译成法语：你好，你好吗？我很好，谢谢。"), sample(answer))[0]
        skipping = LanguageMixFilter(LanguageMixFilterConfig(skip_domains=["general"], exempt_pattern=None))
        assert skipping.decide(prompt("你好，请介绍一下你自己吧。", "general"), sample(answer))[0]

    def test_notation_is_stripped_before_counting(self):
        assert strip_notation("a $x^2$ b \\(y\\) c `code` d https://x.org/zh e").split() == list("abcde")
        assert script_words("中文 English words sin cos x y") == {"cjk": 2, "latin": 2}


class TestLongParagraph:
    def test_a_wall_of_text_is_dropped_and_short_paragraphs_kept(self):
        f = LongParagraphFilter(LongParagraphFilterConfig(max_chars=200))
        short = "\n\n".join(["A short step of the argument."] * 20)
        assert f.decide(prompt("q"), sample(r1(short))) == (True, "")
        keep, reason = f.decide(prompt("q"), sample(r1(short + "\n\n" + "word " * 60)))
        assert not keep and reason.startswith("paragraph 21 of the reasoning has 299 characters")

    def test_word_limit_counts_cjk_characters(self):
        f = LongParagraphFilter(LongParagraphFilterConfig(max_chars=None, max_words=20))
        assert f.decide(prompt("q"), sample(r1("因为" * 10)))[0]
        assert not f.decide(prompt("q"), sample(r1("因为" * 11)))[0]

    def test_only_the_reasoning_is_measured(self):
        f = LongParagraphFilter(LongParagraphFilterConfig(max_chars=100))
        assert f.decide(prompt("q"), sample(r1("short", "x" * 500)))[0]


class TestCodeBlock:
    f = CodeBlockFilter(CodeBlockFilterConfig())

    def test_code_in_math_reasoning_is_dropped(self):
        text = r1("Let me compute it.\n\n```python\nprint(36 % 5)\n```\nSo it is 1.")
        assert self.f.decide(prompt("q"), sample(text)) == (
            False, "fenced code block in the reasoning of a math prompt (line 3)"
        )

    def test_code_domains_and_code_in_the_answer_are_allowed(self):
        text = r1("Let me write it.\n~~~\ndef f(): pass\n~~~")
        assert self.f.decide(prompt("q", domain="code"), sample(text, domain="code"))[0]
        assert self.f.decide(prompt("q"), sample(r1("Plain steps.", "```python\nprint(1)\n```")))[0]
        assert self.f.decide(prompt("q"), sample(r1("Inline `x = 1` is not a block.")))[0]


class TestRepetition:
    f = RepetitionFilter(RepetitionFilterConfig())

    def test_a_sentence_loop_is_dropped(self):
        loop = "Let me check the calculation again. " * 7
        keep, reason = self.f.decide(prompt("q"), sample(r1(ENGLISH_REASONING + " " + loop)))
        assert not keep and reason.startswith("a sentence occurs 7 times (limit 5)")

    def test_an_ngram_loop_without_sentence_ends_is_dropped(self):
        loop = " ".join(["so the value of x is equal to the value of y and"] * 12)
        keep, reason = self.f.decide(prompt("q"), sample(r1(loop)))
        assert not keep and "10-word sequence occurs" in reason

    def test_a_cjk_loop_is_dropped(self):
        keep, reason = self.f.decide(prompt("q"), sample(r1("我们再检查一遍这个结果是否正确" * 10)))
        assert not keep, reason

    def test_normal_reasoning_and_numeric_enumerations_are_kept(self):
        # Enumerated cases repeat their LaTeX 15 times, with different numbers: not a loop.
        case = "Case {i}: \\( (2 \\cdot 3) \\cdot (4 \\cdot 5 + {i}) \\) = {v}."
        cases = "\n".join(case.format(i=i, v=6 * (20 + i)) for i in range(15))
        assert self.f.decide(prompt("q"), sample(r1(ENGLISH_REASONING + "\n" + cases))) == (True, "")
        # Short sentences ("Yes.") repeat in any checklist; they are not counted.
        checklist = " ".join(f"Is {d} a divisor of 36? Yes." for d in (1, 2, 3, 4, 6, 9, 12, 18, 36))
        assert self.f.decide(prompt("q"), sample(r1(checklist))) == (True, "")

    def test_checks_can_be_turned_off(self):
        off = RepetitionFilter(RepetitionFilterConfig(max_sentence_repeats=None, max_ngram_repeats=None))
        assert off.decide(prompt("q"), sample(r1("Let me check the calculation again. " * 30)))[0]


class TestThinkFormat:
    def test_malformed_tags_are_dropped_even_when_think_is_not_required(self):
        f = ThinkFormatFilter(ThinkFormatFilterConfig())
        for text in ("<think>a</think><think>b</think>\n\nAnswer 1", "Preamble <think>a</think>\n\nAnswer 1"):
            keep, reason = f.decide(prompt("q"), sample(text))
            assert not keep and reason.startswith("malformed think block"), text
        assert f.decide(prompt("q"), sample("No tags at all: the answer is 1.")) == (True, "")

    def test_required_think_block_for_reasoning_teachers(self):
        f = ThinkFormatFilter(ThinkFormatFilterConfig(require_think=["r1"]))
        assert f.decide(prompt("q"), sample("The answer is 1.", teacher="r1")) == (False, "no think block")
        assert f.decide(prompt("q"), sample("<think>\n\n</think>\n\nThe answer is 1.", teacher="r1")) == (
            False, "empty think block"
        )
        assert f.decide(prompt("q"), sample(r1("Some steps."), teacher="r1"))[0]
        assert f.decide(prompt("q"), sample("The answer is 1.", teacher="v3"))[0]  # not a reasoning model

    def test_reasoning_returned_separately_counts_as_a_think_block(self):
        f = ThinkFormatFilter(ThinkFormatFilterConfig(require_think=True))
        separate = sample("The answer is 1.").model_copy(update={"reasoning": "steps", "think_well_formed": True})
        assert f.decide(prompt("q"), separate)[0]

    def test_direct_answers_need_no_think_block(self):
        f = ThinkFormatFilter(ThinkFormatFilterConfig(require_think=True), answers_directly=lambda p: True)
        assert f.decide(prompt("Hello!", "general"), sample("Hi! How can I help?"))[0]

    def test_empty_answer_and_missing_final_answer(self):
        f = ThinkFormatFilter(ThinkFormatFilterConfig(final_answer_domains=["math"]))
        assert f.decide(prompt("q"), sample(r1("steps", ""))) == (False, "empty answer")
        keep, reason = f.decide(prompt("q"), sample(r1("steps", "It is probably one.")))
        assert not keep and reason.startswith("no final answer")
        assert f.decide(prompt("q"), sample(r1("steps", "The final answer is 1.")))[0]
        assert f.decide(prompt("q", "general"), sample(r1("steps", "It is probably one."), domain="general"))[0]


class TestLength:
    f = LengthFilter(LengthFilterConfig(min_completion_tokens=5, max_completion_tokens=100, max_answer_chars=50))

    def test_token_bounds(self):
        assert self.f.decide(prompt("q"), sample(r1("s"), tokens=4)) == (False, "4 completion tokens (minimum 5)")
        assert self.f.decide(prompt("q"), sample(r1("s"), tokens=101)) == (False, "101 completion tokens (maximum 100)")
        assert self.f.decide(prompt("q"), sample(r1("s"), tokens=100))[0]

    def test_the_summary_after_the_reasoning_is_bounded(self):
        keep, reason = self.f.decide(prompt("q"), sample(r1("steps", "x" * 51)))
        assert not keep and reason.startswith("answer after the reasoning has 51 characters")
        assert self.f.decide(prompt("q"), sample("x" * 51))[0]  # no reasoning: the answer is the response
        essay = sample(r1("plan", "x" * 51), domain="general")
        assert self.f.decide(prompt("Write an essay.", "general"), essay)[0]  # the answer is the product

    def test_bounds_are_validated(self):
        with pytest.raises(ValidationError, match="below min_completion_tokens"):
            LengthFilterConfig(min_completion_tokens=10, max_completion_tokens=5)


def test_registry_builds_the_enabled_filters_in_order_and_each_counts():
    names = [f.name for f in build_filters(FiltersConfig())]
    assert names == [
        "truncation", "think_format", "length", "repetition", "language_mix", "long_paragraph", "code_block"
    ]
    config = FiltersConfig.model_validate({"repetition": {"enabled": False}, "code_block": {"enabled": False}})
    filters = build_filters(config)
    assert "repetition" not in [f.name for f in filters] and len(filters) == 5
    lang = next(f for f in filters if f.name == "language_mix")
    result = lang.apply(prompt(ENGLISH_PROBLEM), sample(r1(ENGLISH_REASONING + " 所以我们需要重新检查一下这个过程。")))
    assert (result.filter, result.keep) == ("language_mix", False)
    lang.apply(prompt(ENGLISH_PROBLEM), sample(r1(ENGLISH_REASONING)))
    assert (lang.counters.seen, lang.counters.kept, lang.counters.dropped) == (2, 1, 1)


def test_bad_filter_settings_are_refused():
    with pytest.raises(ValidationError, match="not a valid regular expression"):
        LanguageMixFilterConfig(exempt_pattern="(unclosed")
    with pytest.raises(ValidationError):
        FiltersConfig.model_validate({"repetiton": {}})


def test_words_split_cjk_characters():
    assert words("Hello, 世界 x1") == ["hello", "世", "界", "x1"]
