"""The broker's password file lines against Mosquitto's own tool, ``mosquitto_passwd`` (run as a
process, so an integration test; the rest of the hardening files are checked in
tests/unit/test_hardening.py)."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from voicehello.bus import hardening

pytestmark = pytest.mark.integration


def test_password_hash_is_the_one_mosquitto_passwd_writes(tmp_path: Path) -> None:
    """Same salt, same password: the same line as Mosquitto's own tool (which is only used here)."""
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    passwd = tmp_path / "passwd"
    passwd.write_text("", encoding="utf-8")
    subprocess.run([tool, "-b", str(passwd), "maya", "correct horse"], check=True, capture_output=True)
    theirs = passwd.read_text(encoding="utf-8").strip().split(":", 1)[1]
    _, seven, iterations, salt, _digest = theirs.split("$")
    assert (seven, iterations) == ("7", str(hardening.PBKDF2_ITERATIONS))
    assert hardening.password_hash("correct horse", base64.b64decode(salt)) == theirs
    assert hardening.password_hash("correct horse") != theirs, "a fresh salt each time"
