"""The reflection: the sentence where the trace notices its error, in its own voice.

Openings, consequences and the way back are fixed sets, chosen by the trace's id (deterministic, and
varied across traces: a student trained on one "Wait, let me recheck" everywhere learns a tic).
"""

from __future__ import annotations

from distillery.operators.journey.locate import Location
from distillery.schemas.journey_config import Bridge
from distillery.schemas.records import stable_hash

OPENINGS = (
    "Wait:",
    "Hold on:",
    "Hmm, that's not right:",
    "Let me check that:",
    "Actually, no:",
    "Wait, that's wrong:",
    "Let me double-check this step:",
    "Hmm, something is off here:",
    "No, wait:",
    "Careful:",
)
CONSEQUENCES = (
    "so everything from here on is off",
    "so the result from this step on is wrong",
    "and that error carries through the rest",
    "so the rest of this working can't be trusted",
)
RESTARTS = (
    "Let me start over.",
    "Let me redo this from the beginning.",
    "I'll start again, more carefully.",
    "Let me solve it again from scratch.",
)
CONTINUATIONS = (
    "Let me fix that and carry on.",
    "Let me redo it from this step.",
    "Correcting that and continuing:",
    "Let me recompute from here.",
)


def _pick(options: tuple[str, ...], part: str, key: str) -> str:
    return options[int(stable_hash("reflection", part, key, length=8), 16) % len(options)]


def opening_of(key: str) -> str:
    return _pick(OPENINGS, "opening", key)


def reflection(location: Location, key: str, bridge: Bridge) -> str:
    """`key` is the trace's id. Critic statements are already full sentences; compare statements get
    a consequence."""
    statement = location.statement.rstrip(". ")
    if location.locator == "compare":
        statement = f"{statement}, {_pick(CONSEQUENCES, 'consequence', key)}"
    back = _pick(RESTARTS if bridge == "splice" else CONTINUATIONS, "back", key)
    return f"{opening_of(key)} {statement}. {back}"
