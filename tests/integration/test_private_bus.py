"""The private bus against a real Mosquitto: what the broker sees, keys, and pods that come and go.

Every message and key announcement is sealed for one pod (:mod:`voicehello.privacy.envelope`).
These tests check it from the outside: a raw paho client (no voicehello code) watches the
broker and publishes what a late, forgetful or hostile member would; pods are real ones
(``pods.Circle``, real keys and invite codes under ``tmp_path``) that devices join, leave or
outlive while their BusClient runs. Helpers are shared with ``test_bus.py``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from clock import ShiftedClock
from pods import Circle
from test_bus import (
    LOGGER,
    WAIT_S,
    Collector,
    Kitchen,
    Kitchens,
    RawClients,
    bus_settings,
    display_name,
    drops,
    expiry_interval,
    infos,
    member,
    pinned,
    unseal,
    verify_key,
    wait_until,
)

from voicehello.bus import topics
from voicehello.bus.broker import EmbeddedBroker
from voicehello.bus.messages import KIND_OF_INTENT, Message, Sender, new_message
from voicehello.bus.mqtt import KEY_WAIT_S, BusClient
from voicehello.config import DeviceSettings
from voicehello.errors import PrivacyError
from voicehello.privacy.keys import DeviceKeys
from voicehello.privacy.membership import Membership
from voicehello.privacy.pods import PodStore

pytestmark = pytest.mark.integration

PODS_LOGGER = "voicehello.privacy.pods"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Where the test's pods and its devices' key dirs live."""
    return tmp_path / "pods"


@pytest.fixture
def pod(root: Path) -> Circle:
    """A pod of the test's own (no end): every device's default pod."""
    return Circle(root)


@pytest.fixture
def kitchens() -> Iterator[Kitchens]:
    """Kitchens (BusClients), all stopped at teardown."""
    made = Kitchens()
    yield made
    made.close()


@pytest.fixture
def raw() -> Iterator[RawClients]:
    """Raw paho clients, closed at teardown."""
    made = RawClients()
    yield made
    made.close()


def outsider(circle: Circle, keys_dir: Path, device: str) -> Membership:
    """A member of ``circle`` with a key dir (and so a key) of its own at ``keys_dir``, whatever
    ``device`` id it claims: runs no client, its envelopes are published by a raw client."""
    PodStore(keys_dir).join(circle.invite)
    membership = Membership(
        PodStore(keys_dir),
        DeviceKeys.load_or_create(keys_dir),
        DeviceSettings(id=device, name=device.title()),
        default_pod=circle.name,
    )
    membership.refresh()
    return membership


def said_in(kitchen: Kitchen, message: Message) -> str | None:
    """The id of the pod ``kitchen`` says ``message`` was said in."""
    pod = kitchen.client.pod_of(message.id)
    return None if pod is None else pod.id


def pod_file(keys_dir: Path, circle: Circle) -> Path:
    """Where a device keeps ``circle``'s pod (and so its key)."""
    return keys_dir / "pods" / f"{circle.id}.json"


# --------------------------------------------------------------------------- what the broker sees


def test_a_raw_subscriber_sees_only_ciphertext(
    fresh_broker: EmbeddedBroker, pod: Circle, kitchens: Kitchens, raw: RawClients
) -> None:
    spy = raw(fresh_broker)
    spy.subscribe(f"{topics.ROOT}/#")
    maya, sam = kitchens(fresh_broker, pod, "maya"), kitchens(fresh_broker, pod, "sam")
    request = new_message(
        maya.sender, "borrow_item", {"item": "purple ladder"}, "may I borrow a purple ladder"
    )
    maya.client.publish(request)
    assert sam.inbox.wait_for(lambda items: request in items)
    reply = new_message(sam.sender, "reply_yes", {}, "yes you may have it", in_reply_to=request.id)
    sam.client.publish(reply)
    assert maya.inbox.wait_for(lambda items: reply in items)
    assert maya.client.flush(WAIT_S)
    assert sam.client.flush(WAIT_S)

    def kinds(items: list[mqtt.MQTTMessage]) -> list[str]:
        return [parts.kind for parts in (topics.parse_topic(m.topic) for m in items) if parts is not None]

    assert spy.received.wait_for(lambda items: {"msg", "key", "status"} <= set(kinds(items)))
    assert spy.received.wait_for(lambda items: kinds(items).count("msg") == 2)
    readable = [request.text, reply.text, "purple ladder", display_name("maya"), display_name("sam")]
    for seen in spy.received.snapshot():
        parts = topics.parse_topic(seen.topic)
        assert parts is not None, seen.topic
        assert parts.pod == pod.id
        named = [intent for intent in KIND_OF_INTENT if intent in seen.topic]
        assert named == [], f"the topic {seen.topic} says what was said"
        for secret in readable:
            assert secret.encode() not in seen.payload, f"{secret!r} is readable on {seen.topic}"
        if parts.kind == "status":
            assert seen.payload in (topics.ONLINE, topics.OFFLINE)
        else:
            envelope = json.loads(seen.payload)
            assert set(envelope) == {"v", "pod", "box"}, f"not an envelope on {seen.topic}"
            assert envelope["pod"] == pod.id


def test_key_announcement_is_retained_until_the_pod_ends(
    mosquitto: EmbeddedBroker, root: Path, kitchens: Kitchens, raw: RawClients
) -> None:
    pod = Circle(root, hours=2)
    maya = kitchens(mosquitto, pod, "maya")

    late = raw(mosquitto)
    late.subscribe(topics.key_topic(pod.id, "maya"))
    assert late.received.wait_for(lambda items: len(items) == 1)
    seen = late.received.snapshot()[0]
    expires = pod.pod.expires
    assert expires is not None

    left = expires - time.time()
    assert seen.retain
    assert left - 60 <= expiry_interval(seen) <= left + 1
    announcement = json.loads(unseal(seen.payload, pod.pod, verify_key(maya)))
    assert announcement["device"] == "maya"


# --------------------------------------------------------------------------- waiting for keys


def test_a_message_is_held_until_its_senders_key_arrives(
    mosquitto: EmbeddedBroker,
    pod: Circle,
    kitchens: Kitchens,
    raw: RawClients,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    sam = kitchens(mosquitto, pod, "sam")
    lee, lee_sender = member(pod, "lee")
    message = new_message(lee_sender, "borrow_item", {"item": "ladder"})
    late_joiner = raw(mosquitto)

    late_joiner.publish(topics.message_topic(pod.id, "lee"), lee.seal(message, pod.pod))
    wait_until(
        lambda: any("holding a message from lee" in line for line in infos(caplog)),
        "the message was not held for lee's key",
    )
    assert sam.inbox.snapshot() == []
    late_joiner.publish(topics.key_topic(pod.id, "lee"), lee.key_announcement(pod.pod), retain=True)

    assert sam.inbox.wait_for(lambda items: message in items), "the held message was not delivered"
    assert sam.inbox.snapshot() == [message]
    assert said_in(sam, message) == pod.id
    assert pinned(sam, pod, "lee") == lee.keys.verify_key_b64
    assert not [line for line in drops(caplog) if pod.id in line]


def test_a_message_whose_senders_key_never_comes_is_dropped(
    mosquitto: EmbeddedBroker,
    pod: Circle,
    kitchens: Kitchens,
    raw: RawClients,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Sam's clock is moved on past KEY_WAIT_S by the test (the broker has no part in it)."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    clock = ShiftedClock()
    sam = kitchens(mosquitto, pod, "sam", clock=clock)
    kim, kim_sender = member(pod, "kim")
    first = new_message(kim_sender, "borrow_item", {"item": "ladder"})
    forgetful = raw(mosquitto)

    forgetful.publish(topics.message_topic(pod.id, "kim"), kim.seal(first, pod.pod))
    wait_until(
        lambda: any("holding a message from kim" in line for line in infos(caplog)),
        "the message was not held for kim's key",
    )
    assert sam.client.held == 1
    clock.advance(KEY_WAIT_S + 1)
    wait_until(
        lambda: any("unknown sender kim" in line for line in drops(caplog)),
        "the message was not dropped after KEY_WAIT_S",
    )
    assert sam.client.held == 0
    # the key comes after all: what was dropped stays dropped, what follows is delivered
    forgetful.publish(topics.key_topic(pod.id, "kim"), kim.key_announcement(pod.pod), retain=True)
    second = new_message(kim_sender, "say_hello", now=clock())
    forgetful.publish(topics.message_topic(pod.id, "kim"), kim.seal(second, pod.pod))

    assert sam.inbox.wait_for(lambda items: second in items)
    assert sam.inbox.snapshot() == [second]
    lines = [line for line in drops(caplog) if pod.id in line]
    assert len(lines) == 1, lines
    assert "unknown sender kim" in lines[0]


# --------------------------------------------------------------------------- pods joined, left, over


def test_a_pod_joined_while_running_is_picked_up(
    mosquitto: EmbeddedBroker, root: Path, pod: Circle, kitchens: Kitchens, raw: RawClients
) -> None:
    second = Circle(root, name=f"{pod.name}-2")
    second.keys_dir("maya")
    maya, sam = kitchens(mosquitto, pod, "maya"), kitchens(mosquitto, pod, "sam")
    spy = raw(mosquitto)
    spy.subscribe(topics.key_topic(second.id, "sam"))
    assert spy.received.snapshot() == []
    assert sam.membership.get(second.id) is None

    second.keys_dir("sam")  # `voicehello pod join CODE` while sam's daemon runs
    assert spy.received.wait_for(lambda items: len(items) == 1), "sam never announced its key in the new pod"
    assert (
        json.loads(unseal(spy.received.snapshot()[0].payload, second.pod, verify_key(sam)))["device"] == "sam"
    )

    there = maya.say(pod=second.name)
    here = maya.say()
    assert sam.inbox.wait_for(lambda items: there in items and here in items), (
        "nothing said in the new pod arrived"
    )
    assert said_in(sam, there) == second.id
    assert said_in(sam, here) == pod.id


def test_a_pod_left_while_running_is_no_longer_heard(
    mosquitto: EmbeddedBroker,
    root: Path,
    pod: Circle,
    kitchens: Kitchens,
    raw: RawClients,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    second = Circle(root, name=f"{pod.name}-2")
    sam_dir = second.keys_dir("sam")
    second.keys_dir("maya")
    maya, sam = kitchens(mosquitto, pod, "maya"), kitchens(mosquitto, pod, "sam")
    before = maya.say(pod=second.name)
    assert sam.inbox.wait_for(lambda items: before in items)
    spy = raw(mosquitto)
    spy.subscribe(topics.key_topic(second.id, "sam"))
    assert spy.received.wait_for(lambda items: len(items) == 1)
    assert spy.received.snapshot()[0].payload, "sam's key is not retained in the pod"

    PodStore(sam_dir).leave(second.id)  # `voicehello pod leave` while sam's daemon runs

    assert spy.received.wait_for(lambda items: items[-1].payload == b""), "sam's retained key was not cleared"
    assert not pod_file(sam_dir, second).exists()
    after = maya.say(pod=second.name)
    here = maya.say()
    assert maya.inbox.wait_for(lambda items: after in items), "maya's message in the pod was not published"
    assert sam.inbox.wait_for(lambda items: here in items)
    assert after not in sam.inbox.snapshot(), "sam still hears a pod it left"
    assert not [line for line in drops(caplog) if second.id in line], "sam is still subscribed to the pod"
    retained = raw(mosquitto).retained(topics.key_subscription(second.id))
    assert set(retained) == {topics.key_topic(second.id, "maya")}


def test_a_pod_that_ends_while_running_is_forgotten(
    fresh_broker: EmbeddedBroker,
    root: Path,
    pod: Circle,
    kitchens: Kitchens,
    raw: RawClients,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The pod ends on the devices' clock, moved on by the test while the broker is down (the
    broker's part is keeping the spy's session and what was in flight across its restart)."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    clock = ShiftedClock()
    brief = Circle(root, name=f"{pod.name}-brief", hours=1)
    ends = brief.pod.expires
    assert ends is not None
    sam_dir, maya_dir = brief.keys_dir("sam"), brief.keys_dir("maya")
    # a member that talks in the pod on a raw client once the pod is over: not maya, so that what
    # it says there is told apart by its topic from maya's messages the broker may still deliver
    lee, lee_sender = member(brief, "lee")
    spy = raw(fresh_broker, client_id="spy", session_expiry_s=300)  # its session outlives a broker restart
    spy.subscribe(topics.message_subscription(brief.id))
    maya = kitchens(fresh_broker, pod, "maya", clock=clock)
    sam = kitchens(fresh_broker, pod, "sam", clock=clock)
    signers = {"maya": verify_key(maya), "lee": lee.keys.verify_key_b64}
    during = maya.say(pod=brief.name)
    assert sam.inbox.wait_for(lambda items: during in items)
    assert said_in(sam, during) == brief.id

    fresh_broker.stop()
    wait_until(lambda: not maya.client.connected, "maya did not notice the broker stopped")
    stranded = maya.say(pod=brief.name, ttl_s=7200.0)  # outlives the pod; waits in the outbox ...
    assert maya.client.pending == 1
    clock.advance(ends - clock() + 60)
    wait_until(  # ... until the pod ends
        lambda: not pod_file(sam_dir, brief).exists() and not pod_file(maya_dir, brief).exists(),
        "the pod's key was not deleted when it ended",
    )
    wait_until(
        lambda: any(stranded.id in line and "its pod is over" in line for line in drops(caplog)),
        "the message for the pod that ended was not dropped from the outbox",
    )
    assert maya.client.pending == 0

    fresh_broker.restart()
    assert maya.client.wait_connected(WAIT_S)
    assert sam.client.wait_connected(WAIT_S)
    leftover = new_message(lee_sender, "say_hello", now=clock())
    lee_says = topics.message_topic(brief.id, "lee")
    raw(fresh_broker).publish(lee_says, lee.seal(leftover, brief.pod))
    here = maya.say(now=clock())
    assert sam.inbox.wait_for(lambda items: here in items)
    assert sam.inbox.snapshot() == [during, here]
    assert spy.received.wait_for(lambda items: any(m.topic == lee_says for m in items))

    def opened(seen: mqtt.MQTTMessage) -> Message:
        """A message the spy saw in the pod, opened with the key of the device its topic names."""
        parts = topics.parse_topic(seen.topic)
        assert parts is not None, seen.topic
        return Message.from_json(unseal(seen.payload, brief.pod, signers[parts.device]))

    sent_there = {opened(m).id for m in spy.received.snapshot()}  # a set: QoS 1 may deliver "during" again
    assert sent_there == {during.id, leftover.id}, "the message stranded in the outbox was sent"
    assert sam.membership.get(brief.id) is None
    # what the broker still had in flight for the pod (maya's) may come once more; what is said
    # there after the reconnection must not reach a device that unsubscribed on reconnecting
    stale = [line for line in drops(caplog) if lee_says in line]
    assert stale == [], "the pod that ended while the broker was away is still subscribed"


def test_a_pod_left_while_the_daemon_was_off_is_unsubscribed_on_its_first_message(
    mosquitto: EmbeddedBroker,
    root: Path,
    pod: Circle,
    kitchens: Kitchens,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The broker keeps a stopped device's session, subscriptions included; the restarted
    device no longer knows the pod it left meanwhile, so it drops the first message there
    and unsubscribes (once), and hears nothing more of it."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    party = Circle(root, name=f"{pod.name}-party")
    sam_dir = party.keys_dir("sam")
    party.keys_dir("maya")
    maya, sam = kitchens(mosquitto, pod, "maya"), kitchens(mosquitto, pod, "sam")
    sam.client.stop()
    PodStore(sam_dir).leave(party.id)  # `voicehello pod leave` while sam's daemon is off
    first = maya.say(pod=party.name)
    assert maya.inbox.wait_for(lambda items: first in items)
    back = kitchens(mosquitto, pod, "sam")  # the same session: still subscribed to the party
    wait_until(
        lambda: any(party.id in line and "no longer in it" in line for line in infos(caplog)),
        "the restarted device did not unsubscribe from the pod it left",
    )
    # the broker handles a client's packets in order: once sam's own message comes back, it
    # has handled the UNSUBSCRIBE sent before it
    echo = back.say("say_hello")
    assert back.inbox.wait_for(lambda items: echo in items)
    second, here = maya.say(pod=party.name), maya.say()
    assert back.inbox.wait_for(lambda items: here in items)
    assert maya.inbox.wait_for(lambda items: second in items)
    assert first not in back.inbox.snapshot()
    assert second not in back.inbox.snapshot()
    stale = [line for line in drops(caplog) if party.id in line]
    assert len(stale) == 1, stale


# --------------------------------------------------------------------------- which pod to speak in


def test_a_reply_goes_to_the_pod_of_the_request(
    mosquitto: EmbeddedBroker, root: Path, pod: Circle, kitchens: Kitchens, raw: RawClients
) -> None:
    second = Circle(root, name=f"{pod.name}-2")
    elsewhere = Circle(root, name=f"{pod.name}-3")  # neither maya nor sam is in it
    for device in ("maya", "sam"):
        second.keys_dir(device)
    maya, sam = kitchens(mosquitto, pod, "maya"), kitchens(mosquitto, pod, "sam")
    spy = raw(mosquitto)
    for circle in (pod, second):
        spy.subscribe(topics.message_subscription(circle.id))

    request = maya.say(pod=second.name)  # by name
    assert sam.inbox.wait_for(lambda items: request in items)
    assert said_in(sam, request) == second.id
    reply = new_message(sam.sender, "reply_yes", {}, "sure", in_reply_to=request.id)
    sam.client.publish(reply)  # no pod named: the request's
    plain = sam.say()  # no pod named, answers nothing: the default pod
    by_id = sam.say("offer_item", pod=second.id)

    assert maya.inbox.wait_for(lambda items: all(m in items for m in (reply, plain, by_id)))
    assert said_in(maya, reply) == second.id
    assert said_in(maya, plain) == pod.id
    assert said_in(maya, by_id) == second.id
    assert spy.received.wait_for(lambda items: len(items) == 4)
    circles, signers = {pod.id: pod, second.id: second}, {"maya": verify_key(maya), "sam": verify_key(sam)}
    where: dict[str, str] = {}  # message id -> the pod id in the topic it was published on
    for seen in spy.received.snapshot():
        parts = topics.parse_topic(seen.topic)
        assert parts is not None, seen.topic
        opened = Message.from_json(unseal(seen.payload, circles[parts.pod].pod, signers[parts.device]))
        where[opened.id] = parts.pod
    assert where == {request.id: second.id, reply.id: second.id, plain.id: pod.id, by_id.id: second.id}

    assert sam.client.flush(WAIT_S)
    for not_mine in ("nowhere", elsewhere.name, elsewhere.id):
        with pytest.raises(PrivacyError, match="in no pod"):
            sam.say(pod=not_mine)
    assert sam.client.pending == 0


# --------------------------------------------------------------------------- keys pinned on first use


def test_a_squatters_key_is_refused(
    mosquitto: EmbeddedBroker,
    tmp_path: Path,
    pod: Circle,
    kitchens: Kitchens,
    raw: RawClients,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    maya, sam = kitchens(mosquitto, pod, "maya"), kitchens(mosquitto, pod, "sam")
    wait_until(lambda: pinned(sam, pod, "maya") == verify_key(maya), "sam did not pin maya's key")
    squatter = outsider(pod, tmp_path / "squatter", "maya")  # a member that claims maya's id
    assert squatter.keys.verify_key_b64 != verify_key(maya)
    attacker = raw(mosquitto)

    attacker.publish(topics.key_topic(pod.id, "maya"), squatter.key_announcement(pod.pod), retain=True)
    wait_until(
        lambda: any(
            r.name == PODS_LOGGER and "refused a new key for maya" in r.getMessage()
            for r in list(caplog.records)
        ),
        "the squatter's key announcement was not refused",
    )
    forged = new_message(Sender("maya", "Maya"), "borrow_item", {"item": "ladder"})
    attacker.publish(topics.message_topic(pod.id, "maya"), squatter.seal(forged, pod.pod))
    real = maya.say("say_hello")

    assert sam.inbox.wait_for(lambda items: real in items)
    assert sam.inbox.snapshot() == [real]
    assert pinned(sam, pod, "maya") == verify_key(maya)
    assert any("bad signature on a message from maya" in line for line in drops(caplog))
    assert any("claims this device's id 'maya'" in line for line in drops(caplog)), (
        "maya did not notice someone announcing a key in its name"
    )


# --------------------------------------------------------------------------- a flood


FLOOD = 400


def test_a_flood_from_one_neighbor_does_not_make_another_wait_behind_it(
    mosquitto: EmbeddedBroker, pod: Circle, kitchens: Kitchens, raw: RawClients
) -> None:
    """Received messages wait in the client's inbox while the application handles earlier ones;
    served in arrival order, lee's one message would come after the whole of maya's flood.

    The application is held on maya's first message until the whole flood and lee's message
    wait in sam's inbox (its length read directly: nothing else tells), so the order they are
    then handled in is the inbox's alone, whatever the machine's speed."""
    maya, lee = kitchens(mosquitto, pod, "maya"), kitchens(mosquitto, pod, "lee")
    handled = Collector()
    entered, release = threading.Event(), threading.Event()

    def handle(message: Message) -> None:
        entered.set()
        release.wait(WAIT_S)
        handled(message)

    sam = BusClient(
        bus_settings(mosquitto, pod.name),
        DeviceSettings(id="sam", name="Sam"),
        handle,
        membership=pod.membership("sam"),
    )
    sam.start()
    try:
        assert sam.wait_connected(WAIT_S)
        wait_until(lambda: {"maya", "lee"} <= set(pod_roster(sam, pod)), "sam never pinned the keys")
        flood = [
            maya.membership.seal(new_message(maya.sender, "borrow_item", {"item": "ladder"}), pod.pod)
            for _ in range(FLOOD)
        ]
        flooder = raw(mosquitto).client  # maya's own key, published as fast as paho goes
        sent = [flooder.publish(topics.message_topic(pod.id, "maya"), payload, qos=1) for payload in flood]
        sent[-1].wait_for_publish(WAIT_S)
        assert entered.wait(WAIT_S), "the flood never reached the application"
        quiet = lee.say("say_hello")
        wait_until(  # all but the message being handled, and lee's
            lambda: len(sam._inbox) == FLOOD, "the flood and lee's message did not all reach sam's inbox"
        )
        release.set()
        assert handled.wait_for(lambda items: len(items) == FLOOD + 1, 60.0), "part of the flood was lost"
        position = handled.snapshot().index(quiet)
        assert position <= 2, f"lee's message was handled after {position} of maya's"
    finally:
        release.set()
        sam.stop()


def pod_roster(client: BusClient, circle: Circle) -> dict[str, str]:
    current = client.membership.get(circle.id)
    return {} if current is None else current.roster


# --------------------------------------------------------------------------- late deliveries and replays


def test_a_neighbor_offline_longer_than_the_time_window_still_gets_what_it_missed(
    mosquitto: EmbeddedBroker, pod: Circle, kitchens: Kitchens
) -> None:
    """The time window refuses messages dated ahead of the clock; an older one that is still
    valid is a late delivery from the broker's queue, not an attack."""
    maya, sam = kitchens(mosquitto, pod, "maya"), kitchens(mosquitto, pod, "sam")
    sam.client.stop()  # the broker keeps sam's session and queues what is said meanwhile
    missed = maya.say(ttl_s=600.0)
    assert maya.client.flush(WAIT_S)
    clock = ShiftedClock()
    clock.advance(2.5)  # sam comes back later than its window below (its clock says so)
    back = kitchens(mosquitto, pod, "sam", start=False, clock=clock)
    back.membership.window_s = 2.0
    back.client.start()
    assert back.inbox.wait_for(lambda items: missed in items), "the missed message was refused as too old"


def test_a_message_replayed_after_the_device_restarts_is_ignored(
    mosquitto: EmbeddedBroker,
    pod: Circle,
    kitchens: Kitchens,
    raw: RawClients,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whoever can publish to the broker can capture a sealed message and publish it again; the
    device remembers the ids it received (ids and times only, in its keys directory) across a
    restart, until the messages expire."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    maya, sam = kitchens(mosquitto, pod, "maya"), kitchens(mosquitto, pod, "sam")
    spy = raw(mosquitto)
    spy.subscribe(topics.message_subscription(pod.id))
    original = maya.say(ttl_s=600.0)
    assert sam.inbox.wait_for(lambda items: original in items)
    assert spy.received.wait_for(lambda items: len(items) == 1)
    captured = bytes(spy.received.snapshot()[0].payload)
    sam.client.stop()
    seen_file = sam.membership.store.keys_dir / "seen.json"
    assert original.id in json.loads(seen_file.read_text(encoding="utf-8"))["seen"]

    back = kitchens(mosquitto, pod, "sam")
    raw(mosquitto).publish(topics.message_topic(pod.id, "maya"), captured)
    later = maya.say()
    assert back.inbox.wait_for(lambda items: later in items)
    assert original not in back.inbox.snapshot(), "the replayed message was delivered again"
    assert any(original.id in line and "(replay)" in line for line in infos(caplog))
