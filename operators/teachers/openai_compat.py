"""A teacher behind any OpenAI-compatible chat-completions server (vllm serve, SGLang, DeepSeek's API).

Requests are async, at most `concurrency` in flight; a request that fails on a connection error, a
timeout, a rate limit or a 5xx is retried with jittered exponential backoff (tenacity; a server's
Retry-After is honoured), and one that still fails comes back as that request's error, never as an
exception: the other prompts go on. Servers without `n` get one request per sample (each with its
own seed). Reasoning returned in its own field (`reasoning_content`, or vLLM's `reasoning`) becomes
the sample's reasoning.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from distillery.operators.teachers.base import Completion, Teacher, TeacherResponse
from distillery.schemas.records import FailureKind
from distillery.schemas.teacher_config import OpenAITeacherConfig

log = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 409, 429})
_INVALID_REQUEST_STATUS = frozenset({400, 422})
# Local servers ignore the key, but the client refuses to start without one.
_NO_KEY = "no-key"


class TeacherConfigError(ValueError):
    """A teacher section that cannot work where it runs (its API key variable is not set)."""


def retryable(exc: BaseException) -> bool:
    """Worth another attempt: the server was unreachable, slow, overloaded or rate limiting.
    A 400 (an over-long prompt), 401 or 404 would fail the same way again."""
    if isinstance(exc, openai.APIConnectionError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in _RETRY_STATUS or exc.status_code >= 500
    return False


def failure_kind(exc: BaseException) -> FailureKind:
    """permanent: the server rejected this request as invalid (400, 422: e.g. a prompt longer than the
    context), so it would fail the same way again. Everything else, retries spent included (5xx,
    timeouts, connection errors, and 401/403/404, which are the set-up's fault, not the prompt's), is
    transient: retried on a rerun, never written off as data."""
    if isinstance(exc, openai.APIStatusError) and exc.status_code in _INVALID_REQUEST_STATUS:
        return "permanent"
    return "transient"


def token_counts(choices: list[Any], usage_tokens: int | None) -> list[int]:
    """Completion tokens per choice: exact from `token_ids` when the server returns them (vLLM with
    `return_token_ids`), exact from usage for a single choice, else usage shared by text length."""
    ids = [getattr(c, "token_ids", None) for c in choices]
    if all(isinstance(i, list) for i in ids):
        return [len(i) for i in ids]
    if usage_tokens is None:
        return [0] * len(choices)
    if len(choices) == 1:
        return [usage_tokens]
    lengths = [len(c.message.content or "") + len(reasoning_of(c.message) or "") for c in choices]
    if not any(lengths):
        lengths = [1] * len(choices)
    shares = [usage_tokens * n / sum(lengths) for n in lengths]
    counts = [int(s) for s in shares]
    # Largest remainders get the leftover tokens, so the counts add up to the usage.
    for i in sorted(range(len(counts)), key=lambda i: counts[i] - shares[i])[: usage_tokens - sum(counts)]:
        counts[i] += 1
    return counts


def vllm_sampling_extensions(config: OpenAITeacherConfig) -> dict[str, Any]:
    """vLLM's own request fields for the loop cut and the thinking budget (`vllm serve` reads them
    from the body; other servers are not sent them)."""
    if config.server != "vllm":
        return {}
    return config.sampling.model_dump(include={"repetition_detection", "thinking_token_budget"}, exclude_none=True)


def reasoning_of(message: Any) -> str | None:
    """DeepSeek's API (and older vLLM) says `reasoning_content`; vLLM 0.10+ says `reasoning`."""
    for field in ("reasoning_content", "reasoning"):
        value = getattr(message, field, None)
        if isinstance(value, str):
            return value
    return None


@dataclass
class TeacherUsage:
    """What a teacher spent, for the run's report and logs."""

    requests: int = 0
    failed_requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "retries": self.retries,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


@dataclass
class _LoopClient:
    """The HTTP client and the concurrency limit belong to the event loop that uses them."""

    loop: asyncio.AbstractEventLoop
    client: AsyncOpenAI
    slots: asyncio.Semaphore


class OpenAITeacher(Teacher):
    def __init__(self, name: str, config: OpenAITeacherConfig) -> None:
        self.name = name
        self.model = config.model
        self.sampling = config.sampling
        self.config = config
        self.usage = TeacherUsage()
        self._api_key = self._read_key(name, config)
        self._clients: list[_LoopClient] = []
        self._warned_short = False

    @staticmethod
    def _read_key(name: str, config: OpenAITeacherConfig) -> str:
        if config.api_key_env is None:
            return _NO_KEY
        key = os.environ.get(config.api_key_env, "")
        if not key:
            raise TeacherConfigError(
                f"teacher {name!r}: the environment variable {config.api_key_env} (its api_key_env) is not set "
                "where the teacher runs; export it (on a Ray cluster: ray job submit --runtime-env-json "
                f"'{{\"env_vars\": {{\"{config.api_key_env}\": ...}}}}')"
            )
        return key

    def __repr__(self) -> str:
        return f"OpenAITeacher(name={self.name!r}, model={self.model!r}, base_url={self.config.base_url!r})"

    def _client(self) -> _LoopClient:
        loop = asyncio.get_running_loop()
        for entry in self._clients:
            if entry.loop is loop:
                return entry
        entry = _LoopClient(
            loop=loop,
            client=AsyncOpenAI(
                api_key=self._api_key,
                base_url=self.config.base_url,
                timeout=self.config.timeout_s,
                max_retries=0,  # tenacity retries, with the job's backoff
            ),
            slots=asyncio.Semaphore(self.config.concurrency),
        )
        self._clients = [e for e in self._clients if not e.loop.is_closed()] + [entry]
        return entry

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_random_exponential(multiplier=self.config.retry_initial_s, max=self.config.retry_max_s)(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, openai.APIStatusError):
            try:
                return min(max(float(exc.response.headers.get("retry-after", "")), backoff), self.config.retry_max_s)
            except ValueError:
                pass
        return backoff

    def _count_retry(self, state: RetryCallState) -> None:
        self.usage.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        log.info("teacher %s: attempt %d failed (%s); retrying", self.name, state.attempt_number, _describe(exc))

    async def _request(self, messages: list[dict[str, str]], n: int, seed: int) -> ChatCompletion:
        entry = self._client()
        body = {**vllm_sampling_extensions(self.config), **self.config.extra_body}
        if messages[-1]["role"] == "assistant":
            # vLLM's (and SGLang's) chat API continues a prefilled last assistant turn with these.
            body |= {"continue_final_message": True, "add_generation_prompt": False}
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.config.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(retryable),
            before_sleep=self._count_retry,
            reraise=True,
        ):
            with attempt:
                async with entry.slots:
                    self.usage.requests += 1
                    return await entry.client.chat.completions.create(
                        model=self.model,
                        messages=messages,  # type: ignore[arg-type]
                        n=n,
                        temperature=self.sampling.temperature,
                        top_p=self.sampling.top_p,
                        max_tokens=self.sampling.max_tokens,
                        seed=seed,
                        extra_body=body or None,
                    )
        raise AssertionError("unreachable: tenacity reraises the last error")

    def _completions(self, response: ChatCompletion, first_index: int) -> list[Completion]:
        usage = response.usage
        if usage is not None:
            self.usage.prompt_tokens += usage.prompt_tokens
            self.usage.completion_tokens += usage.completion_tokens
        choices = sorted(response.choices, key=lambda c: c.index)
        counts = token_counts(choices, usage.completion_tokens if usage is not None else None)
        return [
            Completion(
                index=first_index + i,
                text=choice.message.content or "",
                completion_tokens=count,
                finish_reason=str(choice.finish_reason or "unknown"),
                reasoning=reasoning_of(choice.message),
            )
            for i, (choice, count) in enumerate(zip(choices, counts, strict=True))
        ]

    async def continue_turn(
        self, messages: list[dict[str, str]], prefill: str, *, seed: int, request_id: str
    ) -> TeacherResponse:
        turn = [*messages, {"role": "assistant", "content": prefill}]
        return await self.sample(turn, n=1, seed=seed, request_id=request_id)

    async def sample(self, messages: list[dict[str, str]], *, n: int, seed: int, request_id: str) -> TeacherResponse:
        per_request = self.config.samples_per_request or n
        sizes = [min(per_request, n - start) for start in range(0, n, per_request)]
        try:
            responses = list(
                await asyncio.gather(*(self._request(messages, k, _seed(seed, i)) for i, k in enumerate(sizes)))
            )
            drawn = sum(len(r.choices) for r in responses)
            if 0 < drawn < n:
                # The server gave fewer choices than asked: it has no `n`. Ask for the rest one by one.
                self._warn_short(drawn, n)
                start = len(sizes)
                responses += await asyncio.gather(
                    *(self._request(messages, 1, _seed(seed, start + i)) for i in range(n - drawn))
                )
        except Exception as exc:  # one failed request fails this prompt's round, not the job
            self.usage.failed_requests += 1
            log.warning("teacher %s: request %s failed: %s", self.name, request_id, _describe(exc))
            return TeacherResponse.failed(_describe(exc), failure_kind(exc))
        completions: list[Completion] = []
        for response in responses:
            completions += self._completions(response, len(completions))
        if len(completions) < n:
            return TeacherResponse.failed(f"server returned {len(completions)} of {n} samples", "transient")
        prompt_tokens = responses[0].usage.prompt_tokens if responses[0].usage is not None else 0
        return TeacherResponse(prompt_tokens=prompt_tokens, completions=completions[:n])

    def _warn_short(self, drawn: int, n: int) -> None:
        if not self._warned_short:
            self._warned_short = True
            log.warning(
                "teacher %s: the server returned %d of %d samples per request (no `n`); set samples_per_request: 1",
                self.name, drawn, n,
            )

    async def aclose(self) -> None:
        for entry in self._clients:
            if entry.loop is asyncio.get_running_loop():
                await entry.client.close()
        self._clients = [e for e in self._clients if e.loop is not asyncio.get_running_loop()]

    def close(self) -> None:
        log.info("teacher %s usage: %s", self.name, self.usage.as_dict())
        for entry in self._clients:
            if entry.loop.is_closed():
                continue
            if entry.loop.is_running():
                entry.loop.call_soon_threadsafe(entry.loop.create_task, entry.client.close())
            else:
                entry.loop.run_until_complete(entry.client.close())
        self._clients = []


def _seed(base: int, request: int) -> int:
    """Each request of one prompt gets its own seed, or servers without `n` would repeat one sample."""
    return (base + request) & 0x7FFFFFFF


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, openai.APIStatusError):
        return f"{type(exc).__name__}: HTTP {exc.status_code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"
