"""A forged invite against a real hardened Mosquitto (issue 9, points 2 and 4), with no mocks.

mallory, a member of the street, writes an invite code naming maya as the inviter with mallory's
own verify key (the version 2 checksum has no key: anyone can write one byte by byte), and sam
joins with it. Then:

* maya's real messages are still announced by sam's real ``Device`` as "Maya at number 12"
  (her own key topic, which only her broker account may publish on, wins over the code);
* mallory's messages, which carry "Maya at number 12" as ``from.name``, are announced with the
  name pinned with mallory's key ("Mallory"), never as Maya;
* the conflict is reported in one log line and shown by ``voicehello pod members``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from announced import Announced
from brokers import started
from pods import Circle

from voicehello.app import Device
from voicehello.bus.broker import EmbeddedBroker
from voicehello.bus.messages import Message, Sender, new_message
from voicehello.bus.mqtt import BusClient
from voicehello.config import AnnounceSettings, DeviceSettings, PrivacySettings, Settings
from voicehello.privacy.keys import DeviceKeys
from voicehello.privacy.pods import INVITE_PREFIX, Pod, PodStore

pytestmark = pytest.mark.integration

WAIT_S = 10.0
FAST = {"reconnect_min_s": 0.2, "reconnect_max_s": 0.5}
MAYA = Sender("maya", "Maya at number 12")
MALLORY = Sender("mallory", "Mallory")
CONFLICT = "the invite you joined pod street with named maya with a key maya does not use"

Run = Callable[..., "subprocess.CompletedProcess[str]"]


def forged_code(pod: Pod, inviter: str, key_b64: str) -> str:
    """A version 2 invite naming ``inviter`` with ``key_b64``, written as any member can."""
    name, host = pod.name.encode(), pod.host.encode()
    body = struct.pack(
        ">B8s32sIHB", 2, bytes.fromhex(pod.id), pod.key, math.ceil(pod.expires or 0), pod.port, 0
    )
    body += bytes([len(name)]) + name + bytes([len(host)]) + host
    body += bytes([len(inviter)]) + inviter.encode() + base64.b64decode(key_b64)
    checksum = hashlib.blake2b(body, digest_size=4, person=b"voicehello-inv").digest()
    return INVITE_PREFIX + base64.b32encode(body + checksum).decode().rstrip("=").lower()


@pytest.fixture
def street(tmp_path: Path) -> Circle:
    return Circle(tmp_path / "pods", name="street")


@pytest.fixture
def broker(tmp_path: Path, street: Circle) -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker.hardened(
        tmp_path / "broker", devices=["maya", "mallory", "sam"], pods=[street.id]
    )
    yield started(broker)
    broker.stop()


@pytest.fixture
def buses() -> Iterator[Callable[[BusClient], BusClient]]:
    """``start(bus)``: a started, connected bus client, stopped after the test."""
    running: list[BusClient] = []

    def start(bus: BusClient) -> BusClient:
        running.append(bus)
        bus.start()
        assert bus.wait_connected(WAIT_S), f"{bus.client_id} did not connect"
        return bus

    yield start
    for bus in reversed(running):
        bus.stop()


def _bus(broker: EmbeddedBroker, street: Circle, sender: Sender) -> BusClient:
    def ignore(_message: Message) -> None:
        return None

    return BusClient(
        broker.bus_settings(sender.device, street.name, **FAST),
        DeviceSettings(id=sender.device, name=sender.name),
        ignore,
        membership=street.membership(sender.device, sender.name),
    )


def test_a_forged_invite_cannot_make_sam_hear_mallory_as_maya(
    broker: EmbeddedBroker,
    street: Circle,
    buses: Callable[[BusClient], BusClient],
    voicehello: Run,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    maya = buses(_bus(broker, street, MAYA))  # maya's key announced, retained, on her own key topic
    mallory = buses(_bus(broker, street, MALLORY))  # mallory is a member (she joined with a real code)
    mallory_key = DeviceKeys.load_or_create(street.keys_dir("mallory")).verify_key_b64

    sam_keys = tmp_path / "sam"
    PodStore(sam_keys).join(forged_code(street.pod, "maya", mallory_key))  # sam trusts mallory's code
    announced = Announced()
    settings = Settings(
        device=DeviceSettings(id="sam", name="Sam"),
        bus=broker.bus_settings("sam", "street", **FAST),
        announce=AnnounceSettings(output="print", rate_limit=1_000),
        privacy=PrivacySettings(keys_dir=sam_keys),
    )
    sam = Device(settings, on_announce=announced.on_event, show=announced.show)
    sam.start()
    try:
        assert sam.bus.wait_connected(WAIT_S), "sam did not connect"
        real = new_message(MAYA, "borrow_item", {"item": "ladder"}, "can i borrow a ladder")
        maya.publish(real)
        assert announced.wait_printed(real.id, WAIT_S), "maya's real request was not announced by sam"
        posing = new_message(
            Sender("mallory", MAYA.name), "borrow_item", {"item": "drill"}, "can i borrow a drill"
        )
        mallory.publish(posing)  # from.name says "Maya at number 12"
        assert announced.wait_printed(posing.id, WAIT_S), "mallory's request was not announced (sentinel)"
    finally:
        sam.stop()

    assert announced.lines() == [
        "[announce] Maya at number 12 asks to borrow a ladder",
        "[announce] Mallory asks to borrow a drill",
    ]
    conflict = [record.getMessage() for record in caplog.records if CONFLICT in record.getMessage()]
    assert len(conflict) == 1, conflict
    assert "\n" not in conflict[0]

    config = tmp_path / "sam.toml"
    config.write_text(f'[device]\nid = "sam"\n[privacy]\nkeys_dir = "{sam_keys}"\n', encoding="utf-8")
    members = voicehello("pod", "members", "street", env={"VOICEHELLO_CONFIG": str(config)})
    assert members.returncode == 0, members.stderr
    assert CONFLICT in members.stdout, members.stdout
    assert "'Maya at number 12'" in members.stdout
    assert "'Mallory'" in members.stdout
