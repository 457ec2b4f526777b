"""``voicehello pod create / join / list / leave`` through the installed console script."""

from __future__ import annotations

import re
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from voicehello.privacy.keys import DeviceKeys, fingerprint
from voicehello.privacy.pods import PodStore

pytestmark = pytest.mark.integration

Run = Callable[..., "subprocess.CompletedProcess[str]"]


def _config(directory: Path, keys: str, bus: str = "") -> Path:
    """A settings file whose keys live in ``directory/keys``."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "voicehello.toml"
    config.write_text(f'[privacy]\nkeys_dir = "{keys}"\n{bus}', encoding="utf-8")
    return config


def _env(config: Path) -> dict[str, str]:
    return {"VOICEHELLO_CONFIG": str(config)}


def _one_line_error(result: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert result.returncode == 1, result
    stderr = result.stderr
    assert stderr.startswith("voicehello: "), stderr
    assert stderr.count("\n") == 1, stderr
    assert pattern in stderr, stderr


def test_create_join_list_leave(voicehello: Run, tmp_path: Path) -> None:
    alice = _config(tmp_path / "alice", "keys", '[bus]\nhost = "broker.local"\nport = 8883\ntls = true\n')
    bob = _config(tmp_path / "bob", "keys")

    created = voicehello("pod", "create", "dinner", "--hours", "3", env=_env(alice))
    assert created.returncode == 0, created.stderr
    code, about = created.stdout.splitlines()
    assert code.startswith("vh1-")
    assert " " not in code
    assert "expires at" in about
    keys = tmp_path / "alice" / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert stat.S_IMODE((keys / "device.key").stat().st_mode) == 0o600

    joined = voicehello("pod", "join", code, env=_env(bob))
    assert joined.returncode == 0, joined.stderr
    assert "joined pod dinner" in joined.stdout
    assert "broker.local:8883" in joined.stdout
    assert "set [bus] host and port to broker.local:8883 (tls = true)" in joined.stderr, (
        "bob's config names no broker: he is told which one the pod meets on"
    )

    listings = [voicehello("pod", "list", env=_env(config)) for config in (alice, bob)]
    for listing in listings:
        assert listing.returncode == 0, listing.stderr
        assert "dinner" in listing.stdout
    marked, name, pod_id = listings[0].stdout.splitlines()[1].split()[:3]
    assert (marked, name) == ("*", "dinner"), "the only pod is the default one"
    assert pod_id in listings[1].stdout
    assert list((tmp_path / "bob" / "keys" / "pods").iterdir()) == [
        tmp_path / "bob" / "keys" / "pods" / f"{pod_id}.json"
    ]

    left = voicehello("pod", "leave", "dinner", env=_env(bob))
    assert left.returncode == 0, left.stderr
    assert "no pods" in voicehello("pod", "list", env=_env(bob)).stdout
    _one_line_error(voicehello("pod", "leave", "dinner", env=_env(bob)), "no pod 'dinner'")


def test_expired_invite_is_refused(voicehello: Run, tmp_path: Path) -> None:
    old = PodStore(tmp_path / "old", clock=lambda: time.time() - 7200)
    code = old.invite(old.create("party", 1, "", 1883, False))
    bob = _config(tmp_path / "bob", "keys")
    _one_line_error(voicehello("pod", "join", code, env=_env(bob)), "this invite expired at")


@pytest.mark.parametrize("code", ["vh1-abcd-efgh", "hello", "vh1-zzzz-zzzz-zzzz-zzzz-zzzz-zzzz-zzzz"])
def test_garbled_invite_is_refused(voicehello: Run, tmp_path: Path, code: str) -> None:
    bob = _config(tmp_path / "bob", "keys")
    _one_line_error(voicehello("pod", "join", code, env=_env(bob)), "invite")


def test_typo_is_refused(voicehello: Run, tmp_path: Path) -> None:
    alice = _config(tmp_path / "alice", "keys")
    code = voicehello("pod", "create", "street", "--forever", env=_env(alice)).stdout.splitlines()[0]
    position = len(code) // 2
    typo = code[:position] + ("b" if code[position] != "b" else "c") + code[position + 1 :]
    _one_line_error(voicehello("pod", "join", typo, env=_env(_config(tmp_path / "bob", "keys"))), "typo")


def test_list_marks_the_default_pod_and_create_tells_the_broker_grant(
    voicehello: Run, tmp_path: Path
) -> None:
    hardened = '[bus]\nhost = "127.0.0.1"\npod = "garden"\nusername = "maya"\npassword = "x"\n'
    maya = _config(tmp_path / "maya", "keys", hardened)
    street = voicehello("pod", "create", "street", "--forever", env=_env(maya))
    assert street.returncode == 0, street.stderr
    assert "voicehello broker grant DEVICE " in street.stderr, "a hardened broker needs a grant per pod"
    first = voicehello("pod", "list", env=_env(maya)).stdout.splitlines()
    assert first[1].startswith("* street"), first
    assert voicehello("pod", "create", "garden", "--hours", "2", env=_env(maya)).returncode == 0
    rows = {
        line.split()[-4]: line for line in voicehello("pod", "list", env=_env(maya)).stdout.splitlines()[1:3]
    }
    assert rows["garden"].startswith("* "), rows
    assert rows["street"].startswith("  "), rows
    plain = _config(tmp_path / "maya-plain", str(tmp_path / "maya" / "keys"), '[bus]\npod = "party"\n')
    listing = voicehello("pod", "list", env=_env(plain)).stdout
    assert "no default pod: set [bus] pod" in listing
    assert not any(line.startswith("*") for line in listing.splitlines())


_DARK = {"\u2588": (False, False), "\u2580": (False, True), "\u2584": (True, False), " ": (True, True)}
"""Printed character -> (top module dark, bottom module dark): light modules are drawn."""


def _scan(qr_text: str, directory: Path, scale: int = 6) -> str:
    """Decode a QR code printed in text with zbarimg (the picture goes through a PBM file)."""
    rows: list[list[bool]] = []
    for line in qr_text.splitlines():
        cells = [_DARK[char] for char in line]
        rows += [[top for top, _ in cells], [bottom for _, bottom in cells]]
    width = len(rows[0]) * scale
    pixels = [
        " ".join("1" if dark else "0" for dark in row for _ in range(scale))
        for row in rows
        for _ in range(scale)
    ]
    picture = directory / "invite.pbm"
    picture.write_text(f"P1\n{width} {len(pixels)}\n" + "\n".join(pixels) + "\n", encoding="ascii")
    scanned = subprocess.run(
        ["zbarimg", "--raw", "-q", str(picture)], capture_output=True, text=True, check=False
    )
    assert scanned.returncode == 0, f"zbarimg found no QR code: {scanned.stderr}"
    return scanned.stdout.strip()


def test_the_printed_qr_code_scans_to_a_code_that_joins(voicehello: Run, tmp_path: Path) -> None:
    alice = _config(tmp_path / "alice", "keys", '[bus]\nhost = "pi.local"\n')
    created = voicehello("pod", "create", "block party", "--hours", "2", "--qr", env=_env(alice))
    assert created.returncode == 0, created.stderr
    code, about, *qr = created.stdout.splitlines()
    assert "pod block-party" in about
    assert len(qr) > 20, "no QR code printed"
    assert set("".join(qr)) <= set(_DARK), "only half blocks and spaces"
    scanned = _scan("\n".join(qr), tmp_path)
    assert scanned.lower() == code, "the QR code carries the invite code (upper-case: a smaller symbol)"
    joined = voicehello("pod", "join", scanned, env=_env(_config(tmp_path / "bob", "keys")))
    assert joined.returncode == 0, joined.stderr
    assert "joined pod block-party" in joined.stdout


def test_without_qr_only_the_code_and_a_line_about_it(voicehello: Run, tmp_path: Path) -> None:
    created = voicehello("pod", "create", "street", "--forever", env=_env(_config(tmp_path / "a", "keys")))
    assert len(created.stdout.splitlines()) == 2


def test_members_shows_fingerprints_neighbors_can_compare(voicehello: Run, tmp_path: Path) -> None:
    alice = _config(tmp_path / "alice", "keys", '[device]\nid = "alice"\n')
    bob = _config(tmp_path / "bob", "keys", '[device]\nid = "bob"\n')
    code = voicehello("pod", "create", "street", "--forever", env=_env(alice)).stdout.splitlines()[0]
    assert voicehello("pod", "join", code, env=_env(bob)).returncode == 0
    empty = voicehello("pod", "members", "street", env=_env(alice))
    assert empty.returncode == 0, empty.stderr
    assert "none yet" in empty.stdout
    bob_key = DeviceKeys.load_or_create(tmp_path / "bob" / "keys").verify_key_b64
    alices = PodStore(tmp_path / "alice" / "keys")
    assert alices.learn(
        alices.get("street").id, "bob", bob_key
    )  # what alice's daemon does on bob's announcement

    seen_by_alice = voicehello("pod", "members", "street", env=_env(alice)).stdout
    bob_says = voicehello("pod", "members", "street", env=_env(bob)).stdout.splitlines()[0]
    assert bob_says.startswith("this device, bob: ")
    bob_fingerprint = bob_says.removeprefix("this device, bob: ")
    assert re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", bob_fingerprint), bob_fingerprint
    assert re.search(rf"^  bob +\(no name yet\) +{bob_fingerprint}$", seen_by_alice, re.MULTILINE), (
        seen_by_alice
    )
    assert bob_fingerprint not in seen_by_alice.splitlines()[0], "alice's own line shows her key"
    _one_line_error(voicehello("pod", "members", "garden", env=_env(alice)), "no pod 'garden'")


def test_a_joiner_knows_the_inviters_key_from_the_code(voicehello: Run, tmp_path: Path) -> None:
    alice = _config(tmp_path / "alice", "keys", '[device]\nid = "alice"\n')
    bob = _config(tmp_path / "bob", "keys", '[device]\nid = "bob"\n')
    carol = _config(tmp_path / "carol", "keys", '[device]\nid = "carol"\n')
    assert voicehello("pod", "create", "street", "--forever", env=_env(alice)).returncode == 0
    invited = voicehello("pod", "invite", "street", env=_env(alice))
    assert invited.returncode == 0, invited.stderr
    assert voicehello("pod", "join", invited.stdout.splitlines()[0], env=_env(bob)).returncode == 0
    alice_says = voicehello("pod", "members", "street", env=_env(alice)).stdout.splitlines()[0]
    alice_fingerprint = alice_says.removeprefix("this device, alice: ")
    assert alice_fingerprint in voicehello("pod", "members", "street", env=_env(bob)).stdout, (
        "bob pinned alice's key when he joined, before any message"
    )
    by_bob = voicehello("pod", "invite", "street", "--qr", env=_env(bob))
    assert _scan("\n".join(by_bob.stdout.splitlines()[2:]), tmp_path).lower() == by_bob.stdout.splitlines()[0]
    assert voicehello("pod", "join", by_bob.stdout.splitlines()[0], env=_env(carol)).returncode == 0
    carols = voicehello("pod", "members", "street", env=_env(carol)).stdout
    assert "bob" in carols
    assert "alice" not in carols, "an invite carries its inviter's key only"
    _one_line_error(voicehello("pod", "invite", "garden", env=_env(alice)), "no pod 'garden'")


def test_members_shows_names_pinned_with_keys_and_a_forged_invite(voicehello: Run, tmp_path: Path) -> None:
    """sam joins with a code mallory signed naming maya; then maya's own key topic announces
    maya's real key (what sam's daemon does, done here with the store), and mallory announces a
    name maya already holds, then renames: `pod members` shows each, and accept-name adopts."""
    maya = _config(tmp_path / "maya", "keys", '[device]\nid = "maya"\nname = "Maya"\n')
    sam = _config(tmp_path / "sam", "keys", '[device]\nid = "sam"\n')
    assert voicehello("pod", "create", "street", "--forever", env=_env(maya)).returncode == 0
    mayas = PodStore(tmp_path / "maya" / "keys")
    pod = mayas.get("street")
    mallory = DeviceKeys.generate()
    forged = mayas.invite(pod, "maya", mallory)  # any member can write this: mallory signs it
    joined = voicehello("pod", "join", forged, env=_env(sam))
    assert joined.returncode == 0, joined.stderr
    assert "maya's key from this code is checked when maya's device announces its own" in joined.stdout
    unconfirmed = voicehello("pod", "members", "street", env=_env(sam)).stdout
    assert "key from an invite, unconfirmed until maya's device announces it" in unconfirmed

    sams = PodStore(tmp_path / "sam" / "keys")
    maya_key = DeviceKeys.load_or_create(tmp_path / "maya" / "keys").verify_key_b64
    assert sams.learn(pod.id, "maya", maya_key, "Maya")
    assert sams.learn(pod.id, "mallory", mallory.verify_key_b64, "maya ")
    assert sams.learn(pod.id, "mallory", mallory.verify_key_b64, "Mallory")
    members = voicehello("pod", "members", "street", env=_env(sam)).stdout
    assert re.search(rf"^  maya +'Maya' +{fingerprint(maya_key)}$", members, re.MULTILINE), members
    assert (
        "the invite you joined pod street with named maya with a key maya does not use "
        f"(invite {fingerprint(mallory.verify_key_b64)}, maya's own key topic {fingerprint(maya_key)})"
    ) in members
    assert re.search(rf"^  mallory +'maya' +{fingerprint(mallory.verify_key_b64)}$", members, re.MULTILINE)
    assert "maya was called 'maya' first: announced as 'someone calling themselves ...'" in members
    assert "now calls themselves 'Mallory': run `voicehello pod accept-name street mallory`" in members

    accepted = voicehello("pod", "accept-name", "street", "mallory", env=_env(sam))
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout == "mallory is now announced as 'Mallory'\n"
    after = voicehello("pod", "members", "street", env=_env(sam)).stdout
    assert "'Mallory'" in after
    assert "someone calling themselves" not in after
    _one_line_error(voicehello("pod", "accept-name", "street", "mallory", env=_env(sam)), "no new name")


def test_a_code_typed_with_spaces_for_dashes_joins(voicehello: Run, tmp_path: Path) -> None:
    alice = _config(tmp_path / "alice", "keys")
    code = voicehello("pod", "create", "street", "--forever", env=_env(alice)).stdout.splitlines()[0]
    spoken = code.upper().replace("-", " ").split()  # "VH1 AEBQ ...", as separate arguments
    joined = voicehello("pod", "join", *spoken, env=_env(_config(tmp_path / "bob", "keys")))
    assert joined.returncode == 0, joined.stderr
    assert "joined pod street" in joined.stdout
