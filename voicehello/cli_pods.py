"""``voicehello pod create / join / list / leave``."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the subcommands to the ``voicehello`` parser (placeholder until built)."""
