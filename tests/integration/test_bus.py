"""The bus against a real Mosquitto (``EmbeddedBroker``), with no mocks.

Every test uses a pod (topic level) of its own, so tests sharing the session's broker never
see each other's messages, retained statuses or sessions. Tests that stop, kill or restart
the broker get one of their own (``fresh_broker``). Raw paho clients (no voicehello code)
check what is really on the broker and publish what a hostile or broken device would.
"""

from __future__ import annotations

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from voicehello.bus import topics
from voicehello.bus.broker import EmbeddedBroker
from voicehello.bus.messages import Message, Sender, new_message
from voicehello.bus.mqtt import BusClient, SeenIds
from voicehello.config import BusSettings, DeviceSettings
from voicehello.errors import BusError, MessageError

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

    def ids(self) -> Counter[str]:
        """How many times each message id reached ``on_message``."""
        return Counter(message.id for message in self.inbox.snapshot())

    def say(self, intent: str = "borrow_item", **kwargs: Any) -> Message:
        message = new_message(self.sender, intent, *_slots(intent), **kwargs)
        self.client.publish(message)
        return message


def _slots(intent: str) -> tuple[dict[str, str], str]:
    slots = {"borrow_item": {"item": "ladder"}, "offer_item": {"item": "drill"}}.get(intent, {})
    return slots, f"test {intent}"


def bus_settings(broker: EmbeddedBroker, pod: str, **overrides: Any) -> BusSettings:
    """Settings for ``broker`` with quick reconnects (the tests stop and start brokers)."""
    host, port = broker.address
    values: dict[str, Any] = {"reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "keepalive_s": 5, **overrides}
    return BusSettings(host=host, port=port, pod=pod, **values)


@pytest.fixture
def pod() -> str:
    """A pod name no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def kitchens() -> Iterator[Callable[..., Kitchen]]:
    """``kitchens(broker, pod, device_id, start=True, clock=time.time, **bus_overrides)``; all stopped at teardown."""
    made: list[Kitchen] = []

    def make(
        broker: EmbeddedBroker,
        pod: str,
        device_id: str,
        *,
        start: bool = True,
        clock: Callable[[], float] = time.time,
        **overrides: Any,
    ) -> Kitchen:
        device = DeviceSettings(id=device_id, name=f"{device_id} next door")
        inbox, presence = Collector(), Collector()
        client = BusClient(
            bus_settings(broker, pod, **overrides), device, inbox, on_presence=presence, clock=clock
        )
        kitchen = Kitchen(client, Sender(device.id, device.name), inbox, presence)
        made.append(kitchen)
        if start:
            client.start()
            assert client.wait_connected(WAIT_S), f"{device_id} did not connect"
        return kitchen

    yield make
    for kitchen in made:
        kitchen.client.stop()


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

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def raw() -> Iterator[Callable[..., Raw]]:
    """``raw(broker, client_id=None, session_expiry_s=0)``: raw paho clients, closed at teardown."""
    made: list[Raw] = []

    def make(broker: EmbeddedBroker, **kwargs: Any) -> Raw:
        client = Raw(broker, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def drops(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The BusClient's WARNING lines about dropped messages."""
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def payload(sender: Sender, **changes: Any) -> dict[str, Any]:
    """A valid message as a JSON object, with ``changes`` applied."""
    data = new_message(sender, "borrow_item", {"item": "ladder"}, "can I borrow a ladder").to_dict()
    data.update(changes)
    return data


def encode(data: Any) -> bytes:
    return json.dumps(data).encode()


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    """Poll ``predicate`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


# --------------------------------------------------------------------------- round trip


def test_round_trip_at_qos1_with_message_expiry_interval(
    mosquitto: EmbeddedBroker, pod: str, kitchens: Callable[..., Kitchen], raw: Callable[..., Raw]
) -> None:
    maya, sam = kitchens(mosquitto, pod, "maya"), kitchens(mosquitto, pod, "sam")
    spy = raw(mosquitto)
    spy.subscribe(topics.intent_subscription(pod))

    sent = maya.say(ttl_s=120.0)

    assert sam.inbox.wait_for(lambda items: len(items) == 1)
    assert sam.inbox.snapshot() == [sent]
    assert maya.inbox.wait_for(lambda items: len(items) == 1), "a device gets its own message back (echo)"
    assert maya.inbox.snapshot() == [sent]
    assert spy.received.wait_for(lambda items: len(items) == 1)
    seen: mqtt.MQTTMessage = spy.received.snapshot()[0]
    assert seen.topic == topics.intent_topic(pod, "maya", "borrow_item")
    assert seen.qos == 1
    assert not seen.retain
    assert 100 <= seen.properties.MessageExpiryInterval <= 120
    assert json.loads(seen.payload) == sent.to_dict()
    assert maya.client.flush(WAIT_S)
    assert maya.client.pending == 0


def test_nothing_is_retained_but_presence(
    mosquitto: EmbeddedBroker, pod: str, kitchens: Callable[..., Kitchen], raw: Callable[..., Raw]
) -> None:
    maya, sam = kitchens(mosquitto, pod, "maya"), kitchens(mosquitto, pod, "sam")
    maya.say()
    sam.say("offer_item")
    assert maya.inbox.wait_for(lambda items: len(items) == 2)

    late = raw(mosquitto)
    late.subscribe(f"{topics.ROOT}/{pod}/#")  # retained messages are sent right after the SUBACK ...
    sentinel = f"{topics.ROOT}/{pod}/sentinel"
    late.publish(sentinel, b"end")  # ... so they all arrive before this one
    assert late.received.wait_for(lambda items: any(m.topic == sentinel for m in items))

    retained = {m.topic: m.payload for m in late.received.snapshot() if m.retain}
    assert retained == {
        topics.status_topic(pod, "maya"): b"online",
        topics.status_topic(pod, "sam"): b"online",
    }


def test_publish_refuses_a_message_from_another_device(
    mosquitto: EmbeddedBroker, pod: str, kitchens: Callable[..., Kitchen]
) -> None:
    maya = kitchens(mosquitto, pod, "maya")
    forged = new_message(Sender("sam", "Sam"), "borrow_item", {"item": "ladder"})
    with pytest.raises(MessageError, match="not this device"):
        maya.client.publish(forged)
    assert maya.client.pending == 0


def test_a_send_only_client_leaves_the_device_session_alone(
    mosquitto: EmbeddedBroker, pod: str, kitchens: Callable[..., Kitchen], raw: Callable[..., Raw]
) -> None:
    """``voicehello say`` on a device whose daemon runs: same device id, its own connection."""
    daemon = kitchens(mosquitto, pod, "maya")
    sam = kitchens(mosquitto, pod, "sam")
    ignored = Collector()
    say = BusClient(
        bus_settings(mosquitto, pod), DeviceSettings(id="maya", name="Maya"), ignored, listen=False
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
    late.subscribe(topics.status_topic(pod, "maya"))
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


def test_unusable_settings_raise_bus_error(tmp_path: Path) -> None:
    device = DeviceSettings(id="maya", name="Maya")
    with pytest.raises(BusError, match="no broker configured"):
        BusClient(BusSettings(host=""), device, lambda _m: None).start()
    missing = BusSettings(host="localhost", tls=True, ca_file=tmp_path / "missing-ca.pem")
    with pytest.raises(BusError, match="ca_file not found"):
        BusClient(missing, device, lambda _m: None).start()


# --------------------------------------------------------------------------- presence


GHOST = """
import sys, time
from voicehello.bus.mqtt import BusClient, SeenIds
from voicehello.config import BusSettings, DeviceSettings
bus = BusSettings(host=sys.argv[1], port=int(sys.argv[2]), pod=sys.argv[3], keepalive_s=5)
client = BusClient(bus, DeviceSettings(id="ghost", name="Ghost"), lambda message: None)
client.start()
time.sleep(300)
"""


def test_presence_online_offline_and_last_will(
    mosquitto: EmbeddedBroker, pod: str, kitchens: Callable[..., Kitchen], raw: Callable[..., Raw]
) -> None:
    sam = kitchens(mosquitto, pod, "sam")
    maya = kitchens(mosquitto, pod, "maya")
    assert sam.presence.wait_for(lambda items: ("maya", True) in items)
    assert ("sam", True) not in sam.presence.snapshot(), "a device is not told about itself"

    maya.client.stop()
    assert sam.presence.wait_for(lambda items: items[-1] == ("maya", False))

    host, port = mosquitto.address
    ghost = subprocess.Popen(
        [sys.executable, "-c", GHOST, host, str(port), pod],
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
    late.subscribe(topics.status_subscription(pod))
    expected = {
        f"{topics.ROOT}/{pod}/{device}/status": status
        for device, status in (("maya", b"offline"), ("ghost", b"offline"), ("sam", b"online"))
    }
    assert late.received.wait_for(lambda items: {m.topic: m.payload for m in items if m.retain} == expected)


# --------------------------------------------------------------------------- offline neighbors, outbox


def test_neighbor_offline_for_a_minute_gets_what_it_missed_while_valid(
    mosquitto: EmbeddedBroker, pod: str, kitchens: Callable[..., Kitchen], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    maya = kitchens(mosquitto, pod, "maya")
    sam = kitchens(mosquitto, pod, "sam")
    sam.client.stop()  # sam's session (subscriptions, queue) stays on the broker

    short = maya.say(ttl_s=20.0)  # expires while sam is away
    long = maya.say(ttl_s=600.0)  # same topic, published after: ordered behind the short one
    assert maya.client.flush(WAIT_S)
    time.sleep(60.0)  # a minute offline: nothing to wait for but time

    back = kitchens(mosquitto, pod, "sam")  # same device id: the broker resumes its session
    assert back.inbox.wait_for(lambda items: len(items) >= 1), "sam never got what it missed"
    assert [m.id for m in back.inbox.snapshot()] == [long.id]
    assert short.id not in back.ids()
    assert not any(short.id in line for line in drops(caplog)), (
        "the broker, not sam, should drop expired messages"
    )


def test_outbox_holds_messages_until_the_broker_is_up(
    fresh_broker: EmbeddedBroker, pod: str, kitchens: Callable[..., Kitchen], caplog: pytest.LogCaptureFixture
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
    fresh_broker: EmbeddedBroker, pod: str, kitchens: Callable[..., Kitchen], caplog: pytest.LogCaptureFixture
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
    fresh_broker: EmbeddedBroker, pod: str, kitchens: Callable[..., Kitchen], caplog: pytest.LogCaptureFixture
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
    broker: EmbeddedBroker, pod: str, kitchens: Callable[..., Kitchen], interrupt: Callable[[], None]
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
    fresh_broker: EmbeddedBroker, pod: str, kitchens: Callable[..., Kitchen]
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
    fresh_broker: EmbeddedBroker, pod: str, kitchens: Callable[..., Kitchen]
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


def test_bad_messages_are_dropped_with_one_log_line_each(
    mosquitto: EmbeddedBroker,
    pod: str,
    kitchens: Callable[..., Kitchen],
    raw: Callable[..., Raw],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    sam = kitchens(mosquitto, pod, "sam")
    mallory = raw(mosquitto)
    maya = Sender("maya", "Maya")
    topic = topics.intent_topic(pod, "maya", "borrow_item")
    secret = "SECRET-PAYLOAD-TEXT"
    now = time.time()
    missing_slots = payload(maya, text=secret)
    del missing_slots["slots"]
    expired = payload(maya, ts=now - 600, expires=now - 60, text=secret)
    bad: list[tuple[str, str, bytes, bool]] = [
        ("garbage", topic, b"\x00\x01 not json " + secret.encode(), False),
        ("non-UTF-8", topic, b'{"text": "\xff\xfe' + secret.encode() + b'"}', False),
        ("not an object", topic, encode([1, 2, 3]), False),
        ("oversized", topic, encode(payload(maya, text=secret + "x" * 5000)), False),
        ("missing field", topic, encode(missing_slots), False),
        ("extra field", topic, encode(payload(maya, text=secret, extra=1)), False),
        ("wrong type", topic, encode(payload(maya, text=secret, ts="yesterday")), False),
        ("NaN", topic, encode(payload(maya, text=secret)).replace(b'"ts":', b'"ts": NaN, "x":'), False),
        ("unknown version", topic, encode(payload(maya, text=secret, v=2)), False),
        (
            "spoofed device",
            topics.intent_topic(pod, "mallory", "borrow_item"),
            encode(payload(maya, text=secret)),
            False,
        ),
        (
            "intent mismatch",
            topics.intent_topic(pod, "maya", "offer_item"),
            encode(payload(maya, text=secret)),
            False,
        ),
        (
            "hostile topic",
            f"{topics.ROOT}/{pod}/Maya!/intent/borrow_item",
            encode(payload(maya, text=secret)),
            False,
        ),
        ("retained", topic, encode(payload(maya, text=secret)), True),
        ("expired", topic, encode(expired), False),
    ]
    for _name, where, body, retain in bad:
        mallory.publish(where, body, retain=retain)
    huge = encode(payload(maya, text=secret + "x" * 100_000))  # over MAX_PACKET_BYTES: the broker keeps it
    mallory.publish(topic, huge)
    good = payload(maya)
    mallory.publish(topic, encode(good))
    mallory.publish(topic, encode(good))  # a duplicate: delivered once, silently

    assert sam.inbox.wait_for(lambda items: len(items) >= 1)
    mallory.publish(topic, b"", retain=True)  # clear the retained message
    late = new_message(maya, "say_hello")
    mallory.publish(topics.intent_topic(pod, "maya", "say_hello"), late.to_json())
    assert sam.inbox.wait_for(lambda items: late in items), "the client stopped working after bad input"
    assert [m.id for m in sam.inbox.snapshot()] == [good["id"], late.id]

    lines = [line for line in drops(caplog) if "dropped bus message" in line]
    assert len(lines) == len(bad) + 1, "\n".join(lines)  # + the empty payload clearing the retained one
    assert secret not in caplog.text, "a payload was logged"
    for reason in ("not UTF-8 JSON", "not of type 'object'", "over 4096", "slots", "Additional properties",
                   "unknown message version", "says it is from 'maya'", "carries intent", "not a topic of this pod",
                   "retained", "expired"):  # fmt: skip
        assert any(reason in line for line in lines), f"no drop for {reason!r} in:\n" + "\n".join(lines)


def test_a_failing_on_message_does_not_stop_the_client(
    mosquitto: EmbeddedBroker, pod: str, kitchens: Callable[..., Kitchen], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    maya = kitchens(mosquitto, pod, "maya")
    received = Collector()

    def fragile(message: Message) -> None:
        received(message)
        if message.intent == "say_hello":
            raise RuntimeError("application bug")

    device = DeviceSettings(id="sam", name="Sam")
    sam = BusClient(bus_settings(mosquitto, pod), device, fragile)
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
    fresh_broker: EmbeddedBroker, pod: str, kitchens: Callable[..., Kitchen], raw: Callable[..., Raw]
) -> None:
    skew = [0.0]
    spy = raw(fresh_broker, client_id="spy", session_expiry_s=300)
    spy.subscribe(topics.intent_subscription(pod))
    maya = kitchens(fresh_broker, pod, "maya", clock=lambda: time.time() + skew[0])
    fresh_broker.stop()
    wait_until(lambda: not maya.client.connected, "maya did not notice the broker stopped")
    maya.say(ttl_s=600.0)
    skew[0] = 400.0  # sent 400 s late by maya's clock: 200 s left, not 600
    fresh_broker.restart()
    assert maya.client.flush(WAIT_S)
    assert spy.received.wait_for(lambda items: len(items) == 1)
    interval = spy.received.snapshot()[0].properties.MessageExpiryInterval
    assert 190 <= interval <= math.ceil(200)
