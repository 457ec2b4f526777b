"""Property-based fuzzing of the incoming-message path: over 10,000 generated hostile payloads go
through ``BusClient.receive`` — what the client's receiver thread calls for each message it takes
from the inbox — into a real ``Device`` that is a member of a real pod (real keys, real invite)
and whose announcements are printed into a list. The payloads are shaped like the sealed envelope, broken at every layer: malformed JSON,
huge strings, control characters, wrong types, bad base64, truncated ciphertext, random bytes in a
valid-looking box, a valid box under the wrong key, a valid box around a broken inner message
(signed by a member, so it reaches the schema check), messages signed by a non-member, tampered
ciphertext (one bit flipped), stale timestamps, and valid messages on topics that lie. Nothing may
raise, nothing may be delivered or spoken; messages held for a sender's key stay bounded in number,
are checked again when the key comes and dropped when it does not; and a valid message afterwards
is still announced.

Each test stands alone, in any order: the fuzz runs once per module in the ``fuzzed`` fixture
(whichever test asks for it first), which keeps what came of it (each property's failure, if
any, and the log lines of the run) for the tests that read it; the tests of held messages use a
street of their own, on a clock the test moves on (``clock.ShiftedClock``) instead of waiting.

No broker is involved: the device's bus points at a closed port (it keeps retrying in the
background, its sender thread doing its housekeeping), and the payloads are wrapped in paho's own
``MQTTMessage`` exactly as paho hands them over, which makes 10,000 examples fast. The
network path itself is covered by test_bus.py, test_daemon.py and test_privacy_chain.py."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from announced import Announced
from clock import ShiftedClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.secret import SecretBox
from pods import Circle

from voicehello.app import Device
from voicehello.bus import mqtt as bus_mqtt
from voicehello.bus import topics
from voicehello.bus.messages import Message, Sender, new_message
from voicehello.config import AnnounceSettings, BusSettings, DeviceSettings, PrivacySettings, Settings
from voicehello.privacy.envelope import pad, seal, seal_key_announcement
from voicehello.privacy.keys import DeviceKeys

pytestmark = pytest.mark.integration

SAM = "sam-4"
"""The device under fuzz."""
MAYA = Sender("maya-12", "Maya at number 12")
"""A member whose key the device has pinned."""
ZED = Sender("zed-9", "Zed at number 9")
"""A member whose key the device has not seen yet (its messages are held until it comes)."""
MALLORY = Sender("mallory", "Mallory")
"""Not a member: a key of her own, no pod key."""
EXAMPLES = 10_500
SPOOFED = 500
WAIT_S = 10.0
ZED_LINE = "[announce] Zed at number 9 asks to borrow a ladder"


class Records(logging.Handler):
    """Every record of voicehello's loggers (INFO and up), as ``(level, message)``."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelno, record.getMessage()))

    def having(self, text: str) -> list[str]:
        return [line for _, line in self.lines if text in line]


class Street:
    """One device under fuzz in a real pod, with everything it delivered and printed."""

    def __init__(self, root: Path, clock: Callable[[], float] | None = None) -> None:
        self.circle = Circle(root, name="fuzz-street")
        self.pod = self.circle.pod
        self.maya = DeviceKeys.load_or_create(self.circle.keys_dir(MAYA.device))
        self.zed = DeviceKeys.load_or_create(self.circle.keys_dir(ZED.device))
        self.mallory = DeviceKeys.load_or_create(root / MALLORY.device)  # never got the invite
        self.announced = Announced()
        self.delivered: list[str] = []
        settings = Settings(
            device=DeviceSettings(id=SAM, name="Sam"),
            bus=BusSettings(host="127.0.0.1", port=1, pod=self.circle.name),  # nothing listens there
            announce=AnnounceSettings(output="print", rate_limit=100_000),
            privacy=PrivacySettings(keys_dir=self.circle.keys_dir(SAM)),
        )
        self.device = Device(
            settings,
            on_announce=self.announced.on_event,
            show=self.announced.show,
            clock=clock or time.time,
        )
        original = self.device._on_bus_message

        def deliver(message: Message) -> None:
            self.delivered.append(message.id)
            original(message)

        self.device.bus._on_message = deliver  # count deliveries, then let the device handle them

    def feed(self, topic: str, payload: bytes, retain: bool = False) -> None:
        incoming = mqtt.MQTTMessage(mid=1, topic=topic.encode("utf-8", "surrogatepass"))
        incoming.payload = payload
        incoming.retain = retain
        self.device.bus.receive(incoming)

    def announce_key(self, sender: Sender, keys: DeviceKeys) -> None:
        """``sender``'s real, sealed key announcement, as it arrives retained from the broker."""
        payload = seal_key_announcement(self.pod, keys, sender.device, sender.name)
        self.feed(topics.key_topic(self.pod.id, sender.device), payload, retain=True)

    def waiting(self) -> int:
        """Messages held for their sender's key."""
        return self.device.bus.held


@contextmanager
def recording() -> Iterator[Records]:
    """Voicehello's log records (INFO and up) while the block runs."""
    handler = Records()
    logger = logging.getLogger("voicehello")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@contextmanager
def street_at(root: Path, clock: Callable[[], float] | None = None) -> Iterator[Street]:
    """A started street whose device has pinned maya's key (not zed's); stopped afterwards."""
    street = Street(root, clock)
    street.device.start()  # the announcer, and the bus retrying a broker that is not there
    try:
        street.announce_key(MAYA, street.maya)
        pod = street.device.bus.membership.get(street.pod.id)
        assert pod is not None
        assert pod.roster.get(MAYA.device) == street.maya.verify_key_b64
        assert ZED.device not in pod.roster
        yield street
    finally:
        street.device.stop()


@pytest.fixture
def records() -> Iterator[Records]:
    """This test's log records."""
    with recording() as handler:
        yield handler


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture
def street(tmp_path: Path, clock: ShiftedClock, records: Records) -> Iterator[Street]:
    """A street of this test's own (no fuzz), on a clock the test moves on."""
    with street_at(tmp_path / "pod", clock) as made:
        yield made


@dataclass
class Fuzzed:
    """The street after the fuzz, and what came of it."""

    street: Street
    records: Records
    """The log records of the fuzz run (no more are added)."""
    failures: dict[str, Exception] = field(default_factory=dict)
    """Each property that failed -> hypothesis's (shrunk) failure."""

    def check(self, prop: str) -> None:
        """Fail the calling test with ``prop``'s failure, if it failed."""
        assert prop in FUZZ, prop
        if prop in self.failures:
            raise self.failures[prop]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    """One street, fuzzed once for the module by every property in :data:`FUZZ`, whichever
    test asks first; a failing property is kept for its own test to raise, not raised here."""
    with street_at(tmp_path_factory.mktemp("fuzz-pod")) as street:
        with recording() as records:
            result = Fuzzed(street, records)
            for name, prop in FUZZ.items():
                try:
                    prop(street)
                except Exception as failure:  # handed to the property's own test
                    result.failures[name] = failure
        yield result


# --------------------------------------------------------------------------- building payloads


def _fresh(sender: Sender = MAYA, text: str = "can i borrow a ladder") -> Message:
    return new_message(sender, "borrow_item", {"item": "ladder"}, text)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _envelope(pod_id: str, sealed: bytes) -> bytes:
    """The envelope JSON around a box (no size check: an attacker does not use ``seal``)."""
    return json.dumps({"v": 1, "pod": pod_id, "box": _b64(sealed)}).encode()


def _box(key: bytes, plaintext: bytes) -> bytes:
    """Nonce + secret-box ciphertext of ``plaintext`` under ``key``."""
    return bytes(SecretBox(key).encrypt(plaintext))


def _sealed_box(street: Street, sender: Sender = MAYA, keys: DeviceKeys | None = None) -> bytes:
    """The box of a valid message from ``sender`` signed by ``keys`` (maya's by default)."""
    return _box(street.pod.key, (keys or street.maya).sign(pad(_fresh(sender).to_json())))


def _topic(street: Street, sender: Sender = MAYA) -> str:
    return topics.message_topic(street.pod.id, sender.device)


def _old_intent_topic(street: Street) -> str:
    """Where maya's message went before the intent left the topic (and now may not go)."""
    return f"{topics.ROOT}/{street.pod.id}/{MAYA.device}/intent/borrow_item"


Case = tuple[str, bytes]
"""A topic and the payload published on it."""
Build = Callable[[Street], Case]
"""What hypothesis draws: a recipe, applied to the street (whose pod exists only at run time)."""

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
ENVELOPE_TYPES: dict[str, type] = {"v": int, "pod": str, "box": str}
anywhere = st.integers(0, 1_000_000)
"""A position, taken modulo the length of what it points into."""


@st.composite
def not_an_envelope(draw: st.DrawFn) -> Build:
    """Random bytes, hostile text, or JSON of any shape."""
    payload = draw(
        st.binary(max_size=2_000)
        | hostile_text.map(lambda text: text.encode("utf-8", "surrogatepass"))
        | json_values.map(lambda value: json.dumps(value).encode())
    )
    return lambda street: (_topic(street), payload)


@st.composite
def odd_envelope(draw: st.DrawFn) -> Build:
    """A real sealed message in an envelope with one field wrong, missing, extra or huge."""
    how = draw(st.sampled_from(["wrong type", "drop", "extra", "version", "pod", "huge", "control"]))
    field = draw(st.sampled_from(list(ENVELOPE_TYPES)))
    value: Any = None
    if how == "wrong type":
        value = draw(json_values.filter(lambda value: type(value) is not ENVELOPE_TYPES[field]))
    elif how == "extra":
        field = draw(hostile_text.filter(lambda key: key not in ENVELOPE_TYPES))
        value = draw(json_values)
    elif how == "version":
        field, value = "v", draw(st.integers().filter(lambda v: v != 1) | st.just(1.0) | st.just(True))
    elif how == "pod":
        field, value = "pod", draw(st.sampled_from(["another", "upper", ""]) | hostile_text)
    elif how == "huge":
        value = "A" * draw(st.integers(1_000, 70_000))
    elif how == "control":
        value = draw(st.sampled_from(["\n", "\x00", "\u202e", "\r\n"]))

    def build(street: Street) -> Case:
        data: dict[str, Any] = {"v": 1, "pod": street.pod.id, "box": _b64(_sealed_box(street))}
        if how == "drop":
            del data[field]
        elif how == "control":
            data[field] = str(data[field]) + value
        elif how == "pod" and value == "another":
            data["pod"] = uuid.uuid4().hex[:16]
        elif how == "pod" and value == "upper":
            data["pod"] = street.pod.id.upper()
        else:
            data[field] = value
        return _topic(street), json.dumps(data).encode()

    return build


@st.composite
def bad_base64(draw: st.DrawFn) -> Build:
    """A box that is not standard base64: hostile text, or a real box with one character wrong."""
    text = draw(hostile_text) if draw(st.booleans()) else None
    at, wrong = draw(anywhere), draw(st.sampled_from(list("!*-_ .\n\x00é")))

    def build(street: Street) -> Case:
        box = _b64(_sealed_box(street))
        at_ = at % len(box)
        broken = box[:at_] + wrong + box[at_ + 1 :] if text is None else text
        return _topic(street), json.dumps({"v": 1, "pod": street.pod.id, "box": broken}).encode()

    return build


@st.composite
def truncated(draw: st.DrawFn) -> Build:
    """A real sealed message with its box cut short."""
    cut = draw(anywhere)

    def build(street: Street) -> Case:
        sealed = _sealed_box(street)
        return _topic(street), _envelope(street.pod.id, sealed[: cut % len(sealed)])

    return build


@st.composite
def random_box(draw: st.DrawFn) -> Build:
    """Random bytes where the box goes, or random bytes sealed properly under the pod key."""
    junk, boxed = draw(st.binary(max_size=600)), draw(st.booleans())

    def build(street: Street) -> Case:
        return _topic(street), _envelope(street.pod.id, _box(street.pod.key, junk) if boxed else junk)

    return build


@st.composite
def wrong_key(draw: st.DrawFn) -> Build:
    """A message signed by maya, boxed under a key that is not the pod's."""
    key = draw(st.binary(min_size=32, max_size=32))

    def build(street: Street) -> Case:
        assert key != street.pod.key
        return _topic(street), _envelope(street.pod.id, _box(key, street.maya.sign(pad(_fresh().to_json()))))

    return build


@st.composite
def broken_inner(draw: st.DrawFn) -> Build:
    """A valid box around a message signed by maya with at least one field made wrong: it gets
    through the envelope and the signature and must be stopped by the schema (or the clock)."""
    data = _fresh().to_dict()
    how = draw(
        st.sampled_from(["wrong type", "drop", "extra", "huge", "control", "version", "time", "stale"])
    )
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
        data["text"] = "x" * draw(st.integers(1_000, 70_000))
    elif how == "control":
        data["from"] = {"device": MAYA.device + draw(st.sampled_from(["\n", "\x00", " "])), "name": MAYA.name}
    elif how == "version":
        data["v"] = draw(st.integers().filter(lambda v: v != 1) | hostile_text)
    elif how == "time":
        data["expires"] = data["ts"] - draw(st.floats(0, 1e6))
    else:  # validly shaped, but dated ahead of the timestamp window, or so old it has expired
        if draw(st.booleans()):
            shift = draw(st.floats(301, 1e7))
        else:  # an older one that is still valid is a late delivery, not an attack
            shift = -(data["expires"] - data["ts"]) - draw(st.floats(0.5, 1e7))
        data["ts"] += shift
        data["expires"] += shift
    inner = json.dumps(data).encode()

    def build(street: Street) -> Case:
        return _topic(street), _envelope(street.pod.id, _box(street.pod.key, street.maya.sign(pad(inner))))

    return build


@st.composite
def not_a_member(draw: st.DrawFn) -> Build:
    """A valid message boxed under the (leaked) pod key but signed by mallory's own key, claiming
    to be from maya (pinned: a bad signature), zed (a member not pinned yet: held) or herself
    (never pinned: held until dropped). Each goes on the claimed device's own topic."""
    sender, number = draw(st.sampled_from([MAYA, ZED, MALLORY])), draw(st.integers(0, 10**9))
    text = f"can i borrow ladder number {number}"
    return lambda street: (
        _topic(street, sender),
        _envelope(
            street.pod.id, _box(street.pod.key, street.mallory.sign(pad(_fresh(sender, text).to_json())))
        ),
    )


@st.composite
def tampered(draw: st.DrawFn) -> Build:
    """A real sealed message with one bit of its box (nonce, MAC or ciphertext) flipped."""
    bit = draw(anywhere)

    def build(street: Street) -> Case:
        sealed = bytearray(_sealed_box(street))
        flip = bit % (len(sealed) * 8)
        sealed[flip // 8] ^= 1 << (flip % 8)
        return _topic(street), _envelope(street.pod.id, bytes(sealed))

    return build


hostile = st.one_of(
    not_an_envelope(),
    odd_envelope(),
    bad_base64(),
    truncated(),
    random_box(),
    wrong_key(),
    broken_inner(),
    not_a_member(),
    tampered(),
)


@st.composite
def spoofed(draw: st.DrawFn) -> Build:
    """A real message from maya (or her key) on a topic that lies about its sender, pod or kind,
    on the old topic form that named the intent, or a key announcement that tries to take over
    maya's pinned key."""
    level = draw(st.sampled_from(["device", "pod", "key", "status", "takeover", "old", "garbage"]))
    device = draw(st.sampled_from([SAM, "bob-1"]))
    garbage = draw(hostile_text)

    def build(street: Street) -> Case:
        payload = _envelope(street.pod.id, _sealed_box(street))
        if level == "device":
            topic = topics.message_topic(street.pod.id, device)
        elif level == "pod":
            topic = topics.message_topic(uuid.uuid4().hex[:16], MAYA.device)
        elif level == "key":
            topic = topics.key_topic(street.pod.id, MAYA.device)
        elif level == "status":
            topic = topics.status_topic(street.pod.id, MAYA.device)
        elif level == "old":
            topic = _old_intent_topic(street)
        elif level == "takeover":
            topic = topics.key_topic(street.pod.id, MAYA.device)
            payload = seal_key_announcement(street.pod, street.mallory, MAYA.device, MAYA.name)
        else:
            topic = "voicehello/v1/" + garbage
        return topic, payload

    return build


# --------------------------------------------------------------------------- the properties


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(build=hostile, retain=st.integers(0, 9).map(lambda n: n == 5))  # about one in ten retained
def hostile_payloads_are_never_delivered(street: Street, build: Build, retain: bool) -> None:
    topic, payload = build(street)
    street.feed(topic, payload, retain)
    assert street.delivered == []
    assert street.waiting() <= bus_mqtt.KEY_WAIT_LIMIT


@settings(max_examples=SPOOFED, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(build=spoofed())
def spoofed_topics_are_never_delivered(street: Street, build: Build) -> None:
    street.feed(*build(street))
    assert street.delivered == []
    pod = street.device.bus.membership.get(street.pod.id)
    assert pod is not None
    assert pod.roster[MAYA.device] == street.maya.verify_key_b64


FUZZ: dict[str, Callable[[Street], None]] = {
    "hostile": hostile_payloads_are_never_delivered,
    "spoofed": spoofed_topics_are_never_delivered,
}
"""The properties the ``fuzzed`` fixture runs, in this order, on its one street."""


def test_hostile_payloads_are_never_delivered_nor_spoken(fuzzed: Fuzzed) -> None:
    fuzzed.check("hostile")


def test_spoofed_topics_are_never_delivered(fuzzed: Fuzzed) -> None:
    fuzzed.check("spoofed")


def _dropped(records: Records, reason: str) -> bool:
    return any(line.startswith("dropped bus message on ") for line in records.having(reason))


def test_the_fuzz_reached_every_check(fuzzed: Fuzzed) -> None:
    """The payloads got past each layer in turn (else the fuzz proved little)."""
    street, records = fuzzed.street, fuzzed.records
    for reason in (
        "payload is not UTF-8 JSON",
        "payload is not a voicehello envelope",
        "unknown envelope version",
        "envelope is for another pod",
        "box is not base64",
        "box is too short",
        "cannot decrypt",
        "inner message is not a voicehello message",
        "inner message has no valid sender",
        f"bad signature on a message from {MAYA.device}",
        f"signed message from {MAYA.device} is invalid",
        f"from {MAYA.device} is dated",
        f"was published as {SAM}",
        "not a topic of a pod this device is in",
        "retained (messages are never retained)",
        "too many messages waiting for keys",
    ):
        assert _dropped(records, reason), f"no payload was dropped for {reason!r}"
    assert records.having(f"holding a message from {ZED.device}")
    assert records.having(f"holding a message from {MALLORY.device}")
    assert records.having(f"refused a new key for {MAYA.device}"), "no key takeover was tried"
    assert _dropped(records, f"'{_old_intent_topic(street)}': not a topic of a pod this device is in"), (
        "a message on the old topic form that named the intent was not dropped"
    )


def _sealed(street: Street, message: Message, keys: DeviceKeys) -> bytes:
    """``message`` signed with ``keys`` and sealed for the street's pod, as voicehello seals it."""
    return seal(message, street.pod, keys)


def test_held_messages_are_checked_again_when_the_key_comes(street: Street, records: Records) -> None:
    """Zed's real key arrives: the forgeries held in zed's name fail their signature, zed's
    own held message is delivered and announced."""
    forged = [_sealed(street, _fresh(ZED), street.mallory) for _ in range(5)]
    genuine = _fresh(ZED)
    for payload in [*forged, _sealed(street, genuine, street.zed)]:
        street.feed(_topic(street, ZED), payload)
    assert street.delivered == [], "a message was delivered before its sender's key was known"
    refused_before = len(records.having(f"bad signature on a message from {ZED.device}"))

    street.announce_key(ZED, street.zed)
    assert street.delivered == [genuine.id]
    refused = len(records.having(f"bad signature on a message from {ZED.device}")) - refused_before
    assert refused == len(forged)
    assert street.announced.wait_printed(genuine.id, WAIT_S), "zed's held message was not announced"
    assert street.announced.lines() == [ZED_LINE]


def test_held_messages_are_dropped_when_no_key_comes(
    street: Street, records: Records, clock: ShiftedClock
) -> None:
    """Mallory never announces a key: once KEY_WAIT_S has passed on the device's clock (moved
    on by the test), her message is gone at the bus's next housekeeping, never delivered."""
    street.feed(_topic(street, MALLORY), _sealed(street, _fresh(MALLORY), street.mallory))
    assert street.waiting() == 1
    clock.advance(bus_mqtt.KEY_WAIT_S + 1)
    assert _eventually(lambda: street.waiting() == 0), "messages held for a key that never came were kept"
    within = f"{bus_mqtt.KEY_WAIT_S:g} s"
    assert records.having(f"unknown sender {MALLORY.device} (no key pinned in this pod within {within})")
    assert street.delivered == [], "a held message was delivered"


def test_a_held_message_is_kept_until_key_wait_s_has_passed(
    street: Street, records: Records, clock: ShiftedClock
) -> None:
    """Only what has waited KEY_WAIT_S goes: mallory's message (held first) is dropped at the
    housekeeping pass that finds it too old, which proves that pass ran; zed's, held 6 s on the
    same clock, is still there and is delivered when zed's key comes."""
    old, young = _fresh(MALLORY), _fresh(ZED)
    street.feed(_topic(street, MALLORY), _sealed(street, old, street.mallory))
    clock.advance(bus_mqtt.KEY_WAIT_S - 5)
    street.feed(_topic(street, ZED), _sealed(street, young, street.zed))
    assert street.waiting() == 2
    clock.advance(6)  # mallory's has waited KEY_WAIT_S + 1, zed's 6 s
    assert _eventually(lambda: street.waiting() == 1), "the message held too long was kept"
    assert records.having(f"unknown sender {MALLORY.device}")
    street.announce_key(ZED, street.zed)
    assert street.delivered == [young.id], "the younger held message was not kept for its key"


def _eventually(condition: Callable[[], bool]) -> bool:
    """True once ``condition()`` holds (the bus's sender thread gets to it); False after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_after_the_fuzz_the_device_still_announces(fuzzed: Fuzzed) -> None:
    street = fuzzed.street
    assert street.announced.lines() == [], "something hostile was spoken"
    message = _fresh()
    street.feed(_topic(street), _sealed(street, message, street.maya))
    assert street.announced.wait_printed(message.id, WAIT_S), (
        "a valid message after the fuzz was not announced"
    )
    assert street.announced.lines() == ["[announce] Maya at number 12 asks to borrow a ladder"]
    assert street.delivered == [message.id]
