"""Text from the bus made safe to speak: the one cleaning every name and slot value goes through.

Imports nothing else of voicehello, so that the privacy layer (names pinned with keys) and the
announcer use the same rule without depending on each other.
"""

from __future__ import annotations

import unicodedata

_MARKUP = str.maketrans(dict.fromkeys("<>[]{}\\", " "))


def clean_text(text: str, max_chars: int) -> str:
    """``text`` safe to speak: NFKC, no control/format characters (Unicode C*) or markup
    characters (``< > [ ] { } \\``), whitespace collapsed, cut at a word boundary to ``max_chars``."""
    normalized = unicodedata.normalize("NFKC", text).translate(_MARKUP)
    kept = "".join(
        " " if char.isspace() else char for char in normalized if char.isspace() or not _is_control(char)
    )
    return _cut(" ".join(kept.split()), max_chars)


def _is_control(char: str) -> bool:
    return unicodedata.category(char).startswith("C")


def _cut(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` at the last word boundary (mid-word only when one
    word is longer than that)."""
    if max_chars <= 0:
        return ""
    if len(text) <= max_chars:
        return text
    head = text[: max_chars + 1]
    space = head.rfind(" ")
    cut = head[:space] if space > 0 else text[:max_chars]
    return cut.rstrip(" ,;:-")
