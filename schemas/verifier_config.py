"""Verifier sections of the job file: which verifier checks which domain, and how.

```yaml
verification:
  workers: 2
  timeout_s: 10
  domains:
    math: {type: math}
    code: {type: code, test_timeout_s: 6, memory_mb: 1024}
    mcq: {type: choice}
    trivia: {type: exact}
```
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator

from distillery.schemas.base import Section


class MathVerifierConfig(Section):
    type: Literal["math"] = "math"
    float_rounding: int = Field(
        default=6, ge=1, le=15, description="decimal places a decimal answer is compared at (math-verify)"
    )


class CodeVerifierConfig(Section):
    """Python solutions run against the prompt's tests in a sandbox (bubblewrap where available)."""

    type: Literal["code"] = "code"
    extract: Literal["last_block", "first_block", "whole"] = Field(
        default="last_block",
        description="where the program is: the last or first fenced Python block, or the whole answer",
    )
    test_timeout_s: float = Field(default=6.0, gt=0, le=600, description="wall-clock limit per test case")
    timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="wall-clock limit for all tests of one sample (the hard deadline)"
    )
    cpu_s: int = Field(default=20, ge=1, description="CPU seconds per sandboxed process (RLIMIT_CPU)")
    memory_mb: int = Field(
        default=1024, ge=64,
        description="memory of the whole program, all its processes together (cgroup), and address space per "
        "process (RLIMIT_AS)",
    )
    max_processes: int = Field(
        default=32, ge=2, description="processes and threads of one program (cgroup pids.max and RLIMIT_NPROC)"
    )
    cpus: float | None = Field(
        default=1.0, gt=0, description="CPU cores one program may use at once (cgroup CPU quota); null: no quota"
    )
    max_file_mb: int = Field(default=16, ge=1, description="largest file a program may write (RLIMIT_FSIZE)")
    max_open_files: int = Field(default=64, ge=16, description="open file descriptors (RLIMIT_NOFILE)")
    tmp_mb: int = Field(default=64, ge=1, description="size of the sandbox's private writable /tmp")
    max_output_kb: int = Field(default=1024, ge=1, description="bytes kept per stream of one run; more fails it")
    float_tolerance: float = Field(
        default=1e-6, ge=0, description="absolute or relative difference allowed where the expected number is a float"
    )
    stop_on_first_failure: bool = Field(default=True, description="stop running tests after the first failure")
    sandbox: Literal["auto", "bubblewrap", "unshare", "unsafe"] = Field(
        default="auto",
        description="auto: bubblewrap if it works here, else unshare namespaces with a read-only view of the host "
        "(warned), else refuse to run programs; unsafe: run them without isolation (limits only)",
    )
    cgroup_parent: str | None = Field(
        default=None,
        description="a cgroup v2 folder delegating memory and pids, under which each run gets its own group; "
        "default: the verifier's own group (cgroup v2 if it delegates them, else v1 as root)",
    )
    python: str | None = Field(
        default=None, description="interpreter for the programs; default: the one running distillery"
    )
    site_packages: bool = Field(
        default=False, description="let programs import the interpreter's site-packages (slower start)"
    )

    @field_validator("timeout_s")
    @classmethod
    def _covers_one_test(cls, timeout_s: float, info: ValidationInfo) -> float:
        test_timeout_s = info.data.get("test_timeout_s")
        if test_timeout_s is not None and test_timeout_s > timeout_s:
            raise ValueError(f"must be at least test_timeout_s ({test_timeout_s:g}), got {timeout_s:g}")
        return timeout_s


class ChoiceVerifierConfig(Section):
    """Multiple choice: the answer's letter against the gold letter."""

    type: Literal["choice"] = "choice"
    letters: str = Field(default="ABCDEFGHIJ", pattern=r"^[A-Z]{2,26}$", description="allowed option letters")


class ExactVerifierConfig(Section):
    """Short factual answers: exact or normalized string match against the gold (or a JSON list of aliases)."""

    type: Literal["exact"] = "exact"
    normalize: bool = Field(
        default=True, description="compare case-folded, without punctuation, articles and extra spaces"
    )
    max_answer_chars: int = Field(
        default=200, ge=1, description="an answer with no explicit final form is read whole only up to this size"
    )


def _verifier_type(value: Any) -> Any:
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


VerifierConfig = Annotated[
    Annotated[MathVerifierConfig, Tag("math")]
    | Annotated[CodeVerifierConfig, Tag("code")]
    | Annotated[ChoiceVerifierConfig, Tag("choice")]
    | Annotated[ExactVerifierConfig, Tag("exact")],
    Discriminator(
        _verifier_type,
        custom_error_type="verifier_type",
        custom_error_message="needs `type:` math, code, choice or exact",
    ),
]


class VerificationConfig(Section):
    workers: int = Field(default=2, ge=1, description="verifier worker processes per teacher replica")
    timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="hard wall-clock deadline per sample (code: its own timeout_s plus a margin, if longer)",
    )
    domains: dict[str, VerifierConfig] = Field(
        default_factory=lambda: {"math": MathVerifierConfig()},
        description="domain -> verifier; a domain without one has its samples rejected as unverifiable",
    )
