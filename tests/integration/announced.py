"""What a test ``voicehello.app.Device`` announced, recorded from its two callbacks.

``Device(settings, on_announce=announced.on_event, show=announced.show)``: the ids of the
messages it printed (``AnnounceEvent`` of kind ``"printed"``), in order, and the lines it
printed (``output = "print"``). Both callbacks run on the device's announcer thread; the test
waits on them or takes snapshots.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from voicehello.announce.speaker import AnnounceEvent


class Announced:
    """The message ids a device printed and the lines it showed, waited on by the test."""

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._lines: list[str] = []
        self._changed = threading.Condition()

    def on_event(self, event: AnnounceEvent) -> None:
        """``on_announce``: record the id of each message printed (not prompts: they have none)."""
        if event.kind == "printed" and event.message_id:
            with self._changed:
                self._ids.append(event.message_id)
                self._changed.notify_all()

    def show(self, line: str) -> None:
        """``show``: record a printed line."""
        with self._changed:
            self._lines.append(line)
            self._changed.notify_all()

    def ids(self) -> list[str]:
        """The ids of the messages printed so far, in order."""
        with self._changed:
            return list(self._ids)

    def lines(self) -> list[str]:
        """The lines shown so far, in order."""
        with self._changed:
            return list(self._lines)

    def wait_printed(self, message_id: str, timeout_s: float) -> bool:
        """True once ``message_id`` was printed; False after ``timeout_s`` seconds."""
        return self._wait(lambda: message_id in self._ids, timeout_s)

    def wait_count(self, count: int, timeout_s: float) -> bool:
        """True once at least ``count`` messages were printed; False after ``timeout_s`` seconds."""
        return self._wait(lambda: len(self._ids) >= count, timeout_s)

    def wait_line(self, text: str, timeout_s: float) -> bool:
        """True once a line containing ``text`` was shown; False after ``timeout_s`` seconds."""
        return self._wait(lambda: any(text in line for line in self._lines), timeout_s)

    def _wait(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout_s)
