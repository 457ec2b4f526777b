"""Owner-only files that survive a crash: written, fsync'd and (for a rename) the directory synced.

:func:`~voicehello.privacy.keys.write_private` makes the file itself durable; a power cut right
after it can still lose the rename unless the directory is synced too, which
:func:`write_durable` does. :class:`AppendLog` is an owner-only file of lines, each one on disk
(``fdatasync``) before :meth:`AppendLog.append` returns.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from voicehello.errors import PrivacyError
from voicehello.privacy.keys import PRIVATE_FILE_MODE, private_dir, write_private

log = logging.getLogger(__name__)


def sync_dir(directory: Path) -> None:
    """Make the names in ``directory`` durable (a rename or unlink in it survives a power cut)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durable(path: Path, data: bytes, *, sync_name: bool = True) -> None:
    """Write ``data`` to ``path`` owner-only and atomically, on disk when this returns
    (:class:`PrivacyError` when it cannot). With ``sync_name=False`` the directory is not synced:
    after a power cut ``path`` may hold its previous contents (never a mix), one fsync cheaper."""
    try:
        private_dir(path.parent)
        write_private(path, data)
        if sync_name:
            sync_dir(path.parent)
    except OSError as exc:
        raise PrivacyError(f"cannot write {path}: {exc.strerror or exc}") from exc


def remove_durable(path: Path) -> None:
    """Delete ``path`` (if it is there), the deletion on disk when this returns."""
    try:
        path.unlink(missing_ok=True)
        sync_dir(path.parent)
    except OSError as exc:
        raise PrivacyError(f"cannot delete {path}: {exc.strerror or exc}") from exc


class AppendLog:
    """An owner-only file of lines, each fsync'd as it is appended. Not thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = 0
        """Lines appended since the file was opened or emptied."""
        self._fd: int | None = None

    def open(self) -> None:
        """Open (make) the file for appending; :class:`PrivacyError` if others may read it."""
        try:
            private_dir(self.path.parent)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(self.path, flags, PRIVATE_FILE_MODE)
        except OSError as exc:
            raise PrivacyError(f"cannot open {self.path}: {exc.strerror or exc}") from exc
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077:
            os.close(fd)
            raise PrivacyError(
                f"{self.path} is open to other users (mode {mode:04o}); run: chmod 600 {self.path}"
            )
        sync_dir(self.path.parent)
        self._fd = fd

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close`."""
        return self._fd is not None

    def append(self, line: str) -> None:
        """Add one line (no newline in it), on disk when this returns (:class:`OSError` if not)."""
        if self._fd is None:
            raise OSError(f"{self.path} is not open")
        data = (line + "\n").encode("utf-8")
        written = os.write(self._fd, data)
        if written != len(data):
            raise OSError(f"short write to {self.path} ({written} of {len(data)} bytes)")
        os.fdatasync(self._fd)
        self.lines += 1

    def empty(self) -> None:
        """Drop every line (after what they said was saved elsewhere)."""
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        os.fsync(self._fd)
        self.lines = 0

    def close(self) -> None:
        """Close the file (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
