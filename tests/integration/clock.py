"""A clock a test moves on by hand, for expiry that is not the broker's to test.

``ShiftedClock`` is the wall clock plus the seconds the test has added with :meth:`advance`.
It starts at the real time (messages made by ``new_message`` or a raw client, which stamp the
real time, are fresh to it) and jumps ahead when the test says so: a message held for a key
that never comes, a pod that ends, a time window passed all happen at once, on any machine,
instead of after a real wait.
"""

from __future__ import annotations

import threading
import time


class ShiftedClock:
    """``clock()``: ``time.time()`` plus what :meth:`advance` added (thread-safe)."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` ahead of the wall clock (on top of earlier advances)."""
        with self._lock:
            self._offset += seconds
