"""Which messages this device has received: ids kept until their messages expire, across restarts.

QoS 1 redeliveries, resends after a reconnect and replays by whoever can publish to the broker
all carry an id already received; :class:`SeenIds` remembers the ids (and when each message
expires, no content), and :func:`save_seen` / :func:`load_seen` keep them in the keys directory
so that a device that restarts still refuses a replay.
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
from pathlib import Path

from voicehello.errors import PrivacyError
from voicehello.privacy.keys import private_dir, read_private, write_private

log = logging.getLogger(__name__)

SEEN_LIMIT = 10_000
"""Most message ids remembered for deduplication (each until its message expires)."""
SEEN_FILE = "seen.json"
"""In the keys directory: the ids of messages received and not yet expired (ids and times only)."""


class SeenIds:
    """Ids of messages already delivered, each kept until its message expires (at most ``limit``).

    Thread-safe. :meth:`entries` and :meth:`remember` let the bus keep them across restarts
    (ids and expiry times only), so a message captured off the bus cannot be replayed to a
    device after it restarts."""

    def __init__(self, limit: int = SEEN_LIMIT) -> None:
        self._limit = limit
        self._expires: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self.changed = False
        """True when ids were added since :meth:`entries` was last called."""

    def __len__(self) -> int:
        with self._lock:
            return len(self._expires)

    def first(self, message_id: str, expires: float, now: float) -> bool:
        """True the first time ``message_id`` is seen (and remember it)."""
        with self._lock:
            self._forget_expired(now)
            if message_id in self._expires:
                return False
            self._add(message_id, expires)
            self.changed = True
            return True

    def entries(self, now: float) -> dict[str, float]:
        """The ids remembered (id -> expiry), for saving."""
        with self._lock:
            self._forget_expired(now)
            self.changed = False
            return dict(self._expires)

    def remember(self, entries: dict[str, float], now: float) -> None:
        """Add ids saved earlier (those not yet expired)."""
        with self._lock:
            for message_id, expires in entries.items():
                if expires > now and message_id not in self._expires:
                    self._add(message_id, expires)

    def _add(self, message_id: str, expires: float) -> None:
        self._expires[message_id] = expires
        heapq.heappush(self._heap, (expires, message_id))
        while len(self._expires) > self._limit:  # bounded memory: forget the soonest to expire
            _, old = heapq.heappop(self._heap)
            self._expires.pop(old, None)

    def _forget_expired(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            _, old = heapq.heappop(self._heap)
            self._expires.pop(old, None)


def load_seen(path: Path, seen: SeenIds, now: float) -> None:
    """Remember the ids saved in ``path`` before a restart (a missing or bad file: start afresh)."""
    if not path.exists():
        return
    try:
        data = json.loads(read_private(path))
        entries = {str(key): float(value) for key, value in dict(data["seen"]).items()}
    except (PrivacyError, OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return
    seen.remember(entries, now)


def save_seen(path: Path, seen: SeenIds, now: float) -> None:
    """Write the ids received (until they expire) to ``path``, when there are new ones."""
    if not seen.changed:
        return
    data = {"v": 1, "seen": seen.entries(now)}
    try:
        private_dir(path.parent)
        write_private(path, json.dumps(data, separators=(",", ":")).encode())
    except (PrivacyError, OSError) as exc:
        log.warning("cannot save the ids of messages received to %s: %s", path, exc)
