"""The hardened broker (``voicehello broker ...``) against a real Mosquitto, with no mocks.

Raw paho clients check what the broker really allows (no voicehello code on their side);
``BusClient`` checks that a device configured with its credentials and CA talks over it.
Devices: ``maya`` and ``bob`` read pod ``street``; ``eve`` reads only pod ``garden``. The pods are
real (:class:`pods.Circle`): the ACL grants them by their id, the ``<pod>`` topic level.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from broker_home import broker_home
from brokers import started
from cryptography.hazmat.primitives import serialization
from pods import Circle
from raw_client import Raw, refused

from voicehello.bus import hardening
from voicehello.bus.broker import EmbeddedBroker, find_mosquitto, free_port
from voicehello.bus.messages import Message, Sender, new_message
from voicehello.bus.mqtt import BusClient
from voicehello.config import BusSettings, DeviceSettings, load_settings
from voicehello.privacy.membership import Membership

pytestmark = pytest.mark.integration

WAIT_S = 10.0


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Circle]:
    """Pods ``street``, ``garden`` and ``yard``, made by one owner, joined by devices on demand."""
    root = tmp_path_factory.mktemp("pods")
    return {name: Circle(root, name=name) for name in ("street", "garden", "yard")}


@pytest.fixture(scope="module")
def street(pods: dict[str, Circle]) -> Circle:
    return pods["street"]


@pytest.fixture(scope="module")
def broker(pods: dict[str, Circle]) -> Iterator[EmbeddedBroker]:
    """A hardened Mosquitto on a free loopback port with maya, bob (street) and eve (garden)."""
    with broker_home() as home:  # a directory the broker's user (mosquitto, when root) can reach
        broker = EmbeddedBroker.hardened(home / "broker", devices=["maya", "bob"], pods=[pods["street"].id])
        assert broker.tls_dir is not None
        broker.credentials["eve"] = hardening.add_device(broker.tls_dir, "eve", [pods["garden"].id])
        yield started(broker)
        broker.stop()


@pytest.fixture
def raw(broker: EmbeddedBroker) -> Iterator[Callable[..., Raw]]:
    """``raw(device=None, password=None)``: a connected raw client logged in as ``device``."""
    made: list[Raw] = []

    def make(device: str | None = None, password: str | None = None, *, connect: bool = True) -> Raw:
        if device is not None and password is None:
            password = broker.credentials[device].password
        client = Raw(broker, device, password)
        made.append(client)
        if connect:
            reason = client.connect()
            assert reason is not None, f"{device} got no CONNACK"
            assert not reason.is_failure, f"{device} refused: {reason}"
        return client

    yield make
    for client in made:
        client.close()


def _payload() -> bytes:
    return f"test-{uuid.uuid4().hex}".encode()


def _maya_connects(settings: BusSettings, street: Circle, timeout_s: float) -> bool:
    """Whether maya's BusClient with ``settings`` gets connected within ``timeout_s``."""
    bus = BusClient(
        settings,
        DeviceSettings(id="maya", name="Maya"),
        lambda _m: None,
        membership=street.membership("maya"),
    )
    bus.start()
    try:
        return bus.wait_connected(timeout_s)
    finally:
        bus.stop()


# --------------------------------------------------------------------------- who may connect


def test_anonymous_and_wrong_password_arerefused(broker: EmbeddedBroker, raw: Callable[..., Raw]) -> None:
    anonymous = raw(connect=False)
    reason = anonymous.connect()
    assert refused(reason), reason
    wrong = raw("maya", "not-the-password", connect=False)
    reason = wrong.connect()
    assert refused(reason), reason
    unknown = raw("mallory", broker.credentials["maya"].password, connect=False)
    reason = unknown.connect()
    assert refused(reason), reason


def test_plain_mqtt_gets_no_connection(broker: EmbeddedBroker, raw: Callable[..., Raw]) -> None:
    plain = raw("maya", connect=False)
    assert plain.connect(tls=False) is None  # TLS listener: the plain CONNECT is never answered


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # paho leaks the failed socket
def test_a_client_trusting_another_ca_fails_verification(
    broker: EmbeddedBroker, raw: Callable[..., Raw], street: Circle, tmp_path: Path
) -> None:
    _, other_ca = hardening.make_ca(datetime.datetime.now(datetime.UTC))
    other = tmp_path / "other-ca.crt"
    other.write_bytes(other_ca.public_bytes(serialization.Encoding.PEM))
    client = raw("maya", connect=False)
    with pytest.raises(ssl.SSLCertVerificationError):
        client.connect(ca_file=other)

    host, port = broker.address
    settings = BusSettings(
        host=host, port=port, pod=street.id, tls=True, ca_file=other, username="maya",
        password=broker.credentials["maya"].password, reconnect_min_s=0.2, reconnect_max_s=0.5,
    )  # fmt: skip
    assert not _maya_connects(settings, street, 2.0), (
        "connected to a broker whose certificate it cannot verify"
    )


def test_hostname_is_verified(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """The certificate names localhost and 127.0.0.1, not this machine's other names."""
    _, port = broker.address
    context = ssl.create_default_context(cafile=str(broker.ca_file))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        pytest.raises(ssl.SSLCertVerificationError, match="mismatch"),
    ):
        context.wrap_socket(sock, server_hostname="attacker.example")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


# --------------------------------------------------------------------------- what devices may do


def test_a_device_cannot_publish_as_another(raw: Callable[..., Raw], street: Circle) -> None:
    street_id = street.id
    bob = raw("bob")
    assert not bob.subscribe(f"voicehello/v1/{street_id}/#")[0].is_failure
    maya = raw("maya")
    forged, honest = _payload(), _payload()
    for topic in (
        f"voicehello/v1/{street_id}/bob/msg",
        f"voicehello/v1/{street_id}/bob/status",
    ):
        reason = maya.publish(topic, forged)
        # mosquitto 2.0 answers a denied QoS 1 publish with PUBACK "Not authorized" and drops it
        assert refused(reason), f"{topic}: {reason}"
    for topic in (  # under her own id, but not a topic devices publish to
        f"voicehello/v1/{street_id}/maya/intent/borrow_item",
        f"voicehello/v1/{street_id}/maya/msg/extra",
        f"voicehello/v1/{street_id}/maya",
    ):
        assert refused(maya.publish(topic, forged)), topic
    assert maya.publish(f"voicehello/v1/{street_id}/maya/msg", honest) is not None
    # the sentinel: the broker refused each forgery (PUBACK) before maya sent this on the
    # same connection, so a forgery it let through would have reached bob before it
    assert bob.wait(lambda: bob.received(honest)), "bob missed maya's own message"
    assert not bob.received(forged), (
        "a message forged as bob, or on a topic devices do not use, was delivered"
    )


def test_a_device_cannot_read_a_pod_it_was_not_granted(
    raw: Callable[..., Raw], pods: dict[str, Circle]
) -> None:
    street_id, garden_id = pods["street"].id, pods["garden"].id
    eve = raw("eve")
    street = eve.subscribe(f"voicehello/v1/{street_id}/#")[0]
    assert not eve.subscribe(f"voicehello/v1/{garden_id}/#")[0].is_failure
    maya = raw("maya")
    secret, sentinel = _payload(), _payload()
    maya.publish(f"voicehello/v1/{street_id}/maya/msg", secret)
    eve.publish(f"voicehello/v1/{garden_id}/eve/msg", sentinel)  # maya may not write in the garden
    # maya's publish was acknowledged before eve sent the sentinel: the broker had queued
    # the secret for eve, if it would, before the sentinel
    assert eve.wait(lambda: eve.received(sentinel)), "eve missed a message in her own pod"
    assert not eve.received(secret), f"eve read pod street (SUBACK {street})"


def test_add_grant_and_revoke_apply_to_the_running_broker(
    broker: EmbeddedBroker, raw: Callable[..., Raw], pods: dict[str, Circle]
) -> None:
    garden_id, yard_id = pods["garden"].id, pods["yard"].id
    assert broker.tls_dir is not None
    hardening.grant(broker.tls_dir, "maya", yard_id)  # maya speaks in the yard
    broker.credentials["carol"] = hardening.add_device(broker.tls_dir, "carol", [garden_id])  # SIGHUP
    carol = _eventually_connected(raw, "carol")
    maya = raw("maya")
    carol.subscribe(f"voicehello/v1/{yard_id}/#", f"voicehello/v1/{garden_id}/#")
    before, sentinel = _payload(), _payload()
    maya.publish(f"voicehello/v1/{yard_id}/maya/msg", before)
    carol.publish(f"voicehello/v1/{garden_id}/carol/msg", sentinel)  # after maya's was acknowledged
    assert carol.wait(lambda: carol.received(sentinel)), "carol missed her own message in her pod"
    assert not carol.received(before), "carol read pod yard before it was granted"

    hardening.grant(broker.tls_dir, "carol", yard_id)
    after = _payload()

    def delivered() -> bool:
        maya.publish(f"voicehello/v1/{yard_id}/maya/msg", after)
        return carol.wait(lambda: carol.received(after), timeout=0.5)

    assert any(delivered() for _ in range(20)), "the grant did not reach the running broker"

    hardening.revoke(broker.tls_dir, "carol")

    def refused_now() -> bool:  # mosquitto reloads on SIGHUP between network loops
        again = raw("carol", broker.credentials["carol"].password, connect=False)
        reason = again.connect()
        again.close()
        return refused(reason)

    assert _within_attempts(refused_now), "carol could still connect after being revoked"


def _within_attempts(condition: Callable[[], bool], attempts: int = 50) -> bool:
    """True once ``condition()`` holds, tried every 0.1 s (while mosquitto reloads its files)."""
    for _ in range(attempts):
        if condition():
            return True
        time.sleep(0.1)
    return False


def _eventually_connected(raw: Callable[..., Raw], device: str) -> Raw:
    """``device`` connected, retrying while mosquitto reloads its password file."""
    for _ in range(20):
        client = raw(device, connect=False)
        reason = client.connect()
        if reason is not None and not reason.is_failure:
            return client
        client.close()
        time.sleep(0.1)
    pytest.fail(f"{device} could not connect after being added")


# --------------------------------------------------------------------------- voicehello itself


def test_bus_clients_round_trip_a_message_over_tls(broker: EmbeddedBroker, street: Circle) -> None:
    received: list[Message] = []
    arrived = threading.Event()

    def on_message(message: Message) -> None:
        received.append(message)
        arrived.set()

    fast = {"reconnect_min_s": 0.2, "reconnect_max_s": 0.5}
    bob = BusClient(
        broker.bus_settings("bob", street.id, **fast),
        DeviceSettings(id="bob", name="Bob"),
        on_message,
        membership=street.membership("bob", "Bob"),
    )
    maya = BusClient(
        broker.bus_settings("maya", street.id, **fast),
        DeviceSettings(id="maya", name="Maya"),
        lambda _m: None,
        membership=street.membership("maya", "Maya"),
    )
    try:
        bob.start()
        maya.start()
        assert bob.wait_connected(WAIT_S)
        assert maya.wait_connected(WAIT_S)
        message = new_message(Sender("maya", "Maya"), "borrow_item", {"item": "ladder"}, "test ladder")
        maya.publish(message)
        assert arrived.wait(WAIT_S), "bob did not get maya's message"
        assert received[0].id == message.id
        said_in = bob.pod_of(message.id)
        assert said_in is not None
        assert said_in.id == street.id
        assert received[0].sender.device == "maya"
    finally:
        maya.stop()
        bob.stop()


def test_bus_client_with_a_wrong_password_does_not_connect(broker: EmbeddedBroker, street: Circle) -> None:
    settings = broker.bus_settings(
        "maya", street.id, password="wrong", reconnect_min_s=0.2, reconnect_max_s=0.5
    )
    assert not _maya_connects(settings, street, 2.0)


# --------------------------------------------------------------------------- the command line


def _wait_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, "mosquitto exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"mosquitto did not listen on {port}")


def test_cli_init_add_device_and_the_snippet_connects(voicehello: Any, tmp_path: Path) -> None:
    directory, port = tmp_path / "broker", free_port("127.0.0.1")
    init = voicehello("broker", "init", directory, "--host", "127.0.0.1", "--port", port)
    assert init.returncode == 0, init.stderr
    assert f"mosquitto -c {directory / 'mosquitto.conf'}" in init.stdout
    pod = Circle(tmp_path / "pods", name="street")
    added = voicehello(
        "broker", "add-device", "maya", "--dir", directory, "--host", "localhost", "--pod", pod.id
    )
    assert added.returncode == 0, added.stderr
    snippet = added.stdout[added.stdout.index("[device]") :]
    config = tmp_path / "voicehello.toml"
    keys = (
        f'[privacy]\nkeys_dir = "{pod.keys_dir("maya")}"\n'  # the pod joined, as `voicehello pod join` does
    )
    config.write_text(snippet + keys, encoding="utf-8")
    settings = load_settings(config)
    assert (settings.bus.host, settings.bus.port, settings.bus.tls) == ("localhost", port, True)
    assert f"password: {settings.bus.password}" in added.stdout

    process = subprocess.Popen(
        [str(find_mosquitto()), "-c", str(directory / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, process)
        bus = BusClient(
            settings.bus, settings.device, lambda _m: None, membership=Membership.from_settings(settings)
        )
        bus.start()
        try:
            assert bus.wait_connected(WAIT_S), (directory / "mosquitto.log").read_text()
        finally:
            bus.stop()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_cli_errors_are_one_line(voicehello: Any, tmp_path: Path) -> None:
    assert voicehello("broker", "init", tmp_path / "b").returncode == 0
    again = voicehello("broker", "init", tmp_path / "b")
    assert again.returncode == 1
    assert again.stderr.strip().count("\n") == 0
    assert again.stderr.startswith("voicehello: ")
    assert "already holds a broker" in again.stderr
    bad = voicehello("broker", "add-device", "Not/OK", "--dir", tmp_path / "b")
    assert bad.returncode == 1
    assert bad.stderr.startswith("voicehello: device name"), bad.stderr
