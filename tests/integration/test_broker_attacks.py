"""Attacks on a street's broker by a neighbor with valid broker credentials ("mallory"), against a
real Mosquitto made by ``broker init`` (issue 9, points 1 and 5). No mocks.

* Session hijack: mallory connecting with sam's client id (``voicehello-sam``) takes neither sam's
  connection (sam online) nor sam's persistent session and its queued messages (sam offline).
* Filling the broker: an oversized publish is refused, publishing (retained or not) to a made-up
  pod id is refused, an offline device's queue is bounded in messages and in bytes.
* The broker itself: it runs as ``mosquitto`` (when the tests run as root), listens only where it
  was told, cannot read the CA's private key, and a ``kill -9`` loses no message queued for an
  offline device more than a second before.

Who is who: maya, sam and mallory are granted pod ``street``; lee may read every pod (``all``).
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from broker_home import broker_home
from brokers import started
from paho.mqtt.enums import MQTTProtocolVersion
from pods import Circle
from raw_client import Raw, refused

from voicehello.bus import hardening
from voicehello.bus.broker import EmbeddedBroker
from voicehello.bus.messages import Message, Sender, new_message
from voicehello.bus.mqtt import BusClient
from voicehello.config import DeviceSettings

pytestmark = pytest.mark.integration

WAIT_S = 15.0
DEVICES = ("maya", "sam", "mallory")


def _made_up_pod() -> str:
    return secrets.token_hex(8)


def _payload(size: int = 32) -> bytes:
    return secrets.token_hex(size // 2).encode()


def _make_broker(home: Path, street: Circle) -> EmbeddedBroker:
    broker = EmbeddedBroker.hardened(home / "broker", devices=DEVICES, pods=[street.id])
    assert broker.tls_dir is not None
    broker.credentials["lee"] = hardening.add_device(broker.tls_dir, "lee", [hardening.ALL_PODS])
    return broker


@pytest.fixture(scope="module")
def street(tmp_path_factory: pytest.TempPathFactory) -> Circle:
    return Circle(tmp_path_factory.mktemp("pods"), name="street")


@pytest.fixture(scope="module")
def broker(street: Circle) -> Iterator[EmbeddedBroker]:
    """One hardened broker for the tests that do not stop it."""
    with broker_home() as home:
        broker = started(_make_broker(home, street))
        try:
            yield broker
        finally:
            broker.stop()


@pytest.fixture
def own_broker(street: Circle) -> Iterator[EmbeddedBroker]:
    """A hardened broker of the test's own, for tests that kill it."""
    with broker_home() as home:
        broker = started(_make_broker(home, street))
        try:
            yield broker
        finally:
            broker.kill()


@pytest.fixture
def raw() -> Iterator[Callable[..., Raw]]:
    """``raw(broker, device, client_id=None, ...)``: a raw client logged in as ``device``."""
    made: list[Raw] = []

    def make(
        broker: EmbeddedBroker,
        device: str,
        *,
        client_id: str | None = None,
        protocol: MQTTProtocolVersion = mqtt.MQTTv5,
        clean_start: bool = True,
        session_expiry_s: int = 0,
    ) -> Raw:
        client = Raw(
            broker, device, broker.credentials[device].password, client_id=client_id, protocol=protocol
        )
        made.append(client)
        reason = client.connect(clean_start=clean_start, session_expiry_s=session_expiry_s)
        assert reason is not None, f"{device} got no CONNACK"
        assert not reason.is_failure, f"{device} refused: {reason}"
        return client

    yield make
    for client in made:
        client.close()


class Device:
    """A voicehello ``BusClient`` (the real device's client) recording what it receives."""

    def __init__(self, broker: EmbeddedBroker, street: Circle, device: str) -> None:
        self.device = device
        self.received: list[Message] = []
        self._changed = threading.Condition()
        self.bus = BusClient(
            broker.bus_settings(device, street.id, reconnect_min_s=0.2, reconnect_max_s=0.5),
            DeviceSettings(id=device, name=device.title()),
            self._on_message,
            membership=street.membership(device, device.title()),
        )
        self.bus.start()
        assert self.bus.wait_connected(WAIT_S), f"{device} did not connect"

    def _on_message(self, message: Message) -> None:
        with self._changed:
            self.received.append(message)
            self._changed.notify_all()

    def wait_for(self, ids: set[str], timeout: float = WAIT_S) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: ids <= {m.id for m in self.received}, timeout)

    def send_requests(self, count: int) -> set[str]:
        """Publish ``count`` requests; their ids, once the broker took them all."""
        sender = Sender(self.device, self.device.title())
        messages = [new_message(sender, "borrow_item", {"item": "ladder"}, "a ladder") for _ in range(count)]
        for message in messages:
            self.bus.publish(message)
        assert self.bus.flush(WAIT_S), "the broker did not take the requests"
        return {message.id for message in messages}

    def stop(self) -> None:
        self.bus.stop()


def _sentinel_to_self(client: Raw, pod: str, device: str) -> None:
    """Round-trip a message through the broker on ``device``'s own topic: once it is back, whatever
    the broker had for ``client`` at connection time has been delivered."""
    topic = f"voicehello/v1/{pod}/{device}/msg"
    client.subscribe(topic)
    sentinel = _payload()
    assert not refused(client.publish(topic, sentinel))
    assert client.wait(lambda: client.received(sentinel)), f"{device}'s sentinel did not come back"


# --------------------------------------------------------------------------- session hijack


def test_mallory_cannot_take_sams_session_while_sam_is_offline(
    broker: EmbeddedBroker, street: Circle, raw: Callable[..., Raw]
) -> None:
    """Maya sends 10 requests while sam is offline; mallory connects as ``voicehello-sam`` asking
    to resume its session. Mallory gets none of them; sam, back, gets all 10."""
    sam = Device(broker, street, "sam")
    sam.stop()  # its persistent session stays on the broker, subscribed to the street
    maya = Device(broker, street, "maya")
    try:
        sent = maya.send_requests(10)
    finally:
        maya.stop()
    mallory = raw(broker, "mallory", client_id="voicehello-sam", clean_start=False, session_expiry_s=3600)
    assert mallory.session_present is False, "mallory resumed a session that is not hers"
    _sentinel_to_self(mallory, street.id, "mallory")
    stolen = [topic for topic, _, _ in mallory.messages if "/maya/" in topic]
    sam = Device(broker, street, "sam")
    try:
        got_all = sam.wait_for(sent)
        got = len(sent & {message.id for message in sam.received})
    finally:
        sam.stop()
    assert not stolen, f"mallory received {len(stolen)} of the requests queued for sam"
    assert got_all, f"sam got {got} of the 10 requests queued for it"


def test_mallory_cannot_kick_sam_or_read_its_messages_while_sam_is_online(
    broker: EmbeddedBroker, street: Circle, raw: Callable[..., Raw], caplog: pytest.LogCaptureFixture
) -> None:
    """Mallory connects as ``voicehello-sam`` while sam's daemon runs: sam stays connected and
    gets all of maya's 10 requests, mallory none."""
    sam = Device(broker, street, "sam")
    maya = Device(broker, street, "maya")
    try:
        caplog.set_level("WARNING", logger="voicehello.bus.mqtt")
        mallory = raw(broker, "mallory", client_id="voicehello-sam", clean_start=False, session_expiry_s=3600)
        sent = maya.send_requests(10)
        got_all = sam.wait_for(sent)
        _sentinel_to_self(mallory, street.id, "mallory")
        sam_still_on = sam.bus.wait_connected(0)
    finally:
        maya.stop()
        sam.stop()
    kicked = [
        record.getMessage() for record in caplog.records if "sam lost the broker" in record.getMessage()
    ]
    assert not kicked, kicked
    assert sam_still_on, "sam was disconnected"
    assert got_all, f"sam got {len(sent & {m.id for m in sam.received})} of maya's 10 requests"
    assert not [topic for topic, _, _ in mallory.messages if "/maya/" in topic], "mallory got sam's messages"
    assert not mallory.disconnects, "mallory (on her own session) was disconnected"


# --------------------------------------------------------------------------- filling the broker


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311], ids=["v5", "v3.1.1"])
@pytest.mark.parametrize("retain", [False, True], ids=["plain", "retained"])
def test_an_oversized_publish_is_refused(
    broker: EmbeddedBroker,
    street: Circle,
    raw: Callable[..., Raw],
    protocol: MQTTProtocolVersion,
    retain: bool,
) -> None:
    """Over the 64 KiB packet limit (the client's own): mallory is disconnected and nobody gets
    it, nor is it kept; a 32 KiB message on the same topic goes through."""
    topic = f"voicehello/v1/{street.id}/mallory/key"
    lee = raw(broker, "lee")
    lee.subscribe(topic)
    mallory = raw(broker, "mallory", protocol=protocol)
    fits = _payload(32 * 1024)
    assert not refused(mallory.publish(topic, fits, retain=retain))
    huge = _payload(hardening.MAX_PACKET_BYTES + 1024)
    mallory.publish(topic, huge, retain=retain)
    assert mallory.wait(lambda: bool(mallory.disconnects)), "mallory was not disconnected"
    maya = raw(broker, "maya")
    sentinel = _payload()
    lee.subscribe(f"voicehello/v1/{street.id}/maya/msg")
    assert not refused(maya.publish(f"voicehello/v1/{street.id}/maya/msg", sentinel))
    assert lee.wait(lambda: lee.received(sentinel))
    assert lee.received(fits)
    assert not lee.received(huge), "the oversized message was delivered"
    if retain:  # what is retained on the topic is still the one that fitted
        late = raw(broker, "lee")
        late.subscribe(topic)
        assert late.wait(lambda: bool(late.messages))
        assert late.payloads() == [fits]
    mallory_again = raw(broker, "mallory")
    mallory_again.publish(topic, b"", retain=True)  # clear it for the other cases


def test_publishing_to_a_made_up_pod_is_refused(
    broker: EmbeddedBroker, street: Circle, raw: Callable[..., Raw]
) -> None:
    """Mallory may write only in the pods she was granted by id; lee reads every pod and sees
    nothing of hers on a made-up one, retained or not."""
    made_up = _made_up_pod()
    lee = raw(broker, "lee")
    lee.subscribe(f"voicehello/v1/{made_up}/#")
    mallory = raw(broker, "mallory")
    junk = _payload(1024)
    for kind in hardening.DEVICE_TOPICS:
        for retain in (False, True):
            reason = mallory.publish(f"voicehello/v1/{made_up}/mallory/{kind}", junk, retain=retain)
            assert refused(reason), f"{kind} (retain={retain}): {reason}"
    honest = _payload()
    assert not refused(mallory.publish(f"voicehello/v1/{street.id}/mallory/msg", honest))
    lee.subscribe(f"voicehello/v1/{street.id}/mallory/msg")
    assert not refused(mallory.publish(f"voicehello/v1/{street.id}/mallory/msg", honest))
    assert lee.wait(lambda: lee.received(honest))
    assert not lee.received(junk), "a message on a made-up pod was delivered"
    # retained storage: a newcomer subscribing to the made-up pod's topics first, then to a topic
    # with a retained message, gets that one and nothing before it
    marker = _payload()
    maya = raw(broker, "maya")
    assert not refused(maya.publish(f"voicehello/v1/{street.id}/maya/status", marker, retain=True))
    newcomer = raw(broker, "lee")
    newcomer.subscribe(f"voicehello/v1/{made_up}/#", f"voicehello/v1/{street.id}/maya/status")
    assert newcomer.wait(lambda: newcomer.received(marker))
    assert not newcomer.received(junk), "a retained message on a made-up pod was stored"


def _offline_session(broker: EmbeddedBroker, raw: Callable[..., Raw], street: Circle) -> None:
    """Sam's raw persistent session, subscribed to maya's messages, left offline (clean start
    false, as voicehello's devices connect: Mosquitto 2.0 saves only such sessions to disk)."""
    sam = raw(broker, "sam", clean_start=False, session_expiry_s=3600)
    sam.subscribe(f"voicehello/v1/{street.id}/maya/msg")
    sam.close()


def _collect_backlog(broker: EmbeddedBroker, raw: Callable[..., Raw], street: Circle) -> list[bytes]:
    """Sam back on its session: everything queued for it, up to a sentinel sent after it returned."""
    sam = raw(broker, "sam", clean_start=False, session_expiry_s=3600)
    assert sam.session_present, "sam's session was lost"
    sentinel = _payload()
    maya = raw(broker, "maya")
    assert not refused(maya.publish(f"voicehello/v1/{street.id}/maya/msg", sentinel))
    assert sam.wait(lambda: sam.received(sentinel), timeout=30.0), "sam's sentinel never came"
    backlog = sam.payloads()
    return backlog[: backlog.index(sentinel)]


@pytest.mark.parametrize(
    ("count", "size"),
    [(hardening.MAX_QUEUED_MESSAGES + 300, 64), (60, 32 * 1024)],
    ids=["messages", "bytes"],
)
def test_an_offline_devices_queue_is_bounded(
    own_broker: EmbeddedBroker, street: Circle, raw: Callable[..., Raw], count: int, size: int
) -> None:
    """Maya floods sam while it is offline: the broker keeps at most ``max_queued_messages`` and
    ``max_queued_bytes`` (plus one in-flight window) for it, and drops the rest."""
    _offline_session(own_broker, raw, street)
    maya = raw(own_broker, "maya")
    flood = [_payload(size) for _ in range(count)]
    for payload in flood:
        maya.client.publish(f"voicehello/v1/{street.id}/maya/msg", payload, qos=1)
    assert not refused(maya.publish(f"voicehello/v1/{street.id}/maya/msg", _payload()))  # after the flood
    backlog = _collect_backlog(own_broker, raw, street)
    most = (
        min(hardening.MAX_QUEUED_MESSAGES, hardening.MAX_QUEUED_BYTES // size)
        + hardening.MAX_INFLIGHT_MESSAGES
    )
    assert 0 < len(backlog) <= most, f"{len(backlog)} of {count} queued; the bound is {most}"
    assert backlog == flood[: len(backlog)], "the queue kept something else than the first messages"


def test_kill_9_loses_nothing_queued_a_second_before(
    own_broker: EmbeddedBroker, street: Circle, raw: Callable[..., Raw]
) -> None:
    """20 messages queued for an offline device; 1.5 s later the broker is killed (SIGKILL) and
    restarted: the device gets all 20. (The wait is the broker's save timing, which is under test.)"""
    _offline_session(own_broker, raw, street)
    maya = raw(own_broker, "maya")
    queued = [_payload() for _ in range(20)]
    for payload in queued:
        assert not refused(maya.publish(f"voicehello/v1/{street.id}/maya/msg", payload))
    maya.close()
    time.sleep(1.5)
    own_broker.kill()
    own_broker.start()
    backlog = _collect_backlog(own_broker, raw, street)
    assert backlog == queued, f"{len(set(queued) & set(backlog))} of 20 survived the kill -9"


# --------------------------------------------------------------------------- the broker itself


def _process_user(pid: int) -> str:
    uid = os.stat(f"/proc/{pid}").st_uid
    return pwd.getpwuid(uid).pw_name


def _readable_by_broker_user(path: Path) -> bool:
    check = ["runuser", "-u", hardening.BROKER_USER, "--", "test", "-r", str(path)]
    return subprocess.run(check, check=False).returncode == 0


def test_the_broker_runs_as_mosquitto_and_cannot_read_the_ca_key(broker: EmbeddedBroker) -> None:
    assert broker.pid is not None
    assert broker.tls_dir is not None
    ca_key = hardening.default_ca_dir(broker.tls_dir) / hardening.CA_KEY
    assert ca_key.is_file()
    assert not list(broker.tls_dir.rglob("ca.key")), "the CA key is in the broker's directory"
    if os.geteuid() != 0:  # nobody to switch to: the broker runs as whoever started it
        assert _process_user(broker.pid) == pwd.getpwuid(os.geteuid()).pw_name
        return
    assert _process_user(broker.pid) == hardening.BROKER_USER
    assert not _readable_by_broker_user(ca_key), "the broker's user can read the CA's private key"
    assert _readable_by_broker_user(broker.tls_dir / hardening.ACL_FILE), "it cannot read its own ACL"


def listening_sockets(pid: int) -> set[tuple[str, int]]:
    """``(address, port)`` of every TCP socket ``pid`` listens on (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            address, port = local.split(":")
            assert len(address) == width
            found.add((_address(address), int(port, 16)))
    return found


def _address(hex_address: str) -> str:
    """/proc/net/tcp{,6}'s address (32-bit words in host byte order) as text."""
    words = bytes.fromhex(hex_address)
    raw_bytes = b"".join(words[i : i + 4][::-1] for i in range(0, len(words), 4))
    return str(ipaddress.ip_address(raw_bytes))


def test_the_broker_listens_only_on_its_host(broker: EmbeddedBroker) -> None:
    assert broker.pid is not None
    host, port = broker.address
    assert listening_sockets(broker.pid) == {(host, port)}
