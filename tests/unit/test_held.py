"""Messages held for quiet hours are kept on disk sealed (never plaintext), owner-only, until
they are spoken, printed or dropped; the announcer keeps and forgets them."""

from __future__ import annotations

import datetime
import json
import logging
import stat
import threading
from pathlib import Path

import pytest

from voicehello.announce.policy import AnnouncePolicy
from voicehello.announce.speaker import AnnounceEvent, Announcer
from voicehello.bus.messages import Message, Sender, new_message
from voicehello.config import AnnounceSettings
from voicehello.privacy import envelope
from voicehello.privacy.held import HELD_DIR, HeldMessages, Sealed
from voicehello.privacy.keys import DeviceKeys
from voicehello.privacy.pods import Pod, PodStore

MAYA = Sender("maya-12", "Maya at number 12")
SECRET = "wheelbarrow"


@pytest.fixture
def pod(tmp_path: Path) -> Pod:
    return PodStore(tmp_path / "owner").create("street", None, "127.0.0.1", 1883)


def sealed_request(pod: Pod, item: str = SECRET) -> tuple[Message, Sealed]:
    message = new_message(MAYA, "borrow_item", {"item": item}, f"can i borrow a {item}")
    payload = envelope.seal(message, pod, DeviceKeys.generate())
    return message, Sealed(message.id, message.expires, pod.id, MAYA.device, payload)


def test_a_kept_message_is_on_disk_sealed_and_owner_only(tmp_path: Path, pod: Pod) -> None:
    held = HeldMessages(tmp_path / "keys")
    message, sealed = sealed_request(pod)
    held.note(sealed)
    assert held.keep(message.id)
    path = tmp_path / "keys" / HELD_DIR / f"{message.id}.json"
    raw = path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SECRET.encode() not in raw, "plaintext on disk"
    assert b"borrow" not in raw, "plaintext on disk"
    assert set(json.loads(raw)) == {"v", "id", "expires", "pod", "device", "payload"}
    assert HeldMessages(tmp_path / "keys").stored() == [sealed], "not the bytes as received"


def test_only_noted_messages_are_kept_and_forget_deletes(tmp_path: Path, pod: Pod) -> None:
    held = HeldMessages(tmp_path)
    message, sealed = sealed_request(pod)
    assert not held.keep(message.id), "nothing noted: nothing to keep"
    held.note(sealed)
    held.keep(message.id)
    held.forget(message.id)
    assert list((tmp_path / HELD_DIR).iterdir()) == []
    assert HeldMessages(tmp_path).stored() == []


def test_a_pod_left_takes_its_held_messages_with_it(tmp_path: Path, pod: Pod) -> None:
    held = HeldMessages(tmp_path)
    other = PodStore(tmp_path / "other").create("block-party", 2, "127.0.0.1", 1883)
    kept = [sealed_request(pod)[1], sealed_request(other)[1]]
    for sealed in kept:
        held.note(sealed)
        held.keep(sealed.message_id)
    assert held.forget_pod(pod.id) == 1
    assert HeldMessages(tmp_path).stored() == [kept[1]]


def test_a_file_that_is_not_a_held_message_is_reported_and_deleted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / HELD_DIR).mkdir(mode=0o700)
    bad = tmp_path / HELD_DIR / f"{'a' * 32}.json"
    bad.write_bytes(b'{"v": 1, "id": "not an id"}')
    bad.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        assert HeldMessages(tmp_path).stored() == []
    assert [r.getMessage() for r in caplog.records] == [
        f"cannot restore the held message in {bad.name}: not a held message (KeyError); deleted"
    ]
    assert not bad.exists()


class QuietClock:
    """The local time of day, moved by hand; Unix time is real (messages are made now)."""

    def __init__(self) -> None:
        self.time = datetime.time(23, 0)

    def local(self) -> datetime.time:
        return self.time


def test_the_announcer_keeps_what_it_holds_and_forgets_it_once_printed(tmp_path: Path, pod: Pod) -> None:
    settings = AnnounceSettings(output="print", prefix="none", quiet_hours="22:00-07:00")
    quiet = QuietClock()
    held = HeldMessages(tmp_path)
    events: list[AnnounceEvent] = []
    changed = threading.Condition()

    def on_event(event: AnnounceEvent) -> None:
        with changed:
            events.append(event)
            changed.notify_all()

    def wait_for(kind: str) -> None:
        with changed:
            assert changed.wait_for(lambda: any(e.kind == kind for e in events), 10.0), events

    announcer = Announcer(
        settings,
        on_event=on_event,
        policy=AnnouncePolicy(settings, local_time=quiet.local),
        held=held,
        show=lambda _line: None,
    )
    message, sealed = sealed_request(pod)
    held.note(sealed)
    announcer.start()
    try:
        announcer.submit(message, "Maya at number 12 asks to borrow a wheelbarrow")
        wait_for("queued")
        assert [s.message_id for s in HeldMessages(tmp_path).stored()] == [message.id]
        quiet.time = datetime.time(7, 0)
        wait_for("printed")
        assert HeldMessages(tmp_path).stored() == [], "still on disk after it was printed"
    finally:
        announcer.stop()
