"""Final dataset rows from selected samples."""

from __future__ import annotations

from collections import Counter

from distillery.operators.teachers.chat_format import ChatFormat
from distillery.schemas.records import Generation, Kind, Message, Prompt, SFTRecord, assistant_turn, stable_hash


def pass_rates(samples: list[Generation]) -> dict[str, float]:
    """Share of a prompt's samples that were accepted, over all its rounds."""
    total: Counter[str] = Counter()
    accepted: Counter[str] = Counter()
    for sample in samples:
        total[sample.prompt_id] += 1
        accepted[sample.prompt_id] += sample.accepted
    return {pid: accepted[pid] / total[pid] for pid in total}


def sft_record(
    prompt: Prompt, sample: Generation, chat: ChatFormat, pass_rate: float, config_hash: str, kind: Kind
) -> SFTRecord:
    # The user turn is what the teacher answered (template included), without the teacher's system
    # prompt: instructions meant for the teacher are not part of what the student learns.
    user = chat.messages(prompt)[-1]["content"]
    messages = [
        Message(role="user", content=user),
        Message(role="assistant", content=assistant_turn(sample.reasoning, sample.answer)),
    ]
    return SFTRecord(
        id=stable_hash("sft", sample.id),
        prompt_id=prompt.id,
        sample_id=sample.id,
        messages=messages,
        prompt=messages[:-1],
        completion=messages[-1:],
        problem=prompt.problem,
        reasoning=sample.reasoning,
        answer=sample.answer,
        domain=sample.domain,
        source=sample.source,
        kind=kind,
        teacher=sample.teacher,
        model=sample.model,
        sampling=sample.sampling,
        completion_tokens=sample.completion_tokens,
        verdicts=sample.verdicts,
        pass_rate=pass_rate,
        config_hash=config_hash,
    )
