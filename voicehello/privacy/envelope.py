"""The sealed envelope every message and key announcement travels in.

Wire format (UTF-8 JSON, at most 8 KiB)::

    {"v": 1, "pod": "<pod id>", "box": "<standard base64 of nonce (24 bytes) + secretbox ciphertext>"}

The box is NaCl ``SecretBox`` (XSalsa20-Poly1305) under the pod key. Its plaintext is a NaCl
signed message (64-byte Ed25519 signature + data):

* on ``voicehello/v1/<pod id>/<device>/msg``: data = ``Message.to_json()`` bytes
  padded with spaces to a multiple of :data:`PAD_BYTES` (so that the size of the ciphertext
  says little about what was said; JSON ignores trailing whitespace), signed by the sender's
  device key (pinned in the pod roster);
* on ``voicehello/v1/<pod id>/<device>/key`` (retained): data = UTF-8 JSON
  ``{"v": 1, "device": "...", "name": "...", "key": "<verify key b64>", "ts": <unix>}``,
  signed by the announced key itself. Members pin the name with the key: it is the only name
  they ever speak for that device (a message's own ``from.name`` is never spoken).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from voicehello.bus.messages import MAX_PAYLOAD_BYTES, Message
from voicehello.bus.topics import key_topic
from voicehello.config import DEVICE_ID
from voicehello.errors import EnvelopeError, MessageError, ReplayError, UnknownSenderError
from voicehello.privacy.keys import SIGNATURE_BYTES, DeviceKeys, verify
from voicehello.privacy.pods import Pod, PodStore

__all__ = [
    "KeyAnnouncement",
    "key_topic",
    "open_key_announcement",
    "open_message",
    "seal",
    "seal_key_announcement",
]

VERSION = 1
MAX_ENVELOPE_BYTES = 8192
NONCE_BYTES = SecretBox.NONCE_SIZE
MAC_BYTES = SecretBox.MACBYTES
PAD_BYTES = 512
"""Messages are padded to a multiple of this many bytes before they are signed and sealed."""
MAX_ANNOUNCEMENT_AHEAD_S = 3600.0
"""A key announcement dated further in the future than this is refused."""


class Seen(Protocol):
    """Remembers message ids (``voicehello.bus.seen.SeenIds`` is one)."""

    def first(self, message_id: str, expires: float, now: float, /) -> bool:
        """True the first time ``message_id`` is seen (and remember it until ``expires``)."""
        ...


# --------------------------------------------------------------------------- the box


def _box(pod: Pod, plaintext: bytes) -> bytes:
    """Encrypt ``plaintext`` under the pod key and wrap it in the JSON envelope."""
    sealed = bytes(SecretBox(pod.key).encrypt(plaintext))  # nonce + ciphertext
    envelope = {"v": VERSION, "pod": pod.id, "box": base64.b64encode(sealed).decode("ascii")}
    payload = json.dumps(envelope, separators=(",", ":")).encode()
    if len(payload) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(f"sealed payload is {len(payload)} bytes, over {MAX_ENVELOPE_BYTES}")
    return payload


def _unbox(payload: bytes, pod: Pod) -> bytes:
    """The plaintext of an envelope for ``pod`` (:class:`EnvelopeError` for anything wrong)."""
    if len(payload) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(f"payload of {len(payload)} bytes is over {MAX_ENVELOPE_BYTES}")
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise EnvelopeError("payload is not UTF-8 JSON") from exc
    if (
        not isinstance(data, dict)
        or set(data) != {"v", "pod", "box"}
        or type(data["v"]) is not int
        or not isinstance(data["pod"], str)
        or not isinstance(data["box"], str)
    ):
        raise EnvelopeError("payload is not a voicehello envelope")
    if data["v"] != VERSION:
        raise EnvelopeError(f"unknown envelope version {data['v']}")
    if data["pod"] != pod.id:
        raise EnvelopeError("envelope is for another pod")
    try:
        sealed = base64.b64decode(data["box"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError("box is not base64") from exc
    if len(sealed) < NONCE_BYTES + MAC_BYTES + SIGNATURE_BYTES:
        raise EnvelopeError("box is too short")
    try:
        return bytes(SecretBox(pod.key).decrypt(sealed))
    except CryptoError as exc:
        raise EnvelopeError("cannot decrypt: not a member of this pod, or tampered") from exc


# --------------------------------------------------------------------------- messages


def seal(message: Message, pod: Pod, keys: DeviceKeys) -> bytes:
    """The payload to publish for ``message`` in ``pod``: signed by this device, boxed for the pod."""
    return _box(pod, keys.sign(pad(message.to_json())))


def pad(data: bytes) -> bytes:
    """``data`` followed by spaces up to the next multiple of :data:`PAD_BYTES` (at most
    ``MAX_PAYLOAD_BYTES``, which no valid message exceeds)."""
    size = min(-(-len(data) // PAD_BYTES) * PAD_BYTES, max(len(data), MAX_PAYLOAD_BYTES))
    return data + b" " * (size - len(data))


def _claimed_device(data: bytes) -> str:
    """``from.device`` of an inner message, read before its signature is checked."""
    try:
        inner = json.loads(data.decode("utf-8"))
        device = inner["from"]["device"]
    except (UnicodeDecodeError, ValueError, RecursionError, KeyError, TypeError) as exc:
        raise EnvelopeError("inner message is not a voicehello message") from exc
    if not isinstance(device, str) or not DEVICE_ID.fullmatch(device):
        raise EnvelopeError("inner message has no valid sender")
    return device


def _roster(store_or_roster: PodStore | Mapping[str, str], pod: Pod) -> Mapping[str, str]:
    if isinstance(store_or_roster, PodStore):
        return store_or_roster.get(pod.id).roster
    return store_or_roster


def _check_signer(signed: bytes, device: str, roster: Mapping[str, str]) -> bytes:
    """The signed data, if ``device``'s pinned key signed it."""
    pinned = roster.get(device)
    if pinned is None:
        raise UnknownSenderError(f"unknown sender {device} (no key pinned in this pod)", device)
    try:
        return verify(signed, pinned)
    except EnvelopeError:
        for other, key in roster.items():
            if other != device and _verifies(signed, key):
                raise EnvelopeError(f"{other} signed a message claiming to be from {device}") from None
        raise EnvelopeError(f"bad signature on a message from {device}") from None


def _verifies(signed: bytes, key: str) -> bool:
    try:
        verify(signed, key)
    except EnvelopeError:
        return False
    return True


def open_message(  # noqa: PLR0917 (the signature is pinned: fuzz tests call it positionally)
    payload: bytes,
    pod: Pod,
    store_or_roster: PodStore | Mapping[str, str],
    now: float,
    window_s: float,
    seen: Seen,
    *,
    topic_device: str | None = None,
) -> Message:
    """The message inside ``payload``, once every check passes (else :class:`EnvelopeError`).

    Checks, in order: envelope shape, pod, base64, length, decryption, a pinned key for the
    claimed sender, its signature, the message itself, ``topic_device`` (when given), a
    timestamp at most ``window_s`` ahead of ``now`` (a sender's clock running fast), expiry, and
    last the id (replays). An older timestamp is fine until the message expires: a neighbor that
    was offline gets what it missed late, from the broker's queue, and a replay of a message
    already received is caught by its id (remembered until it expires, across restarts).
    """
    signed = _unbox(payload, pod)
    device = _claimed_device(signed[SIGNATURE_BYTES:])
    data = _check_signer(signed, device, _roster(store_or_roster, pod))
    try:
        message = Message.from_json(data)
    except MessageError as exc:
        raise EnvelopeError(f"signed message from {device} is invalid: {exc}") from exc
    if message.sender.device != device:
        raise EnvelopeError("signed message does not name its signer")
    if topic_device is not None and topic_device != device:
        raise EnvelopeError(f"message from {device} was published as {topic_device}")
    if message.ts - now > window_s:
        raise EnvelopeError(f"message from {device} is dated {message.ts - now:+.0f} s from this clock")
    if message.expired(now):
        raise EnvelopeError(f"message {message.id} from {device} has expired")
    if not seen.first(message.id, message.expires, now):
        raise ReplayError(f"message {message.id} from {device} was already received (replay)")
    return message


# --------------------------------------------------------------------------- key announcements


def seal_key_announcement(
    pod: Pod, keys: DeviceKeys, device: str, name: str, now: float | None = None
) -> bytes:
    """The retained payload announcing this device's verify key in ``pod``."""
    announcement = {
        "v": VERSION,
        "device": device,
        "name": name,
        "key": keys.verify_key_b64,
        "ts": time.time() if now is None else now,
    }
    data = json.dumps(announcement, ensure_ascii=False, separators=(",", ":")).encode()
    return _box(pod, keys.sign(data))


@dataclass(frozen=True)
class KeyAnnouncement:
    """What a device announced on its key topic, its signature checked."""

    device: str
    """The announcing device's id."""
    name: str
    """The display name it wants to be announced with (as sent: clean it before use)."""
    key: str
    """Its verify key (base64), which signed the announcement."""


def open_key_announcement(
    payload: bytes, pod: Pod, now: float, *, topic_device: str | None = None
) -> KeyAnnouncement:
    """The key announcement in ``payload`` (:class:`EnvelopeError` if anything is wrong). The
    caller pins its key and name with :meth:`PodStore.learn`."""
    signed = _unbox(payload, pod)
    announcement = _parse_announcement(signed[SIGNATURE_BYTES:])
    device, key = announcement["device"], announcement["key"]
    verify(signed, key)
    if topic_device is not None and topic_device != device:
        raise EnvelopeError(f"key of {device} was published as {topic_device}")
    if announcement["ts"] > now + MAX_ANNOUNCEMENT_AHEAD_S:
        raise EnvelopeError(f"key announcement of {device} is dated in the future")
    return KeyAnnouncement(device=device, name=announcement["name"], key=key)


def _parse_announcement(data: bytes) -> dict[str, Any]:
    try:
        announcement = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise EnvelopeError("key announcement is not UTF-8 JSON") from exc
    if not isinstance(announcement, dict) or set(announcement) != {"v", "device", "name", "key", "ts"}:
        raise EnvelopeError("key announcement has the wrong shape")
    if announcement["v"] != VERSION or type(announcement["v"]) is not int:
        raise EnvelopeError("key announcement is of an unknown version")
    device, name, key, ts = (announcement[k] for k in ("device", "name", "key", "ts"))
    if not isinstance(device, str) or not DEVICE_ID.fullmatch(device):
        raise EnvelopeError("key announcement has an invalid device id")
    if not isinstance(name, str) or not isinstance(key, str) or len(name) > 60:
        raise EnvelopeError("key announcement has an invalid name or key")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
        raise EnvelopeError("key announcement has an invalid timestamp")
    return announcement
