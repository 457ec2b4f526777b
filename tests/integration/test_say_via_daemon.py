"""One broker connection per device: with ``voicehello run`` running, ``voicehello say`` hands its
message to the daemon over the control socket (``<keys_dir>/daemon.sock``) instead of logging in
with the device's account a second time, which a broker made by ``broker init`` (client id = user
name) answers by kicking the daemon off and dropping its persistent session.

Real parts: a hardened Mosquitto (TLS, passwords, ACL, ``use_username_as_clientid``), maya's
daemon as a separate process (``voicehello -v run --no-mic``), ``voicehello say`` as a separate
process, sam's real :class:`voicehello.app.Device` in the test process, real pods and keys.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from broker_home import broker_home
from brokers import started
from pods import Circle

from voicehello.announce.speaker import AnnounceEvent
from voicehello.app import Device
from voicehello.bus import local
from voicehello.bus.broker import EmbeddedBroker
from voicehello.bus.messages import Sender, new_message
from voicehello.config import AnnounceSettings, DeviceSettings, PrivacySettings, Settings
from voicehello.conversation import Publish

pytestmark = pytest.mark.integration

WAIT_S = 40.0
FAST = {"reconnect_min_s": 0.2, "reconnect_max_s": 0.5}
Run = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass
class Street:
    """A hardened broker (its directory reachable by the ``mosquitto`` user) and the pod ``street``."""

    broker: EmbeddedBroker
    circle: Circle
    tmp: Path

    def maya_config(self) -> Path:
        """Maya's settings file: her own broker account, her key directory in the pod."""
        host, port = self.broker.address
        creds = self.broker.credentials["maya"]
        tables: dict[str, dict[str, Any]] = {
            "device": {"id": "maya", "name": "Maya"},
            "bus": {
                "host": host,
                "port": port,
                "pod": self.circle.name,
                "tls": True,
                "ca_file": str(self.broker.ca_file),
                "username": creds.name,
                "password": creds.password,
                **FAST,
            },
            "announce": {"output": "print", "prefix": "none"},
            "speech": {"models_dir": str(self.tmp)},
            "privacy": {"keys_dir": str(self.circle.keys_dir("maya"))},
        }
        lines = []
        for name, values in tables.items():
            lines.append(f"[{name}]")
            lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
        path = self.tmp / "maya.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def broker_connections(self, user: str) -> list[str]:
        """Mosquitto's log lines of new connections logged in as ``user``."""
        text = self.broker.log_file.read_text(encoding="utf-8", errors="replace")
        return [
            line for line in text.splitlines() if "New client connected" in line and f" as {user} " in line
        ]


@pytest.fixture
def street(tmp_path: Path) -> Iterator[Street]:
    circle = Circle(tmp_path / "pods", name="street")
    with broker_home() as home:
        broker = started(EmbeddedBroker.hardened(home / "broker", devices=["maya", "sam"], pods=[circle.id]))
        try:
            yield Street(broker, circle, tmp_path)
        finally:
            broker.stop()


class Heard:
    """What sam's device announced (printed lines and announcement events), waited on by the test."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.events: list[AnnounceEvent] = []
        self._changed = threading.Condition()

    def show(self, line: str) -> None:
        with self._changed:
            self.lines.append(line)
            self._changed.notify_all()

    def on_event(self, event: AnnounceEvent) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait_printed(self, message_id: str) -> bool:
        with self._changed:
            return self._changed.wait_for(
                lambda: any(e.kind == "printed" and e.message_id == message_id for e in self.events), WAIT_S
            )


@pytest.fixture
def sam(street: Street) -> Iterator[tuple[Device, Heard]]:
    """Sam's real device in the pod, announcing by printing."""
    heard = Heard()
    settings = Settings(
        device=DeviceSettings(id="sam", name="Sam"),
        bus=street.broker.bus_settings("sam", street.circle.name, **FAST),
        announce=AnnounceSettings(output="print", prefix="none"),
        privacy=PrivacySettings(keys_dir=street.circle.keys_dir("sam")),
    )
    device = Device(settings, on_announce=heard.on_event, show=heard.show)
    device.start()
    try:
        assert device.bus.wait_connected(WAIT_S), "sam did not connect"
        yield device, heard
    finally:
        device.stop()


def start_maya(spawn: Callable[..., Any], config: Path) -> Any:
    """Maya's ``voicehello -v run --no-mic``, once it announces and is connected (either order)."""
    daemon = spawn("-v", "run", "--no-mic", "--config", config)
    ready = daemon.wait_for("stderr", lambda line: "announcing only" in line, WAIT_S)
    assert ready is not None, daemon.transcript()
    if not any("connected to the broker" in line for line in daemon.stderr):
        assert daemon.wait_for("stderr", lambda line: "connected to the broker" in line, WAIT_S), (
            daemon.transcript()
        )
    return daemon


def sent_id(stdout: str) -> str:
    found = re.search(r"^sent borrow_item .* to pod street \(id ([0-9a-f]{32}),", stdout, re.MULTILINE)
    assert found is not None, stdout
    return found.group(1)


def test_say_goes_through_the_running_daemon_which_stays_connected(
    street: Street, sam: tuple[Device, Heard], spawn_voicehello: Callable[..., Any], voicehello: Run
) -> None:
    """Maya's daemon runs; ``say`` for maya is sent, announced by sam, sam's answer is announced by
    maya's daemon, and the daemon never lost the broker (fails when ``say`` logs in itself: the
    broker then closes the daemon's connection, "Client maya already connected")."""
    sam_device, heard = sam
    config = street.maya_config()
    daemon = start_maya(spawn_voicehello, config)

    said = voicehello("-v", "say", "--config", config, "--yes", "can i borrow a ladder")
    assert said.returncode == 0, said.stderr
    request_id = sent_id(said.stdout)

    assert heard.wait_printed(request_id), f"sam did not announce maya's request: {heard.lines}"
    assert any(line.endswith("Maya asks to borrow a ladder") for line in heard.lines), heard.lines
    actions = sam_device.hear_text("yes I can lend it")
    replies = [action.message for action in actions if isinstance(action, Publish)]
    assert [reply.in_reply_to for reply in replies] == [request_id], actions

    # the sentinel: maya's daemon announces sam's answer, long after any kick would have happened
    announced = daemon.wait_for("stdout", lambda line: "Sam can lend you a ladder" in line, WAIT_S)
    assert announced is not None, daemon.transcript()
    lost = [line for line in daemon.stderr if "lost the broker" in line or "reconnected" in line]
    assert lost == [], daemon.transcript()
    assert len([line for line in daemon.stderr if "connected to the broker" in line]) == 1, (
        daemon.transcript()
    )
    assert len(street.broker_connections("maya")) == 1, street.broker_connections("maya")
    assert "handed to the running daemon" in said.stderr, said.stderr
    assert "connecting to the broker" not in said.stderr, said.stderr
    typed = f"(id {request_id[:8]}) (typed with say)"
    assert any(line.startswith("sent: borrow_item") and typed in line for line in daemon.stdout), (
        daemon.transcript()
    )
    assert daemon.terminate() == 0
    assert not local.socket_path(street.circle.keys_dir("maya")).exists(), "the socket outlived the daemon"


def test_the_daemon_refuses_another_device_s_message_and_carries_on(
    street: Street, spawn_voicehello: Callable[..., Any], voicehello: Run
) -> None:
    """A sam message handed to maya's daemon is refused with one log line, garbage too; the next
    ``say`` is sent."""
    config = street.maya_config()
    daemon = start_maya(spawn_voicehello, config)
    path = local.socket_path(street.circle.keys_dir("maya"))
    foreign = new_message(Sender("sam", "Sam"), "borrow_item", {"item": "drill"}, "can i borrow a drill")
    answer = local.hand_over(path, local.SayRequest(foreign, timeout_s=5))
    assert answer is not None
    assert not answer.ok
    assert answer.error is not None
    assert "is from 'sam', not from this device ('maya')" in answer.error
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as garbage:
        garbage.settimeout(WAIT_S)
        garbage.connect(str(path))
        garbage.sendall(b"\x16\x03\x01 not a request\n")
        assert b'"ok":false' in garbage.recv(4096)

    said = voicehello("-v", "say", "--config", config, "--yes", "can i borrow a ladder")  # the sentinel
    assert said.returncode == 0, said.stderr
    request_id = sent_id(said.stdout)
    assert daemon.wait_for("stdout", lambda line: request_id[:8] in line, WAIT_S), daemon.transcript()
    logged = [line for line in daemon.stderr if "control socket" in line]
    assert len(logged) == 2, daemon.transcript()
    assert f"message {foreign.id[:8]} not sent" in logged[0]
    assert "request ignored: request is not UTF-8 JSON" in logged[1]
    assert not any("drill" in line for line in daemon.stdout), daemon.transcript()
    assert daemon.terminate() == 0


def test_with_the_broker_down_say_through_the_daemon_gives_up_after_its_timeout(
    street: Street, spawn_voicehello: Callable[..., Any], voicehello: Run
) -> None:
    """``say --timeout`` still bounds the wait: one line saying the daemon keeps the message."""
    config = street.maya_config()
    daemon = start_maya(spawn_voicehello, config)
    street.broker.stop()
    assert daemon.wait_for("stderr", lambda line: "lost the broker" in line, WAIT_S), daemon.transcript()
    said = voicehello("say", "--config", config, "--yes", "--timeout", "1", "can i borrow a ladder")
    assert said.returncode == 1, (said.stdout, said.stderr)
    assert "sent" not in said.stdout
    lines = [line for line in said.stderr.splitlines() if line.startswith("voicehello: ")]
    assert len(lines) == 1, said.stderr
    assert "did not take the message within 1 s" in lines[0]
    assert "the running daemon keeps it" in lines[0]
    assert daemon.terminate() == 0


def test_without_a_daemon_say_connects_itself(street: Street, voicehello: Run) -> None:
    """No daemon (and a socket file left by a killed one): ``say`` logs in with the account itself."""
    config = street.maya_config()
    path = local.socket_path(street.circle.keys_dir("maya"))
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    said = voicehello("-v", "say", "--config", config, "--yes", "can i borrow a ladder")
    assert said.returncode == 0, said.stderr
    sent_id(said.stdout)
    assert "was left by a daemon that is gone" in said.stderr, said.stderr
    assert "no daemon runs for this device: connecting to the broker" in said.stderr, said.stderr
    assert len(street.broker_connections("maya")) == 1, street.broker_connections("maya")
