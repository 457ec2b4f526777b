"""Messages held for quiet hours, kept sealed on disk so that a restart does not lose them.

The bus :meth:`~HeldMessages.note`\\ s the sealed form of each message it delivers (in memory:
the envelope's bytes exactly as they came from the broker, with the pod id and the device of
the topic, never the plaintext). When the announcer's policy holds a message for after the
quiet hours, :meth:`~HeldMessages.keep` writes that sealed form to ``keys_dir/held/<id>.json``
(owner-only, fsync'd); once the message is spoken, printed or dropped (expired, cancelled, ...)
:meth:`~HeldMessages.forget` deletes it, and a pod left or over takes its held messages with it
(:meth:`~HeldMessages.forget_pod`: they could not be opened any more). At start the bus opens
what :meth:`~HeldMessages.stored` returns again with the pod key and delivers it once more.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicehello.errors import PrivacyError
from voicehello.privacy.durable import remove_durable, write_durable
from voicehello.privacy.keys import read_private

log = logging.getLogger(__name__)

HELD_DIR = "held"
"""In the keys directory: one file per message held for quiet hours (sealed)."""
NOTE_LIMIT = 1_000
"""Most sealed forms of delivered messages remembered in memory until the announcer decides."""
MESSAGE_ID = re.compile(r"^[0-9a-f]{32}$")
"""A message id (the schema's pattern): the only names a held file can have."""


@dataclass(frozen=True)
class Sealed:
    """One message as it came from the broker: still sealed, and where it was said."""

    message_id: str
    expires: float
    pod: str
    """The id of the pod whose key opens it."""
    device: str
    """The device its topic named (the message must name the same)."""
    payload: bytes
    """The envelope, byte for byte as received."""

    def to_json(self) -> bytes:
        """The held file's contents (no plaintext: the payload stays sealed)."""
        data = {
            "v": 1,
            "id": self.message_id,
            "expires": self.expires,
            "pod": self.pod,
            "device": self.device,
            "payload": base64.b64encode(self.payload).decode("ascii"),
        }
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Sealed:
        """Read a held file back (:class:`PrivacyError` when it is not one)."""
        try:
            data: Any = json.loads(raw)
            sealed = cls(
                message_id=str(data["id"]),
                expires=float(data["expires"]),
                pod=str(data["pod"]),
                device=str(data["device"]),
                payload=base64.b64decode(str(data["payload"]), validate=True),
            )
        except (ValueError, TypeError, KeyError, binascii.Error) as exc:
            raise PrivacyError(f"not a held message ({exc.__class__.__name__})") from exc
        if data.get("v") != 1 or not MESSAGE_ID.match(sealed.message_id):
            raise PrivacyError("not a held message (version or id)")
        return sealed


class HeldMessages:
    """The sealed messages held for quiet hours, in ``keys_dir/held``. Thread-safe."""

    def __init__(self, keys_dir: Path) -> None:
        self.directory = keys_dir / HELD_DIR
        self._lock = threading.Lock()
        self._notes: OrderedDict[str, Sealed] = OrderedDict()
        self._kept: dict[str, str] = {}
        """Message id -> pod id, for the messages on disk."""

    def note(self, sealed: Sealed) -> None:
        """Remember the sealed form of a message being delivered (memory only, bounded)."""
        with self._lock:
            self._notes[sealed.message_id] = sealed
            while len(self._notes) > NOTE_LIMIT:
                self._notes.popitem(last=False)

    def keep(self, message_id: str) -> bool:
        """Write the noted sealed form of ``message_id`` to disk; False (with a log line when it
        could not be written) when it is only held in memory."""
        with self._lock:
            if message_id in self._kept:
                return True
            sealed = self._notes.get(message_id)
        if sealed is None or not MESSAGE_ID.match(message_id):
            return False
        try:
            write_durable(self._path(message_id), sealed.to_json())
        except PrivacyError as exc:
            log.warning("message %s held in memory only (lost on a restart): %s", message_id[:8], exc)
            return False
        with self._lock:
            self._kept[message_id] = sealed.pod
        return True

    def forget(self, message_id: str) -> None:
        """``message_id`` was spoken, printed or dropped: delete its held file, if any."""
        with self._lock:
            self._notes.pop(message_id, None)
            kept = self._kept.pop(message_id, None)
        if kept is not None:
            self._remove(message_id)

    def forget_pod(self, pod_id: str) -> int:
        """Delete the held messages of a pod left or over; how many there were."""
        with self._lock:
            gone = [message_id for message_id, pod in self._kept.items() if pod == pod_id]
            for message_id in gone:
                del self._kept[message_id]
            for message_id in [m for m, sealed in self._notes.items() if sealed.pod == pod_id]:
                del self._notes[message_id]
        for message_id in gone:
            self._remove(message_id)
        if gone:
            log.info(
                "deleted %d message(s) held for quiet hours in pod %s: it is over or left", len(gone), pod_id
            )
        return len(gone)

    def stored(self) -> list[Sealed]:
        """The held messages on disk (after a restart), oldest to expire first. A file that
        cannot be read is reported in one line and deleted."""
        if not self.directory.is_dir():
            return []
        found: list[Sealed] = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                sealed = Sealed.from_json(read_private(path))
                if path.stem != sealed.message_id:
                    raise PrivacyError("its name is not its message's id")
            except PrivacyError as exc:
                log.warning("cannot restore the held message in %s: %s; deleted", path.name, exc)
                self._remove_path(path)
                continue
            found.append(sealed)
        with self._lock:
            for sealed in found:
                self._kept[sealed.message_id] = sealed.pod
        return sorted(found, key=lambda sealed: sealed.expires)

    @property
    def kept(self) -> int:
        """How many held messages are on disk."""
        with self._lock:
            return len(self._kept)

    def _path(self, message_id: str) -> Path:
        return self.directory / f"{message_id}.json"

    def _remove(self, message_id: str) -> None:
        self._remove_path(self._path(message_id))

    @staticmethod
    def _remove_path(path: Path) -> None:
        try:
            remove_durable(path)
        except PrivacyError as exc:
            log.warning("%s", exc)
