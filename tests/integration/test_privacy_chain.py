"""The whole privacy chain with real parts: a hardened Mosquitto (TLS, passwords, ACL), real pods
and keys, real ``BusClient``s and a real ``voicehello.app.Device``, and the installed CLI.

* a device with valid broker credentials and read access to a pod's topics, but no invite, sees
  only ciphertext of a real exchange, and her own voicehello opens none of it;
* a message signed with the wrong key, a replayed message and a message of a pod that is over are
  never announced, each dropped with one log line saying why; the valid message is announced once;
* an expired invite is refused by ``voicehello pod join``.

Who may connect and publish is covered in test_hardened_broker.py, not repeated here: anonymous
and wrong-password connections are refused (``test_anonymous_and_wrong_password_are_refused``) and
a device cannot publish under another device's id (``test_a_device_cannot_publish_as_another``).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from announced import Announced
from brokers import started
from clock import ShiftedClock
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from pods import Circle

from voicehello.app import Device
from voicehello.bus import hardening, topics
from voicehello.bus.broker import EmbeddedBroker
from voicehello.bus.messages import KIND_OF_INTENT, Message, Sender, new_message
from voicehello.bus.mqtt import BusClient
from voicehello.config import AnnounceSettings, DeviceSettings, PrivacySettings, Settings
from voicehello.privacy import envelope
from voicehello.privacy.keys import DeviceKeys
from voicehello.privacy.pods import Pod, encode_invite

pytestmark = pytest.mark.integration

WAIT_S = 10.0
MAYA = Sender("maya", "Maya at number 12")
BOB = Sender("bob", "Bob at number 3")
REQUEST_TEXT = "can i borrow a ladder"
FAST = {"reconnect_min_s": 0.2, "reconnect_max_s": 0.5}
BUS_LOGGER = "voicehello.bus.mqtt"
SAM = "voicehello-sam"
"""The client id of sam's device."""


# --------------------------------------------------------------------------- fixtures


@dataclass
class Street:
    """The pods of this module: ``street`` (maya, bob, sam) and eve's own ``garden``."""

    root: Path
    street: Circle = field(init=False)
    garden: Circle = field(init=False)

    def __post_init__(self) -> None:
        self.street = Circle(self.root, name="street")
        self.garden = Circle(self.root / "eve-side", name="garden")  # another owner, another pod


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> Street:
    return Street(tmp_path_factory.mktemp("chain-pods"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, pods: Street) -> Iterator[EmbeddedBroker]:
    """A hardened Mosquitto: maya, bob and sam read the street; eve reads her garden and, by a
    real grant, the street's topics too (she never got the street's invite)."""
    broker = EmbeddedBroker.hardened(
        tmp_path_factory.mktemp("chain-broker"), devices=["maya", "bob", "sam"], pods=[pods.street.id]
    )
    assert broker.tls_dir is not None
    broker.credentials["eve"] = hardening.add_device(broker.tls_dir, "eve", [pods.garden.id, pods.street.id])
    # a second account of eve's for her raw tools: the broker binds one connection to each account
    # (client id = user name), so a tool logged in as "eve" would take over her device's connection
    broker.credentials[EVE_TAP] = hardening.add_device(
        broker.tls_dir, EVE_TAP, [pods.garden.id, pods.street.id]
    )
    yield started(broker)
    broker.stop()


class Raw:
    """A plain paho TLS client (no voicehello code) logged in as a device; records what it
    receives and hands every message to ``forward`` as well."""

    def __init__(
        self,
        broker: EmbeddedBroker,
        device: str,
        forward: Callable[[mqtt.MQTTMessage], None] | None = None,
    ) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"raw-{device}-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.username_pw_set(device, broker.credentials[device].password)
        self.client.tls_set(ca_certs=str(broker.ca_file))
        self.forward = forward
        self.messages: list[tuple[str, bytes]] = []
        self.acks: dict[int, Any] = {}
        self.connack: ReasonCode | None = None
        self._changed = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_ack
        self.client.on_publish = self._on_ack
        self.client.on_message = self._on_message
        host, port = broker.address
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        assert self.wait(lambda: self.connack is not None), f"{device} got no CONNACK"
        assert self.connack is not None
        assert not self.connack.is_failure, f"{device} refused: {self.connack}"

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        with self._changed:
            self.connack = reason
            self._changed.notify_all()

    def _on_ack(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        """A PUBACK (one reason code) or a SUBACK (a list of them)."""
        with self._changed:
            self.acks[mid] = reason
            self._changed.notify_all()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.messages.append((message.topic, bytes(message.payload)))
            self._changed.notify_all()
        if self.forward is not None:
            self.forward(message)

    def wait(self, predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def subscribe(self, topic: str) -> None:
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        assert self.wait(lambda: mid in self.acks), "no SUBACK"
        assert not any(reason.is_failure for reason in self.acks[mid]), self.acks[mid]

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 and wait for the broker's acknowledgement."""
        info = self.client.publish(topic, payload, qos=1)
        assert self.wait(lambda: info.mid in self.acks), f"no PUBACK for {topic}"
        assert not self.acks[info.mid].is_failure, f"{topic}: {self.acks[info.mid]}"

    def on(self, topic_part: str) -> list[bytes]:
        with self._changed:
            return [payload for topic, payload in self.messages if topic_part in topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def raw(broker: EmbeddedBroker) -> Iterator[Callable[..., Raw]]:
    """``raw(device, forward=None)``: a connected plain TLS client logged in as ``device``."""
    made: list[Raw] = []

    def make(device: str, forward: Callable[[mqtt.MQTTMessage], None] | None = None) -> Raw:
        made.append(Raw(broker, device, forward))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def buses() -> Iterator[Callable[[BusClient], BusClient]]:
    """``started(bus)``: start a bus client, wait until it is connected; stopped after the test."""
    started: list[BusClient] = []

    def start(bus: BusClient) -> BusClient:
        started.append(bus)
        bus.start()
        assert bus.wait_connected(WAIT_S), f"{bus.client_id} did not connect"
        return bus

    yield start
    for bus in reversed(started):
        bus.stop()


def _bus(
    broker: EmbeddedBroker, circle: Circle, sender: Sender, on_message: Callable[[Message], None]
) -> BusClient:
    return BusClient(
        broker.bus_settings(sender.device, circle.name, **FAST),
        DeviceSettings(id=sender.device, name=sender.name),
        on_message,
        membership=circle.membership(sender.device, sender.name),
    )


def _maya_speaks_in(broker: EmbeddedBroker, street: Circle, party: Circle) -> None:
    """Grant maya the party (a device writes only in pods granted by id) and connect her device
    once, so it announces its key (retained); then her account is free for a raw client (one
    connection per account: the broker makes the client id the user name)."""
    assert broker.tls_dir is not None
    hardening.grant(broker.tls_dir, MAYA.device, party.id)
    bus = _bus(broker, street, MAYA, lambda _m: None)
    bus.start()
    try:
        assert bus.wait_connected(WAIT_S), "maya did not connect"
    finally:
        bus.stop()


class Inbox:
    """Messages delivered to one device, waited on by id."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._changed = threading.Condition()

    def __call__(self, message: Message) -> None:
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    def wait_for(self, message_id: str) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: any(m.id == message_id for m in self.messages), WAIT_S)


def _logged(caplog: pytest.LogCaptureFixture, *needles: str, client: str = "") -> list[str]:
    """Bus log lines containing every one of ``needles`` (logged by the receiving threads of
    the client ``client``, when given: several devices log in this process)."""
    threads = {f"paho-mqtt-client-{client}", f"{client}-receiver"}
    lines = [
        record.getMessage()
        for record in list(caplog.records)
        if record.name == BUS_LOGGER and (not client or record.threadName in threads)
    ]
    return [line for line in lines if all(needle in line for needle in needles)]


def _wait_logged(caplog: pytest.LogCaptureFixture, *needles: str, client: str = "") -> list[str]:
    """:func:`_logged`, once there is at least one such line (or after ``WAIT_S``)."""
    deadline = time.monotonic() + WAIT_S
    while not (found := _logged(caplog, *needles, client=client)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


# --------------------------------------------------------------------------- a neighbor with no invite


SECRETS = (REQUEST_TEXT.encode(), b"ladder", b"borrow", MAYA.name.encode(), BOB.name.encode(), b'"slots"')
"""What must not be readable by anyone outside the pod (device ids are in the topics, by design)."""


EVE_TAP = "eve-tap"
"""Eve's second broker account, for her sniffer and publisher (granted what eve is granted)."""


def _check_sealed(topic: str, payload: bytes, pod_id: str) -> None:
    """``payload`` (seen on ``topic``) carries nothing readable but the pod id, and ``topic``
    does not say what was said."""
    assert not [intent for intent in KIND_OF_INTENT if intent in topic], f"{topic} names an intent"
    if topic.endswith("/status"):
        assert payload in (topics.ONLINE, topics.OFFLINE), (topic, payload)
        return
    data = json.loads(payload)
    assert set(data) == {"v", "pod", "box"}, (topic, data)
    assert (data["v"], data["pod"]) == (1, pod_id), (topic, data)
    box = base64.b64decode(data["box"], validate=True)
    leaked = [secret for secret in SECRETS if secret in box or secret in payload]
    assert not leaked, f"{topic} shows {leaked}"


def test_a_neighbor_granted_the_topics_but_not_invited_sees_only_ciphertext(
    broker: EmbeddedBroker,
    pods: Street,
    raw: Callable[..., Raw],
    buses: Callable[[BusClient], BusClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=BUS_LOGGER)
    street = pods.street
    eve_inbox = Inbox()
    eve = buses(_bus(broker, pods.garden, Sender("eve", "Eve"), eve_inbox))
    # eve wires a plain sniffer of the street's topics (her grant is real) into her own voicehello
    sniffer = raw(EVE_TAP, forward=eve.receive)
    sniffer.subscribe(f"voicehello/v1/{street.id}/#")

    maya_inbox, bob_inbox = Inbox(), Inbox()
    maya = buses(_bus(broker, street, MAYA, maya_inbox))
    bob = buses(_bus(broker, street, BOB, bob_inbox))
    request = new_message(MAYA, "borrow_item", {"item": "ladder"}, REQUEST_TEXT)
    maya.publish(request)
    assert bob_inbox.wait_for(request.id), "bob did not get maya's request"
    reply = new_message(BOB, "reply_yes", {}, "yes you can borrow my ladder", in_reply_to=request.id)
    bob.publish(reply)
    assert maya_inbox.wait_for(reply.id), "maya did not get bob's reply"

    said = topics.message_topic(street.id, MAYA.device), topics.message_topic(street.id, BOB.device)
    assert sniffer.wait(lambda: all(sniffer.on(topic) for topic in said)), "eve's sniffer missed the exchange"
    assert sniffer.wait(lambda: len(sniffer.on("/key")) >= 2), "eve's sniffer missed the key announcements"
    for topic, payload in list(sniffer.messages):
        _check_sealed(topic, payload, street.id)

    # her voicehello cannot open what she sniffed: the street is not one of her pods ...
    assert _wait_logged(caplog, said[0], "not a topic of a pod this device is in")
    # ... nor when she re-publishes it in her own pod, as it is or relabelled for her pod
    captured = sniffer.on(said[0])[0]
    relabelled = json.dumps({**json.loads(captured), "pod": pods.garden.id}).encode()
    mine = topics.message_topic(pods.garden.id, EVE_TAP)
    publisher = raw(EVE_TAP)
    publisher.publish(mine, captured)
    assert _wait_logged(caplog, mine, "envelope is for another pod")
    publisher.publish(mine, relabelled)
    assert _wait_logged(caplog, mine, "cannot decrypt: not a member of this pod")
    assert eve_inbox.messages == [], "eve's voicehello opened a message of a pod she is not in"


# --------------------------------------------------------------------------- what a kitchen announces


class Kitchen:
    """Sam's real device, what it announced (printed) in :attr:`announced`."""

    def __init__(
        self, broker: EmbeddedBroker, keys_dir: Path, clock: Callable[[], float] = time.time
    ) -> None:
        self.announced = Announced()
        settings = Settings(
            device=DeviceSettings(id="sam", name="Sam"),
            bus=broker.bus_settings("sam", "street", **FAST),
            announce=AnnounceSettings(output="print", rate_limit=1_000),
            privacy=PrivacySettings(keys_dir=keys_dir),
        )
        self.device = Device(
            settings, on_announce=self.announced.on_event, show=self.announced.show, clock=clock
        )

    def start(self) -> None:
        self.device.start()
        assert self.device.bus.wait_connected(WAIT_S), "sam did not connect"

    def stop(self) -> None:
        self.device.stop()


def _past_the_end(pod: Pod) -> ShiftedClock:
    """A clock a minute past ``pod``'s end."""
    assert pod.expires is not None
    clock = ShiftedClock()
    clock.advance(pod.expires - time.time() + 60)
    return clock


def test_only_the_valid_message_is_announced(
    broker: EmbeddedBroker, pods: Street, raw: Callable[..., Raw], caplog: pytest.LogCaptureFixture
) -> None:
    """A real device hears one valid message, a forgery signed with another key, a replay of the
    valid one, and (queued while it was away) a message of a pod that has since ended."""
    caplog.set_level(logging.INFO, logger=BUS_LOGGER)
    street = pods.street
    party = Circle(pods.root, name="party", hours=1)  # over when sam is back (its clock says so)
    assert broker.tls_dir is not None
    hardening.grant(broker.tls_dir, "sam", party.id)
    keys_dir = street.keys_dir("sam")
    assert party.keys_dir("sam") == keys_dir  # sam is in both pods
    maya_keys = DeviceKeys.load_or_create(street.keys_dir("maya"))
    _maya_speaks_in(broker, street, party)
    wire = raw("maya")  # maya's credentials on a plain client: captures and re-publishes payloads
    wire.subscribe(topics.message_subscription(street.id))

    first = Kitchen(broker, keys_dir)
    assert first.device.bus.client_id == SAM
    first.start()
    try:
        assert not _logged(caplog, "refused a subscription", client=SAM), "the party grant was not in force"
        assert first.device.bus.membership.get(party.id) is not None, "the party was over too soon"
        valid = new_message(MAYA, "borrow_item", {"item": "ladder"}, REQUEST_TEXT)
        topic = topics.message_topic(street.id, MAYA.device)
        wire.publish(topic, envelope.seal(valid, street.pod, maya_keys))  # as maya's device seals it
        assert first.announced.wait_printed(valid.id, WAIT_S), "the valid message was not announced"
        assert wire.wait(lambda: bool(wire.on(topic)))
        wire.publish(topic, wire.on(topic)[0])  # the captured envelope, again
        forged = new_message(MAYA, "borrow_item", {"item": "drill"}, "can i borrow a drill")
        wire.publish(topic, envelope.seal(forged, street.pod, DeviceKeys.generate()))
        replay = ("ignored bus message", f"{valid.id} from maya was already received (replay)")
        assert _wait_logged(caplog, *replay, client=SAM), "the replay was not noticed"
        forgery = ("dropped bus message", "bad signature on a message from maya")
        assert _wait_logged(caplog, *forgery, client=SAM), "the forgery was not noticed"
    finally:
        first.stop()

    late = new_message(MAYA, "borrow_item", {"item": "tent"}, "can i borrow a tent")
    party_topic = topics.message_topic(party.id, MAYA.device)
    wire.publish(party_topic, envelope.seal(late, party.pod, maya_keys))  # kept in sam's session

    again = Kitchen(broker, keys_dir, _past_the_end(party.pod))  # the party ended while sam was away
    again.start()
    try:
        assert again.device.bus.membership.get(party.id) is None
        over = ("dropped bus message", party.id, "not a topic of a pod this device is in")
        assert _wait_logged(caplog, *over, client=SAM), (
            "the message of the pod that is over never reached sam"
        )
    finally:
        again.stop()

    assert first.announced.lines() + again.announced.lines() == [
        "[announce] Maya at number 12 asks to borrow a ladder"
    ]
    assert first.announced.ids() + again.announced.ids() == [valid.id], (
        "the valid message was not announced exactly once"
    )
    for why in (replay, forgery, over):  # one log line each, saying why
        assert len(_logged(caplog, *why, client=SAM)) == 1, _logged(caplog, *why, client=SAM)
    assert not (keys_dir / "pods" / f"{party.id}.json").exists(), "the party's key outlived the party"


# --------------------------------------------------------------------------- the command line


def test_an_expired_invite_is_refused_by_the_cli(voicehello: Any, tmp_path: Path) -> None:
    pod = Pod(
        id=secrets.token_hex(8),
        name="party",
        key=secrets.token_bytes(32),
        expires=float(int(time.time()) - 3600),
    )
    config = tmp_path / "voicehello.toml"
    config.write_text(f'[privacy]\nkeys_dir = "{tmp_path / "keys"}"\n', encoding="utf-8")
    result: subprocess.CompletedProcess[str] = voicehello(
        "pod", "join", encode_invite(pod), env={"VOICEHELLO_CONFIG": str(config)}
    )
    assert result.returncode != 0
    assert result.stderr.startswith("voicehello: this invite expired at "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert not list((tmp_path / "keys").glob("pods/*.json")), "an expired pod was joined"
