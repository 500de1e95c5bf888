"""Verification in worker processes with a hard wall-clock deadline per sample.

A verifier can hang (sympy on a power tower, a C loop no signal interrupts), so each check runs in a
pebble worker process that is killed and replaced when its deadline passes; the caller gets a
`timeout` verdict and the pool carries on. Futures are awaitable, so a teacher's event loop keeps
decoding other prompts while samples are checked. Nothing here uses signals in the caller, so the
pool works from any thread (Ray actors, thread pools).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from functools import lru_cache
from typing import Any

from pebble import ProcessPool
from pydantic import TypeAdapter

from distillery.operators.verifiers.base import GoldError, Verifier
from distillery.operators.verifiers.registry import build_verifier
from distillery.schemas.records import Verdict
from distillery.schemas.verifier_config import VerificationConfig, VerifierConfig

_CONFIG = TypeAdapter(VerifierConfig)


@lru_cache(maxsize=32)
def _verifier(config_json: str) -> Verifier:
    return build_verifier(_CONFIG.validate_json(config_json))


@lru_cache(maxsize=4096)
def _gold(config_json: str, answer: str | None, tests: str | None) -> Any:
    # Cached per worker, so a prompt's gold is parsed once and reused for all its samples.
    return _verifier(config_json).prepare_gold(answer, tests)


def run_verification(
    config_json: str, answer: str | None, tests: str | None, responses: Sequence[str]
) -> list[Verdict]:
    """Check responses against one prompt's gold. Runs inside a worker process."""
    verifier = _verifier(config_json)
    try:
        gold = _gold(config_json, answer, tests)
    except GoldError as exc:
        unusable = Verdict(verifier=verifier.label, verdict="invalid", detail=f"gold: {exc}", gold_unparseable=True)
        return [unusable.model_copy() for _ in responses]
    return [verifier.verdict(gold, response) for response in responses]


class VerifierPool:
    """Worker processes shared by all prompts of one teacher replica."""

    def __init__(self, config: VerificationConfig) -> None:
        self.config = config
        self._configs = {domain: spec.model_dump_json() for domain, spec in config.domains.items()}
        # Built here once too: a verifier that cannot work on this machine (a code sandbox that
        # does not start) fails the job now, with its reason, not every sample later.
        verifiers = {domain: build_verifier(spec) for domain, spec in config.domains.items()}
        self._labels = {domain: v.label for domain, v in verifiers.items()}
        self._deadlines = {domain: max(config.timeout_s, v.deadline_s or 0.0) for domain, v in verifiers.items()}
        # forkserver: forking the (multi-threaded) teacher process itself could deadlock a child.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["distillery.operators.verifiers.pool"])
        self._pool = ProcessPool(max_workers=config.workers, context=context)

    def has_verifier(self, domain: str) -> bool:
        return domain in self._configs

    def deadline_s(self, domain: str) -> float:
        return self._deadlines.get(domain, self.config.timeout_s)

    async def verify(self, domain: str, answer: str | None, tests: str | None, response: str) -> Verdict:
        """One response's verdict, `timeout` if its check outlives the deadline."""
        config_json = self._configs.get(domain)
        if config_json is None:
            return Verdict(verifier="none", verdict="invalid", detail=f"no verifier for domain {domain!r}")
        deadline = self._deadlines[domain]
        start = time.perf_counter()
        future = self._pool.schedule(run_verification, args=(config_json, answer, tests, [response]), timeout=deadline)
        try:
            (verdict,) = await asyncio.wrap_future(future)
            return verdict
        except FutureTimeout:
            label, outcome = "timeout", f"killed after {deadline:g}s"
        except Exception as exc:  # a worker that crashed (segfault, OOM) is an error, not a pass
            label, outcome = "error", f"{type(exc).__name__}: {exc}"
        return Verdict(
            verifier=self._labels[domain],
            verdict=label,
            detail=outcome,
            elapsed_ms=(time.perf_counter() - start) * 1000,
        )

    async def verify_many(
        self, domain: str, answer: str | None, tests: str | None, responses: Sequence[str]
    ) -> list[Verdict]:
        """All samples of one prompt, each under its own deadline (one hanging sample costs only itself)."""
        return list(await asyncio.gather(*(self.verify(domain, answer, tests, r) for r in responses)))

    def verify_blocking(
        self, domain: str, answer: str | None, tests: str | None, responses: Sequence[str]
    ) -> list[Verdict]:
        """`verify_many` for callers without an event loop (from any thread)."""
        return asyncio.run(self.verify_many(domain, answer, tests, responses))

    def close(self) -> None:
        self._pool.stop()
        self._pool.join(timeout=5)

    def __enter__(self) -> VerifierPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
