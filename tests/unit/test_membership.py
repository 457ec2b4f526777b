"""Membership: which pods a device is in, where it speaks, and sealing/opening/learning (real keys, real files)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from voicehello.bus.messages import Sender, new_message
from voicehello.bus.seen import SeenIds
from voicehello.config import BusSettings, DeviceSettings, PrivacySettings, Settings
from voicehello.errors import EnvelopeError, PrivacyError, ReplayError, UnknownSenderError
from voicehello.privacy.keys import DeviceKeys
from voicehello.privacy.membership import NOT_IN_A_POD, Membership
from voicehello.privacy.pods import PodStore

NOW = 1_800_000_000.0


class Clock:
    """A settable clock."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def member(root: Path, device: str, clock: Clock, default_pod: str = "") -> Membership:
    """``device``'s membership with its own key dir under ``root``."""
    keys_dir = root / device
    membership = Membership(
        PodStore(keys_dir, clock),
        DeviceKeys.load_or_create(keys_dir),
        DeviceSettings(id=device, name=device.title()),
        default_pod=default_pod,
        clock=clock,
    )
    membership.refresh()
    return membership


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def street(tmp_path: Path, clock: Clock) -> str:
    """An invite to pod "street" (no end), created by maya."""
    store = PodStore(tmp_path / "maya", clock)
    return store.invite(store.create("street", None))


def test_from_settings_refuses_a_device_in_no_pod(tmp_path: Path) -> None:
    settings = Settings(privacy=PrivacySettings(keys_dir=tmp_path / "keys"))
    with pytest.raises(PrivacyError) as caught:
        Membership.from_settings(settings)
    assert str(caught.value) == NOT_IN_A_POD
    assert "voicehello pod create" in NOT_IN_A_POD
    assert "\n" not in NOT_IN_A_POD
    assert not (tmp_path / "keys").exists(), "refusing to start writes nothing"


def test_from_settings_pins_its_own_key(tmp_path: Path, street: str, clock: Clock) -> None:
    PodStore(tmp_path / "sam", clock).join(street)
    settings = Settings(
        device=DeviceSettings(id="sam", name="Sam"),
        bus=BusSettings(pod="street"),
        privacy=PrivacySettings(keys_dir=tmp_path / "sam"),
    )
    membership = Membership.from_settings(settings, clock=clock)
    pod = membership.default()
    assert pod.name == "street"
    assert pod.roster == {"sam": membership.keys.verify_key_b64}
    assert PodStore(tmp_path / "sam").get("street").roster == pod.roster, "pinned on disk too"


def test_default_pod_is_the_named_one_else_the_only_one(tmp_path: Path, street: str, clock: Clock) -> None:
    sam = member(tmp_path, "sam", clock, default_pod="garden")
    PodStore(tmp_path / "sam", clock).join(street)
    sam.refresh()
    assert sam.default().name == "street", "the only pod, whatever [bus] pod says"
    PodStore(tmp_path / "sam", clock).create("garden", 2)
    sam.refresh()
    assert sam.default().name == "garden"
    assert sam.resolve("street").name == "street"
    assert sam.resolve("Garden").name == "garden", "names as people type them"
    assert sam.resolve(sam.default().id).name == "garden"
    with pytest.raises(PrivacyError, match="no pod 'party'"):
        sam.resolve("party")
    sam.default_pod = "party"
    with pytest.raises(PrivacyError, match=r"set \[bus\] pod .*garden, street"):
        sam.default()


def test_refresh_tells_pods_joined_and_left_and_forgets_expired(tmp_path: Path, clock: Clock) -> None:
    sam = member(tmp_path, "sam", clock)
    assert sam.pods == []
    with pytest.raises(PrivacyError, match="no pod"):
        sam.default()
    party = PodStore(tmp_path / "sam", clock).create("party", 2)
    changes = sam.refresh()
    assert [pod.id for pod in changes.joined] == [party.id]
    assert changes.left == ()
    assert sam.refresh().joined == ()
    clock.now += 2 * 3600
    assert sam.get(party.id) is None, "over as soon as its time is, before any refresh"
    changes = sam.refresh()
    assert [pod.id for pod in changes.left] == [party.id]
    assert not (tmp_path / "sam" / "pods" / f"{party.id}.json").exists(), "its key is deleted"


def test_a_sealed_message_opens_for_members_only_once(tmp_path: Path, street: str, clock: Clock) -> None:
    maya = member(tmp_path, "maya", clock)
    PodStore(tmp_path / "sam", clock).join(street)
    sam = member(tmp_path, "sam", clock)
    pod = maya.default()
    message = new_message(Sender("maya", "Maya"), "borrow_item", {"item": "ladder"}, "a ladder", now=NOW)
    payload = maya.seal(message, pod)
    assert b"ladder" not in payload
    assert b"Maya" not in payload

    sam_pod = sam.default()
    with pytest.raises(UnknownSenderError) as unknown:
        sam.open(payload, sam_pod, "maya", SeenIds())
    assert unknown.value.device == "maya"

    assert sam.learn(maya.key_announcement(pod), sam_pod, "maya") == "maya"
    sam_pod = sam.default()  # reloaded with maya's key pinned
    seen = SeenIds()
    assert sam.open(payload, sam_pod, "maya", seen) == message
    with pytest.raises(ReplayError):
        sam.open(payload, sam_pod, "maya", seen)
    with pytest.raises(EnvelopeError, match="published as sam"):
        sam.open(payload, sam_pod, "sam", SeenIds())


def test_learn_refuses_a_squatter_and_a_claim_on_its_own_id(
    tmp_path: Path, street: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    maya = member(tmp_path, "maya", clock)
    PodStore(tmp_path / "sam", clock).join(street)
    sam = member(tmp_path, "sam", clock)
    PodStore(tmp_path / "impostor", clock).join(street)
    impostor = Membership(
        PodStore(tmp_path / "impostor", clock),
        DeviceKeys.load_or_create(tmp_path / "impostor"),
        DeviceSettings(id="maya", name="Maya"),  # claims maya's id with its own key
        clock=clock,
    )
    impostor.refresh()
    pod = sam.default()
    assert sam.learn(maya.key_announcement(maya.default()), pod, "maya") == "maya"
    caplog.set_level(logging.WARNING)
    assert sam.learn(impostor.key_announcement(impostor.default()), sam.default(), "maya") is None
    assert "refused a new key for maya" in caplog.text
    assert sam.default().roster["maya"] == maya.keys.verify_key_b64
    with pytest.raises(EnvelopeError, match="claims this device's id"):
        maya.learn(impostor.key_announcement(impostor.default()), maya.default(), "maya")


def test_a_device_id_pinned_to_another_key_is_reported(
    tmp_path: Path, street: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    PodStore(tmp_path / "sam", clock).join(street)
    pod_id = PodStore(tmp_path / "sam", clock).get("street").id
    other = DeviceKeys.generate()
    assert PodStore(tmp_path / "sam", clock).learn(pod_id, "sam", other.verify_key_b64)
    caplog.set_level(logging.ERROR)
    sam = member(tmp_path, "sam", clock)
    assert "another key pinned for this device's id 'sam'" in caplog.text
    assert sam.default().roster["sam"] == other.verify_key_b64, "the pinned key is not overwritten"


def test_a_pod_made_on_another_broker_is_heard_with_a_warning(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    PodStore(tmp_path / "sam", clock).create("street", None, "broker.example", 8883, tls=True)
    caplog.set_level(logging.WARNING)
    sam = Membership(
        PodStore(tmp_path / "sam", clock),
        DeviceKeys.load_or_create(tmp_path / "sam"),
        DeviceSettings(id="sam", name="Sam"),
        broker=("127.0.0.1", 1883),
        clock=clock,
    )
    sam.refresh()
    assert [pod.name for pod in sam.pods] == ["street"]
    assert "made on the broker broker.example:8883 but this device talks to 127.0.0.1:1883" in caplog.text


def test_a_broken_pod_file_is_skipped_with_one_warning_not_one_per_refresh(
    tmp_path: Path, street: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    PodStore(tmp_path / "sam", clock).join(street)
    broken = tmp_path / "sam" / "pods" / "0123456789abcdef.json"
    broken.write_text("{not json", encoding="utf-8")
    broken.chmod(0o600)
    caplog.set_level(logging.WARNING)
    sam = member(tmp_path, "sam", clock)
    for _ in range(5):
        sam.refresh()
    assert [pod.name for pod in sam.pods] == ["street"]
    assert sum("ignoring" in record.getMessage() for record in caplog.records) == 1


def test_a_clock_that_was_never_set_is_reported_at_start(
    tmp_path: Path, street: str, caplog: pytest.LogCaptureFixture
) -> None:
    PodStore(tmp_path / "sam").join(street)
    settings = Settings(
        device=DeviceSettings(id="sam", name="Sam"), privacy=PrivacySettings(keys_dir=tmp_path / "sam")
    )
    caplog.set_level(logging.WARNING)
    Membership.from_settings(settings, clock=lambda: 86_400.0)  # a Pi that booted without network
    assert "this device's clock says 1970-01-02 00:00" in caplog.text
    caplog.clear()
    Membership.from_settings(settings, clock=lambda: NOW)
    assert "clock says" not in caplog.text
