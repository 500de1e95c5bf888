"""MathVerifier against the labelled test suites other math graders ship.

`tests/data/math_grader_suites.jsonl` holds every labelled (gold, answer, equal or not) case of
Math-Verify's `tests/`, MARIO_EVAL's `test_is_equiv.py`, NeMo-Skills' `tests/test_math_equal.py`
(both directions, as that suite checks them) and hendrycks math's `math_equivalence_test.py`, each
with its repo, commit, path and test case. Each row is a `distillery verify` row (`id`, `domain`,
`response`, `gold`): `response` is the suite's answer boxed when the suite compares bare answers, its
whole text when the suite's answer is a response; `domain` is `math`, or `math@N` where the suite
compares at N decimal places (`options.precision`).
A case we deliberately decide otherwise carries a one-line `convention`. The suites conflict with
one another (list order, lenient rounding, decimal commas), so agreeing with all is impossible.

Every case runs through the real worker pool, with its hard deadline.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from distillery.operators.verifiers.pool import VerifierPool
from distillery.schemas.records import Verdict
from distillery.schemas.verifier_config import MathVerifierConfig, VerificationConfig

SUITES = Path(__file__).parent / "data" / "math_grader_suites.jsonl"
DEFAULT_ROUNDING = MathVerifierConfig().float_rounding
PROVENANCE = ("id", "domain", "suite", "repo", "commit", "path", "case")


def load_cases(path: Path = SUITES) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def rounding(domain: str) -> int:
    """A case's domain names the float_rounding its suite states (math-verify's `precision`): `math`
    is the default, `math@2` two places."""
    return int(domain.partition("@")[2] or DEFAULT_ROUNDING)


def run_cases(cases: list[dict[str, Any]]) -> list[Verdict]:
    domains = {c["domain"]: MathVerifierConfig(float_rounding=rounding(c["domain"])) for c in cases}
    config = VerificationConfig(workers=2, domains=domains)

    async def all_cases(pool: VerifierPool) -> list[Verdict]:
        checks = (pool.verify(c["domain"], c["gold"], None, c["response"] or "") for c in cases)
        return list(await asyncio.gather(*checks))

    with VerifierPool(config) as pool:
        return asyncio.run(all_cases(pool))


CASES = load_cases()


@pytest.fixture(scope="module")
def verdicts() -> list[Verdict]:
    return run_cases(CASES)


def _describe(case: dict[str, Any], verdict: Verdict) -> str:
    return (f"{case['suite']} {case['path']}::{case['case']}: gold {case['gold']!r}, answer {case['answer']!r}; "
            f"suite says {'equal' if case['expected'] else 'not equal'}, we say {verdict.verdict} "
            f"(read {verdict.extracted!r}; {verdict.detail})")


def test_the_file_covers_the_four_suites_with_provenance() -> None:
    assert Counter(c["suite"] for c in CASES) == {"math-verify": 270, "mario-eval": 60, "nemo-skills": 60,
                                                  "hendrycks-math": 16}
    for case in CASES:
        assert all(case.get(field) for field in PROVENANCE), case
        assert len(case["commit"]) == 40 and isinstance(case["expected"], bool)
    assert len({c["id"] for c in CASES}) == len(CASES)


def test_every_case_agrees_or_is_listed_with_its_reason(verdicts: list[Verdict]) -> None:
    unlisted = [_describe(c, v) for c, v in zip(CASES, verdicts, strict=True)
                if (v.verdict == "correct") != c["expected"] and not c.get("convention")]
    assert not unlisted, "\n".join(unlisted)


def test_no_false_positive_outside_the_list(verdicts: list[Verdict]) -> None:
    false_positives = [_describe(c, v) for c, v in zip(CASES, verdicts, strict=True)
                       if v.verdict == "correct" and not c["expected"] and not c.get("convention")]
    assert not false_positives, "\n".join(false_positives)


def test_listed_conventions_still_disagree(verdicts: list[Verdict]) -> None:
    """A listed case we now agree with is a stale entry: the list says only what is true."""
    stale = [_describe(c, v) for c, v in zip(CASES, verdicts, strict=True)
             if c.get("convention") and (v.verdict == "correct") == c["expected"]]
    assert not stale, "\n".join(stale)


def test_no_case_runs_into_the_deadline(verdicts: list[Verdict]) -> None:
    """The pathological inputs (2^{1/2^{1000}}) are refused before sympy starts on them."""
    timed_out = [_describe(c, v) for c, v in zip(CASES, verdicts, strict=True) if v.verdict in ("timeout", "error")]
    assert not timed_out, "\n".join(timed_out)
