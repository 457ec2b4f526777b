"""The bus's inbox: one bounded queue per sending device, served in turn.

Opening a sealed message (decrypt, verify, schema check) takes a fraction of a millisecond;
a neighbor flooding the pod would make everyone else's messages wait behind the flood if they
were handled in arrival order. :class:`FairInbox` keeps each sender's messages in order but
serves senders round-robin, so the next message of a quiet neighbor is handled after at most
one message of each other sender with something waiting. Each sender's queue is bounded; when
it is full its oldest message is dropped (and returned, for the caller to log).
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import Generic, TypeVar

T = TypeVar("T")

PER_SENDER = 1000
"""Most messages waiting from one sender."""


class FairInbox(Generic[T]):
    """Per-sender FIFO queues served round-robin (thread-safe)."""

    def __init__(self, per_sender: int = PER_SENDER) -> None:
        if per_sender < 1:
            raise ValueError("per_sender must be >= 1")
        self._per_sender = per_sender
        self._queues: OrderedDict[str, deque[T]] = OrderedDict()
        self._ready = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        with self._ready:
            return sum(len(queue) for queue in self._queues.values())

    def put(self, sender: str, item: T) -> T | None:
        """Queue ``item`` from ``sender``; returns the sender's oldest item if it had to be dropped."""
        with self._ready:
            queue = self._queues.get(sender)
            if queue is None:
                queue = self._queues[sender] = deque()
            queue.append(item)
            dropped = queue.popleft() if len(queue) > self._per_sender else None
            self._ready.notify()
            return dropped

    def get(self, timeout_s: float | None = None) -> T | None:
        """The next item, the senders taken in turn; ``None`` after ``timeout_s`` or once closed."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._queues or self._closed, timeout_s):
                return None
            if self._closed:
                return None
            sender, queue = next(iter(self._queues.items()))
            item = queue.popleft()
            if queue:
                self._queues.move_to_end(sender)  # its next message waits for everyone else's
            else:
                del self._queues[sender]
            return item

    def close(self) -> None:
        """Wake every waiting :meth:`get` (which then returns ``None``); what is queued is dropped."""
        with self._ready:
            self._closed = True
            self._queues.clear()
            self._ready.notify_all()
