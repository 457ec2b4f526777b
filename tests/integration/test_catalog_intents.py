"""Intent knowledge lives in the catalog, end to end on a real Mosquitto.

* An intent added to ``config/intents.yaml`` (here a copy in the test's tmp directory) goes from
  typed text (``Device.hear_text``, the real parser with a model trained for that catalog)
  through the read-back onto the bus, sealed in a real pod, to a neighbor's announcement, and the
  neighbor's "yes" comes back phrased by the catalog: no Python names the intent.
* A close call (two intents equally likely) is asked about ("Did you want to borrow or to
  lend?"); the answer picks one, which is read back and sent; any other answer drops it.

Announcements are printed (``output = "print"``) into an :class:`Announced`, as in
test_neighbors.py; the voice itself is tested in test_speaker.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from announced import Announced
from pods import Circle

from voicehello.app import Device
from voicehello.bus import messages
from voicehello.bus.broker import EmbeddedBroker
from voicehello.config import (
    DEFAULT_CATALOG_FILE,
    AnnounceSettings,
    BusSettings,
    DeviceSettings,
    IntentSettings,
    PrivacySettings,
    Settings,
)
from voicehello.conversation import Action, Publish, Say

pytestmark = pytest.mark.integration

WAIT_S = 30.0

LOST_PET: dict[str, Any] = {
    "description": "Ask the street to look out for a lost pet.",
    "kind": "report",
    "lifetime_minutes": 720,
    "slots": {"pet": "pets"},
    "announce": "has lost {pet}",
    "readback": "Ask your neighbors to look out for {pet:your}?",
    "replies": {"yes": "has seen {pet:your}", "no": "hasn't seen {pet:your}"},
    "cancelled": "has found {pet:the}",
    "sentences": [
        "(i've|i have|we've|we have) lost [my|our] {pet}",
        "(my|our) {pet} (is missing|has gone missing)",
    ],
}
PETS: dict[str, Any] = {
    "description": "Pets that go missing.",
    "values": {"tabby cat": ["tabby", "ginger cat"], "spaniel": ["cocker spaniel"], "tortoise": []},
}


@dataclass
class Kitchen:
    """A device and what it announced."""

    device: Device
    heard: Announced


def said(actions: list[Action]) -> list[str]:
    return [action.text for action in actions if isinstance(action, Say)]


def sent(actions: list[Action]) -> list[messages.Message]:
    return [action.message for action in actions if isinstance(action, Publish)]


def kitchen(broker: EmbeddedBroker, circle: Circle, device_id: str, name: str, catalog: Path) -> Kitchen:
    host, port = broker.address
    settings = Settings(
        device=DeviceSettings(id=device_id, name=name),
        intents=IntentSettings(catalog=catalog),
        bus=BusSettings(host=host, port=port, pod=circle.name, reconnect_min_s=0.2, reconnect_max_s=1.0),
        announce=AnnounceSettings(output="print", rate_limit=10_000),
        privacy=PrivacySettings(keys_dir=circle.keys_dir(device_id)),
    )
    heard = Announced()
    return Kitchen(Device(settings, on_announce=heard.on_event, show=heard.show), heard)


def street(broker: EmbeddedBroker, root: Path, catalog: Path) -> Iterator[tuple[Kitchen, Kitchen]]:
    host, port = broker.address
    circle = Circle(root / "pods", host=host, port=port)
    maya = kitchen(broker, circle, "maya-12", "Maya at number 12", catalog)
    sam = kitchen(broker, circle, "sam-4", "Sam", catalog)
    try:
        for one in (maya, sam):
            one.device.start()
        for one in (maya, sam):
            assert one.device.bus.wait_connected(WAIT_S)
        yield maya, sam
    finally:
        for one in (maya, sam):
            one.device.stop()
        messages.use_intent_kinds(None)  # the next test's devices install their own catalog's


@pytest.fixture
def lost_pet_catalog(tmp_path: Path) -> Path:
    """The shipped catalog plus one intent and its list: a YAML edit, nothing else."""
    document = yaml.safe_load(DEFAULT_CATALOG_FILE.read_text(encoding="utf-8"))
    document["intents"]["lost_pet"] = LOST_PET
    document["lists"]["pets"] = PETS
    path = tmp_path / "intents.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def pet_street(
    mosquitto: EmbeddedBroker, tmp_path: Path, lost_pet_catalog: Path
) -> Iterator[tuple[Kitchen, Kitchen]]:
    yield from street(mosquitto, tmp_path, lost_pet_catalog)


@pytest.fixture
def shipped_street(mosquitto: EmbeddedBroker, tmp_path: Path) -> Iterator[tuple[Kitchen, Kitchen]]:
    yield from street(mosquitto, tmp_path, DEFAULT_CATALOG_FILE)


def test_an_intent_added_in_the_yaml_only_reaches_a_neighbor_and_is_answered(
    pet_street: tuple[Kitchen, Kitchen],
) -> None:
    maya, sam = pet_street
    question = maya.device.hear_text("we've lost our tabby")
    assert said(question) == ["Ask your neighbors to look out for your tabby cat?"]
    assert sent(question) == []
    [message] = sent(maya.device.hear_text("yes"))
    assert (message.intent, message.slots, message.kind) == ("lost_pet", {"pet": "tabby cat"}, "report")
    assert message.expires - message.ts == 720 * 60
    assert sam.heard.wait_printed(message.id, WAIT_S), sam.heard.lines()
    assert sam.heard.lines() == ["[announce] Maya at number 12 has lost a tabby cat"]
    [reply] = sent(sam.device.hear_text("yes"))
    assert (reply.intent, reply.kind, reply.in_reply_to) == ("reply_yes", "reply", message.id)
    assert maya.heard.wait_printed(reply.id, WAIT_S), maya.heard.lines()
    assert "[announce] Sam has seen your tabby cat" in maya.heard.lines()


CLOSE_CALLS = [
    "i got a ladder to borrow",
    "can i have a spare ladder",
    "who have a ladder for anyone",
    "i'd offer a ladder for anyone",
    "i lend a spare ladder",
    "spare lend a ladder",
]
"""Sentences that say a ladder and both "borrow" and "lend" ways: the model cannot tell."""


def close_call(device: Device) -> tuple[str, str]:
    """The first of :data:`CLOSE_CALLS` the parser rejects as borrow_item vs offer_item, and the
    question the device asks for it."""
    for text in CLOSE_CALLS:
        parse = device.parser.parse(text)
        if set(parse.alternatives) == {"borrow_item", "offer_item"}:
            return text, parse.alternatives[0]
    raise AssertionError(f"none of {CLOSE_CALLS} is a close call any more: pick new ones")


def test_a_close_call_is_asked_and_the_answer_is_sent(shipped_street: tuple[Kitchen, Kitchen]) -> None:
    maya, sam = shipped_street
    text, _ = close_call(maya.device)
    question = maya.device.hear_text(text)
    assert sent(question) == []
    assert said(question)[0] in ("Did you want to borrow or to lend?", "Did you want to lend or to borrow?")
    assert said(maya.device.hear_text("to lend")) == ["Offer your neighbors a ladder?"]
    [message] = sent(maya.device.hear_text("yes"))
    assert (message.intent, message.slots, message.text) == ("offer_item", {"item": "ladder"}, text)
    assert sam.heard.wait_printed(message.id, WAIT_S), sam.heard.lines()
    assert sam.heard.lines() == ["[announce] Maya at number 12 has a ladder to lend"]


def test_a_close_call_answered_otherwise_is_dropped(shipped_street: tuple[Kitchen, Kitchen]) -> None:
    maya, sam = shipped_street
    text, _ = close_call(maya.device)
    assert said(maya.device.hear_text(text))[0].startswith("Did you want to ")
    dropped = maya.device.hear_text("yes")
    assert (said(dropped), sent(dropped)) == (["Okay, not sent."], [])
    assert sent(maya.device.hear_text("yes")) == []
    [sentinel] = sent(maya.device.hear_text("say hello to everyone", confirmed=True))
    assert sam.heard.wait_printed(sentinel.id, WAIT_S), sam.heard.lines()
    assert sam.heard.ids() == [sentinel.id]
    assert sam.heard.lines() == ["[announce] Maya at number 12 says hello"]
