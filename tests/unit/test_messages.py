"""Bus messages: round trips for every catalog intent, and everything the schema must refuse."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from voicehello.bus import messages
from voicehello.bus.messages import (
    ANSWERS,
    KIND_OF_INTENT,
    MAX_PAYLOAD_BYTES,
    MAX_TTL_S,
    TTL_S,
    Message,
    Sender,
    new_message,
)
from voicehello.errors import MessageError
from voicehello.intents import slot_values
from voicehello.intents.catalog import Catalog

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "config" / "schema" / "message.v1.json"
"""Read here directly, so the independent check does not go through voicehello's loader."""

NOW = 1_764_096_000.0
MAYA = Sender("kitchen-12", "Maya at number 12")
REQUEST_ID = "6f1c" + "0" * 28
SLOTS: dict[str, dict[str, str]] = {
    "borrow_item": {"item": "ladder"},
    "offer_item": {"item": "drill"},
    "share_food": {"item": "soup"},
    "ask_help": {"task": "moving a sofa"},
    "announce_event": {"event": "street party", "time": "saturday at 3:00"},
    "report_issue": {"issue": "power cut"},
}


def make(intent: str, **kwargs: Any) -> Message:
    """A valid message for ``intent`` (answers answer ``REQUEST_ID``)."""
    in_reply_to = REQUEST_ID if KIND_OF_INTENT[intent] in ANSWERS else None
    return new_message(
        MAYA, intent, SLOTS.get(intent, {}), f"test {intent}", in_reply_to=in_reply_to, now=NOW, **kwargs
    )


def valid() -> dict[str, Any]:
    return make("borrow_item").to_dict()


@pytest.fixture(scope="module")
def independent() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def refused(data: Any, *fragments: str) -> str:
    """Assert ``Message.from_dict`` refuses ``data`` with a one-line message containing ``fragments``."""
    with pytest.raises(MessageError) as caught:
        Message.from_dict(data)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def refused_json(payload: bytes, *fragments: str) -> None:
    with pytest.raises(MessageError) as caught:
        Message.from_json(payload)
    message = str(caught.value)
    assert "\n" not in message
    assert len(message) < 300
    for fragment in fragments:
        assert fragment in message, message


# --------------------------------------------------------------------------- round trips


def test_every_catalog_intent_has_a_kind(catalog: Catalog) -> None:
    assert set(catalog.intents) == set(KIND_OF_INTENT)
    assert set(KIND_OF_INTENT.values()) == set(TTL_S)


def test_kinds_come_from_the_catalog_in_use(catalog: Catalog) -> None:
    """Without a table installed, the shipped catalog's kinds; the wiring installs its catalog's."""
    assert dict(KIND_OF_INTENT) == catalog.kinds
    lost_pet: dict[str, messages.Kind] = {**catalog.kinds, "lost_pet": "report"}
    messages.use_intent_kinds(lost_pet)
    try:
        message = new_message(MAYA, "lost_pet", {"item": "tabby cat"}, now=NOW)
        assert (message.kind, message.expires) == ("report", NOW + TTL_S["report"])
        assert Message.from_json(message.to_json()) == message
        refused({**message.to_dict(), "kind": "request"}, "lost_pet is a report, not a request")
    finally:
        messages.use_intent_kinds(None)
    assert "lost_pet" not in KIND_OF_INTENT


def test_an_intent_the_table_does_not_know_needs_its_kind_from_the_caller() -> None:
    with pytest.raises(MessageError, match="unknown intent 'lost_pet'"):
        new_message(MAYA, "lost_pet", {"item": "tabby cat"}, now=NOW)
    message = new_message(MAYA, "lost_pet", {"item": "tabby cat"}, now=NOW, kind="report", ttl_s=600.0)
    assert (message.kind, message.expires) == ("report", NOW + 600.0)
    assert Message.from_json(message.to_json()) == message  # a neighbor's catalog may have more intents


def test_kinds_are_the_schema_s_closed_set() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert tuple(schema["properties"]["kind"]["enum"]) == messages.KINDS


@pytest.mark.parametrize("intent", sorted(KIND_OF_INTENT))
def test_round_trip(intent: str, independent: Draft202012Validator) -> None:
    message = make(intent)
    assert message.kind == KIND_OF_INTENT[intent]
    assert Message.from_dict(message.to_dict()) == message
    payload = message.to_json()
    assert Message.from_json(payload) == message
    independent.validate(json.loads(payload))
    assert json.loads(payload)["from"] == {"device": "kitchen-12", "name": "Maya at number 12"}


def test_json_form_is_the_documented_one() -> None:
    message = make("borrow_item")
    assert json.loads(message.to_json()) == {
        "v": 1,
        "id": message.id,
        "ts": NOW,
        "expires": NOW + TTL_S["request"],
        "from": {"device": "kitchen-12", "name": "Maya at number 12"},
        "kind": "request",
        "intent": "borrow_item",
        "slots": {"item": "ladder"},
        "text": "test borrow_item",
        "in_reply_to": None,
    }


def test_non_ascii_text_round_trips_as_utf8(independent: Draft202012Validator) -> None:
    message = new_message(
        Sender("kitchen-7", "Zoë at number 7"), "share_food", {"item": "crème brûlée"}, "j'ai 🍰", now=NOW
    )
    payload = message.to_json()
    assert "Zoë".encode() in payload  # UTF-8, not \\u escapes
    assert Message.from_json(payload) == message
    independent.validate(json.loads(payload.decode("utf-8")))


def test_every_catalog_value_fits_in_a_message(catalog: Catalog, independent: Draft202012Validator) -> None:
    """Whatever the parser can fill a slot with can be published."""
    for name, intent in catalog.intents.items():
        for slot in intent.slots:
            for value in set(catalog.slot_list(name, slot).phrases.values()):
                message = make(name)
                data = {**message.to_dict(), "slots": {**message.slots, slot: value}}
                independent.validate(data)
                assert Message.from_dict(data).slots[slot] == value


def test_new_message_defaults() -> None:
    first, second = make("say_hello"), make("say_hello")
    assert re.fullmatch(r"[0-9a-f]{32}", first.id)
    assert first.id != second.id
    assert first.ts == NOW
    assert first.expires == NOW + TTL_S["hello"]
    assert make("say_hello", ttl_s=5.0).expires == NOW + 5.0


def test_ttl_and_expired() -> None:
    message = make("borrow_item", ttl_s=60.0)
    assert message.ttl(NOW) == 60.0
    assert not message.expired(NOW + 59.9)
    assert message.expired(NOW + 60.0)
    assert message.ttl(NOW + 70.0) == -10.0


def test_new_message_refuses_an_unknown_intent() -> None:
    with pytest.raises(MessageError, match="unknown intent"):
        new_message(MAYA, "launch_rocket")


# --------------------------------------------------------------------------- refused


REQUIRED = ["v", "id", "ts", "expires", "from", "kind", "intent", "slots", "text", "in_reply_to"]


@pytest.mark.parametrize("name", REQUIRED)
def test_missing_field(name: str) -> None:
    data = valid()
    del data[name]
    refused(data, name, "required")


@pytest.mark.parametrize("name", ["device", "name"])
def test_missing_sender_field(name: str) -> None:
    data = valid()
    del data["from"][name]
    refused(data, name, "required")


def test_extra_fields() -> None:
    refused({**valid(), "audio": "UklGRg=="}, "Additional properties", "audio")
    data = valid()
    data["from"]["email"] = "maya@example.org"
    refused(data, "from", "email")


WRONG: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "v as string": (lambda d: d.update(v="1"), "unknown message version"),
    "v as bool": (lambda d: d.update(v=True), "v"),
    "id as number": (lambda d: d.update(id=123), "id"),
    "ts as string": (lambda d: d.update(ts="now"), "ts"),
    "ts as bool": (lambda d: d.update(ts=True), "ts"),
    "ts before 2001": (lambda d: d.update(ts=0), "ts"),
    "ts after 5138": (lambda d: d.update(ts=1e12), "ts"),
    "expires as null": (lambda d: d.update(expires=None), "expires"),
    "from as string": (lambda d: d.update({"from": "kitchen-12"}), "from"),
    "device as number": (lambda d: d["from"].update(device=12), "from/device"),
    "device upper case": (lambda d: d["from"].update(device="Kitchen"), "from/device"),
    "device too long": (lambda d: d["from"].update(device="k" * 33), "from/device"),
    "device with a slash": (lambda d: d["from"].update(device="a/b"), "from/device"),
    "name empty": (lambda d: d["from"].update(name=""), "from/name"),
    "name too long": (lambda d: d["from"].update(name="n" * 61), "from/name"),
    "kind unknown": (lambda d: d.update(kind="shout"), "kind"),
    "intent as number": (lambda d: d.update(intent=3), "intent"),
    "intent upper case": (lambda d: d.update(intent="Borrow_item"), "intent"),
    "intent with a wildcard": (lambda d: d.update(intent="borrow+"), "intent"),
    "slots as list": (lambda d: d.update(slots=["ladder"]), "slots"),
    "slot value number": (lambda d: d.update(slots={"item": 3}), "slots/item"),
    "slot value empty": (lambda d: d.update(slots={"item": ""}), "slots/item"),
    "slot value too long": (lambda d: d.update(slots={"item": "x" * 41}), "slots/item"),
    "slot name bad": (lambda d: d.update(slots={"Item": "ladder"}), "slots"),
    "too many slots": (lambda d: d.update(slots={f"s{i}": "x" for i in range(9)}), "slots"),
    "text as number": (lambda d: d.update(text=5), "text"),
    "text too long": (lambda d: d.update(text="x" * 281), "text"),
    "in_reply_to as number": (lambda d: d.update(in_reply_to=5), "in_reply_to"),
    "in_reply_to bad id": (
        lambda d: d.update(kind="reply", intent="reply_yes", in_reply_to="abc"),
        "in_reply_to",
    ),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_wrong_types_and_values(case: str, independent: Draft202012Validator) -> None:
    change, fragment = WRONG[case]
    data = valid()
    change(data)
    refused(data, fragment)
    assert not independent.is_valid(data), "the schema file itself must refuse it too"


@pytest.mark.parametrize(
    "bad_id",
    [
        "6F1C" + "0" * 28,
        "0" * 31,
        "0" * 33,
        "g" * 32,
        "6f1c0000-0000-0000-0000-000000000000",
        "",
        " " + "0" * 31,
    ],
)
def test_bad_ids(bad_id: str) -> None:
    refused({**valid(), "id": bad_id}, "id")


@pytest.mark.parametrize("where", ["id", "in_reply_to", "device", "slot name"])
def test_a_trailing_newline_is_refused(where: str) -> None:
    data = make("reply_yes").to_dict()
    if where == "device":
        data["from"]["device"] += "\n"
    elif where == "slot name":
        data["slots"] = {"item\n": "ladder"}
    else:
        data[where] += "\n"
    refused(data)


@pytest.mark.parametrize("version", [0, 2, 99, "2", None])
def test_unknown_version(version: Any) -> None:
    refused({**valid(), "v": version}, "version")


def test_not_an_object() -> None:
    for payload in (b"[]", b'"message"', b"1", b"null", b"true"):
        refused_json(payload, "object")


@pytest.mark.parametrize(
    "payload",
    [b"", b"{", b"not json", b"{'v': 1}", b'{"v": 1,}', b"\x00", b"[" * 2000 + b"]" * 2000],
    ids=["empty", "truncated", "words", "single quotes", "trailing comma", "nul", "deeply nested"],
)
def test_not_json(payload: bytes) -> None:
    refused_json(payload, "not UTF-8 JSON")


def test_not_utf8() -> None:
    good = make("borrow_item").to_json()
    refused_json(good.replace(b"test", b"t\xffst"), "not UTF-8")
    refused_json(good.decode().encode("utf-16"), "not UTF-8")
    refused_json(good.decode().encode("latin-1").replace(b"test", b"caf\xe9"), "not UTF-8")


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity(constant: bytes) -> None:
    payload = re.sub(rb'"ts":[0-9.e+]+', b'"ts":' + constant, make("borrow_item").to_json())
    assert constant in payload
    refused_json(payload, "not allowed")


def test_overflowing_number() -> None:
    """1e400 parses to inf without any NaN/Infinity literal."""
    payload = re.sub(rb'"expires":[0-9.e+]+', b'"expires":1e400', make("borrow_item").to_json())
    refused_json(payload, "expires")


def test_oversized_payload() -> None:
    good = make("borrow_item").to_json()
    padded = good[:-1] + b" " * (MAX_PAYLOAD_BYTES - len(good) + 1) + b"}"
    assert len(padded) == MAX_PAYLOAD_BYTES + 1
    refused_json(padded, "over 4096")
    at_limit = good[:-1] + b" " * (MAX_PAYLOAD_BYTES - len(good)) + b"}"
    assert Message.from_json(at_limit).id == json.loads(good)["id"]


def test_the_largest_valid_message_fits_and_a_larger_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every field at its longest, in the widest characters each may hold (four-byte emoji where
    any character goes, three-byte accented letters in slot values), still fits on the bus; the
    size check itself still refuses what is over the limit."""
    emoji, wide_letter = "\U0001f600", "\u1ebd"  # 😀, ẽ (a Latin letter with an accent)
    big = new_message(
        Sender("k", emoji * 60),
        "announce_event",
        {f"s{i}{'x' * 30}": wide_letter * slot_values.MAX_CHARS for i in range(8)},
        emoji * 280,
        now=NOW,
    )
    payload = big.to_json()
    assert len(payload) > 2_000
    monkeypatch.setattr(messages, "MAX_PAYLOAD_BYTES", len(payload) - 1)
    with pytest.raises(MessageError, match=f"over {len(payload) - 1}"):
        big.to_json()


@pytest.mark.parametrize(
    ("ts", "expires"),
    [(NOW, NOW), (NOW, NOW - 1), (NOW, NOW + MAX_TTL_S + 1)],
    ids=["expires at ts", "expires before ts", "longer than a week"],
)
def test_lifetime(ts: float, expires: float) -> None:
    refused({**valid(), "ts": ts, "expires": expires}, "expires")


def test_kind_must_match_intent() -> None:
    refused({**valid(), "kind": "offer"}, "borrow_item is a request, not a offer")


def test_answers_and_only_answers_carry_in_reply_to() -> None:
    reply = make("reply_yes").to_dict()
    refused({**reply, "in_reply_to": None}, "in_reply_to")
    refused({**valid(), "in_reply_to": REQUEST_ID}, "in_reply_to")
    cancel = make("cancel").to_dict()
    assert Message.from_dict(cancel).in_reply_to == REQUEST_ID


def test_to_json_checks_before_publishing() -> None:
    message = make("borrow_item")
    for broken in (
        Message(**{**message.__dict__, "id": "not-an-id"}),
        Message(**{**message.__dict__, "kind": "hello"}),
        Message(**{**message.__dict__, "expires": float("nan")}),
    ):
        with pytest.raises(MessageError):
            broken.to_json()


# --------------------------------------------------------------------------- the slot value rule

BROKEN_SLOTS: dict[str, tuple[str, str, str]] = {
    "a sentence": ("item", "ladder. everyone must leave now", "letters"),
    "an order": ("item", "everyone must leave", "authority, an alarm or an order"),
    "an authority": ("issue", "fire brigade notice", "authority, an alarm or an order"),
    "too many words": ("task", "carry a very big heavy box", "more than 5 words"),
    "digits only": ("item", "112", "letters"),
    "a time spelled otherwise": ("time", "tonight at seven", "canonical form"),
    "a time past the hour's minutes": ("time", "tonight at 7:60", "canonical form"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_SLOTS))
@pytest.mark.parametrize("intent", ["announce_event", "reply_yes", "cancel"])
def test_a_slot_value_breaking_the_rule_is_refused_on_arrival(case: str, intent: str) -> None:
    """Requests, replies and cancellations alike: the error names the slot and the rule, never
    the value."""
    slot, value, rule = BROKEN_SLOTS[case]
    data = make(intent).to_dict()
    data["slots"] = {slot: value}
    error = refused(data, f"slots/{slot}", rule)
    assert value not in error
    assert not any(word in error for word in value.split() if len(word) > 3 and word not in rule)


@pytest.mark.parametrize("case", sorted(BROKEN_SLOTS))
def test_a_slot_value_breaking_the_rule_is_never_made_nor_published(case: str) -> None:
    slot, value, rule = BROKEN_SLOTS[case]
    with pytest.raises(MessageError, match=f"slots/{slot}: .*{re.escape(rule)}"):
        new_message(MAYA, "announce_event", {slot: value}, now=NOW)
    built_by_hand = Message(**{**make("announce_event").__dict__, "slots": {slot: value}})
    with pytest.raises(MessageError, match=f"slots/{slot}"):
        built_by_hand.to_json()


def test_the_schema_caps_slot_values_at_the_rule_s_length(independent: Draft202012Validator) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert schema["properties"]["slots"]["additionalProperties"]["maxLength"] == slot_values.MAX_CHARS
