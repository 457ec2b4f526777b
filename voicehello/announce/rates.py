"""The per-neighbor rate-limit windows, kept across restarts (device ids and times only).

:class:`~voicehello.announce.policy.AnnouncePolicy` counts each announcement against its
sender's sliding window; with a :class:`RateWindows` store it writes the windows to
``keys_dir/rates.json`` (owner-only, fsync'd) as soon as one is counted, before the
announcement is spoken, so a restart does not give a flooding neighbor a fresh allowance.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Mapping
from pathlib import Path

from voicehello.errors import PrivacyError
from voicehello.privacy.durable import write_durable
from voicehello.privacy.keys import read_private

log = logging.getLogger(__name__)

RATES_FILE = "rates.json"
"""In the keys directory: each neighbor's recent announcement times."""


class RateWindows:
    """Where a policy's rate-limit windows are kept. Not thread-safe (the announcer's thread)."""

    def __init__(self, keys_dir: Path) -> None:
        self.path = keys_dir / RATES_FILE
        self._failing = False

    def load(self, now: float, window_s: float) -> dict[str, deque[float]]:
        """The windows saved before a restart, each cut to the last ``window_s`` (times after
        ``now``, from a clock set back, count as now). A bad file: one warning, no windows."""
        if not self.path.exists():
            return {}
        try:
            data = json.loads(read_private(self.path))
            saved = {
                str(device): [float(t) for t in times] for device, times in dict(data["windows"]).items()
            }
        except (PrivacyError, ValueError, TypeError, KeyError) as exc:
            log.warning("ignoring %s: %s", self.path, exc)
            return {}
        windows: dict[str, deque[float]] = {}
        for device, times in saved.items():
            recent = sorted(min(t, now) for t in times if t > now - window_s)
            if recent:
                windows[device] = deque(recent)
        return windows

    def save(self, windows: Mapping[str, deque[float]], now: float, window_s: float) -> None:
        """Write the windows (the times still inside ``window_s``); a failure is one warning."""
        current = {
            device: recent
            for device, times in windows.items()
            if (recent := [t for t in times if t > now - window_s])
        }
        try:
            data = json.dumps({"v": 1, "windows": current}, separators=(",", ":")).encode()
            write_durable(self.path, data, sync_name=False)  # a power cut may cost the last count, no more
        except PrivacyError as exc:
            if not self._failing:
                log.warning("rate-limit windows kept in memory only: %s", exc)
            self._failing = True
            return
        self._failing = False
