"""The LLM judge: a teacher asked, with a fixed and versioned prompt, what rules cannot decide.

Two questions, each with its own prompt:
- `match`: does a response's final answer match the reference answer? ("do not solve the problem").
  The reply must be one line `VERDICT: CORRECT | INCORRECT | INVALID`.
- `score`: how helpful and correct is an answer to a request without a gold answer (the general
  split)? The reply must be one line `SCORE: N`, N from 1 to 10.

The parse is strict: a reply without exactly one such line, with conflicting lines, or still inside
a think block is an `error` verdict, never `correct`. A few worked examples precede the question
as earlier chat turns, which holds even small judges to the reply format.

Before any question is asked, `content_guard` turns away answers with no content of their own: empty,
punctuation only, a bare reasoning opener ("Thought process:", "Let's solve this step by step."),
the question repeated, or no final answer where the question asks for one. LLM judges are known to
call such "master key" replies correct (arXiv 2507.08794), so they never reach one: they are
`invalid`, whatever a judge would have said.

The judge is async and talks to a `Teacher` (any backend), so it runs on the teacher replica's event
loop, not in the verifier process pool. Its verdicts carry the judge model and the prompt version
(`llm_judge:<model>@match-1.<hash of the prompt>`), so a changed prompt never passes for the old one.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from distillery.operators.counters import OperatorCounters
from distillery.operators.teachers.base import Teacher
from distillery.operators.teachers.think_split import THINK_CLOSE, THINK_OPEN
from distillery.operators.verifiers.answer_extraction import extract_final_answer
from distillery.schemas.judge_config import JudgeConfig
from distillery.schemas.records import Prompt, Verdict, VerdictLabel, request_seed

MATCH_SYSTEM = (
    "You are a strict grader. You compare the final answer of a response with the reference answer to a "
    "question. Do not solve the problem yourself and do not grade the reasoning: decide only whether the "
    "response's final answer means the same as the reference answer (equivalent forms such as 1/2 and 0.5, or "
    "x=3 and 3, are the same). Reply with exactly one line:\n"
    "VERDICT: CORRECT if the final answer matches the reference answer\n"
    "VERDICT: INCORRECT if it states a final answer that does not match\n"
    "VERDICT: INVALID if it states no final answer, or several different ones"
)
MATCH_TURN = "Question:\n{question}\n\nReference answer:\n{reference}\n\nResponse's final answer:\n{answer}"
MATCH_EXAMPLES = (
    ("What is 3 + 4?", "7", "So the answer is \\boxed{7}.", "VERDICT: CORRECT"),
    ("What is 2 times 6?", "12", "The answer is 10.", "VERDICT: INCORRECT"),
    ("Simplify 2/4.", "\\frac{1}{2}", "It simplifies to 0.5.", "VERDICT: CORRECT"),
    ("What is 9 - 4?", "5", "Let me think about subtraction.", "VERDICT: INVALID"),
)

SCORE_SYSTEM = (
    "You grade an assistant's answer to a user's request. Judge helpfulness and correctness: does it do what "
    "was asked, is what it says true, is it clear? Reply with exactly one line: SCORE: N, where N is a whole "
    "number from 1 (useless, wrong or off-topic) to 10 (fully helpful and correct)."
)
SCORE_TURN = "Request:\n{question}\n\nAnswer:\n{answer}"
SCORE_EXAMPLES = (
    ("What is the capital of France?", "The capital of France is Paris.", "SCORE: 9"),
    ("Name a primary color.", "Bananas are a good source of potassium.", "SCORE: 1"),
)


def _version(name: str, *parts: object) -> str:
    digest = hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()[:8]
    return f"{name}-1.{digest}"


MATCH_VERSION = _version("match", MATCH_SYSTEM, MATCH_TURN, MATCH_EXAMPLES)
SCORE_VERSION = _version("score", SCORE_SYSTEM, SCORE_TURN, SCORE_EXAMPLES)

_DECORATION = r"[\s*_`>#]*"
_VERDICT_LINE = re.compile(
    rf"^{_DECORATION}verdict{_DECORATION}[:：]{_DECORATION}(correct|incorrect|invalid)[\s*_`.!]*$",
    re.IGNORECASE | re.MULTILINE,
)
_SCORE_LINE = re.compile(
    rf"^{_DECORATION}score{_DECORATION}[:：]{_DECORATION}(\d+)(?:\s*/\s*10)?[\s*_`.!]*$", re.IGNORECASE | re.MULTILINE
)
_DETAIL_REPLY_CHARS = 300

ReplyReader = Callable[[str], tuple[VerdictLabel, str | None, str]]

# Openers of a reasoning that stop before saying anything (arXiv 2507.08794's master keys among them,
# in the languages it tried), optionally followed by "(this|the) problem" and "step by step". Words
# that can be answers themselves ("Analysis", "First") count only with the colon or comma of an opener.
_OPENER = re.compile(
    r"^(?:(?:thought\s+process|solution|answer|final\s+answer|"
    r"let'?s\s+(?:solve|think|work|break|start|begin|analy[sz]e|tackle|figure|go|see|look)(?:\s+(?:it|this|that|out|"
    r"through|at|down|with))*|let\s+me\s+(?:think|solve|see|start|begin|work|figure|try|analy[sz]e|check)"
    r"(?:\s+(?:it|this|that|out|through|about))*|we\s+(?:need|have|want)\s+to\s+(?:solve|find|figure\s+out)|"
    r"to\s+solve(?:\s+it)?|hmm+|解|解答|解析|かいせつ|解説|respuesta|soluci[oó]n|r[ée]ponse|antwort|l[öo]sung)"
    r"(?:\s+(?:this|the|a)\s+(?:math\s+)?(?:problem|question|equation))?(?:\s+step[\s-]+by[\s-]+step)?"
    r"(?:\s+(?:carefully|together|now|here))?[\s.,:;!…-]*"
    r"|(?:thinking|reasoning|analysis|explanation|first(?:ly)?|step\s*1|okay|alright|well|so)\s*[:,][\s.…-]*)$",
    re.IGNORECASE,
)
_MARKUP = re.compile(r"[*_`#>~]+")
_WORDS = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
# An answer that is a stretch of the question this long (in words) repeats it rather than answers it.
_MIN_REPEATED_WORDS = 4
# A question that asks for an explicit final answer: a response without one has not given it.
_ASKS_FOR_FINAL_ANSWER = re.compile(r"\\boxed|\bfinal answer\b|\bput (?:your|the) answer\b", re.IGNORECASE)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORDS.findall(text)]


def content_guard(question: str, answer: str) -> str | None:
    """Why `answer` has no content of its own to judge, or None when it has some."""
    text = _MARKUP.sub(" ", answer).strip()
    if not text:
        return "empty answer"
    if not any(ch.isalnum() for ch in text):
        return "punctuation only"
    if _OPENER.match(" ".join(text.split())):
        return "a reasoning opener with no answer"
    words, asked = _words(text), _words(question)
    # a stretch of the question, or all of it followed by nothing but an opener
    if len(words) >= min(_MIN_REPEATED_WORDS, len(asked)) and f" {' '.join(words)} " in f" {' '.join(asked)} ":
        return "the question repeated"
    if asked and words[: len(asked)] == asked:
        remainder = " ".join(words[len(asked) :])
        if not remainder or _OPENER.match(remainder):
            return "the question repeated"
    if _ASKS_FOR_FINAL_ANSWER.search(question) and extract_final_answer(answer) is None:
        return "no final answer, which the question asks for"
    return None


class JudgeReplyError(ValueError):
    """A judge reply that does not say one clear thing."""


def _decision_text(reply: str) -> str:
    """The part of a reply that holds the decision: after the think block of a reasoning judge."""
    if THINK_CLOSE in reply:
        return reply.rpartition(THINK_CLOSE)[2]
    if THINK_OPEN in reply:
        raise JudgeReplyError("the reply is still inside its think block")
    return reply


def parse_verdict(reply: str) -> VerdictLabel:
    """`correct`, `incorrect` or `invalid` from a match reply, or JudgeReplyError."""
    labels = {m.lower() for m in _VERDICT_LINE.findall(_decision_text(reply))}
    if not labels:
        raise JudgeReplyError("no 'VERDICT: CORRECT|INCORRECT|INVALID' line")
    if len(labels) > 1:
        raise JudgeReplyError(f"conflicting verdict lines: {', '.join(sorted(labels))}")
    (label,) = labels
    assert label in ("correct", "incorrect", "invalid")
    return label  # type: ignore[return-value]


def parse_score(reply: str) -> int:
    """The 1-10 score of a score reply, or JudgeReplyError."""
    scores = {int(m) for m in _SCORE_LINE.findall(_decision_text(reply))}
    if not scores:
        raise JudgeReplyError("no 'SCORE: N' line")
    if len(scores) > 1:
        raise JudgeReplyError(f"conflicting score lines: {', '.join(map(str, sorted(scores)))}")
    (score,) = scores
    if not 1 <= score <= 10:
        raise JudgeReplyError(f"score {score} is outside 1-10")
    return score


def shorten(text: str, limit: int) -> str:
    """Start and end of a long text: a final answer usually sits at the end."""
    if len(text) <= limit:
        return text
    head = limit // 4
    return f"{text[:head]}\n[... {len(text) - limit} characters left out ...]\n{text[-(limit - head):]}"


@dataclass(frozen=True, slots=True)
class JudgeRequest:
    messages: list[dict[str, str]]
    version: str


class LLMJudge:
    name = "llm_judge"

    def __init__(self, teacher: Teacher, config: JudgeConfig, min_score: int = 7) -> None:
        self.teacher = teacher
        self.config = config
        self.min_score = min_score
        self.counters = OperatorCounters(self.name)

    def label(self, version: str) -> str:
        return f"{self.name}:{self.teacher.model}@{version}"

    def match_request(self, prompt: Prompt, answer: str) -> JudgeRequest:
        limit = self.config.max_answer_chars
        messages = [{"role": "system", "content": MATCH_SYSTEM}]
        for question, reference, response, reply in MATCH_EXAMPLES:
            turn = MATCH_TURN.format(question=question, reference=reference, answer=response)
            messages += [{"role": "user", "content": turn}, {"role": "assistant", "content": reply}]
        turn = MATCH_TURN.format(
            question=shorten(prompt.problem, limit),
            reference=shorten(prompt.answer or "", limit),
            answer=shorten(answer, limit),
        )
        messages.append({"role": "user", "content": turn})
        return JudgeRequest(messages, MATCH_VERSION)

    def score_request(self, prompt: Prompt, answer: str) -> JudgeRequest:
        limit = self.config.max_answer_chars
        messages = [{"role": "system", "content": SCORE_SYSTEM}]
        for question, response, reply in SCORE_EXAMPLES:
            turn = SCORE_TURN.format(question=question, answer=response)
            messages += [{"role": "user", "content": turn}, {"role": "assistant", "content": reply}]
        turn = SCORE_TURN.format(question=shorten(prompt.problem, limit), answer=shorten(answer, limit))
        messages.append({"role": "user", "content": turn})
        return JudgeRequest(messages, SCORE_VERSION)

    async def match(self, prompt: Prompt, answer: str, sample_id: str) -> Verdict:
        """Does `answer` (the part after the reasoning) match the prompt's gold answer?"""
        request = self.match_request(prompt, answer)
        if not (prompt.answer or "").strip():
            return self._refuse(request, "no reference answer to compare with")
        if reason := content_guard(prompt.problem, answer):
            return self._refuse(request, f"not judged: {reason}")
        return await self._ask(request, sample_id, self._match_verdict)

    async def score(self, prompt: Prompt, answer: str, sample_id: str) -> Verdict:
        """Helpfulness and correctness of an answer without a gold answer: `correct` at min_score or more."""
        request = self.score_request(prompt, answer)
        if reason := content_guard(prompt.problem, answer):
            return self._refuse(request, f"not judged: {reason}")
        return await self._ask(request, sample_id, self._score_verdict)

    def _refuse(self, request: JudgeRequest, detail: str) -> Verdict:
        return self._count(Verdict(verifier=self.label(request.version), verdict="invalid", detail=detail))

    def _match_verdict(self, reply: str) -> tuple[VerdictLabel, str | None, str]:
        label = parse_verdict(reply)
        return label, label.upper(), ""

    def _score_verdict(self, reply: str) -> tuple[VerdictLabel, str | None, str]:
        score = parse_score(reply)
        label: VerdictLabel = "correct" if score >= self.min_score else "incorrect"
        return label, str(score), f"score {score}, needs {self.min_score}"

    async def _ask(self, request: JudgeRequest, sample_id: str, read: ReplyReader) -> Verdict:
        start = time.perf_counter()
        # Seeded by the judged sample, so a resumed run asks the same question the same way.
        seed = request_seed(self.teacher.sampling.seed, f"judge:{sample_id}", 0)
        response = await self.teacher.sample(request.messages, n=1, seed=seed, request_id=f"judge-{sample_id}")
        extracted: str | None = None
        label: VerdictLabel
        if response.error is not None:
            label, detail = "error", f"judge request failed: {response.error}"
        elif not response.completions:
            label, detail = "error", "judge returned no reply"
        else:
            reply = response.completions[0].text
            try:
                label, extracted, detail = read(reply)
            except JudgeReplyError as exc:
                label, detail = "error", f"unparseable judge reply: {exc}"
            detail = f"{detail}; reply: {reply[:_DETAIL_REPLY_CHARS]!r}".removeprefix("; ")
        verdict = Verdict(
            verifier=self.label(request.version),
            verdict=label,
            extracted=extracted,
            detail=detail,
            elapsed_ms=(time.perf_counter() - start) * 1000,
        )
        return self._count(verdict)

    def _count(self, verdict: Verdict) -> Verdict:
        if verdict.verdict == "correct":
            self.counters.keep()
        else:
            self.counters.drop(verdict.verdict)
        return verdict
