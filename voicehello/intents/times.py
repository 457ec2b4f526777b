"""The built-in ``time`` slot: spoken days and clock times, and their canonical form.

"tonight at seven" -> ``tonight at 7:00``; "on saturday at half past two" -> ``saturday at 2:30``;
"at noon tomorrow" -> ``tomorrow at 12:00``. The grammar is written in the template syntax of
:mod:`voicehello.intents.templates` so recognizers and the text parser share it.
"""

from __future__ import annotations

HOURS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
PARTS_OF_DAY = ("morning", "afternoon", "evening", "night")
MINUTES = {"o'clock": 0, "fifteen": 15, "thirty": 30, "forty five": 45}

_HOUR = "(" + "|".join(HOURS) + ")"
_DAY = (
    "(today | tonight | tomorrow [morning|afternoon|evening|night] | this (morning|afternoon|evening|weekend)"
    f" | [on|this|next] ({'|'.join(WEEKDAYS)}) [morning|afternoon|evening|night])"
)
_CLOCK = (
    f"at ({_HOUR} [o'clock|fifteen|thirty|forty five] | half past {_HOUR} | quarter (past|to) {_HOUR}"
    " | noon | midnight)"
)
TIME_TEMPLATE = f"({_DAY} [{_CLOCK}] | {_CLOCK} [{_DAY}])"
"""Everything the ``time`` slot accepts, as a template."""


def _parse_clock(words: list[str]) -> str | None:
    """``["half", "past", "seven"]`` -> ``"7:30"``; None when the words are not a clock time."""
    if words == ["noon"]:
        return "12:00"
    if words == ["midnight"]:
        return "0:00"
    if len(words) == 3 and words[1] in ("past", "to") and words[2] in HOURS:
        hour = HOURS.index(words[2]) + 1
        if words[0] == "half" and words[1] == "past":
            return f"{hour}:30"
        if words[0] == "quarter":
            return f"{hour}:15" if words[1] == "past" else f"{(hour - 2) % 12 + 1}:45"
        return None
    if words and words[0] in HOURS:
        minutes = MINUTES.get(" ".join(words[1:])) if len(words) > 1 else 0
        if minutes is not None:
            return f"{HOURS.index(words[0]) + 1}:{minutes:02d}"
    return None


def _parse_day(words: list[str]) -> str | None:
    """``["on", "saturday", "evening"]`` -> ``"saturday evening"``; None unless the words are
    exactly a day phrase of :data:`TIME_TEMPLATE`."""
    if words in (["today"], ["tonight"], ["tomorrow"]):
        return words[0]
    if len(words) == 2 and words[0] == "tomorrow" and words[1] in PARTS_OF_DAY:
        return " ".join(words)
    if len(words) == 2 and words[0] == "this" and words[1] in ("morning", "afternoon", "evening", "weekend"):
        return " ".join(words)
    prefix = words[:1] if words[:1] in (["on"], ["this"], ["next"]) else []
    rest = words[len(prefix) :]
    if rest and rest[0] in WEEKDAYS and (len(rest) == 1 or (len(rest) == 2 and rest[1] in PARTS_OF_DAY)):
        return " ".join(rest if prefix == ["on"] else words)
    return None


def canonical_time(text: str) -> str | None:
    """Canonical form of a spoken time phrase, or None when it is not one."""
    words = text.split()
    if "at" not in words:
        return _parse_day(words)
    at = words.index("at")
    if at == 0:
        # "at seven [tonight]": the clock may be followed by a day phrase.
        for split in range(len(words), 1, -1):
            clock = _parse_clock(words[1:split])
            if clock is not None:
                rest = words[split:]
                day = _parse_day(rest) if rest else ""
                if day is None:
                    return None
                return f"{day} at {clock}".strip()
        return None
    day = _parse_day(words[:at])
    clock = _parse_clock(words[at + 1 :])
    if day is None or clock is None:
        return None
    return f"{day} at {clock}"
