"""The closed set of message kinds.

Every catalog intent has one of these kinds (``kind:`` in ``config/intents.yaml``); the wire
protocol (``config/schema/message.v1.json``) and every device rely on exactly this set, so it
is fixed here in code while intents are open. A leaf module: both the catalog and the bus
messages import it, and it imports nothing of voicehello.
"""

from __future__ import annotations

from typing import Literal, get_args

Kind = Literal["request", "offer", "hello", "event", "report", "reply", "cancel"]
"""What sort of message an intent makes."""

KINDS: tuple[Kind, ...] = get_args(Kind)
"""Every kind, in the schema's order."""

ANSWERS: frozenset[Kind] = frozenset({"reply", "cancel"})
"""Kinds that answer an earlier message (and only they carry ``in_reply_to``)."""

TTL_S: dict[Kind, float] = {
    "request": 30 * 60.0,
    "offer": 60 * 60.0,
    "hello": 10 * 60.0,
    "event": 6 * 3600.0,
    "report": 2 * 3600.0,
    "reply": 30 * 60.0,
    "cancel": 30 * 60.0,
}
"""How long each kind of message stays valid by default (an intent may set its own,
``lifetime_minutes``): after that it is never delivered or spoken."""

MAX_TTL_S = 7 * 24 * 3600.0
"""No message lives longer than a week."""


def as_kind(value: object) -> Kind | None:
    """``value`` as a :data:`Kind`, or None when it is not one."""
    for kind in KINDS:
        if value == kind:
            return kind
    return None
