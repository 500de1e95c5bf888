"""The teacher interface: sample `n` completions of one chat prompt."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from distillery.schemas.teacher_config import SamplingConfig


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


class Teacher(ABC):
    """One engine or server. `sample` is async so many prompts are in flight at once."""

    name: str
    model: str
    sampling: SamplingConfig

    @abstractmethod
    async def sample(self, messages: list[dict[str, str]], *, n: int, seed: int, request_id: str) -> TeacherResponse:
        """n completions of the chat `messages`; errors come back in `error`, not raised."""

    def close(self) -> None:  # noqa: B027 - most teachers hold nothing to release
        """Release the engine or connections."""

    def sampling_json(self) -> str:
        return self.sampling.model_dump_json()
