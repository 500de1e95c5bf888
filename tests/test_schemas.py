from __future__ import annotations

import pyarrow as pa

from distillery.schemas.arrow import arrow_schema, from_table, to_table
from distillery.schemas.records import (
    Generation,
    Message,
    SFTRecord,
    Verdict,
    assistant_turn,
    generation_id,
    prompt_id,
    request_seed,
)


def test_prompt_id_is_deterministic_and_normalizes_whitespace():
    assert prompt_id("What is  2+3?\n", "s") == prompt_id("What is 2+3?", "s")
    assert prompt_id("What is 2+3?", "s") != prompt_id("What is 2+3?", "other")
    assert prompt_id("What is 2+3?", "s") != prompt_id("What is 2+4?", "s")
    assert len(prompt_id("x", "s")) == 16


def test_generation_id_and_seed_derive_from_identity():
    pid = prompt_id("p", "s")
    assert generation_id(pid, 1, 3) == f"{pid}-r1-3"
    assert request_seed(0, pid, 0) == request_seed(0, pid, 0)
    assert request_seed(0, pid, 0) != request_seed(0, pid, 1)
    assert request_seed(0, pid, 0) != request_seed(1, pid, 0)
    assert 0 <= request_seed(0, pid, 0) < 2**31


def test_arrow_schema_follows_the_models():
    schema = arrow_schema(Generation)
    assert schema.field("verdicts").type == pa.list_(pa.struct(list(arrow_schema(Verdict))))
    assert schema.field("rejection_reason").nullable
    assert not schema.field("id").nullable
    sft = arrow_schema(SFTRecord)
    assert sft.field("messages").type == pa.list_(pa.struct(list(arrow_schema(Message))))


def test_records_round_trip_through_arrow():
    verdict = Verdict(verifier="math@1", verdict="correct", extracted="5", detail="", elapsed_ms=1.5)
    gen = Generation(
        id="p-r0-0",
        prompt_id="p",
        round=0,
        index=0,
        source="s",
        domain="math",
        teacher="t",
        model="m",
        sampling="{}",
        seed=1,
        text="x",
        reasoning="",
        answer="x",
        think_well_formed=False,
        prompt_tokens=3,
        completion_tokens=1,
        finish_reason="stop",
        verdicts=[verdict],
        accepted=True,
        selected=True,
    )
    table = to_table([gen], Generation)
    assert table.schema == arrow_schema(Generation)
    assert from_table(table, Generation) == [gen]
    assert to_table([], Generation).num_rows == 0


def test_assistant_turn_is_r1_format():
    assert assistant_turn("step", "ans") == "<think>\nstep\n</think>\n\nans"
