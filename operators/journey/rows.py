"""Dataset rows of kind `journey`: a verified trace, with how it was built."""

from __future__ import annotations

from distillery.operators.teachers.chat_format import ChatFormat
from distillery.operators.writers.sft import sft_record
from distillery.schemas.records import JourneySample, Prompt, SFTRecord


def journey_record(
    prompt: Prompt, trace: JourneySample, chat: ChatFormat, pass_rate: float, config_hash: str
) -> SFTRecord:
    if not trace.accepted:
        raise ValueError(f"journey trace {trace.id} was rejected ({trace.rejection_reason}); it is never shipped")
    record = sft_record(prompt, trace, chat, pass_rate, config_hash, kind="journey")
    return record.model_copy(update={"journey": trace.journey})
