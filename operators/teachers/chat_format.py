"""How a prompt becomes a teacher's chat messages."""

from __future__ import annotations

from dataclasses import dataclass

from distillery.schemas.records import Prompt


@dataclass(frozen=True, slots=True)
class ChatFormat:
    """How a prompt becomes the teacher's chat messages."""

    prompt_template: str = "{problem}"
    system_prompt: str | None = None

    def messages(self, prompt: Prompt) -> list[dict[str, str]]:
        # str.replace, not str.format: templates hold LaTeX braces such as \boxed{}.
        user = self.prompt_template.replace("{problem}", prompt.problem)
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*system, {"role": "user", "content": user}]
