"""Where a test's hardened broker lives, so that it really runs as the ``mosquitto`` user.

Run as root, ``broker init`` gives the broker's directory to ``mosquitto``, which must be able to
reach it; pytest's temporary directories are closed to other users (``/tmp/pytest-of-root`` is
0700), where the broker falls back to running as root. :func:`broker_home` makes a directory
under ``/tmp`` others may pass through (0711), and removes it afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def broker_home() -> Iterator[Path]:
    """A fresh directory the broker's user can reach (its CA key goes in a sibling of the broker's)."""
    home = Path(tempfile.mkdtemp(prefix="vh-broker-"))
    os.chmod(home, 0o711)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)
