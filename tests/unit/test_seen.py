"""The ids of messages received, on disk before their messages are delivered (seen.log), and
compacted into seen.json; a crash at any moment loses none of them."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest

from voicehello.bus import seen as seen_module
from voicehello.bus.seen import SEEN_FILE, SEEN_LOG, SeenIds

NOW = 1_800_000_000.0


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def kept(directory: Path, now: float = NOW) -> SeenIds:
    seen = SeenIds()
    seen.keep_in(directory, now)
    return seen


def test_an_id_is_on_disk_when_first_says_it_is_new(tmp_path: Path) -> None:
    """Nothing is closed or compacted after ``first`` (as when the process is killed -9 right
    after delivering): a device starting on the same directory knows the id."""
    before_crash = kept(tmp_path)
    assert before_crash.first("a" * 32, NOW + 600, NOW)
    after_restart = kept(tmp_path, NOW + 1)
    assert not after_restart.first("a" * 32, NOW + 600, NOW + 1), "the id was not on disk"
    assert after_restart.first("b" * 32, NOW + 600, NOW + 1)


def test_files_are_owner_only_and_hold_only_ids_and_times(tmp_path: Path) -> None:
    seen = kept(tmp_path)
    seen.first("c" * 32, NOW + 60, NOW)
    log_text = (tmp_path / SEEN_LOG).read_text(encoding="utf-8")
    assert log_text == f"{'c' * 32} {NOW + 60!r}\n"
    seen.close(NOW)
    assert json.loads((tmp_path / SEEN_FILE).read_text(encoding="utf-8")) == {
        "v": 1,
        "seen": {"c" * 32: NOW + 60},
    }
    assert (tmp_path / SEEN_LOG).read_bytes() == b"", "compaction empties the log"
    assert _mode(tmp_path / SEEN_LOG) == 0o600
    assert _mode(tmp_path / SEEN_FILE) == 0o600


def test_the_log_is_compacted_when_it_grows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once it has at least ``COMPACT_MIN_LINES`` lines and twice as many as ids remembered."""
    monkeypatch.setattr(seen_module, "COMPACT_MIN_LINES", 4)
    seen = kept(tmp_path)
    for n in range(3):
        seen.first(f"{n}" * 32, NOW + 5, NOW)  # expire before the fourth arrives
    assert (tmp_path / SEEN_LOG).read_text(encoding="utf-8").count("\n") == 3
    seen.first("3" * 32, NOW + 600, NOW + 10)
    assert (tmp_path / SEEN_LOG).read_bytes() == b"", "four lines for one id: compacted"
    snapshot = json.loads((tmp_path / SEEN_FILE).read_text(encoding="utf-8"))["seen"]
    assert snapshot == {"3" * 32: NOW + 600}, "expired ids are not carried over"
    seen.first("4" * 32, NOW + 600, NOW + 10)
    assert (tmp_path / SEEN_LOG).read_text(encoding="utf-8").count("\n") == 1


def test_a_line_cut_short_by_a_crash_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    seen = kept(tmp_path)
    seen.first("d" * 32, NOW + 600, NOW)
    with (tmp_path / SEEN_LOG).open("a", encoding="utf-8") as log_file:
        log_file.write("e" * 32 + " 1.8e")  # the last line written only in part
    with caplog.at_level(logging.WARNING):
        again = kept(tmp_path, NOW + 1)
    assert not again.first("d" * 32, NOW + 600, NOW + 1)
    assert [r.getMessage() for r in caplog.records] == [
        f"ignored 1 unreadable line(s) of {tmp_path / SEEN_LOG}"
    ]


def test_the_snapshot_of_an_older_version_is_read(tmp_path: Path) -> None:
    """seen.json as the 10-second saver wrote it (before the log) still counts."""
    (tmp_path / SEEN_FILE).write_text(json.dumps({"v": 1, "seen": {"g" * 32: NOW + 60}}), encoding="utf-8")
    (tmp_path / SEEN_FILE).chmod(0o600)
    assert not kept(tmp_path).first("g" * 32, NOW + 60, NOW)


def test_a_log_open_to_others_is_not_used(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One warning; the ids are then remembered in memory only (the daemon carries on)."""
    (tmp_path / SEEN_LOG).write_text("h" * 32 + f" {NOW + 60!r}\n", encoding="utf-8")
    (tmp_path / SEEN_LOG).chmod(0o644)
    with caplog.at_level(logging.WARNING):
        seen = kept(tmp_path)
    assert any("is open to other users" in r.getMessage() for r in caplog.records)
    assert seen.first("i" * 32, NOW + 60, NOW)
    assert not seen.first("i" * 32, NOW + 60, NOW)
    assert "i" * 32 not in (tmp_path / SEEN_LOG).read_text(encoding="utf-8")


def test_without_a_directory_ids_stay_in_memory(tmp_path: Path) -> None:
    seen = SeenIds()
    assert seen.first("j" * 32, NOW + 60, NOW)
    assert not seen.first("j" * 32, NOW + 60, NOW)
    seen.close(NOW)
    assert list(tmp_path.iterdir()) == []
