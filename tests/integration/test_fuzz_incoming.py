"""Property-based fuzzing of the incoming-message path: over 10,000 generated hostile payloads
(malformed JSON, huge strings, control characters, wrong types, broken fields, spoofed topics,
random bytes) go through ``BusClient.receive`` — the function paho's network thread calls — into
a real ``Device`` whose announcements are printed into a list. Nothing may raise, nothing may be
delivered or spoken, and a valid message afterwards is still announced.

No broker is involved: the payloads are wrapped in paho's own ``MQTTMessage`` exactly as the
network thread receives them, which makes 10,000 examples fast. The network path itself is
covered by test_bus.py and test_daemon.py."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicehello.announce.speaker import AnnounceEvent
from voicehello.app import Device
from voicehello.bus import topics
from voicehello.bus.messages import Sender, new_message
from voicehello.config import AnnounceSettings, BusSettings, DeviceSettings, Settings

pytestmark = pytest.mark.integration

POD = "fuzz-street"
MAYA = Sender("maya-12", "Maya at number 12")
EXAMPLES = 10_500


class Street:
    """One device under fuzz, with everything it delivered and printed."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.delivered: list[str] = []
        self.announced = threading.Event()
        settings = Settings(
            device=DeviceSettings(id="sam-4", name="Sam"),
            bus=BusSettings(host="127.0.0.1", port=1, pod=POD),
            announce=AnnounceSettings(output="print", rate_limit=100_000),
        )
        self.device = Device(settings, on_announce=self.on_event, show=self.lines.append)
        original = self.device._on_bus_message

        def deliver(message: Any) -> None:
            self.delivered.append(message.id)
            original(message)

        self.device.bus._on_message = deliver  # count deliveries, then let the device handle them

    def on_event(self, event: AnnounceEvent) -> None:
        if event.kind == "printed" and event.message_id:
            self.announced.set()

    def feed(self, topic: str, payload: bytes, retain: bool = False) -> None:
        incoming = mqtt.MQTTMessage(mid=1, topic=topic.encode("utf-8", "surrogatepass"))
        incoming.payload = payload
        incoming.retain = retain
        self.device.bus.receive(incoming)


@pytest.fixture(scope="module")
def street() -> Any:
    street = Street()
    street.device.announcer.start()
    yield street
    street.device.announcer.stop()


def valid_dict() -> dict[str, Any]:
    return new_message(MAYA, "borrow_item", {"item": "ladder"}, "can i borrow a ladder").to_dict()


TOPIC = topics.intent_topic(POD, MAYA.device, "borrow_item")
hostile_text = st.text(
    alphabet=st.characters(codec="utf-8", categories=["Cc", "Cf", "Co", "Zs", "L", "N", "P", "S"]),
    max_size=300,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)
FIELDS = ["v", "id", "ts", "expires", "from", "kind", "intent", "slots", "text", "in_reply_to"]


@st.composite
def broken_message(draw: st.DrawFn) -> bytes:
    """A valid message with at least one field made wrong (so it must never be delivered)."""
    data = valid_dict()
    data["id"] = uuid.uuid4().hex
    how = draw(st.sampled_from(["wrong type", "drop", "extra", "huge", "control", "version", "time"]))
    field = draw(st.sampled_from(FIELDS))
    if how == "wrong type":
        data[field] = draw(json_values.filter(lambda value: type(value) is not type(data[field])))
        if field == "in_reply_to" and data[field] is None:
            data[field] = 5
    elif how == "drop":
        del data[field]
    elif how == "extra":
        data[draw(hostile_text.filter(lambda key: key not in FIELDS))] = draw(json_values)
    elif how == "huge":
        data["text"] = "x" * draw(st.integers(5_000, 70_000))
    elif how == "control":
        data["from"] = {"device": "maya-12\n" + draw(hostile_text), "name": data["from"]["name"]}
    elif how == "version":
        data["v"] = draw(st.integers().filter(lambda v: v != 1) | hostile_text)
    else:
        data["expires"] = data["ts"] - draw(st.floats(0, 1e6))
    return json.dumps(data).encode()


payloads = st.one_of(
    st.binary(max_size=2_000),
    hostile_text.map(lambda text: text.encode("utf-8", "surrogatepass")),
    json_values.map(lambda value: json.dumps(value).encode()),
    broken_message(),
)


@st.composite
def spoofed(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid message on a topic that lies about its sender, intent or pod."""
    data = valid_dict()
    data["id"] = uuid.uuid4().hex
    level = draw(st.sampled_from(["device", "intent", "pod", "garbage"]))
    if level == "device":
        topic = topics.intent_topic(POD, "sam-4", "borrow_item")
    elif level == "intent":
        topic = topics.intent_topic(POD, MAYA.device, "say_hello")
    elif level == "pod":
        topic = topics.intent_topic("other-pod", MAYA.device, "borrow_item")
    else:
        topic = "voicehello/v1/" + draw(hostile_text)
    return topic, json.dumps(data).encode()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(payload=payloads, retain=st.booleans())
def test_hostile_payloads_are_never_delivered_nor_spoken(
    street: Street, payload: bytes, retain: bool
) -> None:
    street.feed(TOPIC, payload, retain)
    assert street.delivered == []


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(case=spoofed())
def test_spoofed_topics_are_never_delivered(street: Street, case: tuple[str, bytes]) -> None:
    street.feed(*case)
    assert street.delivered == []


def test_after_the_fuzz_the_device_still_announces(street: Street) -> None:
    assert street.lines == [], "something hostile was spoken"
    street.feed(
        TOPIC, new_message(MAYA, "borrow_item", {"item": "ladder"}, "can i borrow a ladder").to_json()
    )
    assert street.announced.wait(10), "a valid message after the fuzz was not announced"
    assert street.lines == ["[announce] Maya at number 12 asks to borrow a ladder"]
