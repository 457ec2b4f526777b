"""Fixtures for integration tests that use real parts."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from brokers import started
from pulse import PulseError, PulseServer, missing_tools

from voicehello.bus.broker import EmbeddedBroker


def _rescan_portaudio() -> None:
    """Make PortAudio re-read the environment and ALSA's configuration (device list)."""
    sd = importlib.import_module("sounddevice")  # the first import initialises PortAudio
    sd._terminate()
    sd._initialize()


@pytest.fixture(scope="session")
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulseServer]:
    """A private PulseAudio daemon for the whole session, with ``vh_mic`` and ``vh_speaker``.

    Sets ``PULSE_SERVER`` (and ``PULSE_SOURCE``/``PULSE_SINK``/``PULSE_COOKIE``/
    ``XDG_RUNTIME_DIR``) in this process, then re-initialises PortAudio, whose ALSA device
    ``pulse`` then records from ``vh_mic.monitor``. Fails (never skips) when PulseAudio is not
    installed: CI installs it.
    """
    missing = missing_tools()
    if missing:
        pytest.fail(
            f"PulseAudio tools not found: {', '.join(missing)}; install them with "
            "`apt install pulseaudio pulseaudio-utils libasound2-plugins libportaudio2`",
            pytrace=False,
        )
    server = PulseServer(tmp_path_factory.mktemp("pulse"))
    try:
        server.start()
    except PulseError as exc:
        pytest.fail(str(exc), pytrace=False)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in server.client_env().items():
            patch.setenv(name, value)
        _rescan_portaudio()
        try:
            yield server
        finally:
            sd = importlib.import_module("sounddevice")
            sd._terminate()  # drop PortAudio's connections before the daemon goes
            server.stop()
    sd._initialize()  # back to the devices of the original environment


# --------------------------------------------------------------------------- Mosquitto


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A private Mosquitto (``EmbeddedBroker``) on a free loopback port, shared by the session.

    Tests sharing it keep apart by using a pod of their own. Fails (never skips) when
    mosquitto is not installed: CI installs it.
    """
    broker = started(EmbeddedBroker(tmp_path_factory.mktemp("mosquitto")))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A Mosquitto of the test's own, for tests that stop, kill or restart the broker."""
    broker = started(EmbeddedBroker(tmp_path / "mosquitto"))
    try:
        yield broker
    finally:
        broker.kill()
