"""A plain paho MQTT client for tests against a hardened broker: no voicehello code on its side,
so what it sees is what the broker really allows."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from voicehello.bus.broker import EmbeddedBroker

WAIT_S = 10.0


class Raw:
    """A paho client (MQTT v5 unless told) recording its CONNACK, PUBACKs, SUBACKs, messages and
    disconnections."""

    def __init__(
        self,
        broker: EmbeddedBroker,
        username: str | None,
        password: str | None,
        *,
        client_id: str | None = None,
        protocol: MQTTProtocolVersion = mqtt.MQTTv5,
    ) -> None:
        self.broker = broker
        self.protocol = protocol
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"raw-{uuid.uuid4().hex[:8]}",
            protocol=protocol,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.connack: ReasonCode | None = None
        self.session_present: bool | None = None
        self.disconnects: list[ReasonCode] = []
        self.acks: dict[int, ReasonCode | list[ReasonCode]] = {}
        self.messages: list[tuple[str, bytes, bool]] = []
        self._changed = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _note(self, action: Callable[[], None]) -> None:
        with self._changed:
            action()
            self._changed.notify_all()

    def _on_connect(self, _c: Any, _u: Any, flags: mqtt.ConnectFlags, reason: ReasonCode, _p: Any) -> None:
        def note() -> None:
            self.connack = reason
            self.session_present = flags.session_present

        self._note(note)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._note(lambda: self.disconnects.append(reason))

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        self._note(lambda: self.acks.__setitem__(mid, reason))

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        self._note(lambda: self.acks.__setitem__(mid, reasons))

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        self._note(lambda: self.messages.append((message.topic, bytes(message.payload), message.retain)))

    def wait(self, predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def connect(
        self,
        *,
        tls: bool = True,
        ca_file: Path | None = None,
        clean_start: bool = True,
        session_expiry_s: int = 0,
    ) -> ReasonCode | None:
        """Connect; the CONNACK reason (``None``: the broker hung up without one).

        ``clean_start=False`` with a ``session_expiry_s`` asks to resume (or keep) a persistent
        session, as voicehello's devices do."""
        if tls:
            self.client.tls_set(ca_certs=str(ca_file or self.broker.ca_file))
        host, port = self.broker.address
        if self.protocol == mqtt.MQTTv5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = session_expiry_s
            self.client.connect(host, port, keepalive=10, clean_start=clean_start, properties=properties)
        else:
            self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        self.wait(lambda: self.connack is not None, timeout=3.0)
        return self.connack

    def subscribe(self, *topics: str) -> list[ReasonCode]:
        """Subscribe to ``topics`` at QoS 1 in one SUBSCRIBE; their reason codes."""
        _, mid = self.client.subscribe([(topic, 1) for topic in topics])
        assert mid is not None
        assert self.wait(lambda: mid in self.acks), "no SUBACK"
        reasons = self.acks[mid]
        assert isinstance(reasons, list)
        return reasons

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> ReasonCode | None:
        """Publish at QoS 1; the PUBACK reason (``None`` when none came, e.g. disconnected)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self.wait(lambda: info.mid in self.acks or bool(self.disconnects))
        reason = self.acks.get(info.mid)
        assert not isinstance(reason, list)
        return reason

    def received(self, payload: bytes) -> bool:
        with self._changed:
            return any(got == payload for _, got, _ in self.messages)

    def payloads(self) -> list[bytes]:
        with self._changed:
            return [payload for _, payload, _ in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def refused(reason: ReasonCode | None) -> bool:
    """True for a CONNACK/PUBACK reason code that says no."""
    return reason is not None and reason.is_failure
