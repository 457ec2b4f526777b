"""Device keys, pods and invite codes, and the sealed envelope (voicehello.privacy)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import stat
import struct
from pathlib import Path

import pytest

from voicehello.bus.messages import Message, Sender, new_message
from voicehello.bus.seen import SeenIds
from voicehello.errors import EnvelopeError, InviteError, PrivacyError, ReplayError
from voicehello.privacy.envelope import (
    PAD_BYTES,
    key_topic,
    open_key_announcement,
    open_message,
    pad,
    seal,
    seal_key_announcement,
)
from voicehello.privacy.keys import KEY_FILE, DeviceKeys, verify
from voicehello.privacy.pods import INVITE_PREFIX, Member, Pod, PodStore

NOW = 1_800_000_000.0
WINDOW = 300.0


class Clock:
    """A settable clock for PodStore."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --------------------------------------------------------------------------- keys


def test_device_key_is_made_once_and_reused(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    first = DeviceKeys.load_or_create(keys_dir)
    second = DeviceKeys.load_or_create(keys_dir)
    assert first.verify_key_b64 == second.verify_key_b64
    assert _mode(keys_dir) == 0o700
    assert _mode(keys_dir / KEY_FILE) == 0o600
    assert verify(first.sign(b"hello"), second.verify_key_b64) == b"hello"


def test_world_readable_key_is_refused(tmp_path: Path) -> None:
    DeviceKeys.load_or_create(tmp_path)
    (tmp_path / KEY_FILE).chmod(0o644)
    with pytest.raises(PrivacyError, match="chmod 600") as caught:
        DeviceKeys.load_or_create(tmp_path)
    assert "\n" not in str(caught.value)


def test_verify_refuses_another_key() -> None:
    signed = DeviceKeys.generate().sign(b"data")
    with pytest.raises(EnvelopeError, match="bad signature"):
        verify(signed, DeviceKeys.generate().verify_key_b64)


# --------------------------------------------------------------------------- pods and invites


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> PodStore:
    return PodStore(tmp_path / "alice", clock=clock)


@pytest.fixture
def other_store(tmp_path: Path, clock: Clock) -> PodStore:
    return PodStore(tmp_path / "bob", clock=clock)


def test_invite_round_trip(store: PodStore, other_store: PodStore) -> None:
    pod = store.create("dinner", 2, "broker.local", 8883, True)
    code = store.invite(pod)
    assert code.startswith(INVITE_PREFIX)
    assert "\n" not in code
    assert code == code.lower()
    joined = other_store.join(code)
    assert joined == pod
    assert other_store.list() == [pod]
    assert other_store.get("dinner") == other_store.get(pod.id) == pod
    assert _mode(other_store.directory / f"{pod.id}.json") == 0o600
    assert _mode(other_store.directory) == 0o700


def test_the_inviters_key_travels_in_the_code_and_is_provisional_until_its_topic_confirms_it(
    store: PodStore, other_store: PodStore, tmp_path: Path
) -> None:
    alice = DeviceKeys.generate()
    pod = store.create("dinner", 2, "", 1883, False)
    plain, signed = store.invite(pod), store.invite(pod, "alice", alice)
    assert len(signed) - len(plain) < 200, (
        "the inviter (id, 32-byte key, 64-byte signature) adds ~195 characters"
    )
    joined = other_store.join(signed)
    assert joined.members == {"alice": Member(invited_key=alice.verify_key_b64)}
    assert joined.roster == {}, "a provisional key opens no message"
    assert other_store.learn(pod.id, "alice", alice.verify_key_b64, "Alice")  # her own key topic confirms it
    assert other_store.get(pod.id).roster == {"alice": alice.verify_key_b64}
    squatter = DeviceKeys.generate()
    assert not other_store.learn(pod.id, "alice", squatter.verify_key_b64), (
        "a second key for alice is refused"
    )
    bob = DeviceKeys.generate()
    again = other_store.join(store.invite(pod, "bob", bob))  # a second member's invite
    assert again.roster == {"alice": alice.verify_key_b64}
    assert again.members["bob"] == Member(invited_key=bob.verify_key_b64)
    assert PodStore(tmp_path / "carol").join(plain).members == {}, "an invite without an inviter pins nothing"


def test_a_version_1_code_is_still_accepted(store: PodStore, other_store: PodStore) -> None:
    pod = store.create("dinner", 2, "pi.local", 1883, False)
    name, host = pod.name.encode(), pod.host.encode()
    body = struct.pack(">B8s32sIHB", 1, bytes.fromhex(pod.id), pod.key, math.ceil(pod.expires or 0), 1883, 0)
    body += bytes([len(name)]) + name + bytes([len(host)]) + host
    checksum = hashlib.blake2b(body, digest_size=4, person=b"voicehello-inv").digest()
    text = base64.b32encode(body + checksum).decode().rstrip("=").lower()
    joined = other_store.join(INVITE_PREFIX + text)
    assert (joined.id, joined.key, joined.host, joined.roster) == (pod.id, pod.key, "pi.local", {})


def test_forever_pod_and_spoken_form(store: PodStore, other_store: PodStore) -> None:
    pod = store.create("street", None, "", 1883, False)
    code = store.invite(pod).upper().replace("-", " ")  # as typed after hearing it
    joined = other_store.join(code)  # "VH1 AEBQ ...": the space stands for the dash too
    assert joined.expires is None
    assert joined.key == pod.key


def test_one_character_typo_is_refused(store: PodStore, other_store: PodStore) -> None:
    code = store.invite(store.create("dinner", 2, "broker.local", 1883, False))
    position = len(code) // 2
    wrong = "b" if code[position] != "b" else "c"
    with pytest.raises(InviteError, match="typo"):
        other_store.join(code[:position] + wrong + code[position + 1 :])
    assert other_store.list() == []


@pytest.mark.parametrize("code", ["", "hello", "vh1-", "vh1-!!!!-????", "vh1-abcd-efgh"])
def test_garbled_invite_is_refused(other_store: PodStore, code: str) -> None:
    with pytest.raises(InviteError):
        other_store.join(code)


def test_expired_invite_is_refused(store: PodStore, other_store: PodStore, clock: Clock) -> None:
    code = store.invite(store.create("dinner", 1, "", 1883, False))
    clock.now += 3601
    with pytest.raises(InviteError, match=r"this invite expired at (\d{4}-\d\d-\d\d )?\d\d:\d\d$"):
        other_store.join(code)


def test_expired_pod_is_forgotten(store: PodStore, clock: Clock) -> None:
    pod = store.create("dinner", 1, "", 1883, False)
    street = store.create("street", None, "", 1883, False)
    path = store.directory / f"{pod.id}.json"
    assert path.exists()
    clock.now += 3601
    assert store.list() == [street]
    assert not path.exists()
    with pytest.raises(PrivacyError):
        store.get("dinner")


def test_leave_deletes_the_pod(store: PodStore) -> None:
    pod = store.create("dinner", 1, "", 1883, False)
    assert store.leave("dinner") == pod
    assert not (store.directory / f"{pod.id}.json").exists()
    assert store.list() == []
    with pytest.raises(PrivacyError, match="no pod"):
        store.leave(pod.id)


@pytest.mark.parametrize("name", ["", "   ", "pot/luck", "café", "x" * 33])
def test_create_refuses_a_bad_name(store: PodStore, name: str) -> None:
    with pytest.raises(PrivacyError, match="pod name must be"):
        store.create(name, 1, "", 1883, False)


def test_a_name_as_people_say_it_is_stored_with_dashes(store: PodStore) -> None:
    pod = store.create("  Block Party ", 2, "", 1883, False)
    assert pod.name == "block-party"
    assert store.get("block party") == pod
    assert store.get("Block_Party") == pod


# --------------------------------------------------------------------------- envelope


@pytest.fixture
def pod(store: PodStore) -> Pod:
    return store.create("dinner", 2, "", 1883, False)


@pytest.fixture
def alice() -> DeviceKeys:
    return DeviceKeys.generate()


@pytest.fixture
def roster(alice: DeviceKeys) -> dict[str, str]:
    return {"alice": alice.verify_key_b64}


def _message(now: float = NOW, device: str = "alice") -> Message:
    return new_message(
        Sender(device, "Alice at 12"), "borrow_item", {"item": "ladder"}, "can I borrow a ladder", now=now
    )


def _open(payload: bytes, pod: Pod, roster: dict[str, str], seen: SeenIds | None = None) -> Message:
    return open_message(payload, pod, roster, NOW, WINDOW, SeenIds() if seen is None else seen)


def _box(payload: bytes) -> bytes:
    return base64.b64decode(json.loads(payload)["box"])


def _rebox(payload: bytes, sealed: bytes) -> bytes:
    data = json.loads(payload)
    data["box"] = base64.b64encode(sealed).decode()
    return json.dumps(data).encode()


def test_envelope_round_trip(pod: Pod, alice: DeviceKeys, roster: dict[str, str]) -> None:
    message = _message()
    payload = seal(message, pod, alice)
    data = json.loads(payload)
    assert set(data) == {"v", "pod", "box"}
    assert data["v"] == 1
    assert data["pod"] == pod.id
    assert _open(payload, pod, roster) == message


def test_open_with_a_store(store: PodStore, pod: Pod, alice: DeviceKeys) -> None:
    assert store.learn(pod.id, "alice", alice.verify_key_b64)
    message = _message()
    assert open_message(seal(message, pod, alice), pod, store, NOW, WINDOW, SeenIds()) == message


def test_non_member_sees_only_ciphertext(pod: Pod, alice: DeviceKeys) -> None:
    payload = seal(_message(), pod, alice)
    for secret in (b"ladder", b"borrow", b"Alice", b"alice"):
        assert secret not in payload
        assert secret not in _box(payload)


def test_wrong_pod_key_cannot_open(
    store: PodStore, pod: Pod, alice: DeviceKeys, roster: dict[str, str]
) -> None:
    stranger = Pod(pod.id, pod.name, bytes(32), pod.expires)
    with pytest.raises(EnvelopeError, match="cannot decrypt"):
        _open(seal(_message(), pod, alice), stranger, roster)


def test_other_pod_is_refused(store: PodStore, pod: Pod, alice: DeviceKeys, roster: dict[str, str]) -> None:
    other = store.create("lunch", 2, "", 1883, False)
    with pytest.raises(EnvelopeError, match="another pod"):
        _open(seal(_message(), other, alice), pod, roster)


@pytest.mark.parametrize(
    "payload",
    [b"", b"not json", b"\xff\xfe", b"[]", b'{"v": 1}', b'{"v": true, "pod": "x", "box": ""}', b"{" * 9000],
)
def test_malformed_envelope(pod: Pod, roster: dict[str, str], payload: bytes) -> None:
    with pytest.raises(EnvelopeError):
        _open(payload, pod, roster)


def test_bad_base64(pod: Pod, alice: DeviceKeys, roster: dict[str, str]) -> None:
    data = json.loads(seal(_message(), pod, alice))
    data["box"] = "***" + data["box"]
    with pytest.raises(EnvelopeError, match="base64"):
        _open(json.dumps(data).encode(), pod, roster)


@pytest.mark.parametrize("keep", [0, 10, 24, 40, 100, -1])
def test_truncated_box(pod: Pod, alice: DeviceKeys, roster: dict[str, str], keep: int) -> None:
    payload = seal(_message(), pod, alice)
    with pytest.raises(EnvelopeError, match=r"too short|cannot decrypt"):
        _open(_rebox(payload, _box(payload)[:keep]), pod, roster)


@pytest.mark.parametrize("index", [0, 23, 24, 40, -1])
def test_flipped_byte(pod: Pod, alice: DeviceKeys, roster: dict[str, str], index: int) -> None:
    payload = seal(_message(), pod, alice)
    sealed = bytearray(_box(payload))
    sealed[index] ^= 0x01
    with pytest.raises(EnvelopeError, match="cannot decrypt"):
        _open(_rebox(payload, bytes(sealed)), pod, roster)


def test_wrong_signer(pod: Pod, roster: dict[str, str]) -> None:
    impostor = DeviceKeys.generate()
    with pytest.raises(EnvelopeError, match="bad signature"):
        _open(seal(_message(), pod, impostor), pod, roster)


def test_member_claiming_to_be_another(pod: Pod, alice: DeviceKeys, roster: dict[str, str]) -> None:
    bob = DeviceKeys.generate()
    with pytest.raises(EnvelopeError, match="bob signed a message claiming to be from alice"):
        _open(seal(_message(), pod, bob), pod, {**roster, "bob": bob.verify_key_b64})


def test_unknown_sender(pod: Pod, alice: DeviceKeys) -> None:
    with pytest.raises(EnvelopeError, match="unknown sender"):
        _open(seal(_message(), pod, alice), pod, {})


def test_topic_device_must_match(pod: Pod, alice: DeviceKeys, roster: dict[str, str]) -> None:
    payload = seal(_message(), pod, alice)
    with pytest.raises(EnvelopeError, match="published as"):
        open_message(payload, pod, roster, NOW, WINDOW, SeenIds(), topic_device="bob")


def test_replay_is_refused(pod: Pod, alice: DeviceKeys, roster: dict[str, str]) -> None:
    payload = seal(_message(), pod, alice)
    seen = SeenIds()
    _open(payload, pod, roster, seen)
    with pytest.raises(EnvelopeError, match="replay"):
        _open(payload, pod, roster, seen)


@pytest.mark.parametrize("offset", [WINDOW + 1, 3_600.0, 86_400.0])
def test_a_message_dated_ahead_of_the_window_is_refused(
    pod: Pod, alice: DeviceKeys, roster: dict[str, str], offset: float
) -> None:
    with pytest.raises(EnvelopeError, match=r"is dated \+\d+ s from this clock"):
        _open(seal(_message(NOW + offset), pod, alice), pod, roster)


def test_an_old_message_opens_until_it_expires(pod: Pod, alice: DeviceKeys, roster: dict[str, str]) -> None:
    """A neighbor that was offline gets what it missed late; replays are caught by id instead."""
    late = _message(NOW - 20 * 60)  # a request lives 30 minutes
    seen = SeenIds()
    assert _open(seal(late, pod, alice), pod, roster, seen) == late
    with pytest.raises(ReplayError):
        _open(seal(late, pod, alice), pod, roster, seen)
    with pytest.raises(EnvelopeError, match="has expired"):
        _open(seal(_message(NOW - 31 * 60), pod, alice), pod, roster)


def test_seen_ids_survive_a_restart_until_they_expire() -> None:
    before = SeenIds()
    assert before.first("a", expires=NOW + 60, now=NOW)
    assert before.first("b", expires=NOW + 600, now=NOW)
    saved = before.entries(NOW + 1)
    after = SeenIds()
    after.remember(saved, now=NOW + 120)  # restarted two minutes later: "a" has expired
    assert not after.first("b", NOW + 600, NOW + 121), "a replay after the restart"
    assert after.first("a", NOW + 60, NOW + 121)


def test_refused_message_is_not_remembered(pod: Pod, alice: DeviceKeys, roster: dict[str, str]) -> None:
    """A forged copy must not block the real message (the id is recorded only after all checks)."""
    message = _message()
    seen = SeenIds()
    with pytest.raises(EnvelopeError):
        _open(seal(message, pod, DeviceKeys.generate()), pod, roster, seen)
    assert _open(seal(message, pod, alice), pod, roster, seen) == message


# --------------------------------------------------------------------------- key announcements


def test_key_topic() -> None:
    assert key_topic("0123456789abcdef", "alice") == "voicehello/v1/0123456789abcdef/alice/key"


def test_key_announcement_and_tofu(
    store: PodStore, pod: Pod, alice: DeviceKeys, caplog: pytest.LogCaptureFixture
) -> None:
    payload = seal_key_announcement(pod, alice, "alice", "Alice at 12", now=NOW)
    assert b"alice" not in payload
    announced = open_key_announcement(payload, pod, NOW)
    device, key = announced.device, announced.key
    assert (device, key, announced.name) == ("alice", alice.verify_key_b64, "Alice at 12")
    assert store.learn(pod.id, device, key)
    assert store.learn(pod.id, device, key)  # the same key again is fine
    assert store.get(pod.id).roster == {"alice": alice.verify_key_b64}

    usurper = DeviceKeys.generate()
    announced = open_key_announcement(
        seal_key_announcement(pod, usurper, "alice", "Alice", now=NOW), pod, NOW
    )
    device, key = announced.device, announced.key
    with caplog.at_level(logging.WARNING):
        assert not store.learn(pod.id, device, key)
    assert "refused a new key for alice" in caplog.text
    assert store.get(pod.id).roster == {"alice": alice.verify_key_b64}


def test_key_announcement_refusals(pod: Pod, alice: DeviceKeys, store: PodStore) -> None:
    other = store.create("lunch", 2, "", 1883, False)
    with pytest.raises(EnvelopeError, match="another pod"):
        open_key_announcement(seal_key_announcement(other, alice, "alice", "A", now=NOW), pod, NOW)
    with pytest.raises(EnvelopeError, match="future"):
        open_key_announcement(seal_key_announcement(pod, alice, "alice", "A", now=NOW + 86_400), pod, NOW)
    with pytest.raises(EnvelopeError, match="device id"):
        open_key_announcement(seal_key_announcement(pod, alice, "Not Valid", "A", now=NOW), pod, NOW)
    with pytest.raises(EnvelopeError, match="published as"):
        open_key_announcement(
            seal_key_announcement(pod, alice, "alice", "A", now=NOW), pod, NOW, topic_device="bob"
        )
    # a message envelope is not a key announcement
    with pytest.raises(EnvelopeError, match="shape"):
        open_key_announcement(seal(_message(), pod, alice), pod, NOW)


def test_learn_refuses_unknown_pod_and_bad_key(store: PodStore, pod: Pod) -> None:
    assert not store.learn("0" * 16, "alice", DeviceKeys.generate().verify_key_b64)
    assert not store.learn(pod.id, "alice", "not-a-key")
    assert not store.learn(pod.id, "Bad Id", DeviceKeys.generate().verify_key_b64)


@pytest.mark.parametrize("text", ["hi", "can I borrow a ladder", "x" * 300, "y" * 900])
def test_sealed_messages_are_padded_so_their_size_says_little(text: str) -> None:
    padded = pad(text.encode())
    assert len(padded) % PAD_BYTES == 0
    assert len(padded) - len(text) < PAD_BYTES
    assert padded.rstrip(b" ") == text.encode()


def test_short_and_long_requests_seal_to_the_same_size(pod: Pod) -> None:
    keys = DeviceKeys.generate()
    messages = [
        new_message(Sender("maya", "Maya"), "borrow_item", {"item": item}, f"can I borrow {item}", now=NOW)
        for item in ("a saw", "extension ladder for the gutter")
    ]
    plain = {len(message.to_json()) for message in messages}
    assert len(plain) == 2
    assert max(plain) < PAD_BYTES, "an everyday request fits the first bucket"
    assert len({len(seal(message, pod, keys)) for message in messages}) == 1
