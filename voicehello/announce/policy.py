"""Which neighbors' messages are spoken, when: expiry, duplicates, mute, quiet hours, rate limit.

Pure logic with injected clocks (``clock`` for Unix time, ``local_time`` for the wall-clock time
of day), so every rule is unit-testable without waiting. :meth:`AnnouncePolicy.decide` is called
once per message; messages it queues during quiet hours come back from
:meth:`AnnouncePolicy.release` once the quiet hours are over, checked again. With a
:class:`~voicehello.announce.rates.RateWindows` store, the rate-limit windows are written to disk
whenever an announcement is counted, and read back at construction, so they survive a restart.
"""

from __future__ import annotations

import datetime
import heapq
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from voicehello.announce.rates import RateWindows
from voicehello.bus.messages import Message
from voicehello.config import QUIET_HOURS, AnnounceSettings
from voicehello.errors import ConfigError

log = logging.getLogger(__name__)

Action = Literal["speak", "queue", "drop"]

MAX_REMEMBERED_IDS = 20_000
"""Most message ids remembered for duplicate detection (each is forgotten when it expires)."""
MAX_QUEUED = 500
"""Most messages held during quiet hours; later ones are dropped."""
MAX_NEIGHBORS = 1_000
"""Rate-limit windows kept before idle ones are swept."""


@dataclass(frozen=True)
class Decision:
    """What to do with one message, and why (for the log)."""

    action: Action
    reason: str


@dataclass(frozen=True)
class QuietHours:
    """A daily local time range with no announcements; ``start == end`` means none."""

    start: datetime.time
    end: datetime.time

    @classmethod
    def parse(cls, text: str) -> QuietHours | None:
        """``"22:00-07:00"`` -> QuietHours; an empty string -> None."""
        if not text:
            return None
        match = QUIET_HOURS.match(text)
        if match is None:
            raise ConfigError(f"announce.quiet_hours must look like 22:00-07:00, not {text!r}")
        h1, m1, h2, m2 = (int(part) for part in match.groups())
        return cls(datetime.time(h1, m1), datetime.time(h2, m2))

    def contains(self, now: datetime.time) -> bool:
        """True when ``now`` is inside the range (which may wrap midnight); the end is excluded."""
        now = now.replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= now < self.end
        if self.start > self.end:
            return now >= self.start or now < self.end
        return False


def _local_now() -> datetime.time:
    return datetime.datetime.now().time()


class AnnouncePolicy:
    """Applies :class:`~voicehello.config.AnnounceSettings` rules to incoming messages, in order:
    expired -> drop; duplicate id -> drop; muted sender -> drop; quiet hours -> queue or drop
    (``quiet_mode``); over the sender's rate limit -> drop; else speak.

    Not thread-safe: one thread (the announcer's) owns it.
    """

    def __init__(
        self,
        settings: AnnounceSettings,
        clock: Callable[[], float] = time.time,
        local_time: Callable[[], datetime.time] | None = None,
        *,
        rates: RateWindows | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.local_time = local_time or _local_now
        self.quiet = QuietHours.parse(settings.quiet_hours)
        self._muted = frozenset(settings.mute)
        self._seen: dict[str, float] = {}
        """Message id -> its expiry time."""
        self._expiries: list[tuple[float, str]] = []
        """Heap of (expiry, id), to forget ids once their messages have expired."""
        self._rates = rates
        self._windows: dict[str, deque[float]] = (
            rates.load(clock(), settings.rate_window_s) if rates is not None else {}
        )
        """Sender device -> times of its recent spoken announcements."""
        self._queued: OrderedDict[str, Message] = OrderedDict()

    # -- rules ---------------------------------------------------------------------------
    def decide(self, message: Message) -> Decision:
        """The decision for a newly arrived message (queued ones are kept here until released)."""
        now = self.clock()
        self._forget_expired(now)
        if message.expired(now):
            return Decision("drop", "expired")
        if message.id in self._seen:
            return Decision("drop", "duplicate")
        self._remember(message)
        if message.sender.device in self._muted:
            return Decision("drop", f"{message.sender.device} is muted")
        if self.in_quiet_hours():
            if self.settings.quiet_mode == "drop":
                return Decision("drop", "quiet hours")
            if len(self._queued) >= MAX_QUEUED:
                return Decision("drop", f"quiet-hours queue is full ({MAX_QUEUED})")
            self._queued[message.id] = message
            return Decision("queue", "quiet hours")
        return self._rate_limited(message, now) or Decision("speak", "ok")

    def in_quiet_hours(self) -> bool:
        """True while the configured quiet hours last."""
        return self.quiet is not None and self.quiet.contains(self.local_time())

    def _rate_limited(self, message: Message, now: float) -> Decision | None:
        """Count ``message`` against its sender's sliding window, or say why it is over."""
        window = self._windows.setdefault(message.sender.device, deque())
        while window and window[0] <= now - self.settings.rate_window_s:
            window.popleft()
        if len(window) >= self.settings.rate_limit:
            return Decision(
                "drop",
                f"rate limit: {message.sender.device} already had {len(window)} in "
                f"{self.settings.rate_window_s:g} s",
            )
        window.append(now)
        if len(self._windows) > MAX_NEIGHBORS:
            self._sweep_windows(now)
        if self._rates is not None:  # on disk before the announcement is spoken
            self._rates.save(self._windows, now, self.settings.rate_window_s)
        return None

    def _sweep_windows(self, now: float) -> None:
        cutoff = now - self.settings.rate_window_s
        for device in [d for d, w in self._windows.items() if not w or w[-1] <= cutoff]:
            del self._windows[device]

    # -- duplicates ----------------------------------------------------------------------
    def _remember(self, message: Message) -> None:
        self._seen[message.id] = message.expires
        heapq.heappush(self._expiries, (message.expires, message.id))
        while len(self._seen) > MAX_REMEMBERED_IDS:  # forget the soonest to expire
            _, oldest = heapq.heappop(self._expiries)
            self._seen.pop(oldest, None)

    def _forget_expired(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            _, message_id = heapq.heappop(self._expiries)
            self._seen.pop(message_id, None)

    # -- the quiet-hours queue -----------------------------------------------------------
    @property
    def queued(self) -> list[Message]:
        """Messages held for after the quiet hours, oldest first."""
        return list(self._queued.values())

    def cancel(self, message_id: str) -> bool:
        """Take a queued message back; True when it was queued."""
        return self._queued.pop(message_id, None) is not None

    def release(self) -> list[tuple[Message, Decision]]:
        """Once the quiet hours are over: every queued message, oldest first, with a new
        decision (``speak``, or ``drop`` when it expired meanwhile or is over the rate limit).
        During quiet hours (or with nothing queued): an empty list."""
        if not self._queued or self.in_quiet_hours():
            return []
        now = self.clock()
        released: list[tuple[Message, Decision]] = []
        while self._queued:
            _, message = self._queued.popitem(last=False)
            if message.expired(now):
                released.append((message, Decision("drop", "expired during quiet hours")))
                continue
            limited = self._rate_limited(message, now)
            released.append((message, limited or Decision("speak", "quiet hours are over")))
        return released
