"""The bus against a real Mosquitto (``EmbeddedBroker``), with no mocks.

Every test uses a pod of its own (a real one: ``pods.Circle``, with real keys under the
test's ``tmp_path``), so tests sharing the session's broker never see each other's messages,
retained statuses or keys. Tests that stop, kill or restart the broker get one of their own
(``fresh_broker``). Raw paho clients (no voicehello code) check what is really on the broker
and publish what a hostile or broken device would; they open and seal envelopes with PyNaCl
directly, as the wire format in :mod:`voicehello.privacy.envelope` describes.

``tests/integration/test_private_bus.py`` imports the helpers defined here.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from clock import ShiftedClock
from nacl.secret import SecretBox
from nacl.signing import VerifyKey
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from pods import Circle

from voicehello.bus import topics
from voicehello.bus.broker import EmbeddedBroker
from voicehello.bus.messages import Message, Sender, new_message
from voicehello.bus.mqtt import KEY_WAIT_S, BusClient
from voicehello.bus.seen import SeenIds
from voicehello.config import BusSettings, DeviceSettings
from voicehello.errors import BusError, MessageError
from voicehello.privacy.membership import Membership
from voicehello.privacy.pods import Pod

pytestmark = pytest.mark.integration

LOGGER = "voicehello.bus.mqtt"
WAIT_S = 15.0
"""Longest wait for anything that should happen (it normally takes milliseconds)."""


# --------------------------------------------------------------------------- helpers


class Collector:
    """Thread-safe list of things handed to a callback, with waiting on a condition."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = threading.Condition()

    def __call__(self, *args: Any) -> None:
        with self._changed:
            self.items.append(args[0] if len(args) == 1 else args)
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float = WAIT_S) -> bool:
        """True as soon as ``predicate(items)`` holds; False after ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.items), timeout)

    def snapshot(self) -> list[Any]:
        with self._changed:
            return list(self.items)


@dataclass
class Kitchen:
    """A BusClient with what it received."""

    client: BusClient
    sender: Sender
    inbox: Collector = field(default_factory=Collector)
    presence: Collector = field(default_factory=Collector)

    @property
    def membership(self) -> Membership:
        return self.client.membership

    def ids(self) -> Counter[str]:
        """How many times each message id reached ``on_message``."""
        return Counter(message.id for message in self.inbox.snapshot())

    def say(self, intent: str = "borrow_item", *, pod: str | None = None, **kwargs: Any) -> Message:
        """Publish a new message (in ``pod``, a name or id, else where the client chooses)."""
        message = new_message(self.sender, intent, *_slots(intent), **kwargs)
        self.client.publish(message, pod=pod)
        return message


def _slots(intent: str) -> tuple[dict[str, str], str]:
    slots = {"borrow_item": {"item": "ladder"}, "offer_item": {"item": "drill"}}.get(intent, {})
    return slots, f"test {intent}"


def bus_settings(broker: EmbeddedBroker, pod: str, **overrides: Any) -> BusSettings:
    """Settings for ``broker`` with quick reconnects (the tests stop and start brokers)."""
    host, port = broker.address
    values: dict[str, Any] = {"reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "keepalive_s": 5, **overrides}
    return BusSettings(host=host, port=port, pod=pod, **values)


def display_name(device_id: str) -> str:
    """The name a test kitchen goes by (it has a space: it cannot hide in base64)."""
    return f"{device_id} next door"


class Kitchens:
    """``kitchens(broker, pod, device_id, start=True, clock=time.time, **bus_overrides)``.

    Each kitchen is a BusClient of a member of ``pod`` (a :class:`Circle`): its own key dir
    under the circle's root, its default pod ``pod``. :meth:`close` stops them all.
    """

    def __init__(self) -> None:
        self.made: list[Kitchen] = []

    def __call__(
        self,
        broker: EmbeddedBroker,
        pod: Circle,
        device_id: str,
        *,
        start: bool = True,
        clock: Callable[[], float] = time.time,
        **overrides: Any,
    ) -> Kitchen:
        device = DeviceSettings(id=device_id, name=display_name(device_id))
        inbox, presence = Collector(), Collector()
        client = BusClient(
            bus_settings(broker, pod.name, **overrides),
            device,
            inbox,
            membership=pod.membership(device_id, device.name, clock=clock),
            on_presence=presence,
            clock=clock,
        )
        kitchen = Kitchen(client, Sender(device.id, device.name), inbox, presence)
        self.made.append(kitchen)
        if start:
            client.start()
            assert client.wait_connected(WAIT_S), f"{device_id} did not connect"
        return kitchen

    def close(self) -> None:
        for kitchen in self.made:
            kitchen.client.stop()


@pytest.fixture
def pod(tmp_path: Path) -> Circle:
    """A pod of the test's own (no end), its members' key dirs under ``tmp_path``."""
    return Circle(tmp_path / "pods")


@pytest.fixture
def kitchens() -> Iterator[Kitchens]:
    """Kitchens (BusClients), all stopped at teardown."""
    made = Kitchens()
    yield made
    made.close()


class Raw:
    """A plain paho MQTT v5 client: sees what is really on the broker, publishes anything."""

    def __init__(
        self, broker: EmbeddedBroker, *, client_id: str | None = None, session_expiry_s: int = 0
    ) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"raw-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.received = Collector()
        self._subscribed = threading.Event()
        connected = threading.Event()
        self.client.on_connect = lambda *_args: connected.set()
        self.client.on_subscribe = lambda *_args: self._subscribed.set()
        self.client.on_message = lambda _client, _userdata, message: self.received(message)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)  # back soon after a broker restart
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = session_expiry_s
        host, port = broker.address
        self.client.connect(host, port, clean_start=session_expiry_s == 0, properties=properties)
        self.client.loop_start()
        assert connected.wait(WAIT_S), "raw client did not connect"

    def subscribe(self, topic: str) -> None:
        self._subscribed.clear()
        self.client.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=True))
        assert self._subscribed.wait(WAIT_S), "no SUBACK"

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, properties: Properties | None = None
    ) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        info.wait_for_publish(WAIT_S)
        assert info.is_published(), "the broker did not acknowledge a raw publish"

    def retained(self, subscription: str) -> dict[str, bytes]:
        """What the broker retains under ``subscription`` (topic -> payload)."""
        self.subscribe(subscription)  # retained messages are sent right after the SUBACK ...
        sentinel = f"{topics.ROOT}/sentinel/{uuid.uuid4().hex}"
        self.client.subscribe(sentinel, options=SubscribeOptions(qos=1))
        self.publish(sentinel, b"end")  # ... so they all arrive before this one
        assert self.received.wait_for(lambda items: any(m.topic == sentinel for m in items))
        return {m.topic: m.payload for m in self.received.snapshot() if m.retain}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class RawClients:
    """``raw(broker, client_id=None, session_expiry_s=0)``; :meth:`close` closes them all."""

    def __init__(self) -> None:
        self.made: list[Raw] = []

    def __call__(self, broker: EmbeddedBroker, **kwargs: Any) -> Raw:
        client = Raw(broker, **kwargs)
        self.made.append(client)
        return client

    def close(self) -> None:
        for client in self.made:
            client.close()


@pytest.fixture
def raw() -> Iterator[RawClients]:
    """Raw paho clients, closed at teardown."""
    made = RawClients()
    yield made
    made.close()


def drops(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The BusClient's WARNING lines (dropped messages and the like)."""
    return [r.getMessage() for r in list(caplog.records) if r.name == LOGGER and r.levelno == logging.WARNING]


def infos(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The BusClient's INFO lines."""
    return [r.getMessage() for r in list(caplog.records) if r.name == LOGGER and r.levelno == logging.INFO]


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    """Poll ``predicate`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def box(pod: Pod, plaintext: bytes) -> bytes:
    """``plaintext`` in an envelope for ``pod``, built by hand: ``{"v", "pod", "box"}``, the box
    being base64 of nonce + SecretBox ciphertext under the pod key."""
    sealed = bytes(SecretBox(pod.key).encrypt(plaintext))
    return json.dumps({"v": 1, "pod": pod.id, "box": base64.b64encode(sealed).decode("ascii")}).encode()


def unseal(payload: bytes | bytearray, pod: Pod, verify_key_b64: str) -> bytes:
    """What a sealed payload carries, opened by hand with the pod key and checked against the
    signer's verify key (fails the test when it is not an envelope for ``pod``)."""
    wire = json.loads(payload)
    assert set(wire) == {"v", "pod", "box"}, f"not an envelope: {sorted(wire)}"
    assert wire["v"] == 1
    assert wire["pod"] == pod.id
    signed = SecretBox(pod.key).decrypt(base64.b64decode(wire["box"], validate=True))
    return bytes(VerifyKey(base64.b64decode(verify_key_b64)).verify(signed))


def expiry_interval(message: mqtt.MQTTMessage) -> int:
    """The MQTT v5 message expiry interval ``message`` was delivered with."""
    interval = getattr(message.properties, "MessageExpiryInterval", None)
    assert isinstance(interval, int), "delivered without a message expiry interval"
    return interval


def verify_key(kitchen: Kitchen) -> str:
    """The kitchen's own verify key (base64)."""
    return kitchen.membership.keys.verify_key_b64


def pinned(kitchen: Kitchen, pod: Circle | Pod, device: str) -> str | None:
    """The key ``kitchen`` has pinned for ``device`` in ``pod`` (``None``: none, or not in the pod)."""
    current = kitchen.membership.get(pod.id)
    return None if current is None else current.roster.get(device)


# --------------------------------------------------------------------------- round trip


def test_round_trip_at_qos1_with_message_expiry_interval(
    mosquitto: EmbeddedBroker, pod: Circle, kitchens: Kitchens, raw: RawClients
) -> None:
    maya, sam = kitchens(mosquitto, pod, "maya"), kitchens(mosquitto, pod, "sam")
    spy = raw(mosquitto)
    spy.subscribe(topics.message_subscription(pod.id))

    sent = maya.say(ttl_s=120.0)

    assert sam.inbox.wait_for(lambda items: len(items) == 1)
    assert sam.inbox.snapshot() == [sent]
    said_in = sam.client.pod_of(sent.id)
    assert said_in is not None
    assert said_in.id == pod.id
    assert maya.inbox.wait_for(lambda items: len(items) == 1), "a device gets its own message back (echo)"
    assert maya.inbox.snapshot() == [sent]
    assert spy.received.wait_for(lambda items: len(items) == 1)
    seen: mqtt.MQTTMessage = spy.received.snapshot()[0]
    assert seen.topic == topics.message_topic(pod.id, "maya")
    assert seen.qos == 1
    assert not seen.retain
    assert 100 <= expiry_interval(seen) <= 120
    assert set(json.loads(seen.payload)) == {"v", "pod", "box"}, "the wire carries an envelope"
    for secret in (sent.text, sent.sender.name, *sent.slots.values()):
        assert secret.encode() not in seen.payload, f"{secret!r} is readable on the wire"
    assert Message.from_json(unseal(seen.payload, pod.pod, verify_key(maya))) == sent
    assert maya.client.flush(WAIT_S)
    assert maya.client.pending == 0


def test_nothing_is_retained_but_presence_and_sealed_keys(
    mosquitto: EmbeddedBroker, pod: Circle, kitchens: Kitchens, raw: RawClients
) -> None:
    maya, sam = kitchens(mosquitto, pod, "maya"), kitchens(mosquitto, pod, "sam")
    maya.say()
    sam.say("offer_item")
    assert maya.inbox.wait_for(lambda items: len(items) == 2)

    retained = raw(mosquitto).retained(f"{topics.ROOT}/{pod.id}/#")

    assert set(retained) == {
        topics.status_topic(pod.id, "maya"),
        topics.status_topic(pod.id, "sam"),
        topics.key_topic(pod.id, "maya"),
        topics.key_topic(pod.id, "sam"),
    }
    for kitchen in (maya, sam):
        device = kitchen.sender.device
        assert retained[topics.status_topic(pod.id, device)] == b"online"
        sealed = retained[topics.key_topic(pod.id, device)]
        assert display_name(device).encode() not in sealed, "the key announcement is readable"
        announcement = json.loads(unseal(sealed, pod.pod, verify_key(kitchen)))
        assert (announcement["device"], announcement["key"]) == (device, verify_key(kitchen))


def test_publish_refuses_a_message_from_another_device(
    mosquitto: EmbeddedBroker, pod: Circle, kitchens: Kitchens
) -> None:
    maya = kitchens(mosquitto, pod, "maya")
    forged = new_message(Sender("sam", "Sam"), "borrow_item", {"item": "ladder"})
    with pytest.raises(MessageError, match="not this device"):
        maya.client.publish(forged)
    assert maya.client.pending == 0


def test_a_send_only_client_leaves_the_device_session_alone(
    mosquitto: EmbeddedBroker, pod: Circle, kitchens: Kitchens, raw: RawClients
) -> None:
    """``voicehello say`` on a device whose daemon runs: same device id, its own connection."""
    daemon = kitchens(mosquitto, pod, "maya")
    sam = kitchens(mosquitto, pod, "sam")
    ignored = Collector()
    say = BusClient(
        bus_settings(mosquitto, pod.name),
        DeviceSettings(id="maya", name="Maya"),
        ignored,
        membership=pod.membership("maya", "Maya"),
        listen=False,
    )
    say.start()
    try:
        assert say.wait_connected(WAIT_S)
        assert say.client_id != daemon.client.client_id
        sent = new_message(daemon.sender, "borrow_item", {"item": "ladder"})
        say.publish(sent)
        assert say.flush(WAIT_S)
        assert sam.inbox.wait_for(lambda items: sent in items)
        assert daemon.inbox.wait_for(lambda items: sent in items), "the daemon sees what was said in its name"
    finally:
        say.stop()
    assert daemon.client.connected, "the send-only client took over the daemon's session"
    assert ignored.snapshot() == []
    late = raw(mosquitto)
    late.subscribe(topics.status_topic(pod.id, "maya"))
    assert late.received.wait_for(lambda items: len(items) == 1)
    assert late.received.snapshot()[0].payload == b"online", (
        "the send-only client said the device went offline"
    )


def test_seen_ids_are_bounded_and_forgotten_when_expired() -> None:
    seen = SeenIds(limit=3)
    assert seen.first("a", expires=10.0, now=0.0)
    assert not seen.first("a", expires=10.0, now=1.0)
    for name, expires in (("b", 20.0), ("c", 30.0), ("d", 40.0)):
        assert seen.first(name, expires, now=1.0)
    assert len(seen) == 3  # "a", the soonest to expire, was forgotten
    assert not seen.first("d", 40.0, now=2.0)
    assert seen.first("x", 50.0, now=25.0)  # "b" expired and is gone
    assert len(seen) == 3


def test_unusable_settings_raise_bus_error(tmp_path: Path, pod: Circle) -> None:
    device = DeviceSettings(id="maya", name="Maya")
    membership = pod.membership("maya")
    with pytest.raises(BusError, match="no broker configured"):
        BusClient(BusSettings(host="", pod=pod.name), device, lambda _m: None, membership=membership).start()
    missing = BusSettings(host="localhost", pod=pod.name, tls=True, ca_file=tmp_path / "missing-ca.pem")
    with pytest.raises(BusError, match="ca_file not found"):
        BusClient(missing, device, lambda _m: None, membership=membership).start()


# --------------------------------------------------------------------------- presence


GHOST = """
import sys, time
from pathlib import Path
from voicehello.bus.mqtt import BusClient
from voicehello.config import BusSettings, DeviceSettings, PrivacySettings, Settings
from voicehello.privacy.membership import Membership
host, port, pod, keys_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
settings = Settings(
    device=DeviceSettings(id="ghost", name="Ghost"),
    bus=BusSettings(host=host, port=port, pod=pod, keepalive_s=5),
    privacy=PrivacySettings(keys_dir=keys_dir),
)
membership = Membership.from_settings(settings)
client = BusClient(settings.bus, settings.device, lambda message: None, membership=membership)
client.start()
time.sleep(300)
"""


def test_presence_online_offline_and_last_will(
    mosquitto: EmbeddedBroker, pod: Circle, kitchens: Kitchens, raw: RawClients
) -> None:
    sam = kitchens(mosquitto, pod, "sam")
    maya = kitchens(mosquitto, pod, "maya")
    assert sam.presence.wait_for(lambda items: ("maya", True) in items)
    assert ("sam", True) not in sam.presence.snapshot(), "a device is not told about itself"

    maya.client.stop()
    assert sam.presence.wait_for(lambda items: items[-1] == ("maya", False))

    host, port = mosquitto.address
    ghost = subprocess.Popen(
        [sys.executable, "-c", GHOST, host, str(port), pod.name, str(pod.keys_dir("ghost"))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert sam.presence.wait_for(lambda items: ("ghost", True) in items), "the ghost never came online"
        ghost.send_signal(signal.SIGKILL)  # no clean disconnect: the broker publishes the last will
        ghost.wait(timeout=WAIT_S)
        assert sam.presence.wait_for(lambda items: items[-1] == ("ghost", False)), "no last will"
    finally:
        ghost.kill()
        ghost.wait(timeout=WAIT_S)

    late = raw(mosquitto)
    late.subscribe(topics.status_subscription(pod.id))
    expected = {
        topics.status_topic(pod.id, device): status
        for device, status in (("maya", b"offline"), ("ghost", b"offline"), ("sam", b"online"))
    }
    assert late.received.wait_for(lambda items: {m.topic: m.payload for m in items if m.retain} == expected)


# --------------------------------------------------------------------------- offline neighbors, outbox


def test_neighbor_offline_gets_what_it_missed_while_valid(
    mosquitto: EmbeddedBroker, pod: Circle, kitchens: Kitchens, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    maya = kitchens(mosquitto, pod, "maya")
    sam = kitchens(mosquitto, pod, "sam")
    sam.client.stop()  # sam's session (subscriptions, queue) stays on the broker

    short = maya.say(ttl_s=2.0)  # expires while sam is away
    long = maya.say(ttl_s=600.0)  # same topic, published after: ordered behind the short one
    assert maya.client.flush(WAIT_S)
    # the broker's own expiry is under test here (sam must not be the one to drop it): real
    # time has to pass, on the broker's whole-second clock
    time.sleep(4.0)

    back = kitchens(mosquitto, pod, "sam")  # same device id: the broker resumes its session
    assert back.inbox.wait_for(lambda items: len(items) >= 1), "sam never got what it missed"
    assert [m.id for m in back.inbox.snapshot()] == [long.id]
    assert short.id not in back.ids()
    assert not any(short.id in line for line in drops(caplog)), (
        "the broker, not sam, should drop expired messages"
    )


def test_outbox_holds_messages_until_the_broker_is_up(
    fresh_broker: EmbeddedBroker, pod: Circle, kitchens: Kitchens, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    sam = kitchens(fresh_broker, pod, "sam")
    fresh_broker.stop()
    maya = kitchens(fresh_broker, pod, "maya", start=False)
    maya.client.start()  # broker down: not an error, retried in the background
    sent = maya.say()
    assert not maya.client.wait_connected(1.5), "connected to a broker that is down"
    assert maya.client.pending == 1
    assert not maya.client.flush(0.2)

    fresh_broker.restart()
    assert maya.client.flush(WAIT_S)
    assert sam.inbox.wait_for(lambda items: len(items) == 1)
    assert sam.inbox.snapshot() == [sent]
    unreachable = [line for line in drops(caplog) if line.startswith("maya:") and "retrying" in line]
    assert len(unreachable) == 1, f"one line per outage, not one per retry: {unreachable}"


def test_outbox_drops_the_oldest_beyond_its_limit(
    fresh_broker: EmbeddedBroker, pod: Circle, kitchens: Kitchens, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    sam = kitchens(fresh_broker, pod, "sam")
    maya = kitchens(fresh_broker, pod, "maya", outbox_limit=3)
    fresh_broker.stop()
    wait_until(lambda: not maya.client.connected, "maya did not notice the broker stopped")

    sent = [maya.say() for _ in range(5)]
    assert maya.client.pending == 3
    assert sum("outbox full" in line for line in drops(caplog)) == 2

    fresh_broker.restart()
    assert maya.client.flush(WAIT_S)
    assert sam.inbox.wait_for(lambda items: len(items) == 3)
    assert [m.id for m in sam.inbox.snapshot()] == [m.id for m in sent[2:]]


def test_message_that_expired_in_the_outbox_is_never_sent(
    fresh_broker: EmbeddedBroker, pod: Circle, kitchens: Kitchens, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    skew = [0.0]
    sam = kitchens(fresh_broker, pod, "sam")  # real clock: would accept the short message
    maya = kitchens(fresh_broker, pod, "maya", clock=lambda: time.time() + skew[0])
    fresh_broker.stop()
    wait_until(lambda: not maya.client.connected, "maya did not notice the broker stopped")

    short = maya.say(ttl_s=30.0)
    long = maya.say(ttl_s=600.0)
    skew[0] = 60.0  # a minute passes for maya while the broker is down
    wait_until(
        lambda: any(short.id in line and "expired" in line for line in drops(caplog)),
        "no log line for the message that expired in the outbox",
    )
    assert maya.client.pending == 1

    fresh_broker.restart()
    assert maya.client.flush(WAIT_S)
    assert sam.inbox.wait_for(lambda items: len(items) == 1)
    assert [m.id for m in sam.inbox.snapshot()] == [long.id]


# --------------------------------------------------------------------------- broker restarts in a burst


BURST = 200


def _burst(publisher: Kitchen, sent: list[str], done: threading.Event) -> None:
    """Publish ``BURST`` requests at a steady pace (a kitchen-sized burst, not a flood)."""
    try:
        for _ in range(BURST):
            sent.append(publisher.say(ttl_s=600.0).id)
            time.sleep(0.003)
    finally:
        done.set()


def _run_burst_with(
    broker: EmbeddedBroker, pod: Circle, kitchens: Kitchens, interrupt: Callable[[], None]
) -> tuple[list[str], int, list[Kitchen], Kitchen]:
    """A burst from one publisher to two subscribers, ``interrupt`` called in its middle.

    Returns (ids in publish order, how many had been published when interrupted, subscribers, publisher).
    """
    subscribers = [kitchens(broker, pod, name) for name in ("sam", "lee")]
    publisher = kitchens(broker, pod, "maya")
    sent: list[str] = []
    done = threading.Event()
    thread = threading.Thread(target=_burst, args=(publisher, sent, done), daemon=True)
    thread.start()
    assert subscribers[0].inbox.wait_for(lambda items: len(items) >= BURST // 4), "the burst never started"
    interrupt()
    published_before = len(sent)
    assert not done.is_set(), "the burst was over before the broker went down"
    broker.restart()
    assert done.wait(WAIT_S)
    thread.join(WAIT_S)
    assert publisher.client.flush(30.0), f"the publisher still holds {publisher.client.pending} messages"
    return sent, published_before, subscribers, publisher


def test_graceful_broker_restart_in_a_burst_delivers_everything_exactly_once(
    fresh_broker: EmbeddedBroker, pod: Circle, kitchens: Kitchens
) -> None:
    sent, _, subscribers, _ = _run_burst_with(fresh_broker, pod, kitchens, fresh_broker.stop)
    assert len(set(sent)) == BURST
    for subscriber in subscribers:
        assert subscriber.inbox.wait_for(lambda items: len(items) >= BURST, 30.0), (
            f"{subscriber.sender.device} got {len(subscriber.ids())} of {BURST}"
        )
        counts = subscriber.ids()
        assert set(counts) == set(sent)
        assert max(counts.values()) == 1, "a message was delivered twice"


def test_broker_killed_in_a_burst_loses_only_what_it_had_acknowledged(
    fresh_broker: EmbeddedBroker, pod: Circle, kitchens: Kitchens
) -> None:
    """kill -9 cannot be exactly-once with Mosquitto: it acknowledges a QoS 1 message (PUBACK)
    as soon as it holds it in memory, and writes its database only on a graceful stop, on
    SIGUSR1 or every ``autosave_interval``. Messages it had acknowledged but not yet passed to
    a subscriber die with it, and the publisher rightly does not send them again. What must
    hold: the publisher sends again everything not acknowledged (its outbox empties against
    the new broker), every message published after the kill reaches both subscribers, and
    nothing arrives twice. The sessions are saved (SIGUSR1) before the burst, as autosave
    would have done in a broker that has run for a while."""

    def kill() -> None:
        fresh_broker.save()
        fresh_broker.kill()

    sent, published_before, subscribers, _ = _run_burst_with(fresh_broker, pod, kitchens, kill)
    after_kill = set(sent[published_before:])
    assert after_kill, "nothing was published after the kill"
    for subscriber in subscribers:
        assert subscriber.inbox.wait_for(lambda items: after_kill <= {m.id for m in items}, 30.0), (
            f"{subscriber.sender.device} missed messages published after the kill"
        )
        counts = subscriber.ids()
        assert set(counts) <= set(sent)
        assert max(counts.values()) == 1, "a message was delivered twice"


# --------------------------------------------------------------------------- hostile and broken input


def member(pod: Circle, device: str, name: str | None = None) -> tuple[Membership, Sender]:
    """A member of ``pod`` that runs no client (its envelopes are published by a raw client)."""
    membership = pod.membership(device, name or device.title())
    return membership, Sender(device, membership.device.name)


def test_bad_messages_are_dropped_with_one_log_line_each(
    mosquitto: EmbeddedBroker,
    pod: Circle,
    kitchens: Kitchens,
    raw: RawClients,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A message from a member whose key never comes is held for KEY_WAIT_S, then dropped: the
    # test moves sam's clock on past it instead of waiting.
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = ShiftedClock()
    sam = kitchens(mosquitto, pod, "sam", clock=clock)
    attacker = raw(mosquitto)
    maya, maya_sender = member(pod, "maya")
    mallory, mallory_sender = member(pod, "mallory")
    stranger, stranger_sender = member(pod, "stranger")  # has the pod key; never announces its key
    for someone in (maya, mallory):
        attacker.publish(topics.key_topic(pod.id, someone.device.id), someone.key_announcement(pod.pod))
    wait_until(
        lambda: (
            pinned(sam, pod, "maya") == maya.keys.verify_key_b64
            and pinned(sam, pod, "mallory") == mallory.keys.verify_key_b64
        ),
        "sam did not pin the announced keys",
    )

    topic = topics.message_topic(pod.id, "maya")
    secret = "SECRET-PAYLOAD-TEXT"

    def said(by: Sender = maya_sender, **changes: Any) -> Message:
        """A fresh message (a new id each time: a failed check must not hide a later one)."""
        message = new_message(by, "borrow_item", {"item": secret}, f"can I borrow a {secret}")
        return replace(message, **changes)

    now = time.time()
    sealed = maya.seal(said(), pod.pod)
    envelope = json.loads(sealed)
    missing_slots = said().to_dict()
    del missing_slots["slots"]
    other_pod = Circle(pod.root, name=f"{pod.name}-other").pod
    # (the reason its drop line gives, topic, payload, retained): one drop line each
    bad: list[tuple[str, str, bytes, bool]] = [
        ("payload is not UTF-8 JSON", topic, b"\x00\x01 not json " + secret.encode(), False),
        ("payload is not UTF-8 JSON", topic, b'{"v": 1, "box": "\xff\xfe' + secret.encode() + b'"}', False),
        ("not a voicehello envelope", topic, json.dumps(said().to_dict()).encode(), False),  # plaintext
        ("over 8192", topic, json.dumps({**envelope, "box": "A" * 9000}).encode(), False),
        ("box is not base64", topic, json.dumps({**envelope, "box": "not base64!"}).encode(), False),
        ("box is too short", topic, json.dumps({**envelope, "box": envelope["box"][:40]}).encode(), False),
        ("cannot decrypt", topic, json.dumps({**envelope, "box": envelope["box"][:200]}).encode(), False),
        (
            "cannot decrypt",
            topic,
            box(replace(other_pod, id=pod.id), maya.keys.sign(said().to_json())),  # another pod's key
            False,
        ),
        ("envelope is for another pod", topic, maya.seal(said(), other_pod), False),
        (
            "unknown sender stranger",
            topics.message_topic(pod.id, "stranger"),
            stranger.seal(said(stranger_sender), pod.pod),
            False,
        ),
        (
            "mallory signed a message claiming to be from maya",
            topic,
            box(pod.pod, mallory.keys.sign(said().to_json())),
            False,
        ),
        (
            "message from mallory was published as maya",
            topic,
            mallory.seal(said(mallory_sender), pod.pod),
            False,
        ),
        (
            "'slots' is a required property",
            topic,
            box(pod.pod, maya.keys.sign(json.dumps(missing_slots).encode())),
            False,
        ),
        (
            "not a topic of a pod this device is in",
            f"{topics.ROOT}/{pod.id}/Maya!/msg",
            maya.seal(said(), pod.pod),
            False,
        ),
        ("retained", topic, maya.seal(said(), pod.pod), True),
        ("has expired", topic, maya.seal(said(ts=now - 120, expires=now - 60), pod.pod), False),
        ("is dated +400 s", topic, maya.seal(said(ts=now + 400, expires=now + 1000), pod.pod), False),
    ]
    for _reason, where, payload, retain in bad:
        attacker.publish(where, payload, retain=retain)
    huge = box(pod.pod, maya.keys.sign(secret.encode() * 5000))  # over MAX_PACKET_BYTES: the broker keeps it
    attacker.publish(topic, huge)
    good = said()
    good_payload = maya.seal(good, pod.pod)
    attacker.publish(topic, good_payload)
    attacker.publish(topic, good_payload)  # a replay: delivered once, noted at INFO

    assert sam.inbox.wait_for(lambda items: len(items) >= 1)
    wait_until(
        lambda: any("holding a message from stranger" in line for line in infos(caplog)),
        "the message from an unknown sender was not held for its key",
    )
    clock.advance(KEY_WAIT_S + 1)
    wait_until(
        lambda: any("unknown sender stranger" in line for line in drops(caplog)),
        "the message from an unknown sender was not dropped after KEY_WAIT_S",
    )
    attacker.publish(topic, b"", retain=True)  # clear the retained message (itself dropped: retained)
    late = new_message(maya_sender, "say_hello")
    attacker.publish(topics.message_topic(pod.id, "maya"), maya.seal(late, pod.pod))
    assert sam.inbox.wait_for(lambda items: late in items), "the client stopped working after bad input"
    assert [m.id for m in sam.inbox.snapshot()] == [good.id, late.id]

    lines = [line for line in drops(caplog) if pod.id in line]  # not another test's leftovers
    assert all(line.startswith("dropped bus message on ") for line in lines), "\n".join(lines)
    expected = Counter(reason for reason, *_ in bad) + Counter({"retained": 1})  # + the clearing
    assert len(lines) == sum(expected.values()), "\n".join(lines)
    for reason, times in expected.items():
        assert sum(reason in line for line in lines) == times, f"not {times} x {reason!r} in:\n" + "\n".join(
            lines
        )
    replays = [line for line in infos(caplog) if good.id in line]
    assert len(replays) == 1
    assert "(replay)" in replays[0]
    assert any("holding a message from stranger" in line for line in infos(caplog))
    assert secret not in caplog.text, "a payload was logged"


def test_a_failing_on_message_does_not_stop_the_client(
    mosquitto: EmbeddedBroker, pod: Circle, kitchens: Kitchens, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    maya = kitchens(mosquitto, pod, "maya")
    received = Collector()

    def fragile(message: Message) -> None:
        received(message)
        if message.intent == "say_hello":
            raise RuntimeError("application bug")

    device = DeviceSettings(id="sam", name="Sam")
    sam = BusClient(
        bus_settings(mosquitto, pod.name), device, fragile, membership=pod.membership("sam", "Sam")
    )
    sam.start()
    try:
        assert sam.wait_connected(WAIT_S)
        maya.say("say_hello")
        after = maya.say()
        assert received.wait_for(lambda items: after in items)
        assert any("on_message failed" in r.getMessage() for r in caplog.records if r.name == LOGGER)
    finally:
        sam.stop()
    sam.stop()  # idempotent
    assert not sam.connected


def test_expiry_interval_is_recomputed_when_sent_late(
    fresh_broker: EmbeddedBroker, pod: Circle, kitchens: Kitchens, raw: RawClients
) -> None:
    skew = [0.0]
    spy = raw(fresh_broker, client_id="spy", session_expiry_s=300)
    spy.subscribe(topics.message_subscription(pod.id))
    maya = kitchens(fresh_broker, pod, "maya", clock=lambda: time.time() + skew[0])
    fresh_broker.stop()
    wait_until(lambda: not maya.client.connected, "maya did not notice the broker stopped")
    maya.say(ttl_s=600.0)
    skew[0] = 400.0  # sent 400 s late by maya's clock: 200 s left, not 600
    fresh_broker.restart()
    assert maya.client.flush(WAIT_S)
    assert spy.received.wait_for(lambda items: len(items) == 1)
    interval = expiry_interval(spy.received.snapshot()[0])
    assert 190 <= interval <= math.ceil(200)
