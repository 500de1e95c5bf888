"""The OpenAI-compatible teacher against small HTTP servers the tests start on 127.0.0.1, scripted
to misbehave the ways real ones do (rate limits, 5xx, no `n`, slow replies, DeepSeek's separate
`reasoning_content`). The same teacher against a real `vllm serve` is in test_openai_teacher_live.py."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from distillery.operators.filters.registry import build_filters
from distillery.operators.select.rejection import RejectionSampler, SamplingPolicy
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.operators.teachers.openai_compat import OpenAITeacher, TeacherConfigError, token_counts
from distillery.operators.teachers.registry import build_teacher
from distillery.operators.verifiers.pool import VerifierPool
from distillery.schemas.filter_config import FiltersConfig
from distillery.schemas.job import load_job
from distillery.schemas.records import Prompt, prompt_id
from distillery.schemas.teacher_config import OpenAITeacherConfig
from distillery.schemas.verifier_config import VerificationConfig

MESSAGES = [{"role": "user", "content": "What is 2 + 3?"}]


def body(texts: list[str], *, reasoning: list[str] | None = None, completion_tokens: int = 12) -> dict[str, Any]:
    choices = []
    for i, text in enumerate(texts):
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if reasoning is not None:
            message["reasoning_content"] = reasoning[i]
        choices.append({"index": i, "message": message, "finish_reason": "stop"})
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m", "choices": choices,
        "usage": {"prompt_tokens": 9, "completion_tokens": completion_tokens, "total_tokens": 9 + completion_tokens},
    }


@dataclass
class Reply:
    status: int = 200
    payload: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class FakeServer:
    """Answers each POST with the next scripted reply (the last one repeats); records the requests."""

    replies: list[Reply]
    requests: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""


@pytest.fixture
def server() -> Iterator[FakeServer]:
    state = FakeServer(replies=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                reply = state.replies[min(len(state.requests), len(state.replies) - 1)]
                state.requests.append(request)
                state.auth.append(self.headers.get("Authorization"))
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            time.sleep(reply.delay_s)
            payload = reply.payload or {"error": {"message": f"status {reply.status}"}}
            data = json.dumps(payload).encode()
            try:
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)
            finally:
                with state.lock:
                    state.in_flight -= 1

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield state
    httpd.shutdown()
    httpd.server_close()


def teacher(url: str, **settings: Any) -> OpenAITeacher:
    sampling = settings.pop("sampling", {"n": 2, "max_tokens": 64, "seed": 0})
    config = OpenAITeacherConfig(
        backend="openai", model="m", base_url=url, retry_initial_s=0.01, retry_max_s=0.05, sampling=sampling,
        **settings,
    )
    built = build_teacher("remote", config)
    assert isinstance(built, OpenAITeacher)
    return built


def draw(t: OpenAITeacher, n: int = 2, seed: int = 100):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        try:
            return await t.sample(MESSAGES, n=n, seed=seed, request_id="p-r0")
        finally:
            await t.aclose()

    return asyncio.run(go())


def test_n_samples_in_one_request_with_usage(server):
    server.replies = [Reply(payload=body(["The answer is 5.", "5"], completion_tokens=12))]
    t = teacher(server.url)
    out = draw(t)
    assert out.error is None and out.prompt_tokens == 9
    assert [(c.index, c.text, c.finish_reason, c.reasoning) for c in out.completions] == [
        (0, "The answer is 5.", "stop", None), (1, "5", "stop", None)
    ]
    assert sum(c.completion_tokens for c in out.completions) == 12  # usage, shared by length
    (request,) = server.requests
    assert (request["model"], request["n"], request["seed"], request["max_tokens"]) == ("m", 2, 100, 64)
    assert t.usage.as_dict() == {
        "requests": 1, "failed_requests": 0, "retries": 0, "prompt_tokens": 9, "completion_tokens": 12
    }


def test_a_server_without_n_is_asked_once_per_missing_sample(server):
    server.replies = [Reply(payload=body(["a"]))]  # always one choice, whatever n says
    out = draw(teacher(server.url), n=3)
    assert [c.index for c in out.completions] == [0, 1, 2] and out.error is None
    seeds = [r["seed"] for r in server.requests]
    # the first request comes alone; the two follow-ups are sent together and arrive in either order
    assert seeds[0] == 100 and sorted(seeds[1:]) == [101, 102] and len(seeds) == 3

    server.requests.clear()
    out = draw(teacher(server.url, samples_per_request=1), n=3)
    assert [r["n"] for r in server.requests] == [1, 1, 1] and len(out.completions) == 3
    assert sorted(r["seed"] for r in server.requests) == [100, 101, 102]


def test_rate_limits_and_server_errors_are_retried(server):
    server.replies = [
        Reply(status=429, headers={"Retry-After": "0.01"}),
        Reply(status=503),
        Reply(payload=body(["5", "5"])),
    ]
    t = teacher(server.url)
    out = draw(t)
    assert out.error is None and len(server.requests) == 3 and t.usage.retries == 2


def test_retries_end_in_a_clean_error(server):
    server.replies = [Reply(status=500)]
    t = teacher(server.url, max_retries=2)
    out = draw(t)
    assert out.completions == [] and out.error.startswith("InternalServerError: HTTP 500")
    assert out.failure == "transient"  # retried by the pipeline, never written off
    assert len(server.requests) == 3 and t.usage.failed_requests == 1


def test_a_bad_request_is_not_retried(server):
    server.replies = [Reply(status=400, payload={"error": {"message": "prompt too long"}})]
    out = draw(teacher(server.url))
    assert "HTTP 400" in out.error and "prompt too long" in out.error and len(server.requests) == 1
    assert out.failure == "permanent"  # dead-lettered with the reason


def test_a_slow_server_times_out(server):
    server.replies = [Reply(payload=body(["5", "5"]), delay_s=1.0)]
    out = draw(teacher(server.url, timeout_s=0.2, max_retries=0))
    assert out.error.startswith("APITimeoutError") and out.failure == "transient"


def test_concurrency_is_limited(server):
    server.replies = [Reply(payload=body(["5"]), delay_s=0.1)]
    t = teacher(server.url, concurrency=2, samples_per_request=1)
    out = draw(t, n=6)
    assert len(out.completions) == 6 and server.max_in_flight == 2


def test_reasoning_content_becomes_the_reasoning_column(server):
    server.replies = [Reply(payload=body(["The answer is \\boxed{5}."], reasoning=["2 plus 3 is 5."]))]
    t = teacher(server.url, sampling={"n": 1, "max_tokens": 64, "seed": 0})
    (completion,) = draw(t, n=1).completions
    assert (completion.reasoning, completion.text) == ("2 plus 3 is 5.", "The answer is \\boxed{5}.")

    # through the sampling loop: the separate reasoning is the sample's reasoning, the text its answer
    p = Prompt(id=prompt_id("What is 2 + 3?", "s"), source="s", source_row=0, domain="math",
               problem="What is 2 + 3?", answer="5")
    with VerifierPool(VerificationConfig(workers=1)) as pool:
        sampler = RejectionSampler(t, pool, build_filters(FiltersConfig()), SamplingPolicy(1, 1), ChatFormat())
        (sample,) = asyncio.run(sampler.run(p)).samples
    assert (sample.reasoning, sample.answer) == ("2 plus 3 is 5.", "The answer is \\boxed{5}.")
    assert sample.think_well_formed
    assert sample.accepted and sample.completion_tokens == 12


def test_api_key_comes_from_the_named_variable_and_is_never_shown(server, monkeypatch):
    secret = "sk-test-not-a-real-key-4242"
    monkeypatch.setenv("DISTILLERY_TEST_KEY", secret)
    server.replies = [Reply(payload=body(["5", "5"]))]
    t = teacher(server.url, api_key_env="DISTILLERY_TEST_KEY")
    assert draw(t).error is None and server.auth == [f"Bearer {secret}"]
    assert secret not in repr(t) and secret not in t.config.model_dump_json()
    assert secret not in t.sampling_json()
    monkeypatch.delenv("DISTILLERY_TEST_KEY")
    with pytest.raises(TeacherConfigError, match="DISTILLERY_TEST_KEY"):
        teacher(server.url, api_key_env="DISTILLERY_TEST_KEY")


def test_an_unreachable_server_fails_the_request_not_the_caller():
    t = teacher("http://127.0.0.1:1/v1", max_retries=1)  # nothing listens on port 1
    out = draw(t)
    assert out.error.startswith("APIConnectionError") and t.usage.retries == 1


def test_token_counts_per_choice():
    def choice(text: str, ids: list[int] | None = None) -> SimpleNamespace:
        return SimpleNamespace(message=SimpleNamespace(content=text), token_ids=ids)

    assert token_counts([choice("abc", [1, 2]), choice("d", [3])], 99) == [2, 1]  # exact, from token ids
    assert token_counts([choice("abc")], 7) == [7]
    assert token_counts([choice("aaa"), choice("a")], 10) == [8, 2]  # shared by length, summing to usage
    assert sum(token_counts([choice("ab"), choice("ab"), choice("ab")], 10)) == 10
    assert token_counts([choice(""), choice("")], 4) == [2, 2]
    assert token_counts([choice("a"), choice("b")], None) == [0, 0]


def test_the_example_server_job_is_valid():
    job = load_job(Path(__file__).resolve().parents[1] / "jobs" / "openai_server.yaml")
    served = job.teachers["served"]
    assert isinstance(served, OpenAITeacherConfig) and served.api_key_env is None
    assert served.base_url == "http://127.0.0.1:8000/v1" and job.judge is not None and job.judge.teacher == "served"
