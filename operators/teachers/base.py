"""The teacher interface: sample `n` completions of one chat prompt."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from distillery.schemas.records import FailureKind
from distillery.schemas.teacher_config import SamplingConfig

REPETITION_FINISH = "repetition"
"""vLLM's finish reason for a request its repetition detection ended (a loop cut while decoding)."""
WASTED_FINISHES = ("length", REPETITION_FINISH)
"""Finish reasons whose tokens bought nothing: cut at max_tokens, or a loop the engine cut."""


@dataclass(frozen=True, slots=True)
class Completion:
    index: int
    text: str
    completion_tokens: int
    finish_reason: str
    reasoning: str | None = None
    """Set when the backend returns the chain of thought separately (`reasoning_content`)."""


@dataclass(slots=True)
class TeacherResponse:
    prompt_tokens: int = 0
    completions: list[Completion] = field(default_factory=list)
    error: str | None = None
    """Why the request failed; one failed request never fails the job."""
    failure: FailureKind | None = None
    """What kind of failure `error` is; an error of unknown kind is transient (retried, never written off)."""

    def __post_init__(self) -> None:
        if self.error is not None and self.failure is None:
            self.failure = "transient"

    @classmethod
    def failed(cls, error: str, failure: FailureKind) -> TeacherResponse:
        return cls(error=error, failure=failure)


class TeacherCapabilityError(RuntimeError):
    """The teacher's backend cannot do what the job asks of it."""


class Teacher(ABC):
    """One engine or server. `sample` is async so many prompts are in flight at once."""

    name: str
    model: str
    sampling: SamplingConfig

    @abstractmethod
    async def sample(self, messages: list[dict[str, str]], *, n: int, seed: int, request_id: str) -> TeacherResponse:
        """n completions of the chat `messages`; errors come back in `error`, not raised."""

    async def continue_turn(
        self, messages: list[dict[str, str]], prefill: str, *, seed: int, request_id: str
    ) -> TeacherResponse:
        """One completion that continues `prefill` as the assistant's own, unfinished turn (the engine
        goes on with the text; it does not start a new answer). The completion holds only the new text."""
        raise TeacherCapabilityError(
            f"teacher {self.name!r} ({type(self).__name__}) cannot continue a prefilled assistant turn; "
            "use a vllm or openai teacher"
        )

    def healthy(self) -> bool:
        """False once the teacher cannot serve any request again (its engine died): the replica
        holding it builds a new one and retries what it held."""
        return True

    def close(self) -> None:  # noqa: B027 - most teachers hold nothing to release
        """Release the engine or connections."""

    def sampling_json(self) -> str:
        return self.sampling.model_dump_json()
