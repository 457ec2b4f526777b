"""Invite codes as QR codes printed in a terminal, for a neighbor's phone or device to scan.

The code is encoded upper-case (QR alphanumeric mode: a smaller symbol; invite codes ignore
case) and drawn with Unicode half blocks, two modules per character row, the way ``qrencode -t
UTF8`` does: drawn (foreground) cells are the *light* modules, so it reads as dark-on-light on
a terminal with a dark background, with the standard 4-module quiet zone.
"""

from __future__ import annotations

import segno

QUIET_ZONE = 4
_CELLS = {
    (False, False): "\u2588",  # both light: full block
    (False, True): "\u2580",  # top light: upper half block
    (True, False): "\u2584",  # bottom light: lower half block
    (True, True): " ",  # both dark
}
"""(top module dark, bottom module dark) -> the character drawn."""


def qr_modules(text: str) -> list[list[bool]]:
    """The QR symbol for ``text`` (error correction M), True for dark, with the quiet zone."""
    symbol = segno.make(text, error="m", micro=False)
    size = len(symbol.matrix) + 2 * QUIET_ZONE
    light_rows = [[False] * size for _ in range(QUIET_ZONE)]
    rows = [
        [False] * QUIET_ZONE + [bool(module) for module in row] + [False] * QUIET_ZONE
        for row in symbol.matrix
    ]
    return light_rows + rows + [[False] * size for _ in range(QUIET_ZONE)]


def invite_qr(code: str) -> str:
    """``code`` as a QR code in text (one line per two rows of modules)."""
    modules = qr_modules(code.upper())
    if len(modules) % 2:
        modules.append([False] * len(modules[0]))
    lines = [
        "".join(_CELLS[(top, bottom)] for top, bottom in zip(upper, lower, strict=True))
        for upper, lower in zip(modules[::2], modules[1::2], strict=True)
    ]
    return "\n".join(lines) + "\n"
