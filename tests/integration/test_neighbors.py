"""Devices (``app.Device``: bus + policy + announcer) on a real Mosquitto that is restarted in
the middle of a burst: every unexpired request is announced exactly once by each neighbor,
nothing expired is announced, and a device never announces its own messages.

Each device has its own key directory in one real pod (a :class:`pods.Circle` per test), so
everything on the bus is sealed. Announcements are printed (``output = "print"``) into a list,
so the test sees exactly what each device would have spoken; the pyttsx3 voice itself is
tested in test_speaker.py."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from announced import Announced
from clock import ShiftedClock
from pods import Circle

from voicehello.app import Device
from voicehello.bus.broker import EmbeddedBroker
from voicehello.bus.messages import Message, new_message
from voicehello.bus.mqtt import BusClient
from voicehello.config import AnnounceSettings, BusSettings, DeviceSettings, PrivacySettings, Settings

pytestmark = pytest.mark.integration

WAIT_S = 30.0
PER_PHASE = 25


@pytest.fixture
def circle(tmp_path: Path, fresh_broker: EmbeddedBroker) -> Circle:
    """The test's pod: each device joins it from a key directory of its own."""
    host, port = fresh_broker.address
    return Circle(tmp_path / "pods", host=host, port=port)


def make_device(
    broker: EmbeddedBroker,
    circle: Circle,
    device_id: str,
    name: str,
    heard: Announced,
    announce: AnnounceSettings | None = None,
    clock: Callable[[], float] = time.time,
) -> Device:
    """A device on ``broker`` in ``circle``'s pod, printing its announcements into ``heard``."""
    host, port = broker.address
    settings = Settings(
        device=DeviceSettings(id=device_id, name=name),
        bus=BusSettings(host=host, port=port, pod=circle.name, reconnect_min_s=0.2, reconnect_max_s=1.0),
        announce=announce or AnnounceSettings(output="print", rate_limit=10_000),
        privacy=PrivacySettings(keys_dir=circle.keys_dir(device_id)),
    )
    return Device(settings, on_announce=heard.on_event, show=heard.show, clock=clock)


@pytest.fixture
def clock() -> ShiftedClock:
    """The street's clock (its buses' and pods'), moved on by the test."""
    return ShiftedClock()


@pytest.fixture
def street(
    fresh_broker: EmbeddedBroker, circle: Circle, clock: ShiftedClock
) -> Iterator[dict[str, tuple[Device, Announced]]]:
    devices: dict[str, tuple[Device, Announced]] = {}
    for device_id, name in (("maya-12", "Maya at number 12"), ("sam-4", "Sam"), ("lee-9", "Lee")):
        heard = Announced()
        devices[device_id] = (make_device(fresh_broker, circle, device_id, name, heard, clock=clock), heard)
    for device, _ in devices.values():
        device.start()
    for device, _ in devices.values():
        assert device.bus.wait_connected(WAIT_S)
    yield devices
    for device, _ in devices.values():
        device.stop()


def burst(device: Device, count: int, ttl_s: float | None = None) -> list[Message]:
    messages = [
        new_message(device.sender, "borrow_item", {"item": "ladder"}, "can i borrow a ladder", ttl_s=ttl_s)
        for _ in range(count)
    ]
    for message in messages:
        device.bus.publish(message)
    return messages


def test_restart_in_a_burst_announces_each_unexpired_request_once(
    fresh_broker: EmbeddedBroker, street: dict[str, tuple[Device, Announced]], clock: ShiftedClock
) -> None:
    maya, maya_heard = street["maya-12"]
    sent = burst(maya, PER_PHASE)
    fresh_broker.stop()  # in the middle of the burst: some are in flight, the rest wait in the outbox
    sent += burst(maya, PER_PHASE)
    short_lived = burst(maya, 5, ttl_s=1.0)
    clock.advance(1.5)  # the short-lived ones expire in maya's outbox while the broker is down
    fresh_broker.restart()
    sent += burst(maya, PER_PHASE)
    assert maya.bus.flush(WAIT_S), "maya's outbox did not empty after the restart"
    expected = {message.id for message in sent}
    for device_id in ("sam-4", "lee-9"):
        _, heard = street[device_id]
        assert heard.wait_count(len(expected), WAIT_S), (
            f"{device_id} announced {len(heard.ids())} of {len(expected)}"
        )
    # a sentinel after everything: anything late (a duplicate, an expired message) would be
    # announced before it (one sender, one broker session, one announcer queue: in order)
    sentinel = new_message(maya.sender, "say_hello", {}, "say hello")
    maya.bus.publish(sentinel)
    for device_id in ("sam-4", "lee-9"):
        _, heard = street[device_id]
        assert heard.wait_printed(sentinel.id, WAIT_S), f"{device_id} never announced the sentinel"
        counts = Counter(heard.ids())
        assert heard.ids()[-1] == sentinel.id
        del counts[sentinel.id]
        assert set(counts) == expected, f"{device_id}: wrong set of announcements"
        assert max(counts.values()) == 1, f"{device_id} announced a message twice"
        assert not {message.id for message in short_lived} & set(counts)
        assert heard.lines()[:-1] == ["[announce] Maya at number 12 asks to borrow a ladder"] * len(expected)
        assert heard.lines()[-1] == "[announce] Maya at number 12 says hello"
    assert maya_heard.ids() == [], "maya announced her own messages"


def test_a_muted_neighbor_is_not_announced(fresh_broker: EmbeddedBroker, circle: Circle) -> None:
    heard = Announced()
    sam = make_device(
        fresh_broker, circle, "sam-4", "Sam", heard, AnnounceSettings(output="print", mute=("maya-12",))
    )
    maya = make_device(fresh_broker, circle, "maya-12", "Maya", Announced())
    lee = make_device(fresh_broker, circle, "lee-9", "Lee", Announced())
    for sender in (maya, lee):  # they only send (announcing their keys), as `voicehello say` does
        sender.bus = BusClient(
            sender.settings.bus,
            sender.settings.device,
            lambda _m: None,
            membership=sender.bus.membership,
            listen=False,
        )
    for device in (sam, maya, lee):
        device.bus.start()
    sam.announcer.start()
    try:
        assert sam.bus.wait_connected(WAIT_S)
        [muted] = burst(maya, 1)
        assert maya.bus.flush(WAIT_S)  # taken by the broker before Lee speaks: Sam gets it first
        lee_hello = new_message(lee.sender, "say_hello", {}, "say hello")
        lee.bus.publish(lee_hello)
        # lee's hello is the sentinel: maya's message reached sam (and its announcer) first
        assert heard.wait_count(1, WAIT_S)
        assert heard.ids() == [lee_hello.id]
        assert heard.lines() == ["[announce] Lee says hello"]
        assert muted.id not in heard.ids()
    finally:
        for device in (sam, maya, lee):
            device.bus.stop()
        sam.announcer.stop()
