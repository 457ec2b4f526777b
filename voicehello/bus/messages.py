"""The one message type devices exchange, its JSON form and its JSON Schema.

Every message is checked against ``config/schema/message.v1.json`` in both directions:
before it is published (so a bug here never reaches the neighbors) and when it arrives
(so nothing malformed from the bus reaches the speaker). Its slot values must also follow
:mod:`voicehello.intents.slot_values` (short request-shaped phrases, canonical times): checked
when a message is made, before it is published and when it arrives.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from voicehello.config import PROJECT_DIR
from voicehello.errors import MessageError
from voicehello.intents import slot_values
from voicehello.intents.kinds import ANSWERS, KINDS, MAX_TTL_S, TTL_S, Kind

VERSION = 1
SCHEMA_FILE = PROJECT_DIR / "config" / "schema" / f"message.v{VERSION}.json"
MAX_PAYLOAD_BYTES = 4096
"""Larger payloads are dropped before they are parsed."""

__all__ = [  # ANSWERS, KINDS, Kind, MAX_TTL_S and TTL_S are re-exported from voicehello.intents.kinds
    "ANSWERS",
    "KINDS",
    "KIND_OF_INTENT",
    "MAX_PAYLOAD_BYTES",
    "MAX_TTL_S",
    "TTL_S",
    "VERSION",
    "IntentKinds",
    "Kind",
    "Message",
    "Sender",
    "check",
    "check_slots",
    "new_message",
    "use_intent_kinds",
]


class IntentKinds(Mapping[str, Kind]):
    """Intent -> message kind, as the intent catalog in use says (``kind:`` in its YAML).

    The wiring (``app.py``, ``voicehello say``) installs the catalog's table with
    :func:`use_intent_kinds`; until then it is the shipped catalog's (``config/intents.yaml``),
    read on first use, so code without a catalog (tests, the bus benchmark) can still make
    messages. It is used to make messages (when the caller passes no kind) and to check that a
    message's kind is its intent's, before it is published and when it arrives. Intents the
    table does not know pass that check: a neighbor's catalog may have more.
    """

    def __init__(self) -> None:
        self._table: dict[str, Kind] | None = None
        self._lock = threading.Lock()

    def use(self, kinds: Mapping[str, Kind] | None) -> None:
        """Install ``kinds`` (None: back to the shipped catalog's)."""
        with self._lock:
            self._table = None if kinds is None else dict(kinds)

    def _current(self) -> dict[str, Kind]:
        with self._lock:
            if self._table is None:
                self._table = _shipped_kinds()
            return self._table

    def __getitem__(self, intent: str) -> Kind:
        return self._current()[intent]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._current()))

    def __len__(self) -> int:
        return len(self._current())


def _shipped_kinds() -> dict[str, Kind]:
    """The kinds of the shipped catalog (imported here, not at the top: the bus needs the
    catalog only when nothing installed a table)."""
    from voicehello.config import DEFAULT_CATALOG_FILE
    from voicehello.intents.catalog import load_catalog

    return load_catalog(DEFAULT_CATALOG_FILE).kinds


KIND_OF_INTENT = IntentKinds()
"""The kind of every intent of the catalog in use; kinds ``reply`` and ``cancel`` answer an earlier message."""


def use_intent_kinds(kinds: Mapping[str, Kind] | None) -> None:
    """Wiring: the catalog in use decides the kind of each intent (None: the shipped catalog)."""
    KIND_OF_INTENT.use(kinds)


@dataclass(frozen=True)
class Sender:
    """Who said it."""

    device: str
    """Device id, also the ``<device>`` level of the topic it is published on."""
    name: str
    """Display name neighbors hear, e.g. "Maya at number 12"."""


@dataclass(frozen=True)
class Message:
    """One thing a device says to its pod."""

    id: str
    """128 random bits as 32 hex digits; receivers act on each id once."""
    ts: float
    """When it was said (Unix seconds)."""
    expires: float
    """Unix time after which it is dropped: not delivered by the broker, not spoken."""
    sender: Sender
    """Who said it (``from`` in JSON)."""
    kind: Kind
    """request, offer, hello, event, report, reply or cancel (derived from the intent)."""
    intent: str
    """Catalog intent name."""
    slots: dict[str, str] = field(default_factory=dict)
    """Slot name -> canonical value."""
    text: str = ""
    """The words the sender confirmed; never audio."""
    in_reply_to: str | None = None
    """For replies and cancellations: the id of the message answered."""
    v: int = VERSION
    """Format version."""

    def ttl(self, now: float | None = None) -> float:
        """Seconds left before it expires (negative once expired)."""
        return self.expires - (time.time() if now is None else now)

    def expired(self, now: float | None = None) -> bool:
        """True once the message must no longer be delivered or spoken."""
        return self.ttl(now) <= 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, exactly as the schema describes it."""
        return {
            "v": self.v,
            "id": self.id,
            "ts": self.ts,
            "expires": self.expires,
            "from": {"device": self.sender.device, "name": self.sender.name},
            "kind": self.kind,
            "intent": self.intent,
            "slots": dict(self.slots),
            "text": self.text,
            "in_reply_to": self.in_reply_to,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Message:
        """Build and check a message from a decoded JSON value (raises :class:`MessageError`)."""
        check(data)
        message = cls(
            id=data["id"],
            ts=float(data["ts"]),
            expires=float(data["expires"]),
            sender=Sender(device=data["from"]["device"], name=data["from"]["name"]),
            kind=data["kind"],
            intent=data["intent"],
            slots=dict(data["slots"]),
            text=data["text"],
            in_reply_to=data["in_reply_to"],
            v=data["v"],
        )
        _check_meaning(message)
        return message

    def to_json(self) -> bytes:
        """UTF-8 JSON payload, checked against the schema first."""
        data = self.to_dict()
        check(data)
        _check_meaning(self)
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise MessageError(f"message {self.id} is {len(payload)} bytes, over {MAX_PAYLOAD_BYTES}")
        return payload

    @classmethod
    def from_json(cls, payload: bytes) -> Message:
        """Parse a payload from the bus (raises :class:`MessageError` for anything wrong)."""
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise MessageError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
        try:
            data = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise MessageError(f"payload is not UTF-8 JSON: {_short(exc)}") from exc
        return cls.from_dict(data)


def new_message(
    sender: Sender,
    intent: str,
    slots: dict[str, str] | None = None,
    text: str = "",
    *,
    in_reply_to: str | None = None,
    now: float | None = None,
    ttl_s: float | None = None,
    kind: Kind | None = None,
) -> Message:
    """A fresh message from this device, with a new id and the kind's default lifetime.

    ``kind``: the intent's kind as the caller's catalog says; None: :data:`KIND_OF_INTENT`'s."""
    kind = kind or KIND_OF_INTENT.get(intent)
    if kind is None:
        raise MessageError(f"unknown intent {intent!r}")
    check_slots(slots or {})
    said = time.time() if now is None else now
    return Message(
        id=uuid.uuid4().hex,
        ts=said,
        expires=said + (TTL_S[kind] if ttl_s is None else ttl_s),
        sender=sender,
        kind=kind,
        intent=intent,
        slots=dict(slots or {}),
        text=text,
        in_reply_to=in_reply_to,
    )


def _whole_string_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """``pattern`` as JSON Schema means it: ``$`` is the end of the string. (Python's ``$``
    also matches before a final newline, so ``"kitchen\\n"`` would pass.)"""
    if validator.is_type(instance, "string") and not re.search(pattern.replace("$", r"\Z"), instance):
        yield ValidationError(f"does not match {pattern!r}")


_Validator = validators.extend(Draft202012Validator, {"pattern": _whole_string_pattern})  # type: ignore[no-untyped-call]


@cache
def _validator() -> Any:
    try:
        schema = json.loads(Path(SCHEMA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MessageError(f"cannot read message schema {SCHEMA_FILE}: {exc}") from exc
    Draft202012Validator.check_schema(schema)
    return _Validator(schema)


def check(data: Any) -> None:
    """Raise :class:`MessageError` unless ``data`` matches the message schema."""
    if isinstance(data, dict) and data.get("v") != VERSION and "v" in data:
        raise MessageError(f"unknown message version {str(data.get('v'))[:20]!r}")
    error: ValidationError | None = next(iter(_validator().iter_errors(data)), None)
    if error is not None:
        where = "/".join(_short(str(part), 40) for part in error.absolute_path) or "message"
        raise MessageError(f"{where}: {_describe(error)}")


def _describe(error: ValidationError) -> str:
    """What is wrong, without quoting the offending value (it may be what someone said)."""
    if error.validator == "required":
        return error.message  # names a property of the schema
    if error.validator == "type":
        return f"is not of type {error.validator_value!r}"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = sorted(_short(str(key), 24) for key in error.instance if key not in allowed)
        return f"Additional properties are not allowed: {', '.join(extra[:4])}"
    return f"fails the schema's {error.validator!r} rule"


def check_slots(slots: dict[str, str]) -> None:
    """Raise :class:`MessageError` naming the first slot whose value breaks the slot value rule
    (:mod:`voicehello.intents.slot_values`) and the part it breaks, never quoting the value."""
    for slot, value in slots.items():
        broken = slot_values.violation(slot, value)
        if broken is not None:
            raise MessageError(f"slots/{_short(slot, 40)}: {broken}")


def _check_meaning(message: Message) -> None:
    """Rules the schema cannot express."""
    if not (math.isfinite(message.ts) and math.isfinite(message.expires)):
        raise MessageError("ts and expires must be finite")
    if not 0 < message.expires - message.ts <= MAX_TTL_S:
        raise MessageError("expires must be after ts and at most a week later")
    expected = KIND_OF_INTENT.get(message.intent)
    if expected is not None and expected != message.kind:
        raise MessageError(f"intent {message.intent} is a {expected}, not a {message.kind}")
    if (message.kind in ANSWERS) != (message.in_reply_to is not None):
        raise MessageError("replies and cancellations, and only they, carry in_reply_to")
    check_slots(message.slots)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _short(error: object, limit: int = 120) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
