"""``voicehello broker init / add-device / grant: the hardened Mosquitto``."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the subcommands to the ``voicehello`` parser (placeholder until built)."""
