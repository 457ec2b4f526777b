"""Pods: circles of neighbors sharing one secret-box key, handed out as a one-line invite code.

Each pod is stored as ``keys_dir/pods/<id>.json`` (mode 0600). A pod with an expiry is forgotten
(its file, and so its key, deleted) once that time has passed. Its roster holds, per device, a
:class:`Member`: the verify key pinned for it, the display name pinned with that key (the only
name ever spoken for it), and what is still unconfirmed or contested (old files whose roster maps
device -> key are still read).

Invite code: ``vh1-`` then lower-case base32 (no padding) in dash-separated groups of four, of::

    version u8 (=3) | pod id 8 bytes | key 32 bytes | expires u32 (0 = never) | port u16 |
    flags u8 (bit 0 = TLS) | name length u8 | name UTF-8 | host length u8 | host UTF-8 |
    inviter id length u8 | inviter id | inviter's verify key 32 bytes |
    signature: 64-byte Ed25519 signature by the inviter's key of b"voicehello-invite" + everything before it

The signature ties every field to the key in the code, and catches typos as a checksum would.
It does not prove the key is the named inviter's: anyone can sign a code naming "maya" with
their own key. So the joiner keeps the inviter's key as *provisional* (never used to open a
message) until the key announced on the inviter's own key topic (which, on a hardened broker,
only the inviter's broker account may publish) confirms it. When that topic announces another
key, the topic's key is pinned and the conflict is reported (a log line and ``pod members``).

Older codes are still read: version 2 (the same fields, an inviter optional, then a 4-byte
checksum: BLAKE2b of everything before it, instead of the signature; still written for a code
without an inviter) and version 1 (no inviter fields). Their inviter key is provisional too.

When typing a code, case and any run of spaces or dashes do not matter (also in place of the
``vh1-`` dash), and ``0``/``1``/``8`` are read as ``o``/``l``/``b`` (they are not base32 letters).
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

from voicehello.cleaning import clean_text
from voicehello.config import DEVICE_ID
from voicehello.errors import EnvelopeError, InviteError, PrivacyError
from voicehello.privacy.keys import (
    SIGNATURE_BYTES,
    DeviceKeys,
    fingerprint,
    is_verify_key,
    private_dir,
    read_private,
    verify,
    write_private,
)

log = logging.getLogger(__name__)

POD_ID = re.compile(r"^[0-9a-f]{16}\Z")
INVITE_PREFIX = "vh1-"
INVITE_VERSION = 3
"""Written when the code has an inviter (signed by the inviter's key)."""
UNSIGNED_INVITE_VERSION = 2
"""Written for a code without an inviter (checksummed)."""
KNOWN_INVITE_VERSIONS = (1, 2, 3)
GROUP = 4
_HEAD = struct.Struct(">B8s32sIHB")
_CHECKSUM_BYTES = 4
_SIGNED_CONTEXT = b"voicehello-invite"
VERIFY_KEY_BYTES = 32
_TLS = 0x01
_TYPO_FIXES = str.maketrans({"0": "o", "1": "l", "8": "b"})
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212]+")
"""Any run of spaces or dashes (also the typographic ones a pasted code may carry)."""
MAX_NAME_CHARS = 60
"""Longest display name pinned (a key announcement's limit)."""
CLAIMED = "someone calling themselves "
"""Spoken before a name another device of the pod holds."""
SHARED_NAMES = ("a neighbor",)
"""Names any number of devices may use (the default display name): never marked as taken."""


@dataclass(frozen=True)
class Member:
    """What this device knows of one device in a pod."""

    key: str = ""
    """Verify key (base64) messages from the device must be signed with: this device's own, or
    the first key announced on the device's key topic (trust on first use). Empty while only an
    invite's key is known."""
    invited_key: str = ""
    """The key an invite code gave for the device, provisional until its key topic confirms it
    (never used to open a message)."""
    name: str = ""
    """The display name pinned with the key (cleaned as for speaking): the only name spoken for it."""
    named_at: float = 0.0
    """When the name was pinned: of two devices calling themselves the same, the earlier keeps it."""
    new_name: str = ""
    """Another name later announced with the same key, spoken only once accepted
    (``voicehello pod accept-name``)."""
    refused_invite_key: str = ""
    """A key an invite gave for the device that the device's own key topic contradicted."""

    def to_dict(self) -> dict[str, Any]:
        """The member as stored in the pod file (empty fields left out)."""
        stored = {
            "key": self.key,
            "invited_key": self.invited_key,
            "name": self.name,
            "named_at": self.named_at,
            "new_name": self.new_name,
            "refused_invite_key": self.refused_invite_key,
        }
        return {name: value for name, value in stored.items() if value}

    @classmethod
    def from_stored(cls, data: Any) -> Member:
        """A stored member: a dict, or (old pod files) the pinned key itself."""
        if isinstance(data, str):
            return cls(key=data)
        if not isinstance(data, dict) or not set(data) <= _MEMBER_FIELDS:
            raise ValueError("a roster entry is neither a key nor a member")
        member = cls(
            key=str(data.get("key", "")),
            invited_key=str(data.get("invited_key", "")),
            name=str(data.get("name", "")),
            named_at=float(data.get("named_at", 0.0)),
            new_name=str(data.get("new_name", "")),
            refused_invite_key=str(data.get("refused_invite_key", "")),
        )
        keys = (member.key, member.invited_key, member.refused_invite_key)
        if not any(keys[:2]) or not all(is_verify_key(key) for key in keys if key):
            raise ValueError("a roster entry has no valid key")
        return member


_MEMBER_FIELDS = frozenset({"key", "invited_key", "name", "named_at", "new_name", "refused_invite_key"})


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
    members: dict[str, Member] = field(default_factory=dict, hash=False)
    """Device id -> what is pinned for it in this pod (stored as the pod file's ``roster``)."""

    @property
    def roster(self) -> dict[str, str]:
        """Device id -> the verify key (base64) its messages must be signed with (confirmed keys
        only: a provisional invite key opens nothing)."""
        return {device: member.key for device, member in self.members.items() if member.key}

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
            "roster": {device: member.to_dict() for device, member in self.members.items()},
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
                members={str(k): Member.from_stored(v) for k, v in dict(data["roster"]).items()},
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
    if any(not DEVICE_ID.fullmatch(device) for device in pod.members):
        raise error("pod roster has an invalid device id")


# --------------------------------------------------------------------------- names


def clean_name(text: str) -> str:
    """A display name as pinned and spoken (cleaned as every text from the bus)."""
    return clean_text(text, MAX_NAME_CHARS)


def same_name(one: str, other: str) -> bool:
    """True when two display names sound alike: compared after cleaning, ignoring case, spaces
    and punctuation ("Maya", " maya ", "M.A.Y.A")."""

    def letters(text: str) -> str:
        return "".join(char for char in clean_name(text).casefold() if char.isalnum())

    return bool(letters(one)) and letters(one) == letters(other)


def name_holder(pod: Pod, device: str) -> str | None:
    """The other device of ``pod`` that held ``device``'s pinned name first, if any."""
    member = pod.members.get(device)
    if member is None or not member.name or any(same_name(member.name, shared) for shared in SHARED_NAMES):
        return None
    earlier = [
        (other.named_at, other_id)
        for other_id, other in pod.members.items()
        if other_id != device
        and other.key
        and same_name(other.name, member.name)
        and (other.named_at, other_id) < (member.named_at, device)
    ]
    return min(earlier)[1] if earlier else None


def spoken_name(pod: Pod, device: str) -> str:
    """The name said for ``device``'s messages in ``pod``: its pinned name; "someone calling
    themselves <name>" when another device of the pod held that name first; the device id when
    no name is pinned (never a name carried inside a message)."""
    member = pod.members.get(device)
    if member is None or not member.name:
        return device
    if name_holder(pod, device) is not None:
        return CLAIMED + clean_text(member.name, MAX_NAME_CHARS - len(CLAIMED))
    return member.name


# --------------------------------------------------------------------------- invite codes


def _checksum(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=_CHECKSUM_BYTES, person=b"voicehello-inv").digest()


def encode_invite(pod: Pod, inviter: str = "", keys: DeviceKeys | None = None) -> str:
    """The one-line invite code for ``pod``. With ``inviter`` (this device's id) and ``keys``
    (its key), the code carries the inviter's verify key and is signed with it (version 3);
    without, it is a version 2 code with no inviter (the rest of the roster is never included)."""
    if bool(inviter) != (keys is not None):
        raise PrivacyError("an invite names its inviter together with the inviter's key")
    name, host = pod.name.encode(), pod.host.encode()
    expires = 0 if pod.expires is None else math.ceil(pod.expires)
    version = INVITE_VERSION if keys is not None else UNSIGNED_INVITE_VERSION
    body = _HEAD.pack(version, bytes.fromhex(pod.id), pod.key, expires, pod.port, _TLS if pod.tls else 0)
    body += bytes([len(name)]) + name + bytes([len(host)]) + host
    if keys is None:
        raw = body + bytes([0]) + _checksum(body + bytes([0]))
    else:
        if not DEVICE_ID.fullmatch(inviter):
            raise PrivacyError(f"invalid inviter id {inviter!r}")
        body += bytes([len(inviter)]) + inviter.encode() + base64.b64decode(keys.verify_key_b64)
        raw = body + keys.sign(_SIGNED_CONTEXT + body)[:SIGNATURE_BYTES]
    text = base64.b32encode(raw).decode("ascii").rstrip("=").lower()
    return INVITE_PREFIX + "-".join(text[i : i + GROUP] for i in range(0, len(text), GROUP))


def decode_invite(code: str) -> Pod:
    """The pod an invite code describes, expired or not, its inviter (if any) a member with a
    provisional key (:class:`InviteError` when garbled, mistyped or forged after signing)."""
    text = _SEPARATORS.sub("", code).lower()
    prefix = INVITE_PREFIX.rstrip("-")
    if not text.startswith(prefix):
        raise InviteError(f"not a voicehello invite (codes start with {INVITE_PREFIX!r})")
    letters = text[len(prefix) :].translate(_TYPO_FIXES).upper()
    try:
        raw = base64.b32decode(letters + "=" * (-len(letters) % 8))
    except (binascii.Error, ValueError) as exc:
        raise InviteError("invite code is garbled (check each group of letters)") from exc
    if len(raw) < _HEAD.size + 2 + _CHECKSUM_BYTES:
        raise InviteError("invite code is garbled (it is too short)")
    if raw[0] == INVITE_VERSION:
        return _signed_invite(raw)
    body, checksum = raw[:-_CHECKSUM_BYTES], raw[-_CHECKSUM_BYTES:]
    if not hmac.compare_digest(checksum, _checksum(body)):
        raise InviteError("invite code has a typo (its checksum does not match)")
    return _parse_invite_body(body)


def _signed_invite(raw: bytes) -> Pod:
    """A version 3 code: parsed, then its signature checked with the key it carries."""
    body, signature = raw[:-SIGNATURE_BYTES], raw[-SIGNATURE_BYTES:]
    try:
        pod = _parse_invite_body(body)
    except InviteError as exc:
        raise InviteError("invite code has a typo (its signature does not match)") from exc
    inviters = [member.invited_key for member in pod.members.values()]
    if len(inviters) != 1:
        raise InviteError("invite code has a typo (its signature does not match)")
    try:
        verify(signature + _SIGNED_CONTEXT + body, inviters[0])
    except EnvelopeError as exc:
        raise InviteError("invite code has a typo (its signature does not match)") from exc
    return pod


def _parse_invite_body(body: bytes) -> Pod:
    version, pod_id, key, expires, port, flags = _HEAD.unpack_from(body)
    if version not in KNOWN_INVITE_VERSIONS:
        raise InviteError(f"invite is of an unknown version {version}; update voicehello")
    members: dict[str, Member] = {}
    try:
        at = _HEAD.size
        name, at = _take_string(body, at)
        host, at = _take_string(body, at)
        if version >= 2:
            inviter, at = _take_string(body, at)
            if inviter:
                verify_key, at = body[at : at + VERIFY_KEY_BYTES], at + VERIFY_KEY_BYTES
                members[inviter] = Member(invited_key=base64.b64encode(verify_key).decode("ascii"))
    except (IndexError, UnicodeDecodeError) as exc:
        raise InviteError("invite code is malformed") from exc
    if at != len(body) or any(not DEVICE_ID.fullmatch(device) for device in members):
        raise InviteError("invite code is malformed")
    pod = Pod(
        id=pod_id.hex(),
        name=name,
        key=key,
        expires=None if expires == 0 else float(expires),
        host=host,
        port=port,
        tls=bool(flags & _TLS),
        members=members,
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


def invite_conflict(pod_name_: str, device: str, invited_key: str, announced_key: str) -> str:
    """The one line saying an invite named ``device`` with a key its own key topic contradicts."""
    return (
        f"the invite you joined pod {pod_name_} with named {device} with a key {device} does not use "
        f"(invite {fingerprint(invited_key)}, {device}'s own key topic {fingerprint(announced_key)}): "
        f"{device}'s own key is pinned; whoever gave you that code may be posing as {device}"
    )


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

    def invite(self, pod: Pod, inviter: str = "", keys: DeviceKeys | None = None) -> str:
        """The one-line invite code neighbors type (or hear, or scan) to join ``pod``, signed by
        ``keys`` and naming ``inviter`` (this device) when given."""
        return encode_invite(pod, inviter, keys)

    def join(self, code: str) -> Pod:
        """Join the pod of an invite code (:class:`InviteError` if garbled, mistyped or expired).
        The inviter's key is kept as provisional until its own key topic confirms it."""
        pod = decode_invite(code)
        if pod.expired(self._clock()):
            assert pod.expires is not None
            raise InviteError(f"this invite expired at {clock_time(pod.expires)}")
        existing = self._load(pod.id)
        if existing is not None and existing.key == pod.key:
            for device, member in pod.members.items():  # another member's invite
                self.provisional(pod.id, device, member.invited_key)
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

    # -- pinning keys and names ---------------------------------------------------------------
    def _current(self, pod_id: str, device: str, key: str) -> Pod | None:
        """The pod to pin ``device``'s ``key`` in, or ``None`` (with a log line) when it cannot be."""
        pod = self._load(pod_id) if POD_ID.match(pod_id) else None
        if pod is None:
            log.warning("not pinning a key for %s: no current pod %s", device, pod_id)
            return None
        if not DEVICE_ID.fullmatch(device) or not is_verify_key(key):
            log.warning("not pinning a malformed key announcement in pod %s", pod.name)
            return None
        return pod

    def _update(self, pod: Pod, device: str, before: Member | None, after: Member) -> None:
        if after != before:
            self._save(replace(pod, members={**pod.members, device: after}))

    def learn(self, pod_id: str, device: str, verify_key_b64: str, name: str = "") -> bool:
        """Pin the key (and display name) ``device`` announced on its own key topic in the pod.

        Keys: trust on first use. The first key announced is pinned and a different one later is
        refused; a provisional key from an invite is replaced by the announced one (the broker
        authenticates the topic), the conflict reported in one log line. Names: the first one
        announced with the key is pinned; a different one later waits for
        :meth:`accept_name`. True when the key is (now) the pinned one; False, with a log line,
        for a different key than the pinned one, an unknown or finished pod, or a malformed
        device id or key.
        """
        with self._learning:
            pod = self._current(pod_id, device, verify_key_b64)
            if pod is None:
                return False
            before = pod.members.get(device)
            member = before or Member()
            if member.key and member.key != verify_key_b64:
                log.warning(
                    "refused a new key for %s in pod %s: a different key is pinned (leave and rejoin to reset)",
                    device,
                    pod.name,
                )
                return False
            if not member.key:
                member = self._confirm(pod, device, member, verify_key_b64)
            member = self._announced_name(pod, device, member, name)
            self._update(pod, device, before, member)
            return True

    def _confirm(self, pod: Pod, device: str, member: Member, key: str) -> Member:
        """``member`` with ``key`` pinned: a provisional invite key is confirmed or, when it
        differs, refused with one log line."""
        if member.invited_key and member.invited_key != key:
            log.warning("%s", invite_conflict(pod.name, device, member.invited_key, key))
            return replace(member, key=key, invited_key="", refused_invite_key=member.invited_key)
        if member.invited_key:
            log.info("confirmed the key of %s in pod %s (the invite's key)", device, pod.name)
        else:
            log.info("pinned the key of %s in pod %s", device, pod.name)
        return replace(member, key=key, invited_key="")

    def _announced_name(self, pod: Pod, device: str, member: Member, name: str) -> Member:
        """``member`` after announcing ``name``: pinned if it has none, else held as a new name."""
        name = clean_name(name)
        if not name or name == member.name:
            return replace(member, new_name="") if name else member
        if not member.name:
            return replace(member, name=name, named_at=self._clock(), new_name="")
        if name != member.new_name:
            log.warning(
                "%s in pod %s, who was %r, now calls themselves %r: still announced as %r until you "
                "run `voicehello pod accept-name %s %s`",
                device,
                pod.name,
                member.name,
                name,
                member.name,
                pod.name,
                device,
            )
        return replace(member, new_name=name)

    def pin_own(self, pod_id: str, device: str, verify_key_b64: str, name: str) -> bool:
        """Pin this device's own key and name in the pod (its name as configured, adopted at once).
        False, with a log line, when another key is already pinned for its id."""
        with self._learning:
            pod = self._current(pod_id, device, verify_key_b64)
            if pod is None:
                return False
            before = pod.members.get(device)
            member = before or Member()
            if member.key and member.key != verify_key_b64:
                return False
            if not member.key:
                member = self._confirm(pod, device, member, verify_key_b64)
            name = clean_name(name)
            if name and name != member.name:
                member = replace(member, name=name, named_at=self._clock(), new_name="")
            self._update(pod, device, before, member)
            return True

    def provisional(self, pod_id: str, device: str, verify_key_b64: str) -> None:
        """Keep the key an invite gave for ``device`` as provisional (a pinned key stays: a
        different one is reported as a conflict)."""
        with self._learning:
            pod = self._current(pod_id, device, verify_key_b64)
            if pod is None:
                return
            before = pod.members.get(device)
            member = before or Member()
            if verify_key_b64 in {member.key, member.invited_key}:
                return
            if member.key:
                log.warning("%s", invite_conflict(pod.name, device, verify_key_b64, member.key))
                self._update(pod, device, before, replace(member, refused_invite_key=verify_key_b64))
            elif member.invited_key:
                log.warning(
                    "two invites to pod %s name %s with different keys: %s's own key topic will decide",
                    pod.name,
                    device,
                    device,
                )
            else:
                self._update(pod, device, before, replace(member, invited_key=verify_key_b64))

    def accept_name(self, pod_id_or_name: str, device: str) -> Member:
        """Adopt the new name ``device`` announced in a pod (:class:`PrivacyError` if there is none)."""
        with self._learning:
            pod = self.get(pod_id_or_name)
            member = pod.members.get(device)
            if member is None or not member.new_name:
                raise PrivacyError(f"{device} has announced no new name in pod {pod.name}")
            accepted = replace(member, name=member.new_name, named_at=self._clock(), new_name="")
            self._update(pod, device, member, accepted)
            log.info("%s is now announced as %r in pod %s", device, accepted.name, pod.name)
            return accepted
