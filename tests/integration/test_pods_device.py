"""A device in two pods (``app.Device`` on a real Mosquitto, real keys and invite codes):
what is said in a pod reaches its members only, an announcement from a pod other than the
device's default one names the pod, and the answer goes back to the pod it answers.

Announcements are printed (``output = "print"``) through the device's ``show`` callback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from announced import Announced
from pods import Circle

from voicehello.announce.speaker import PRINT_TAG
from voicehello.app import Device
from voicehello.bus.broker import EmbeddedBroker
from voicehello.bus.messages import Message, new_message
from voicehello.config import AnnounceSettings, BusSettings, DeviceSettings, PrivacySettings, Settings
from voicehello.conversation import Publish

pytestmark = pytest.mark.integration

WAIT_S = 15.0


def announcements(printed: Announced) -> list[str]:
    """The announcements among the lines a device printed, without their tag."""
    return [line.removeprefix(PRINT_TAG).strip() for line in printed.lines() if line.startswith(PRINT_TAG)]


class Street:
    """Maya and Sam in pods "street" (default) and "party"; Lee in "street" only."""

    def __init__(self, root: Path, broker: EmbeddedBroker) -> None:
        host, port = broker.address
        self.street = Circle(root / "street", "street")
        self.party = Circle(root / "party", "party", hours=2)
        self.printed = {name: Announced() for name in ("maya", "sam", "lee")}
        self.devices: dict[str, Device] = {}
        for name in ("maya", "sam", "lee"):
            keys_dir = self.street.keys_dir(name)
            if name != "lee":
                self.party.join(keys_dir)
            settings = Settings(
                device=DeviceSettings(id=name, name=name.title()),
                bus=BusSettings(host=host, port=port, pod="street"),
                announce=AnnounceSettings(output="print", rate_limit=100, prefix="none"),
                privacy=PrivacySettings(keys_dir=keys_dir),
            )
            self.devices[name] = Device(settings, show=self.printed[name].show)

    def start(self) -> None:
        for device in self.devices.values():
            device.start()
        for device in self.devices.values():
            assert device.bus.wait_connected(WAIT_S)

    def stop(self) -> None:
        for device in self.devices.values():
            device.stop()


@pytest.fixture
def street(tmp_path: Path, mosquitto: EmbeddedBroker) -> Iterator[Street]:
    street = Street(tmp_path, mosquitto)
    street.start()
    yield street
    street.stop()


def say(device: Device, text: str, pod: str | None = None) -> Message:
    message = new_message(device.sender, "borrow_item", {"item": "ladder"}, text)
    device.bus.publish(message, pod=pod)
    return message


def test_a_party_request_is_heard_by_members_only_and_names_its_pod(street: Street) -> None:
    maya = street.devices["maya"]
    say(maya, "can I borrow a ladder", pod="party")
    sentinel = new_message(maya.sender, "say_hello", {}, "say hello")
    maya.bus.publish(sentinel)  # in the default pod "street": everyone hears it
    assert street.printed["sam"].wait_line("Party: Maya asks to borrow a ladder", WAIT_S)
    assert street.printed["lee"].wait_line("Maya says hello", WAIT_S)
    assert street.printed["sam"].wait_line("Maya says hello", WAIT_S)
    assert not any("Street" in line for line in announcements(street.printed["sam"])), (
        "the default pod is not named"
    )
    assert not any("ladder" in line for line in announcements(street.printed["lee"])), (
        "lee is not in the party pod but heard it"
    )


def test_the_answer_goes_back_to_the_pod_of_the_request(street: Street) -> None:
    maya, sam = street.devices["maya"], street.devices["sam"]
    request = say(maya, "can I borrow a ladder", pod="party")
    assert street.printed["sam"].wait_line("Party: Maya asks to borrow a ladder", WAIT_S)
    sam.announcer.wait_idle(WAIT_S)
    actions = sam.hear_text("yes I can lend it", confirmed=True)
    replies = [action.message for action in actions if isinstance(action, Publish)]
    assert [reply.in_reply_to for reply in replies] == [request.id]
    assert street.printed["maya"].wait_line("Party: Sam can lend you a ladder", WAIT_S), street.printed[
        "maya"
    ].lines()
    said_in = maya.bus.pod_of(replies[0].id)
    assert said_in is not None
    assert said_in.name == "party"
    hello = new_message(maya.sender, "say_hello", {}, "say hello")
    maya.bus.publish(hello)
    assert street.printed["lee"].wait_line("Maya says hello", WAIT_S)
    assert not any("lend" in line for line in announcements(street.printed["lee"])), (
        "the answer reached a device outside the party pod"
    )
