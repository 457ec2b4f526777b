"""Which messages this device has received: ids kept until their messages expire, across restarts.

QoS 1 redeliveries, resends after a reconnect and replays by whoever can publish to the broker
all carry an id already received; :class:`SeenIds` remembers the ids (and when each message
expires, no content). Once :meth:`SeenIds.keep_in` gave it the keys directory, every new id is
on disk before :meth:`SeenIds.first` returns, so before its message is delivered: a line
``<id> <expires>`` appended to :data:`SEEN_LOG` and fsync'd. The log is compacted into
:data:`SEEN_FILE` (written atomically) at start, at stop and whenever it has grown to twice the
ids remembered, so a device killed at any moment still refuses a replay after it restarts.
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
from pathlib import Path

from voicehello.errors import PrivacyError
from voicehello.privacy.durable import AppendLog, write_durable
from voicehello.privacy.keys import read_private

log = logging.getLogger(__name__)

SEEN_LIMIT = 10_000
"""Most message ids remembered for deduplication (each until its message expires)."""
SEEN_FILE = "seen.json"
"""In the keys directory: the ids of messages received and not yet expired, as of the last
compaction (ids and expiry times only)."""
SEEN_LOG = "seen.log"
"""In the keys directory: ``<id> <expires>`` lines, one per id received since the last compaction."""
COMPACT_MIN_LINES = 1_000
"""The log is compacted once it has this many lines and twice as many as ids remembered."""


class SeenIds:
    """Ids of messages already delivered, each kept until its message expires (at most ``limit``).

    Thread-safe. In memory only until :meth:`keep_in`; then each new id is written to disk
    (fsync'd, owner-only) before :meth:`first` says it is new, and :meth:`close` compacts."""

    def __init__(self, limit: int = SEEN_LIMIT) -> None:
        self._limit = limit
        self._expires: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._log: AppendLog | None = None
        self._snapshot: Path | None = None
        self._failing = False

    def __len__(self) -> int:
        with self._lock:
            return len(self._expires)

    def first(self, message_id: str, expires: float, now: float) -> bool:
        """True the first time ``message_id`` is seen (and remember it, on disk once kept)."""
        with self._lock:
            self._forget_expired(now)
            if message_id in self._expires:
                return False
            self._add(message_id, expires)
            self._write(message_id, expires, now)
            return True

    def entries(self, now: float) -> dict[str, float]:
        """The ids remembered (id -> expiry)."""
        with self._lock:
            self._forget_expired(now)
            return dict(self._expires)

    def remember(self, entries: dict[str, float], now: float) -> None:
        """Add ids saved earlier (those not yet expired)."""
        with self._lock:
            for message_id, expires in entries.items():
                if expires > now and message_id not in self._expires:
                    self._add(message_id, expires)

    # -- on disk ----------------------------------------------------------------------------
    def keep_in(self, directory: Path, now: float) -> None:
        """Load the ids saved in ``directory`` before a restart (snapshot and log), compact them
        into a fresh snapshot, and from now on append each new id to the log. Files that cannot
        be read or written: one warning, and the ids are kept in memory only."""
        snapshot, log_path = directory / SEEN_FILE, directory / SEEN_LOG
        saved = _read_snapshot(snapshot)
        saved.update(_read_log(log_path))
        self.remember(saved, now)
        with self._lock:
            self._snapshot = snapshot
            self._log = AppendLog(log_path)
            try:
                self._log.open()
            except PrivacyError as exc:
                log.warning("ids of messages received kept in memory only: %s", exc)
                self._log = None
                return
            self._compact(now)

    def close(self, now: float) -> None:
        """Compact the log into the snapshot and close it (idempotent)."""
        with self._lock:
            if self._log is None:
                return
            self._compact(now)
            self._log.close()
            self._log = None

    def _write(self, message_id: str, expires: float, now: float) -> None:
        """Append one id to the log (lock held); a failure is logged once, not raised: the id
        stays remembered in memory and the message is still delivered."""
        if self._log is None:
            return
        try:
            self._log.append(f"{message_id} {expires!r}")
        except OSError as exc:
            if not self._failing:
                log.error("cannot write the id of a message received to %s: %s", self._log.path, exc)
            self._failing = True
            return
        self._failing = False
        if self._log.lines >= max(COMPACT_MIN_LINES, 2 * len(self._expires)):
            self._compact(now)

    def _compact(self, now: float) -> None:
        """Write every id remembered to the snapshot, then empty the log (lock held)."""
        if self._log is None or self._snapshot is None:
            return
        self._forget_expired(now)
        data = {"v": 1, "seen": self._expires}
        try:
            write_durable(self._snapshot, json.dumps(data, separators=(",", ":")).encode())
            self._log.empty()  # only once the snapshot holds everything the log said
        except (PrivacyError, OSError) as exc:
            log.warning("cannot compact the ids of messages received into %s: %s", self._snapshot, exc)

    # -- memory -----------------------------------------------------------------------------
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


def _read_snapshot(path: Path) -> dict[str, float]:
    """The ids in a snapshot (a missing or bad file: none, with a warning for a bad one)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(read_private(path))
        return {str(key): float(value) for key, value in dict(data["seen"]).items()}
    except (PrivacyError, OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return {}


def _read_log(path: Path) -> dict[str, float]:
    """The ids in the log; lines that do not parse (a write cut short by a crash) are skipped
    with one warning."""
    if not path.exists():
        return {}
    try:
        text = read_private(path).decode("utf-8", errors="replace")
    except PrivacyError as exc:
        log.warning("ignoring %s: %s", path, exc)
        return {}
    entries: dict[str, float] = {}
    bad = 0
    for line in text.splitlines():
        message_id, _, expires = line.partition(" ")
        try:
            entries[message_id] = float(expires)
        except ValueError:
            bad += 1
    if bad:
        log.warning("ignored %d unreadable line(s) of %s", bad, path)
    return entries
