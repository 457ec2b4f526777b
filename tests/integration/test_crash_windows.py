"""No crash windows: ``voicehello run`` killed with SIGKILL at the worst moment, then started
again on the same key directory, against a real Mosquitto.

* the id of a message announced just before the kill is on disk: the captured payload, published
  again after the restart, is ignored as a replay;
* a request held for quiet hours survives the kill (sealed on disk) and is announced once after
  the restart, when the quiet hours are over;
* the per-neighbor rate limit is not reset by the restart.

Absence is proved with a sentinel message published after the unwanted one: once the sentinel is
announced, the unwanted one has been handled (and not announced).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pods import Circle
from test_daemon import MAYA, SAM, STEP_TIMEOUT_S, RawClient, announced, start_daemon, write_config

from voicehello.bus import topics
from voicehello.bus.broker import EmbeddedBroker
from voicehello.bus.messages import Sender, new_message
from voicehello.privacy.held import HELD_DIR
from voicehello.privacy.membership import Membership
from voicehello.privacy.pods import Pod

pytestmark = pytest.mark.integration

LEE = ("lee-9", "Lee")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(tmp_path_factory.mktemp("crash-broker")) as running:
        yield running


@pytest.fixture
def circle(tmp_path: Path, broker: EmbeddedBroker) -> Circle:
    host, port = broker.address
    return Circle(tmp_path / "pods", host=host, port=port)


@pytest.fixture
def client(broker: EmbeddedBroker) -> Iterator[RawClient]:
    raw = RawClient(broker, "crash-test")
    yield raw
    raw.close()


def quiet_hours(start_min: int, end_min: int) -> str:
    """Quiet hours from ``start_min`` to ``end_min`` minutes from now (local time, whole minutes)."""
    now = datetime.datetime.now().replace(second=0, microsecond=0)
    start, end = (now + datetime.timedelta(minutes=m) for m in (start_min, end_min))
    return f"{start:%H:%M}-{end:%H:%M}"


def killed(daemon: Any) -> None:
    """SIGKILL: no handler runs, nothing is saved or closed."""
    daemon.process.kill()
    daemon.process.wait(timeout=10)


def introduce(daemon: Any, client: RawClient, who: Membership, pod: Pod) -> None:
    """``who`` announces its key (retained); the daemon pins it."""
    client.publish(topics.key_topic(pod.id, who.device.id), who.key_announcement(pod), retain=True)
    pinned = daemon.wait_for(
        "stderr", lambda line: f"pinned the key of {who.device.id}" in line, STEP_TIMEOUT_S
    )
    assert pinned is not None, daemon.transcript()


def request(who: Membership, pod: Pod, item: str) -> bytes:
    """A sealed borrow request from ``who``, valid for ten minutes."""
    sender = Sender(who.device.id, who.device.name)
    message = new_message(sender, "borrow_item", {"item": item}, f"can i borrow a {item}", ttl_s=600)
    return who.seal(message, pod)


def hello(who: Membership, pod: Pod) -> bytes:
    return who.seal(new_message(Sender(who.device.id, who.device.name), "say_hello", {}, "say hello"), pod)


def spoken(daemon: Any, text: str) -> list[str]:
    return [line for line in daemon.stdout if line.startswith("[announce]") and text in line]


def test_a_message_replayed_after_a_kill_is_not_announced_again(
    broker: EmbeddedBroker,
    circle: Circle,
    client: RawClient,
    spawn_voicehello: Callable[..., Any],
    tmp_path: Path,
) -> None:
    """Killed right after the announcement is printed (before the 10-second saver of old ran),
    the restarted daemon still knows the id and ignores the captured payload."""
    config = write_config(tmp_path, SAM, broker, circle)
    daemon = start_daemon(spawn_voicehello, config, "--no-mic")
    maya = circle.membership(*MAYA)
    pod = maya.default()
    introduce(daemon, client, maya, pod)
    captured = request(maya, pod, "ladder")
    maya_topic = topics.message_topic(pod.id, MAYA[0])
    client.publish(maya_topic, captured)
    assert daemon.wait_for("stdout", announced("asks to borrow a ladder"), STEP_TIMEOUT_S), (
        daemon.transcript()
    )
    killed(daemon)

    again = start_daemon(spawn_voicehello, config, "--no-mic")
    client.publish(maya_topic, captured)  # the replay
    client.publish(maya_topic, hello(maya, pod))  # the sentinel
    assert again.wait_for("stdout", announced("says hello"), STEP_TIMEOUT_S), again.transcript()
    assert spoken(again, "ladder") == [], again.transcript()
    assert any("(replay)" in line for line in again.stderr), again.transcript()
    assert again.terminate() == 0


def test_a_request_held_for_quiet_hours_survives_a_kill_and_is_announced_once(
    broker: EmbeddedBroker,
    circle: Circle,
    client: RawClient,
    spawn_voicehello: Callable[..., Any],
    tmp_path: Path,
) -> None:
    """Held during quiet hours, the daemon killed; restarted once the quiet hours are over, it
    announces the request exactly once. On disk meanwhile: the payload as sealed, owner-only."""
    config = write_config(tmp_path, SAM, broker, circle, announce={"quiet_hours": quiet_hours(-60, 60)})
    daemon = start_daemon(spawn_voicehello, config, "--no-mic")
    maya = circle.membership(*MAYA)
    pod = maya.default()
    introduce(daemon, client, maya, pod)
    client.publish(topics.message_topic(pod.id, MAYA[0]), request(maya, pod, "wheelbarrow"))
    assert daemon.wait_for("stderr", lambda line: "held: quiet hours" in line, STEP_TIMEOUT_S), (
        daemon.transcript()
    )
    killed(daemon)
    held_dir = circle.keys_dir(SAM[0]) / HELD_DIR
    files = list(held_dir.iterdir())
    assert len(files) == 1, files
    assert files[0].stat().st_mode & 0o077 == 0
    assert b"wheelbarrow" not in files[0].read_bytes(), "plaintext on disk"

    write_config(tmp_path, SAM, broker, circle, announce={"quiet_hours": quiet_hours(-120, 0)})  # just over
    again = start_daemon(spawn_voicehello, config, "--no-mic")
    assert again.wait_for("stdout", announced("asks to borrow a wheelbarrow"), STEP_TIMEOUT_S), (
        again.transcript()
    )
    client.publish(topics.message_topic(pod.id, MAYA[0]), hello(maya, pod))
    assert again.wait_for("stdout", announced("says hello"), STEP_TIMEOUT_S), again.transcript()
    assert len(spoken(again, "wheelbarrow")) == 1, again.transcript()
    assert any("restored 1 of 1 message(s) held for quiet hours" in line for line in again.stderr)
    assert list(held_dir.iterdir()) == [], "the held file outlived its announcement"
    assert again.terminate() == 0


def test_the_rate_limit_is_not_reset_by_a_kill(
    broker: EmbeddedBroker,
    circle: Circle,
    client: RawClient,
    spawn_voicehello: Callable[..., Any],
    tmp_path: Path,
) -> None:
    """Four of maya's requests announced (the limit), the daemon killed and restarted: her fifth,
    within the window, is dropped; lee's message after it is announced."""
    config = write_config(tmp_path, SAM, broker, circle, announce={"rate_limit": 4, "rate_window_s": 3600})
    daemon = start_daemon(spawn_voicehello, config, "--no-mic")
    maya, lee = circle.membership(*MAYA), circle.membership(*LEE)
    pod = maya.default()
    introduce(daemon, client, maya, pod)
    introduce(daemon, client, lee, pod)
    maya_topic = topics.message_topic(pod.id, MAYA[0])
    for item in ("ladder", "drill", "wheelbarrow", "hammer"):
        client.publish(maya_topic, request(maya, pod, item))
        assert daemon.wait_for("stdout", announced(f"asks to borrow a {item}"), STEP_TIMEOUT_S), (
            daemon.transcript()
        )
    killed(daemon)

    again = start_daemon(spawn_voicehello, config, "--no-mic")
    client.publish(maya_topic, request(maya, pod, "saw"))
    client.publish(topics.message_topic(pod.id, LEE[0]), hello(lee, pod))  # the sentinel
    assert again.wait_for("stdout", announced("Lee says hello"), STEP_TIMEOUT_S), again.transcript()
    limited = again.wait_for(
        "stderr", lambda line: "rate limit: kitchen-12 already had 4" in line, STEP_TIMEOUT_S
    )
    assert limited is not None, again.transcript()
    assert spoken(again, "saw") == [], again.transcript()
    assert again.terminate() == 0
