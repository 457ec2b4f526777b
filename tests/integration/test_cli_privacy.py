"""``voicehello say`` against a real hardened Mosquitto: what the broker refuses is a one-line
error and a non-zero exit, never "sent"."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pods import Circle

from voicehello.bus.broker import EmbeddedBroker

pytestmark = pytest.mark.integration

Run = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def circle(tmp_path: Path) -> Circle:
    return Circle(tmp_path / "pods", name="street")


@pytest.fixture
def broker(tmp_path: Path, circle: Circle) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker.hardened(tmp_path / "broker", devices=["maya", "bob"], pods=[circle.id]) as running:
        yield running


def write_config(path: Path, broker: EmbeddedBroker, device: str, login: str, keys_dir: Path) -> Path:
    """``device``'s settings, logging in to the broker as ``login``."""
    host, port = broker.address
    creds = broker.credentials[login]
    path.write_text(
        f'[device]\nid = "{device}"\nname = "{device.title()}"\n'
        f'[bus]\nhost = "{host}"\nport = {port}\npod = "street"\ntls = true\n'
        f'ca_file = "{broker.ca_file}"\nusername = "{creds.name}"\npassword = "{creds.password}"\n'
        f'[privacy]\nkeys_dir = "{keys_dir}"\n',
        encoding="utf-8",
    )
    return path


def test_say_as_the_device_it_logs_in_as_is_sent(
    voicehello: Run, tmp_path: Path, broker: EmbeddedBroker, circle: Circle
) -> None:
    config = write_config(tmp_path / "maya.toml", broker, "maya", "maya", circle.keys_dir("maya"))
    result = voicehello("say", "--config", config, "--yes", "--timeout", "10", "can I borrow a ladder")
    assert result.returncode == 0, result.stderr
    assert "sent borrow_item" in result.stdout


def test_say_refused_by_the_broker_acl_is_a_one_line_error(
    voicehello: Run, tmp_path: Path, broker: EmbeddedBroker, circle: Circle
) -> None:
    """Bob's device id with Maya's login: the ACL lets Maya publish only under her own id."""
    config = write_config(tmp_path / "bob.toml", broker, "bob", "maya", circle.keys_dir("bob"))
    result = voicehello("say", "--config", config, "--yes", "--timeout", "10", "can I borrow a ladder")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "sent" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("voicehello: ")]
    assert len(lines) == 1, result.stderr
    assert "the broker refused the message" in lines[0]
    assert "nothing was sent" in lines[0]
