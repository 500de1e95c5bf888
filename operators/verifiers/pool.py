"""Verification in worker processes with a hard wall-clock deadline per sample.

A verifier can hang (sympy on a power tower, a C loop no signal interrupts), so each check runs in a
pebble worker process that is killed and replaced when its deadline passes; the caller gets a
`timeout` verdict and the pool carries on. Futures are awaitable, so a teacher's event loop keeps
decoding other prompts while samples are checked.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from functools import lru_cache
from typing import Any

from pebble import ProcessPool

from distillery.operators.verifiers.base import GoldError, Verifier
from distillery.operators.verifiers.registry import build_verifier
from distillery.schemas.records import Verdict
from distillery.schemas.verifier_config import VerificationConfig, VerifierConfig


@lru_cache(maxsize=32)
def _verifier(config_json: str) -> Verifier:
    from pydantic import TypeAdapter

    return build_verifier(TypeAdapter(VerifierConfig).validate_json(config_json))


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
        return [Verdict(verifier=verifier.label, verdict="invalid", detail=f"gold: {exc}") for _ in responses]
    return [verifier.verdict(gold, response) for response in responses]


class VerifierPool:
    """Worker processes shared by all prompts of one teacher replica."""

    def __init__(self, config: VerificationConfig) -> None:
        self.config = config
        self._configs = {domain: spec.model_dump_json() for domain, spec in config.domains.items()}
        self._labels = {domain: build_verifier(spec).label for domain, spec in config.domains.items()}
        # forkserver: forking the (multi-threaded) teacher process itself could deadlock a child.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["distillery.operators.verifiers.pool"])
        self._pool = ProcessPool(max_workers=config.workers, context=context)

    def has_verifier(self, domain: str) -> bool:
        return domain in self._configs

    async def verify(self, domain: str, answer: str | None, tests: str | None, response: str) -> Verdict:
        """One response's verdict, `timeout` if its check outlives the deadline."""
        config_json = self._configs.get(domain)
        if config_json is None:
            return Verdict(verifier="none", verdict="invalid", detail=f"no verifier for domain {domain!r}")
        start = time.perf_counter()
        future = self._pool.schedule(
            run_verification, args=(config_json, answer, tests, [response]), timeout=self.config.timeout_s
        )
        try:
            (verdict,) = await asyncio.wrap_future(future)
            return verdict
        except FutureTimeout:
            label, outcome = "timeout", f"killed after {self.config.timeout_s:g}s"
        except Exception as exc:  # a worker that crashed (segfault, OOM) is an error, not a pass
            label, outcome = "error", f"{type(exc).__name__}: {exc}"
        return Verdict(
            verifier=self._labels[domain],
            verdict=label,
            detail=outcome,
            elapsed_ms=(time.perf_counter() - start) * 1000,
        )

    def verify_blocking(self, domain: str, answer: str | None, tests: str | None, responses: list[str]) -> list[Verdict]:
        async def _all() -> list[Verdict]:
            return list(await asyncio.gather(*(self.verify(domain, answer, tests, r) for r in responses)))

        return asyncio.run(_all())

    def close(self) -> None:
        self._pool.stop()
        self._pool.join(timeout=5)

    def __enter__(self) -> VerifierPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe(config: VerificationConfig) -> str:
    return json.dumps({d: s.model_dump() for d, s in config.domains.items()}, sort_keys=True)
