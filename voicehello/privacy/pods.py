"""Pods: circles of neighbors sharing one secret-box key, handed out as a one-line invite code.

Each pod is stored as ``keys_dir/pods/<id>.json`` (mode 0600). A pod with an expiry is forgotten
(its file, and so its key, deleted) once that time has passed.

Invite code: ``vh1-`` then lower-case base32 (no padding) in dash-separated groups of four, of::

    version u8 (=2) | pod id 8 bytes | key 32 bytes | expires u32 (0 = never) | port u16 |
    flags u8 (bit 0 = TLS) | name length u8 | name UTF-8 | host length u8 | host UTF-8 |
    inviter id length u8 | inviter id | inviter's verify key 32 bytes (absent when no inviter) |
    checksum: first 4 bytes of BLAKE2b of everything before it

The inviter's key is pinned in the pod's roster when the code is used: the key of the neighbor
who handed over the code is learned at joining, not from the bus. Version 1 codes (no inviter)
are still accepted.

When typing a code, case, spaces and dashes do not matter, and ``0``/``1``/``8`` are read as
``o``/``l``/``b`` (they are not base32 letters).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nacl.secret import SecretBox

from voicehello.config import DEVICE_ID
from voicehello.errors import InviteError, PrivacyError
from voicehello.privacy.keys import is_verify_key, private_dir, read_private, write_private

log = logging.getLogger(__name__)

POD_ID = re.compile(r"^[0-9a-f]{16}\Z")
INVITE_PREFIX = "vh1-"
INVITE_VERSION = 2
KNOWN_INVITE_VERSIONS = (1, 2)
GROUP = 4
_HEAD = struct.Struct(">B8s32sIHB")
_CHECKSUM_BYTES = 4
VERIFY_KEY_BYTES = 32
_TLS = 0x01
_TYPO_FIXES = str.maketrans({"0": "o", "1": "l", "8": "b"})


@dataclass(frozen=True)
class Pod:
    """One circle of neighbors."""

    id: str
    """16 lower-case hex digits; the ``<pod>`` topic level."""
    name: str
    """What people call it (lower-case letters, digits and ``-``)."""
    key: bytes = field(repr=False)
    """The 32-byte secret-box key every member holds."""
    expires: float | None
    """Unix time the pod ends (its key is then deleted); ``None`` for a pod that never ends."""
    host: str = ""
    """The broker the pod meets on (empty: this device's configured broker)."""
    port: int = 1883
    tls: bool = False
    roster: dict[str, str] = field(default_factory=dict, hash=False)
    """Device id -> verify key (base64) pinned the first time it was seen in this pod."""

    def expired(self, now: float) -> bool:
        """True once the pod's time is over."""
        return self.expires is not None and self.expires <= now

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored in ``pods/<id>.json``."""
        return {
            "v": 1,
            "id": self.id,
            "name": self.name,
            "key": base64.b64encode(self.key).decode("ascii"),
            "expires": self.expires,
            "host": self.host,
            "port": self.port,
            "tls": self.tls,
            "roster": dict(self.roster),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Pod:
        """Parse a stored pod (:class:`PrivacyError` when malformed)."""
        try:
            pod = cls(
                id=str(data["id"]),
                name=str(data["name"]),
                key=base64.b64decode(data["key"], validate=True),
                expires=None if data["expires"] is None else float(data["expires"]),
                host=str(data["host"]),
                port=int(data["port"]),
                tls=bool(data["tls"]),
                roster={str(k): str(v) for k, v in dict(data["roster"]).items()},
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise PrivacyError(f"malformed pod file: {exc}") from exc
        _check_pod(pod, PrivacyError)
        return pod


def pod_name(text: str) -> str:
    """What people call a pod, as stored: "Block Party" -> ``block-party``."""
    return "-".join(text.lower().replace("_", " ").split())


def _check_pod(pod: Pod, error: type[PrivacyError]) -> None:
    if not POD_ID.match(pod.id):
        raise error("pod id must be 16 lower-case hex digits")
    if not DEVICE_ID.fullmatch(pod.name):
        raise error("pod name must be 1-32 lower-case letters, digits or '-'")
    if len(pod.key) != SecretBox.KEY_SIZE:
        raise error("pod key must be 32 bytes")
    if not 0 < pod.port < 65536 or len(pod.host.encode()) > 255:
        raise error("pod broker address is invalid")


# --------------------------------------------------------------------------- invite codes


def _checksum(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=_CHECKSUM_BYTES, person=b"voicehello-inv").digest()


def encode_invite(pod: Pod, inviter: tuple[str, str] | None = None) -> str:
    """The one-line invite code for ``pod``; ``inviter`` = (device id, verify key base64) of the
    member handing it out, whose key joiners pin (the rest of the roster is not included)."""
    name, host = pod.name.encode(), pod.host.encode()
    expires = 0 if pod.expires is None else math.ceil(pod.expires)
    body = _HEAD.pack(
        INVITE_VERSION,
        bytes.fromhex(pod.id),
        pod.key,
        expires,
        pod.port,
        _TLS if pod.tls else 0,
    )
    body += bytes([len(name)]) + name + bytes([len(host)]) + host
    if inviter is None:
        body += bytes([0])
    else:
        device, key = inviter
        body += bytes([len(device)]) + device.encode() + base64.b64decode(key, validate=True)
    text = base64.b32encode(body + _checksum(body)).decode("ascii").rstrip("=").lower()
    return INVITE_PREFIX + "-".join(text[i : i + GROUP] for i in range(0, len(text), GROUP))


def decode_invite(code: str) -> Pod:
    """The pod an invite code describes, expired or not (:class:`InviteError` when garbled)."""
    text = "".join(code.split()).lower()
    if not text.startswith(INVITE_PREFIX):
        raise InviteError(f"not a voicehello invite (codes start with {INVITE_PREFIX!r})")
    letters = text[len(INVITE_PREFIX) :].replace("-", "").translate(_TYPO_FIXES).upper()
    try:
        raw = base64.b32decode(letters + "=" * (-len(letters) % 8))
    except (binascii.Error, ValueError) as exc:
        raise InviteError("invite code is garbled (check each group of letters)") from exc
    body, checksum = raw[:-_CHECKSUM_BYTES], raw[-_CHECKSUM_BYTES:]
    if len(body) < _HEAD.size + 2 or not hmac.compare_digest(checksum, _checksum(body)):
        raise InviteError("invite code has a typo (its checksum does not match)")
    return _parse_invite_body(body)


def _parse_invite_body(body: bytes) -> Pod:
    version, pod_id, key, expires, port, flags = _HEAD.unpack_from(body)
    if version not in KNOWN_INVITE_VERSIONS:
        raise InviteError(f"invite is of an unknown version {version}; update voicehello")
    roster: dict[str, str] = {}
    try:
        at = _HEAD.size
        name, at = _take_string(body, at)
        host, at = _take_string(body, at)
        if version >= 2:
            inviter, at = _take_string(body, at)
            if inviter:
                verify_key, at = body[at : at + VERIFY_KEY_BYTES], at + VERIFY_KEY_BYTES
                roster[inviter] = base64.b64encode(verify_key).decode("ascii")
    except (IndexError, UnicodeDecodeError) as exc:
        raise InviteError("invite code is malformed") from exc
    if at != len(body) or any(not DEVICE_ID.fullmatch(device) for device in roster):
        raise InviteError("invite code is malformed")
    pod = Pod(
        id=pod_id.hex(),
        name=name,
        key=key,
        expires=None if expires == 0 else float(expires),
        host=host,
        port=port,
        tls=bool(flags & _TLS),
        roster=roster,
    )
    _check_pod(pod, InviteError)
    return pod


def _take_string(body: bytes, at: int) -> tuple[str, int]:
    size = body[at]
    end = at + 1 + size
    if end > len(body):
        raise IndexError("string runs past the end")
    return body[at + 1 : end].decode("utf-8"), end


def clock_time(when: float) -> str:
    """``HH:MM`` local time, with the date when it is not today."""
    local = time.localtime(when)
    if time.strftime("%Y-%m-%d", local) == time.strftime("%Y-%m-%d"):
        return time.strftime("%H:%M", local)
    return time.strftime("%Y-%m-%d %H:%M", local)


# --------------------------------------------------------------------------- the store


class PodStore:
    """The pods this device belongs to, in ``keys_dir/pods/``."""

    def __init__(self, keys_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.keys_dir = keys_dir
        self.directory = keys_dir / "pods"
        self._clock = clock
        self._ignored: set[Path] = set()
        self._learning = threading.Lock()  # learn() reads, changes and writes a pod file

    def _path(self, pod_id: str) -> Path:
        return self.directory / f"{pod_id}.json"

    def _save(self, pod: Pod) -> None:
        private_dir(self.keys_dir)  # mkdir(parents=True) would make it with the umask's mode
        private_dir(self.directory)
        data = json.dumps(pod.to_dict(), indent=1, sort_keys=True).encode()
        try:
            write_private(self._path(pod.id), data)
        except OSError as exc:
            raise PrivacyError(f"cannot write {self._path(pod.id)}: {exc.strerror or exc}") from exc

    def _forget(self, pod: Pod) -> None:
        self._path(pod.id).unlink(missing_ok=True)

    def create(
        self, name: str, hours: float | None, host: str = "", port: int = 1883, tls: bool = False
    ) -> Pod:
        """A new pod with a fresh random key, lasting ``hours`` (``None``: no end)."""
        if hours is not None and not (math.isfinite(hours) and 0 < hours <= 24 * 365):
            raise PrivacyError("a pod lasts more than 0 hours and at most a year (or use --forever)")
        expires = None if hours is None else float(math.ceil(self._clock() + hours * 3600))
        pod = Pod(
            id=secrets.token_hex(8),
            name=pod_name(name),
            key=secrets.token_bytes(SecretBox.KEY_SIZE),
            expires=expires,
            host=host,
            port=port,
            tls=tls,
        )
        _check_pod(pod, PrivacyError)
        self._refuse_name_clash(pod)
        self._save(pod)
        log.info("created pod %s (%s)", pod.name, pod.id)
        return pod

    def _refuse_name_clash(self, pod: Pod) -> None:
        for other in self.list():
            if other.name == pod.name and other.id != pod.id:
                raise PrivacyError(
                    f"you are already in a pod named {pod.name!r} ({other.id}); leave it first"
                )

    def invite(self, pod: Pod, inviter: tuple[str, str] | None = None) -> str:
        """The one-line invite code neighbors type (or hear, or scan) to join ``pod``, carrying
        ``inviter`` = (device id, verify key) for them to pin."""
        return encode_invite(pod, inviter)

    def join(self, code: str) -> Pod:
        """Join the pod of an invite code (:class:`InviteError` if garbled, mistyped or expired)."""
        pod = decode_invite(code)
        if pod.expired(self._clock()):
            assert pod.expires is not None
            raise InviteError(f"this invite expired at {clock_time(pod.expires)}")
        existing = self._load(pod.id)
        if existing is not None and existing.key == pod.key:
            for device, key in pod.roster.items():  # another member's invite: pin its key too
                self.learn(pod.id, device, key)
            return self._load(pod.id) or existing
        self._refuse_name_clash(pod)
        self._save(pod)
        log.info("joined pod %s (%s)", pod.name, pod.id)
        return pod

    def _load(self, pod_id: str) -> Pod | None:
        """The stored pod ``pod_id`` (``None`` when absent, malformed or over, then deleted)."""
        path = self._path(pod_id)
        if not path.exists():
            return None
        try:
            pod = Pod.from_dict(json.loads(read_private(path)))
        except (PrivacyError, ValueError) as exc:
            if path not in self._ignored:  # the bus re-reads the pods every second: say it once
                log.warning("ignoring %s: %s", path, exc)
                self._ignored.add(path)
            return None
        if pod.expired(self._clock()):
            log.info("pod %s (%s) is over: deleting its key", pod.name, pod.id)
            self._forget(pod)
            return None
        return pod

    def list(self) -> list[Pod]:
        """Every current pod, by name; pods whose time is over are forgotten (files deleted)."""
        if not self.directory.is_dir():
            return []
        pods = [self._load(path.stem) for path in sorted(self.directory.glob("*.json"))]
        return sorted((pod for pod in pods if pod is not None), key=lambda pod: (pod.name, pod.id))

    def get(self, pod_id_or_name: str) -> Pod:
        """The pod with this id or name (:class:`PrivacyError` when there is none)."""
        if POD_ID.match(pod_id_or_name):
            pod = self._load(pod_id_or_name)
            if pod is not None:
                return pod
        for pod in self.list():
            if pod.name == pod_name(pod_id_or_name):
                return pod
        raise PrivacyError(f"no pod {pod_id_or_name!r} (see `voicehello pod list`)")

    def leave(self, pod_id_or_name: str) -> Pod:
        """Leave a pod: its file and key are deleted. Returns the pod left."""
        pod = self.get(pod_id_or_name)
        self._forget(pod)
        log.info("left pod %s (%s)", pod.name, pod.id)
        return pod

    def learn(self, pod_id: str, device: str, verify_key_b64: str) -> bool:
        """Trust on first use: pin ``device``'s key in the pod the first time it is seen.

        True when the key is (now) the pinned one; False, with a log line, for a different key
        than the pinned one, an unknown or finished pod, or a malformed device id or key.
        """
        with self._learning:
            return self._learn(pod_id, device, verify_key_b64)

    def _learn(self, pod_id: str, device: str, verify_key_b64: str) -> bool:
        pod = self._load(pod_id) if POD_ID.match(pod_id) else None
        if pod is None:
            log.warning("not pinning a key for %s: no current pod %s", device, pod_id)
            return False
        if not DEVICE_ID.fullmatch(device) or not is_verify_key(verify_key_b64):
            log.warning("not pinning a malformed key announcement in pod %s", pod.name)
            return False
        pinned = pod.roster.get(device)
        if pinned == verify_key_b64:
            return True
        if pinned is not None:
            log.warning(
                "refused a new key for %s in pod %s: a different key is pinned (leave and rejoin to reset)",
                device,
                pod.name,
            )
            return False
        self._save(replace(pod, roster={**pod.roster, device: verify_key_b64}))
        log.info("pinned the key of %s in pod %s", device, pod.name)
        return True
