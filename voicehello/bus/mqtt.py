"""The MQTT side of the bus: :class:`BusClient` on paho-mqtt 2.x, MQTT v5, QoS 1.

Threads and who owns what:

* paho's network thread (``loop_start``) runs the callbacks. They never take the client's
  lock and never wait: incoming messages go to the :class:`~voicehello.bus.inbox.FairInbox`
  (one queue per sending device, served in turn), and connection changes and PUBACKs are
  posted to the sender's event queue.
* the receiver thread takes messages from the inbox, opens and checks them, and hands them
  to ``on_message`` (so of a neighbor's flood already received, the others wait for at most
  one message each; what still waits in the broker's queue comes in the broker's order).
* the sender thread owns the outbox: it hands messages to paho only while connected (at
  most :data:`WINDOW` unacknowledged at a time, each with a fresh MQTT v5 message expiry
  interval), and on every (re)connection takes back from paho whatever was not
  acknowledged, so it is sent again with its expiry recomputed (receivers dedupe by id).
* any thread may call :meth:`BusClient.publish`: it seals the message and appends it to the outbox.

Privacy: every message and key payload is sealed for one pod (:mod:`voicehello.privacy.envelope`):
encrypted with the pod key and signed with this device's key. The client listens to every pod
of its :class:`~voicehello.privacy.membership.Membership`, announces its key in each (retained,
expiring with the pod), pins neighbors' keys from theirs, and follows pods joined, left or over
while it runs (checked every :data:`HOUSEKEEPING_S`).

Paho calls ``on_publish`` while holding its own lock, so the client's callbacks never take
the client's lock: the only lock order is "client lock, then paho's" (the sender handing a
message to paho). The application's ``on_message`` may call :meth:`BusClient.publish`.
"""

from __future__ import annotations

import logging
import math
import queue
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from voicehello.bus import topics
from voicehello.bus.inbox import FairInbox
from voicehello.bus.messages import Message
from voicehello.bus.seen import SEEN_LIMIT, SeenIds
from voicehello.config import BusSettings, DeviceSettings
from voicehello.errors import (
    BusError,
    EnvelopeError,
    MessageError,
    PrivacyError,
    ReplayError,
    UnknownSenderError,
)
from voicehello.privacy.held import HeldMessages, Sealed
from voicehello.privacy.membership import Membership
from voicehello.privacy.pods import Pod

log = logging.getLogger(__name__)

QOS = 1
WINDOW = 20
"""Most messages handed to paho and not yet acknowledged (paho's own in-flight limit); less when
the broker's MQTT v5 Receive Maximum is lower."""
MAX_PACKET_BYTES = 64 * 1024
"""Announced to the broker (MQTT v5 Maximum Packet Size): it never sends this client anything
bigger. Payloads between ``MAX_PAYLOAD_BYTES`` and this arrive and are dropped with a log line."""
HOUSEKEEPING_S = 1.0
"""How often the sender drops messages that expired in the outbox."""
STOP_TIMEOUT_S = 2.0
"""How long :meth:`BusClient.stop` waits for the broker to take the ``offline`` status."""
KEY_WAIT_S = 30.0
"""How long a pod member's message waits for its sender's key announcement before it is dropped
(after a reconnect, queued messages can arrive before the retained keys)."""
KEY_WAIT_LIMIT = 200
"""Most messages waiting for a key (the oldest are dropped first)."""


# --------------------------------------------------------------------------- sender events


@dataclass(frozen=True)
class _Wake:
    """The outbox changed."""


@dataclass(frozen=True)
class _Stop:
    """The sender thread must end."""


@dataclass(frozen=True)
class _Down:
    """The connection to the broker is gone."""


@dataclass(frozen=True)
class _Up:
    """Connected; ``reclaimed`` are the paho message ids taken back unacknowledged."""

    reclaimed: tuple[int, ...]
    window: int = WINDOW


@dataclass(frozen=True)
class _Acked:
    """The broker acknowledged paho message id ``mid`` (``refused`` when it said no)."""

    mid: int
    refused: str | None = None


_Event = _Wake | _Stop | _Down | _Up | _Acked


@dataclass(frozen=True)
class _Outgoing:
    """A message waiting in the outbox or in flight."""

    seq: int
    """Order of :meth:`BusClient.publish` calls (resent messages keep their place)."""
    message: Message
    pod: str
    """Id of the pod it is sealed for: not sent once the pod is over."""
    topic: str
    payload: bytes


@dataclass(frozen=True)
class _AlreadySeen:
    """The replay check for a held message opened again after a restart: its id was received
    (and written down) before, so it is not new, but it is not a replay either."""

    seen: SeenIds

    def first(self, message_id: str, expires: float, now: float, /) -> bool:
        self.seen.first(message_id, expires, now)  # remembered again, should the files be gone
        return True


@dataclass(frozen=True)
class _Waiting:
    """A pod member's message held until its sender's key is known."""

    since: float
    topic: str
    parts: topics.TopicParts
    payload: bytes
    device: str


def check_settings(bus: BusSettings) -> None:
    """Raise :class:`BusError` for settings no connection attempt could work with."""
    if not bus.host.strip():
        raise BusError("no broker configured: set [bus] host")
    if not 0 < bus.port < 65536:
        raise BusError(f"bus.port {bus.port} is not a TCP port")
    if bus.ca_file is not None and not bus.ca_file.is_file():
        raise BusError(f"bus.ca_file not found: {bus.ca_file}")
    if bus.ca_file is not None and not bus.tls:
        raise BusError("bus.ca_file is set but bus.tls is false")
    if bus.keepalive_s < 5 or bus.reconnect_min_s <= 0 or bus.reconnect_max_s < bus.reconnect_min_s:
        raise BusError("bus.keepalive_s must be >= 5 and 0 < reconnect_min_s <= reconnect_max_s")
    if bus.outbox_limit < 1 or bus.session_expiry_s < 0:
        raise BusError("bus.outbox_limit must be >= 1 and bus.session_expiry_s >= 0")


def _remember(memory: dict[str, str], key: str, value: str) -> None:
    """Add to a memory of at most :data:`SEEN_LIMIT` entries, forgetting the oldest."""
    memory[key] = value
    while len(memory) > SEEN_LIMIT:
        del memory[next(iter(memory))]


def _topic_of(incoming: mqtt.MQTTMessage) -> str:
    """The topic of an incoming message, or a placeholder when it is not UTF-8."""
    try:
        return incoming.topic
    except UnicodeDecodeError:
        return "<not UTF-8>"


def _short_topic(topic: str) -> str:
    """A topic made safe for one log line."""
    return repr(topic if len(topic) <= 100 else topic[:99] + "…")


class BusClient:
    """One device's connection to its pods: publishes messages, delivers the neighbors'.

    ``on_message`` gets every valid, unexpired message of the device's pods exactly once per id
    (this device's own included), on the client's receiver thread, once its envelope opened and its
    signature checked (:meth:`pod_of` tells in which pod it was said); with ``held``, the messages
    held for quiet hours before a restart come once more at :meth:`start`, opened again. ``on_presence(device,
    online)`` gets the other devices' status. With ``listen=False`` the client only sends
    (``voicehello say``): its own client id, a clean session, no subscriptions, no presence.
    Presence and the last will are in the device's default pod only.
    """

    def __init__(
        self,
        bus: BusSettings,
        device: DeviceSettings,
        on_message: Callable[[Message], None],
        *,
        membership: Membership,
        on_presence: Callable[[str, bool], None] | None = None,
        clock: Callable[[], float] = time.time,
        listen: bool = True,
        held: HeldMessages | None = None,
    ) -> None:
        self._bus = bus
        self._device = device
        self._on_message = on_message
        self._on_presence = on_presence
        self._clock = clock
        self._listen = listen
        self._held = held
        self.client_id = (
            f"voicehello-{device.id}" if listen else f"voicehello-{device.id}-send-{uuid.uuid4().hex[:8]}"
        )
        self.membership = membership
        self._home = membership.default()
        self._status_topic = topics.status_topic(self._home.id, device.id)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._outbox: deque[_Outgoing] = deque()
        self._inflight: dict[int, _Outgoing] = {}
        self._seq = 0
        self._link_up = False  # the sender's view: may it hand messages to paho?
        self._window = WINDOW
        self._events: queue.SimpleQueue[_Event] = queue.SimpleQueue()
        self._connected = threading.Event()
        self._seen = SeenIds()
        self._client: mqtt.Client | None = None
        self._sender: threading.Thread | None = None
        self._stopped = False
        self._ever_connected = False
        self._online = False  # CONNACK received and the connection not yet lost (network thread only)
        self._down_reported = False
        self._subscribe_mid: int | None = None
        self._waiting: deque[_Waiting] = deque()  # receiver thread and sender's housekeeping
        self._waiting_lock = threading.Lock()
        self._said_in: dict[str, str] = {}  # message id -> pod id, for replies (bounded)
        self._left: list[Pod] = []  # pods left or over, not yet unsubscribed
        self._refused: dict[str, str] = {}  # message id -> the broker's reason (sender thread)
        self._inbox: FairInbox[mqtt.MQTTMessage] = FairInbox()
        self._receiver: threading.Thread | None = None
        self._left_lock = threading.Lock()
        self._stale: set[str] = set()  # pod ids unsubscribed on this connection (receiver thread)

    # -- public API -------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while connected to the broker (and subscribed, when listening)."""
        return self._connected.is_set()

    @property
    def pending(self) -> int:
        """Messages published and not yet acknowledged by the broker (outbox + in flight)."""
        with self._lock:
            return len(self._outbox) + len(self._inflight)

    @property
    def held(self) -> int:
        """Members' messages waiting for their sender's key announcement."""
        with self._waiting_lock:
            return len(self._waiting)

    def start(self) -> None:
        """Connect in the background; a broker that is down is retried with backoff, not an error.

        Raises :class:`BusError` only for settings that cannot work (no host, missing CA file, ...).
        """
        with self._lock:
            if self._stopped:
                raise BusError("this bus client was stopped; make a new one")
            if self._client is not None:
                return
        check_settings(self._bus)
        if self._listen:
            self._seen.keep_in(self.membership.store.keys_dir, self._clock())
            self._restore_held()
        client = self._make_client()
        try:
            client.connect_async(
                self._bus.host,
                self._bus.port,
                keepalive=self._bus.keepalive_s,
                clean_start=not self._listen,
                properties=self._connect_properties(),
            )
        except ValueError as exc:
            raise BusError(f"cannot connect to the broker {self._bus.host}:{self._bus.port}: {exc}") from exc
        with self._lock:
            self._client = client
        self._sender = threading.Thread(target=self._run_sender, name=f"{self.client_id}-sender", daemon=True)
        self._sender.start()
        if self._listen:
            self._receiver = threading.Thread(
                target=self._run_receiver, name=f"{self.client_id}-receiver", daemon=True
            )
            self._receiver.start()
        client.loop_start()

    def pod_of(self, message_id: str) -> Pod | None:
        """The pod a received message was said in (``None`` if unknown or over)."""
        pod_id = self._said_in.get(message_id)
        return None if pod_id is None else self.membership.get(pod_id)

    def publish(self, message: Message, *, pod: str | None = None) -> None:
        """Seal ``message`` for a pod and queue it; returns at once (sent at QoS 1 when connected).

        The pod is ``pod`` (a name or id), else the pod of the message it answers, else the
        default pod. Raises :class:`MessageError` for a message that is invalid or not from this
        device, :class:`PrivacyError` when the device is not in that pod (any more).
        """
        if message.sender.device != self._device.id:
            raise MessageError(f"message {message.id} is from {message.sender.device}, not this device")
        target = self._pod_for(message, pod)
        payload = self.membership.seal(message, target)
        topic = topics.message_topic(target.id, message.sender.device)
        with self._lock:
            if self._stopped:
                log.warning("bus client stopped; message %s (%s) not sent", message.id, message.intent)
                return
            if message.expired(self._clock()):
                log.warning(
                    "message %s (%s) had expired before it was published; not sent",
                    message.id,
                    message.intent,
                )
                return
            self._seq += 1
            self._outbox.append(_Outgoing(self._seq, message, target.id, topic, payload))
            self._trim_outbox()
        self._events.put(_Wake())

    def _pod_for(self, message: Message, pod: str | None) -> Pod:
        if pod is not None:
            return self.membership.resolve(pod)
        answered = self.pod_of(message.in_reply_to) if message.in_reply_to else None
        return answered or self.membership.default()

    def flush(self, timeout_s: float) -> bool:
        """Wait until the broker has acknowledged every published message (or they expired)."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._outbox or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def refused(self, message_id: str) -> str | None:
        """The broker's reason when it refused a published message (an ACL, say), else ``None``."""
        with self._lock:
            return self._refused.get(message_id)

    def wait_connected(self, timeout_s: float) -> bool:
        """Wait until connected (and subscribed); False after ``timeout_s``."""
        return self._connected.wait(timeout_s)

    def stop(self) -> None:
        """Say ``offline``, disconnect cleanly and stop the threads (idempotent).

        Messages not yet acknowledged are dropped: call :meth:`flush` first to wait for them.
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            client, sender = self._client, self._sender
        self._events.put(_Stop())
        if sender is not None:
            sender.join(timeout=5)
        if client is None:
            return
        try:
            if self._listen and client.is_connected():
                info = client.publish(self._status_topic, topics.OFFLINE, qos=QOS, retain=True)
                info.wait_for_publish(STOP_TIMEOUT_S)
        except (RuntimeError, ValueError) as exc:
            log.info("could not say offline before disconnecting: %s", exc)
        client.disconnect()
        client.loop_stop()
        self._connected.clear()
        self._stop_receiver()
        if self._listen:
            self._seen.close(self._clock())
        log.info("%s disconnected from the broker", self._device.id)

    def _stop_receiver(self) -> None:
        """Let the receiver handle what is already in the inbox (briefly), then end it."""
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while len(self._inbox) and time.monotonic() < deadline:
            time.sleep(0.01)
        if len(self._inbox):
            log.warning("%d received message(s) not handled before stopping", len(self._inbox))
        self._inbox.close()
        if self._receiver is not None:
            self._receiver.join(timeout=5)

    # -- messages held for quiet hours, across restarts --------------------------------------------
    def _restore_held(self) -> None:
        """Open again the messages held (sealed) for quiet hours before a restart and deliver
        them once more, oldest first; one log line for how many, one for each that cannot be."""
        stored = self._held.stored() if self._held is not None else []
        if self._held is None or not stored:
            return
        restored: list[tuple[Message, Pod, Sealed]] = []
        for sealed in stored:
            pod = self.membership.get(sealed.pod)
            try:
                if pod is None:
                    raise EnvelopeError(f"this device is no longer in pod {sealed.pod}")
                message = self.membership.open(sealed.payload, pod, sealed.device, _AlreadySeen(self._seen))
            except EnvelopeError as exc:
                log.warning("held message %s not restored: %s; deleted", sealed.message_id[:8], exc)
                self._held.forget(sealed.message_id)
                continue
            restored.append((message, pod, sealed))
        log.info(
            "restored %d of %d message(s) held for quiet hours before the restart", len(restored), len(stored)
        )
        for message, pod, sealed in sorted(restored, key=lambda item: item[0].ts):
            self._held.note(sealed)
            self._remember_pod(message, pod)
            self._deliver(message)

    # -- setup ------------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        """A paho client with credentials, TLS, last will, backoff and our callbacks."""
        bus = self._bus
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
        )
        client.suppress_exceptions = True  # a bug in a callback must not kill the network thread
        client.max_inflight_messages_set(WINDOW)
        # paho annotates the delays as int but computes with whatever it is given
        client.reconnect_delay_set(cast(int, bus.reconnect_min_s), cast(int, bus.reconnect_max_s))
        if bus.username:
            client.username_pw_set(bus.username, bus.password or None)
        if bus.tls:
            try:
                client.tls_set(ca_certs=str(bus.ca_file) if bus.ca_file else None)
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise BusError(f"cannot set up TLS with {bus.ca_file or 'the system CAs'}: {exc}") from exc
            client.tls_insecure_set(False)
        if self._listen:
            client.will_set(self._status_topic, topics.OFFLINE, qos=QOS, retain=True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_message = self._on_mqtt_message
        return client

    def _connect_properties(self) -> Properties:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._bus.session_expiry_s if self._listen else 0
        properties.MaximumPacketSize = MAX_PACKET_BYTES
        return properties

    # -- paho callbacks (network thread; never take self._lock) ----------------------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        try:
            if reason.is_failure:
                self._report_down(f"the broker refused the connection: {reason}")
                return
            reclaimed = tuple(message.mid for message in client.drop_out_messages())
            window = min(WINDOW, getattr(properties, "ReceiveMaximum", WINDOW))
            pods = self.membership.pods
            self._forget_left_pods(client)  # before anything of theirs can arrive
            if self._listen:
                self._subscribe_mid = self._subscribe(client, pods)
                client.publish(self._status_topic, topics.ONLINE, qos=QOS, retain=True)
            for pod in pods:
                self._announce_key(client, pod)
            self._events.put(_Up(reclaimed, window))  # after the keys: neighbors learn them first
            if not self._listen or self._subscribe_mid is None:
                self._connected.set()
            verb = "reconnected" if self._ever_connected else "connected"
            session = "resumed" if flags.session_present else "new"
            log.info(
                "%s %s to the broker %s:%d (%s session)",
                self._device.id,
                verb,
                self._bus.host,
                self._bus.port,
                session,
            )
            self._ever_connected = self._online = True
            self._stale.clear()
            self._down_reported = False
        except Exception:
            log.exception("error while setting up the broker connection")

    @staticmethod
    def _subscribe(client: mqtt.Client, pods: list[Pod]) -> int | None:
        """Subscribe to everything said in ``pods``; the SUBSCRIBE's message id."""
        if not pods:
            return None
        options = SubscribeOptions(qos=QOS, retainAsPublished=True)  # to see retained publishes
        wanted = [(topic, options) for pod in pods for topic in topics.pod_subscriptions(pod.id)]
        _, mid = client.subscribe(wanted)
        return mid

    def _announce_key(self, client: mqtt.Client, pod: Pod) -> None:
        """Publish this device's sealed key in ``pod``, retained until the pod is over."""
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if pod.expires is not None:
            properties.MessageExpiryInterval = max(1, math.ceil(pod.expires - self._clock()))
        payload = self.membership.key_announcement(pod)
        topic = topics.key_topic(pod.id, self._device.id)
        client.publish(topic, payload, qos=QOS, retain=True, properties=properties)

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        self._report_down("cannot reach it")

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        was_connected, self._online = self._online, False
        self._connected.clear()
        self._events.put(_Down())
        if not self._stopped and was_connected:
            log.warning(
                "%s lost the broker %s:%d (%s); reconnecting",
                self._device.id,
                self._bus.host,
                self._bus.port,
                reason,
            )
            self._down_reported = True

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            log.warning("the broker refused a subscription of %s: %s", self._device.id, ", ".join(refused))
        self._connected.set()

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode, _properties: Properties
    ) -> None:
        self._events.put(_Acked(mid, str(reason) if reason.is_failure else None))

    def _on_mqtt_message(self, _client: mqtt.Client, _userdata: Any, incoming: mqtt.MQTTMessage) -> None:
        """Queue an incoming message under the device its topic names (network thread)."""
        parts = topics.parse_topic(_topic_of(incoming))
        dropped = self._inbox.put(parts.device if parts is not None else "", incoming)
        if dropped is not None:
            self._drop(_topic_of(dropped), "too many messages waiting from this device; dropped its oldest")

    def _run_receiver(self) -> None:
        """Open, check and deliver what arrives, the sending devices taken in turn."""
        while (incoming := self._inbox.get()) is not None:
            self.receive(incoming)
            time.sleep(0)  # let the network thread (waiting for the GIL) take in what arrived

    def receive(self, incoming: mqtt.MQTTMessage) -> None:
        """Handle one incoming MQTT message as the receiver thread does: check it, then deliver
        it or drop it with one log line. Never raises (public so that it can be fuzzed)."""
        try:
            self._receive(incoming)
        except Exception:
            log.exception("error while handling a bus message")

    def _report_down(self, why: str) -> None:
        """One log line per outage, not one per retry."""
        if not self._down_reported:
            log.warning(
                "%s: broker %s:%d: %s; retrying every %g-%g s",
                self._device.id,
                self._bus.host,
                self._bus.port,
                why,
                self._bus.reconnect_min_s,
                self._bus.reconnect_max_s,
            )
            self._down_reported = True

    # -- incoming ---------------------------------------------------------------------------
    def _receive(self, incoming: mqtt.MQTTMessage) -> None:
        """Check one incoming MQTT message and hand it on, or drop it with one log line."""
        try:
            topic = incoming.topic
        except UnicodeDecodeError:
            self._drop("<not UTF-8>", "topic is not UTF-8")
            return
        parts = topics.parse_topic(topic)
        pod = self.membership.get(parts.pod) if parts is not None else None
        if parts is not None and parts.kind == "key" and not incoming.payload:
            return  # a retained key announcement being cleared (maybe in a pod this device left)
        if parts is None or pod is None:
            self._drop(topic, "not a topic of a pod this device is in")
            if parts is not None:
                self._unsubscribe_stale(parts.pod)
        elif parts.kind == "status":
            self._presence(parts.device, bytes(incoming.payload))
        elif parts.kind == "key":
            self._key(topic, pod, parts, bytes(incoming.payload))
        elif incoming.retain:
            self._drop(topic, "retained (messages are never retained)")
        else:
            self._message(topic, pod, parts, bytes(incoming.payload))

    def _unsubscribe_stale(self, pod_id: str) -> None:
        """Stop a subscription the broker kept for a pod this device is no longer in (a resumed
        session remembers pods left while the daemon was not running)."""
        client = self._client
        if client is None or pod_id in self._stale or not self._listen:
            return
        self._stale.add(pod_id)
        log.info("unsubscribing from pod %s: this device is no longer in it", pod_id)
        client.unsubscribe(list(topics.pod_subscriptions(pod_id)))

    def _key(self, topic: str, pod: Pod, parts: topics.TopicParts, payload: bytes) -> None:
        """A member's key announcement: pin it, then open what waited for it."""
        try:
            device = self.membership.learn(payload, pod, parts.device)
        except EnvelopeError as exc:
            self._drop(topic, str(exc))
            return
        if device is not None:
            self._release(pod.id, device)

    def _message(self, topic: str, pod: Pod, parts: topics.TopicParts, payload: bytes) -> None:
        try:
            message = self.membership.open(payload, pod, parts.device, self._seen)
        except ReplayError as exc:
            log.info("ignored bus message on %s: %s", _short_topic(topic), exc)
            return
        except UnknownSenderError as exc:
            self._hold(_Waiting(self._clock(), topic, parts, payload, exc.device))
            return
        except EnvelopeError as exc:
            self._drop(topic, str(exc))
            return
        self._remember_pod(message, pod)
        if self._held is not None:  # kept on disk, still sealed, if the announcer holds it
            self._held.note(Sealed(message.id, message.expires, pod.id, parts.device, payload))
        self._deliver(message)

    def _remember_pod(self, message: Message, pod: Pod) -> None:
        _remember(self._said_in, message.id, pod.id)

    # -- messages waiting for their sender's key ---------------------------------------------------
    def _hold(self, waiting: _Waiting) -> None:
        log.info(
            "holding a message from %s on %s until its key is announced",
            waiting.device,
            _short_topic(waiting.topic),
        )
        with self._waiting_lock:
            self._waiting.append(waiting)
            overflow = len(self._waiting) - KEY_WAIT_LIMIT
            dropped = [self._waiting.popleft() for _ in range(max(0, overflow))]
        for old in dropped:
            self._drop(old.topic, f"unknown sender {old.device} (too many messages waiting for keys)")

    def _take_waiting(self, which: Callable[[_Waiting], bool]) -> list[_Waiting]:
        """Take the waiting messages ``which`` selects out of the waiting list."""
        taken: list[_Waiting] = []
        kept: deque[_Waiting] = deque()
        with self._waiting_lock:
            for waiting in self._waiting:
                (taken if which(waiting) else kept).append(waiting)
            self._waiting = kept
        return taken

    def _release(self, pod_id: str, device: str) -> None:
        """Open again the messages that waited for ``device``'s key in ``pod_id``."""
        for waiting in self._take_waiting(lambda w: w.parts.pod == pod_id and w.device == device):
            pod = self.membership.get(pod_id)
            if pod is None:
                self._drop(waiting.topic, "not a topic of a pod this device is in")
            else:
                self._message(waiting.topic, pod, waiting.parts, waiting.payload)

    def _expire_waiting(self) -> None:
        """Drop messages whose sender's key did not come within :data:`KEY_WAIT_S`."""
        cutoff = self._clock() - KEY_WAIT_S
        for waiting in self._take_waiting(lambda w: w.since <= cutoff):
            self._drop(
                waiting.topic,
                f"unknown sender {waiting.device} (no key pinned in this pod within {KEY_WAIT_S:g} s)",
            )

    def _deliver(self, message: Message) -> None:
        try:
            self._on_message(message)
        except Exception:
            log.exception("on_message failed for message %s (%s)", message.id, message.intent)

    def _presence(self, device: str, payload: bytes) -> None:
        if device == self._device.id or self._on_presence is None:
            return
        if payload not in (topics.ONLINE, topics.OFFLINE):
            log.debug("ignored a malformed status of %s", device)
            return
        try:
            self._on_presence(device, payload == topics.ONLINE)
        except Exception:
            log.exception("on_presence failed for %s", device)

    @staticmethod
    def _drop(topic: str, reason: str) -> None:
        log.warning("dropped bus message on %s: %s", _short_topic(topic), reason)

    # -- outgoing (sender thread) ---------------------------------------------------------------
    def _run_sender(self) -> None:
        """Hand the outbox to paho while connected; take back what a lost connection left unacked.

        Every :data:`HOUSEKEEPING_S`, busy or not: drop expired messages, follow pod changes,
        give up on messages that waited too long for a key."""
        next_housekeeping = time.monotonic() + HOUSEKEEPING_S
        while True:
            try:
                event: _Event | None = self._events.get(timeout=HOUSEKEEPING_S)
            except queue.Empty:
                event = None
            if isinstance(event, _Stop):
                return
            housekeeping = time.monotonic() >= next_housekeeping
            if housekeeping:
                next_housekeeping = time.monotonic() + HOUSEKEEPING_S
            try:
                with self._changed:
                    self._handle(event)
                    if housekeeping or isinstance(event, _Up):
                        self._drop_expired()
                    if housekeeping:
                        self._follow_pods()
                    self._pump()
                    self._changed.notify_all()
                if housekeeping:
                    self._expire_waiting()
            except Exception:
                log.exception("error in the bus sender; carrying on")

    def _follow_pods(self) -> None:
        """Start listening to pods joined, stop for pods left or over (lock held)."""
        try:
            changes = self.membership.refresh()
        except PrivacyError as exc:
            log.error("cannot read this device's pods: %s", exc)
            return
        gone = {pod.id for pod in changes.left}
        if self._held is not None:
            for pod_id in gone:
                self._held.forget_pod(pod_id)
        for outgoing in [o for o in self._outbox if o.pod in gone]:
            log.warning(
                "message %s (%s) not sent: its pod is over", outgoing.message.id, outgoing.message.intent
            )
            self._outbox.remove(outgoing)
        with self._left_lock:
            self._left.extend(changes.left)
        client = self._client
        if client is None or not self._link_up:
            return  # the next connection forgets the pods left and subscribes to the current ones
        self._forget_left_pods(client)
        if self._listen:
            self._subscribe(client, list(changes.joined))
        for pod in changes.joined:
            self._announce_key(client, pod)

    def _forget_left_pods(self, client: mqtt.Client) -> None:
        """Unsubscribe from the pods left or over and clear this device's key there (while
        connected; pods left while the broker was away are forgotten when it is back)."""
        with self._left_lock:
            left, self._left = self._left, []
        for pod in left:
            if self._listen:
                client.unsubscribe(list(topics.pod_subscriptions(pod.id)))
            client.publish(topics.key_topic(pod.id, self._device.id), b"", qos=QOS, retain=True)

    def _handle(self, event: _Event | None) -> None:
        """Apply one event to the outbox (lock held)."""
        if isinstance(event, _Up):
            self._reclaim(event.reclaimed)
            self._link_up, self._window = True, max(1, event.window)
        elif isinstance(event, _Down):
            self._link_up = False
        elif isinstance(event, _Acked):
            sent = self._inflight.pop(event.mid, None)
            if sent is not None and event.refused:
                log.warning(
                    "the broker refused message %s (%s): %s",
                    sent.message.id,
                    sent.message.intent,
                    event.refused,
                )
                _remember(self._refused, sent.message.id, event.refused)

    def _reclaim(self, mids: tuple[int, ...]) -> None:
        """Put messages paho had not got acknowledged back at the front of the outbox."""
        back = sorted((self._inflight.pop(mid) for mid in mids if mid in self._inflight), key=lambda o: o.seq)
        if back:
            log.info("sending %d unacknowledged message(s) again", len(back))
        self._outbox.extendleft(reversed(back))
        self._trim_outbox()

    def _pump(self) -> None:
        """Hand messages to paho while connected, up to the window unacknowledged (lock held)."""
        client = self._client
        while client is not None and self._link_up and self._outbox and len(self._inflight) < self._window:
            outgoing = self._outbox.popleft()
            left = outgoing.message.ttl(self._clock())
            if left <= 0:
                self._log_expired(outgoing)
                continue
            if self.membership.get(outgoing.pod) is None:
                log.warning(
                    "message %s (%s) not sent: its pod is over", outgoing.message.id, outgoing.message.intent
                )
                continue
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.MessageExpiryInterval = math.ceil(left)
            try:
                info = client.publish(
                    outgoing.topic, outgoing.payload, qos=QOS, retain=False, properties=properties
                )
            except ValueError as exc:
                log.error("cannot publish message %s: %s", outgoing.message.id, exc)
                continue
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                log.warning(
                    "paho did not take message %s (%s); it stays queued", outgoing.message.id, info.rc
                )
                self._outbox.appendleft(outgoing)
                return
            # NO_CONN: paho keeps it and we take it back at the next connection
            self._inflight[info.mid] = outgoing

    def _drop_expired(self) -> None:
        """Drop messages that expired while waiting in the outbox (lock held)."""
        now = self._clock()
        if any(outgoing.message.expired(now) for outgoing in self._outbox):
            for outgoing in [o for o in self._outbox if o.message.expired(now)]:
                self._log_expired(outgoing)
                self._outbox.remove(outgoing)

    def _trim_outbox(self) -> None:
        """Keep at most ``outbox_limit`` messages waiting: the oldest go first (lock held)."""
        while len(self._outbox) > self._bus.outbox_limit:
            dropped = self._outbox.popleft()
            log.warning(
                "outbox full (%d messages); dropped the oldest, %s (%s)",
                self._bus.outbox_limit,
                dropped.message.id,
                dropped.message.intent,
            )

    @staticmethod
    def _log_expired(outgoing: _Outgoing) -> None:
        log.warning(
            "message %s (%s) expired before it could be sent; dropped",
            outgoing.message.id,
            outgoing.message.intent,
        )
