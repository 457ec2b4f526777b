"""Cancels act only for the original sender, replies only in the pod of what they answer: a real
hardened Mosquitto (TLS, passwords, ACL), real pods and keys, maya's and mallory's real
``BusClient``s and sam's real ``voicehello.app.Device``, whose announcements are printed.

* During quiet hours (``quiet_mode = "queue"``, on an injected local clock), mallory, a member of
  the pod, cancels maya's held request: after the quiet hours it is still spoken. Maya's own
  cancel still withdraws her held request.
* Mallory's cancel of maya's request already spoken is not announced; maya's is.
* A cancel that reaches sam before the message it cancels (queued messages of two senders can
  arrive in either order): mallory's is ignored, maya's withdraws it. The order is fixed by
  handing sealed payloads to the device's bus client as its receiver thread does
  (``BusClient.receive``), after real payloads have crossed the broker.
* A reply from another pod than the request's is ignored, with one log line.

Absence is proven with a sentinel sent after the message that must not act: once the sentinel
has been handled, the unwanted effect would have happened already.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from brokers import started
from pods import Circle

from voicehello.announce.speaker import AnnounceEvent
from voicehello.app import Device
from voicehello.bus import topics
from voicehello.bus.broker import EmbeddedBroker
from voicehello.bus.messages import Message, Sender, new_message
from voicehello.bus.mqtt import BusClient
from voicehello.config import AnnounceSettings, DeviceSettings, PrivacySettings, Settings
from voicehello.conversation import Publish
from voicehello.privacy import envelope
from voicehello.privacy.keys import DeviceKeys

pytestmark = pytest.mark.integration

WAIT_S = 10.0
MAYA = Sender("maya", "Maya at number 12")
MALLORY = Sender("mallory", "Mallory at number 13")
FAST = {"reconnect_min_s": 0.2, "reconnect_max_s": 0.5}
NIGHT, MORNING = datetime.time(23, 30), datetime.time(8, 0)
APP_LOGGER = "voicehello.app"
GARDEN = "garden"
"""A second pod, of sam and mallory only."""


class Wall:
    """The local wall-clock time the quiet hours are checked against (set by the test)."""

    def __init__(self, now: datetime.time) -> None:
        self.now = now

    def __call__(self) -> datetime.time:
        return self.now


class Events:
    """Every announcement event of sam's device, and the lines it printed, waited on by the test."""

    def __init__(self) -> None:
        self.items: list[AnnounceEvent] = []
        self.lines: list[str] = []
        self._changed = threading.Condition()

    def on_event(self, event: AnnounceEvent) -> None:
        with self._changed:
            self.items.append(event)
            self._changed.notify_all()

    def show(self, line: str) -> None:
        with self._changed:
            self.lines.append(line)
            self._changed.notify_all()

    def kinds(self, message_id: str) -> list[str]:
        with self._changed:
            return [event.kind for event in self.items if event.message_id == message_id]

    def reasons(self, message_id: str) -> list[str]:
        with self._changed:
            return [event.reason for event in self.items if event.message_id == message_id]

    def wait(self, kind: str, message_id: str) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: kind in self.kinds(message_id), WAIT_S)


@dataclass
class Street:
    """A hardened broker, the pod ``street`` (maya, mallory, sam), maya's and mallory's bus
    clients, and sam's device (not started: see :meth:`start_sam`)."""

    broker: EmbeddedBroker
    circle: Circle
    maya: BusClient
    mallory: BusClient
    wall: Wall
    events: Events
    sam: Device | None = None

    def start_sam(self, quiet_hours: str = "22:00-07:00") -> Device:
        settings = Settings(
            device=DeviceSettings(id="sam", name="Sam"),
            bus=self.broker.bus_settings("sam", self.circle.name, **FAST),
            announce=AnnounceSettings(
                output="print", rate_limit=1_000, quiet_hours=quiet_hours, quiet_mode="queue"
            ),
            privacy=PrivacySettings(keys_dir=self.circle.keys_dir("sam")),
        )
        device = Device(settings, on_announce=self.events.on_event, show=self.events.show)
        device.announcer.policy.local_time = self.wall  # quiet hours on the test's clock
        self.sam = device
        device.start()
        assert device.bus.wait_connected(WAIT_S), "sam did not connect"
        return device

    def say(self, bus: BusClient, sender: Sender, intent: str, slots: dict[str, str] | None = None,
            answers: Message | None = None) -> Message:  # fmt: skip
        """``sender`` publishes ``intent`` on the broker (``answers``: a reply or cancel of it)."""
        message = new_message(
            sender, intent, slots or {}, intent.replace("_", " "), in_reply_to=answers.id if answers else None
        )
        bus.publish(message)
        return message


def _bus(broker: EmbeddedBroker, circle: Circle, sender: Sender) -> BusClient:
    return BusClient(
        broker.bus_settings(sender.device, circle.name, **FAST),
        DeviceSettings(id=sender.device, name=sender.name),
        lambda _message: None,
        membership=circle.membership(sender.device, sender.name),
    )


@pytest.fixture
def street(tmp_path: Path) -> Iterator[Street]:
    circle = Circle(tmp_path / "pods", name="street")
    garden = Circle(tmp_path / "pods", name=GARDEN)
    for device in ("sam", "mallory"):  # both are in the garden too; maya is not
        garden.keys_dir(device)
    broker = started(
        EmbeddedBroker.hardened(
            tmp_path / "broker", devices=["maya", "mallory", "sam"], pods=[circle.id, garden.id]
        )
    )
    clients: list[BusClient] = []
    try:
        for sender in (MAYA, MALLORY):
            clients.append(_bus(broker, circle, sender))
            clients[-1].start()
            assert clients[-1].wait_connected(WAIT_S), f"{sender.device} did not connect"
        yield Street(broker, circle, clients[0], clients[1], Wall(NIGHT), Events())
    finally:
        for client in clients:
            client.stop()
        broker.stop()


@pytest.fixture(autouse=True)
def _stop_sam(street: Street) -> Iterator[None]:
    yield
    if street.sam is not None:
        street.sam.stop()


def _logged(caplog: pytest.LogCaptureFixture, *needles: str) -> list[str]:
    lines = [record.getMessage() for record in caplog.records if record.name == APP_LOGGER]
    return [line for line in lines if all(needle in line for needle in needles)]


# --------------------------------------------------------------------------- quiet hours


def test_a_member_cannot_cancel_another_s_request_held_for_the_quiet_hours(
    street: Street, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=APP_LOGGER)
    street.start_sam()
    request = street.say(street.maya, MAYA, "borrow_item", {"item": "ladder"})
    assert street.events.wait("queued", request.id), "maya's request was not held for the quiet hours"

    forged = street.say(street.mallory, MALLORY, "cancel", answers=request)
    sentinel = street.say(street.mallory, MALLORY, "say_hello")  # after the cancel, from the same sender
    assert street.events.wait("queued", sentinel.id), "mallory's sentinel was not held"
    assert "dropped" not in street.events.kinds(request.id), street.events.reasons(request.id)
    assert _logged(caplog, f"cancel {forged.id[:8]} from mallory ignored", "only maya")

    street.wall.now = MORNING
    assert street.events.wait("printed", request.id), (
        f"maya's request was not spoken after the quiet hours: {street.events.reasons(request.id)}"
    )
    assert street.events.wait("printed", sentinel.id)
    assert any(line.endswith("asks to borrow a ladder") for line in street.events.lines), street.events.lines
    assert not any("no longer needs" in line for line in street.events.lines), street.events.lines


def test_the_sender_s_own_cancel_withdraws_a_request_held_for_the_quiet_hours(street: Street) -> None:
    street.start_sam()
    request = street.say(street.maya, MAYA, "borrow_item", {"item": "drill"})
    assert street.events.wait("queued", request.id)
    street.say(street.maya, MAYA, "cancel", answers=request)
    sentinel = street.say(street.maya, MAYA, "say_hello")
    assert street.events.wait("queued", sentinel.id)
    assert street.events.wait("dropped", request.id), "maya's own cancel did not withdraw her request"
    assert "cancelled" in street.events.reasons(request.id)

    street.wall.now = MORNING
    assert street.events.wait("printed", sentinel.id)
    assert "printed" not in street.events.kinds(request.id)
    assert not any("drill" in line for line in street.events.lines), street.events.lines


# --------------------------------------------------------------------------- already spoken


def test_only_the_sender_s_cancel_of_a_spoken_request_is_announced(
    street: Street, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=APP_LOGGER)
    street.start_sam(quiet_hours="")
    request = street.say(street.maya, MAYA, "borrow_item", {"item": "ladder"})
    assert street.events.wait("printed", request.id)
    forged = street.say(street.mallory, MALLORY, "cancel", answers=request)
    sentinel = street.say(street.mallory, MALLORY, "say_hello")
    assert street.events.wait("printed", sentinel.id)
    assert street.events.kinds(forged.id) == []
    assert _logged(caplog, f"cancel {forged.id[:8]} from mallory ignored")

    own = street.say(street.maya, MAYA, "cancel", answers=request)
    assert street.events.wait("printed", own.id), "maya's cancel of her spoken request was not announced"
    assert street.events.lines[-1].endswith("no longer needs a ladder"), street.events.lines


# --------------------------------------------------------------------------- a cancel before its message


def _receive(device: Device, circle: Circle, sender: Sender, message: Message) -> None:
    """Hand ``message``, sealed by ``sender``'s real key for the pod, to ``device``'s bus client
    exactly as its receiver thread does with what the broker delivers."""
    keys = DeviceKeys.load_or_create(circle.keys_dir(sender.device))
    incoming = mqtt.MQTTMessage(mid=1, topic=topics.message_topic(circle.id, sender.device).encode())
    incoming.payload = envelope.seal(message, circle.pod, keys)
    device.bus.receive(incoming)


@pytest.mark.parametrize("who", ["mallory", "maya"])
def test_a_cancel_that_arrives_first_acts_only_for_the_sender(street: Street, who: str) -> None:
    sam = street.start_sam(quiet_hours="")
    for bus, sender in ((street.maya, MAYA), (street.mallory, MALLORY)):  # sam pins both keys
        hello = street.say(bus, sender, "say_hello")
        assert street.events.wait("printed", hello.id), f"sam never heard {sender.device}"

    request = new_message(MAYA, "borrow_item", {"item": "tent"}, "can i borrow a tent")
    canceller = MALLORY if who == "mallory" else MAYA
    cancel = new_message(canceller, "cancel", {}, "never mind", in_reply_to=request.id)
    _receive(sam, street.circle, canceller, cancel)
    _receive(sam, street.circle, MAYA, request)
    sentinel = new_message(MAYA, "say_hello", {}, "hello")
    _receive(sam, street.circle, MAYA, sentinel)

    assert street.events.wait("printed", sentinel.id)
    spoken = "printed" in street.events.kinds(request.id)
    assert spoken == (who == "mallory"), street.events.lines


# --------------------------------------------------------------------------- replies


def _wait_for(predicate: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_reply_from_another_pod_is_ignored(street: Street, caplog: pytest.LogCaptureFixture) -> None:
    """Mallory is in sam's pod ``garden`` too; her reply there to sam's street request is not
    announced (one log line), while maya's reply in the street is."""
    caplog.set_level(logging.INFO, logger=APP_LOGGER)
    sam = street.start_sam(quiet_hours="")
    actions = sam.hear_text("can i borrow a ladder", confirmed=True)
    request = next(action.message for action in actions if isinstance(action, Publish))
    assert _wait_for(lambda: sam.bus.pod_of(request.id) is not None), "sam's own request never came back"

    elsewhere = new_message(MALLORY, "reply_yes", {}, "yes", in_reply_to=request.id)
    street.mallory.publish(elsewhere, pod=GARDEN)
    sentinel = new_message(MALLORY, "say_hello", {}, "hello")
    street.mallory.publish(sentinel, pod=GARDEN)
    assert street.events.wait("printed", sentinel.id), "mallory's garden sentinel was not announced"
    assert street.events.kinds(elsewhere.id) == []
    assert _logged(caplog, f"reply {elsewhere.id[:8]} from mallory ignored", "another pod")

    reply = street.say(street.maya, MAYA, "reply_yes", answers=request)
    assert street.events.wait("printed", reply.id), "maya's reply in the street was not announced"
    assert street.events.lines[-1].endswith("can lend you a ladder"), street.events.lines
