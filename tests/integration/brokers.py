"""Starting a test's Mosquitto: a broker that cannot start fails the test, never skips it."""

from __future__ import annotations

import pytest

from voicehello.bus.broker import EmbeddedBroker
from voicehello.errors import BusError


def started(broker: EmbeddedBroker) -> EmbeddedBroker:
    """``broker`` started, or the test failed (never skipped) with Mosquitto's one-line error."""
    try:
        broker.start()
    except BusError as exc:
        pytest.fail(str(exc), pytrace=False)
    return broker
