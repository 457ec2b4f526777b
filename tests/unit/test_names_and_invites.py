"""Names bound to keys and invites that cannot lie about the inviter (issue 9, points 2, 4, 7).

Real keys, real sealed key announcements, real pod files; no test doubles.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from voicehello.bus.messages import Sender, new_message
from voicehello.bus.seen import SeenIds
from voicehello.config import DeviceSettings
from voicehello.errors import InviteError, PrivacyError, UnknownSenderError
from voicehello.privacy import envelope
from voicehello.privacy.keys import DeviceKeys, fingerprint
from voicehello.privacy.membership import Membership
from voicehello.privacy.pods import (
    INVITE_PREFIX,
    Member,
    Pod,
    PodStore,
    decode_invite,
    same_name,
    spoken_name,
)

NOW = 1_800_000_000.0


class Clock:
    """A settable clock."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def member(root: Path, device: str, name: str, clock: Clock) -> Membership:
    """``device``'s membership (its own key directory under ``root``), named ``name``."""
    keys_dir = root / device
    membership = Membership(
        PodStore(keys_dir, clock),
        DeviceKeys.load_or_create(keys_dir),
        DeviceSettings(id=device, name=name),
        clock=clock,
    )
    membership.refresh()
    return membership


@pytest.fixture
def street(tmp_path: Path, clock: Clock) -> Pod:
    """Pod "street", created by maya (whose device key is in ``tmp_path/maya``)."""
    return PodStore(tmp_path / "maya", clock).create("street", None)


def _v2_code(pod: Pod, inviter: str, key_b64: str) -> str:
    """A version 2 code written byte by byte, as anyone can: its checksum has no key."""
    name, host = pod.name.encode(), pod.host.encode()
    body = struct.pack(">B8s32sIHB", 2, bytes.fromhex(pod.id), pod.key, math.ceil(pod.expires or 0), 1883, 0)
    body += bytes([len(name)]) + name + bytes([len(host)]) + host
    body += bytes([len(inviter)]) + inviter.encode() + base64.b64decode(key_b64)
    checksum = hashlib.blake2b(body, digest_size=4, person=b"voicehello-inv").digest()
    return INVITE_PREFIX + base64.b32encode(body + checksum).decode().rstrip("=").lower()


# --------------------------------------------------------------------------- forged invites


def test_a_forged_code_naming_maya_pins_nothing_confirmed_and_her_own_topic_wins(
    tmp_path: Path, street: Pod, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """mallory, a member, writes a (version 2) code naming maya with mallory's key; sam joins
    with it. Nothing mallory signs opens as maya's, and maya's own announcement is pinned."""
    maya = member(tmp_path, "maya", "Maya", clock)
    mallory_keys = DeviceKeys.generate()
    PodStore(tmp_path / "sam", clock).join(_v2_code(street, "maya", mallory_keys.verify_key_b64))
    sam = member(tmp_path, "sam", "Sam", clock)
    pod = sam.default()
    assert "maya" not in pod.roster, "the forged code pinned maya to mallory's key"

    forged = new_message(Sender("maya", "Maya"), "borrow_item", {"item": "ladder"}, "a ladder", now=NOW)
    with pytest.raises(UnknownSenderError):  # waits for maya's own key; never opens as hers
        sam.open(envelope.seal(forged, pod, mallory_keys), pod, "maya", SeenIds())

    caplog.set_level(logging.INFO)
    assert sam.learn(maya.key_announcement(maya.default()), pod, "maya") == "maya"
    pod = sam.default()
    assert pod.roster["maya"] == maya.keys.verify_key_b64
    assert pod.members["maya"].refused_invite_key == mallory_keys.verify_key_b64
    conflict = [r.getMessage() for r in caplog.records if "the invite you joined" in r.getMessage()]
    assert conflict == [
        f"the invite you joined pod street with named maya with a key maya does not use (invite "
        f"{fingerprint(mallory_keys.verify_key_b64)}, maya's own key topic {fingerprint(maya.keys.verify_key_b64)}): "
        "maya's own key is pinned; whoever gave you that code may be posing as maya"
    ]
    real = new_message(Sender("maya", "Maya"), "borrow_item", {"item": "saw"}, "a saw", now=NOW)
    assert sam.open(envelope.seal(real, pod, maya.keys), pod, "maya", SeenIds()) == real
    assert sam.display_name(pod.id, "maya") == "Maya"


def test_a_signed_code_cannot_be_edited_and_a_resigned_one_stays_provisional(
    tmp_path: Path, street: Pod, clock: Clock
) -> None:
    maya = DeviceKeys.load_or_create(tmp_path / "maya")
    mallory = DeviceKeys.generate()
    store = PodStore(tmp_path / "maya", clock)
    code = store.invite(street, "maya", maya)
    letters = code.removeprefix(INVITE_PREFIX).replace("-", "").upper()
    raw = bytearray(base64.b32decode(letters + "=" * (-len(letters) % 8)))
    at = raw.index(b"maya") + 4  # maya's key follows her id
    raw[at : at + 32] = base64.b64decode(mallory.verify_key_b64)  # mallory swaps in her key
    edited = INVITE_PREFIX + base64.b32encode(bytes(raw)).decode().rstrip("=").lower()
    joiner = PodStore(tmp_path / "sam", clock)
    with pytest.raises(InviteError, match="signature does not match"):
        joiner.join(edited)
    assert joiner.list() == []

    resigned = store.invite(street, "maya", mallory)  # mallory signs a code naming maya herself
    assert decode_invite(resigned).members == {"maya": Member(invited_key=mallory.verify_key_b64)}
    joined = joiner.join(resigned)
    assert joined.roster == {}, "an invite's key is provisional: it opens nothing"
    assert joiner.learn(street.id, "maya", maya.verify_key_b64, "Maya")
    assert joiner.get(street.id).roster == {"maya": maya.verify_key_b64}, "maya's own topic wins"


def test_a_genuine_invite_key_is_confirmed_by_its_topic(tmp_path: Path, street: Pod, clock: Clock) -> None:
    maya = member(tmp_path, "maya", "Maya", clock)
    PodStore(tmp_path / "sam", clock).join(maya.store.invite(street, "maya", maya.keys))
    sam = member(tmp_path, "sam", "Sam", clock)
    assert sam.learn(maya.key_announcement(maya.default()), sam.default(), "maya") == "maya"
    assert sam.default().members["maya"] == Member(key=maya.keys.verify_key_b64, name="Maya", named_at=NOW)


def test_an_invite_contradicting_a_pinned_key_is_reported_and_changes_nothing(
    tmp_path: Path, street: Pod, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    maya = member(tmp_path, "maya", "Maya", clock)
    sams = PodStore(tmp_path / "sam", clock)
    sams.join(maya.store.invite(street, "maya", maya.keys))
    assert sams.learn(street.id, "maya", maya.keys.verify_key_b64, "Maya")
    mallory = DeviceKeys.generate()
    caplog.set_level(logging.WARNING)
    sams.join(maya.store.invite(street, "maya", mallory))
    assert "the invite you joined pod street with named maya with a key maya does not use" in caplog.text
    assert sams.get(street.id).roster == {"maya": maya.keys.verify_key_b64}
    assert sams.get(street.id).members["maya"].refused_invite_key == mallory.verify_key_b64


# --------------------------------------------------------------------------- typing a code


@pytest.mark.parametrize(
    "typed",
    [
        lambda code: code.replace("-", " "),  # vh1 aebq ...
        lambda code: code.replace("-", "--"),  # vh1--aebq--...
        lambda code: code.replace("-", " - ").upper(),
        lambda code: code.replace("-", "\u2013"),  # en dashes from a word processor
        lambda code: "  " + code.replace("-", "").replace("vh1", "vh1 ", 1) + "\n",
    ],
)
def test_any_run_of_spaces_or_dashes_is_accepted(
    tmp_path: Path, street: Pod, clock: Clock, typed: Callable[[str], str]
) -> None:
    code = PodStore(tmp_path / "maya", clock).invite(street)
    assert PodStore(tmp_path / "sam", clock).join(typed(code)).key == street.key


# --------------------------------------------------------------------------- names


def test_the_spoken_name_is_the_one_pinned_with_the_key(tmp_path: Path, street: Pod, clock: Clock) -> None:
    code = PodStore(tmp_path / "maya", clock).invite(street)
    maya = member(tmp_path, "maya", "Maya at number 12", clock)
    PodStore(tmp_path / "sam", clock).join(code)
    sam = member(tmp_path, "sam", "Sam", clock)
    assert sam.display_name(street.id, "maya") == "maya", "no name pinned: the device id"
    sam.learn(maya.key_announcement(maya.default()), sam.default(), "maya")
    assert sam.display_name(street.id, "maya") == "Maya at number 12"
    assert sam.display_name("0" * 16, "maya") == "maya", "an unknown pod: the device id"


def test_a_name_another_device_holds_is_marked(tmp_path: Path, street: Pod, clock: Clock) -> None:
    code = PodStore(tmp_path / "maya", clock).invite(street)
    maya = member(tmp_path, "maya", "Maya at number 12", clock)
    for device in ("sam", "mallory", "lee"):
        PodStore(tmp_path / device, clock).join(code)
    sam = member(tmp_path, "sam", "Sam", clock)
    mallory = member(tmp_path, "mallory", "  maya AT\tnumber 12 ", clock)
    lee = member(tmp_path, "lee", "Sam", clock)  # sam's own name, on sam's device
    sam.learn(maya.key_announcement(maya.default()), sam.default(), "maya")
    clock.now += 1
    sam.learn(mallory.key_announcement(mallory.default()), sam.default(), "mallory")
    sam.learn(lee.key_announcement(lee.default()), sam.default(), "lee")
    assert sam.display_name(street.id, "maya") == "Maya at number 12"
    assert sam.display_name(street.id, "mallory") == "someone calling themselves maya AT number 12"
    assert sam.display_name(street.id, "lee") == "someone calling themselves Sam"


def test_same_name_ignores_case_spaces_and_punctuation_after_cleaning() -> None:
    assert same_name("Maya", " MAYA ")
    assert same_name("Maya at 12", "maya\u200bat12")  # a zero-width space is cleaned away
    assert same_name("M.A.Y.A", "maya")
    assert not same_name("Maya", "Mayan")
    assert not same_name("", "")


def test_a_new_name_waits_for_the_user_to_accept_it(
    tmp_path: Path, street: Pod, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    code = PodStore(tmp_path / "maya", clock).invite(street)
    keys_dir = tmp_path / "kitchen-12"
    PodStore(keys_dir, clock).join(code)
    kitchen = member(tmp_path, "kitchen-12", "Maya", clock)
    PodStore(tmp_path / "sam", clock).join(code)
    sam = member(tmp_path, "sam", "Sam", clock)
    sam.learn(kitchen.key_announcement(kitchen.default()), sam.default(), "kitchen-12")

    renamed = Membership(
        kitchen.store, kitchen.keys, DeviceSettings(id="kitchen-12", name="Mallory"), clock=clock
    )
    renamed.refresh()
    caplog.set_level(logging.WARNING)
    for _ in range(2):  # announced again on every reconnect: said once
        assert (
            sam.learn(renamed.key_announcement(renamed.default()), sam.default(), "kitchen-12")
            == "kitchen-12"
        )
    said = [r.getMessage() for r in caplog.records if "now calls themselves" in r.getMessage()]
    assert said == [
        "kitchen-12 in pod street, who was 'Maya', now calls themselves 'Mallory': still announced as "
        "'Maya' until you run `voicehello pod accept-name street kitchen-12`"
    ]
    assert sam.display_name(street.id, "kitchen-12") == "Maya"
    assert sam.store.accept_name("street", "kitchen-12").name == "Mallory"
    sam.refresh()
    assert sam.display_name(street.id, "kitchen-12") == "Mallory"
    with pytest.raises(PrivacyError, match="no new name"):
        sam.store.accept_name("street", "kitchen-12")


def test_an_old_pod_file_whose_roster_maps_devices_to_keys_is_read(
    tmp_path: Path, street: Pod, clock: Clock
) -> None:
    store = PodStore(tmp_path / "maya", clock)
    key = DeviceKeys.generate().verify_key_b64
    path = store.directory / f"{street.id}.json"
    data = json.loads(path.read_bytes())
    data["roster"] = {"lee": key}
    path.write_text(json.dumps(data), encoding="utf-8")
    pod = store.get("street")
    assert pod.members == {"lee": Member(key=key)}
    assert pod.roster == {"lee": key}
    assert spoken_name(pod, "lee") == "lee"
    assert store.learn(street.id, "lee", key, "Lee")
    assert spoken_name(store.get("street"), "lee") == "Lee", "the first name announced with the key is pinned"
