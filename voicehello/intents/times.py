"""The built-in ``time`` slot: spoken days and clock times, and their canonical form.

"tonight at seven" -> ``tonight at 7:00``; "on saturday at half past two" -> ``saturday at 2:30``;
"at noon tomorrow" -> ``tomorrow at 12:00``. The grammar is written in the template syntax of
:mod:`voicehello.intents.templates` so recognizers and the text parser share it.

:func:`canonical_time` also understands everyday forms outside that grammar, for typed text and
the statistical parser: "at half six" -> ``at 6:30``, "this saturday afternoon", "next weekend",
"at seven pm", "around ten past seven" -> ``at 7:10``, "in an hour", "in twenty minutes".
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


RELATIVE_TIMES = (
    "in a minute",
    "in a few minutes",
    "in half an hour",
    "in an hour",
    "in a couple of hours",
    "in a few hours",
)
"""Relative times that are their own canonical form ("in an hour")."""

_CLOCK_PREFIXES = frozenset({"at", "around", "about", "from", "by"})
_CLOCK_SUFFIXES = (
    ("in", "the", "morning"),
    ("in", "the", "afternoon"),
    ("in", "the", "evening"),
    ("at", "night"),
    ("o'clock",),
    ("pm",),
    ("am",),
    ("p", "m"),
    ("a", "m"),
    ("ish",),
    ("sharp",),
)
NUMBER_WORDS: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
"""The numbers below twenty as words, by value."""
_NUMBERS = {word: index for index, word in enumerate(NUMBER_WORDS)}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50}
_WEEKEND_DAYS = {
    ("the", "weekend"): "this weekend",
    ("at", "the", "weekend"): "this weekend",
    ("on", "the", "weekend"): "this weekend",
    ("over", "the", "weekend"): "this weekend",
    ("this", "weekend"): "this weekend",
    ("next", "weekend"): "next weekend",
    ("next", "week"): "next week",
    ("this", "week"): "this week",
    ("later", "today"): "later today",
    ("later", "on"): "later today",
    ("this", "evening"): "this evening",
    ("this", "afternoon"): "this afternoon",
    ("this", "morning"): "this morning",
    ("this", "arvo"): "this afternoon",
    ("tomorrow", "night"): "tomorrow night",
}


def _minutes(words: list[str]) -> int | None:
    """``["twenty", "five"]`` -> 25, ``["oh", "five"]`` -> 5; None when not 1..59 in words."""
    if len(words) == 2 and words[0] == "oh" and words[1] in _NUMBERS and 0 < _NUMBERS[words[1]] < 10:
        return _NUMBERS[words[1]]
    if len(words) == 1 and words[0] in _NUMBERS and 10 <= _NUMBERS[words[0]] <= 19:
        return _NUMBERS[words[0]]
    if words and words[0] in _TENS:
        if len(words) == 1:
            return _TENS[words[0]]
        if len(words) == 2 and words[1] in _NUMBERS and 0 < _NUMBERS[words[1]] < 10:
            return _TENS[words[0]] + _NUMBERS[words[1]]
    return None


def _hour(word: str) -> int | None:
    return HOURS.index(word) + 1 if word in HOURS else None


def _parse_clock(words: list[str]) -> str | None:
    """``["half", "past", "seven"]`` -> ``"7:30"``; None when the words are not a clock time.

    Besides the grammar's forms: "half six" (6:30), "ten past seven", "twenty to eight",
    "seven ten", "seven oh five", and a trailing "pm", "o'clock" or "in the evening"."""
    for suffix in _CLOCK_SUFFIXES:
        if len(words) > len(suffix) and tuple(words[-len(suffix) :]) == suffix:
            return _parse_clock(words[: -len(suffix)])
    if words in (["noon"], ["midday"]):
        return "12:00"
    if words == ["midnight"]:
        return "0:00"
    if len(words) == 2 and words[0] == "half" and _hour(words[1]) is not None:
        return f"{_hour(words[1])}:30"
    if len(words) >= 3 and words[-2] in ("past", "to") and _hour(words[-1]) is not None:
        hour = _hour(words[-1]) or 0
        head = words[:-2]
        if head == ["half"]:
            minutes = 30 if words[-2] == "past" else None
        elif head in (["quarter"], ["a", "quarter"]):
            minutes = 15
        else:
            minutes = _minutes(head[:-1] if head[-1:] == ["minutes"] else head)
        if minutes is None or (minutes >= 30 and head != ["half"]):
            return None
        if words[-2] == "past":
            return f"{hour}:{minutes:02d}"
        return f"{(hour - 2) % 12 + 1}:{60 - minutes:02d}"
    if words and _hour(words[0]) is not None:
        hour = _hour(words[0]) or 0
        if len(words) == 1:
            return f"{hour}:00"
        rest = " ".join(words[1:])
        if rest in MINUTES:
            return f"{hour}:{MINUTES[rest]:02d}"
        minutes = _minutes(words[1:])
        if minutes is not None:
            return f"{hour}:{minutes:02d}"
    return None


def _parse_day(words: list[str]) -> str | None:
    """``["on", "saturday", "evening"]`` -> ``"saturday evening"``; None unless the words are
    exactly a day phrase ("tonight", "tomorrow morning", "this saturday afternoon", "next weekend")."""
    if words in (["today"], ["tonight"], ["tomorrow"]):
        return words[0]
    if tuple(words) in _WEEKEND_DAYS:
        return _WEEKEND_DAYS[tuple(words)]
    if len(words) == 2 and words[0] == "tomorrow" and words[1] in PARTS_OF_DAY:
        return " ".join(words)
    prefix = words[:1] if words[:1] in (["on"], ["this"], ["next"]) else []
    rest = words[len(prefix) :]
    if rest and rest[0] in WEEKDAYS and (len(rest) == 1 or (len(rest) == 2 and rest[1] in PARTS_OF_DAY)):
        return " ".join(rest if prefix == ["on"] else words)
    return None


def _parse_relative(words: list[str]) -> str | None:
    """ "in an hour", "in twenty minutes" -> ``in 20 minutes``, "in two hours" -> ``in 2 hours``."""
    text = " ".join(words)
    if text in RELATIVE_TIMES:
        return text
    if len(words) >= 3 and words[0] == "in" and words[-1] in ("minutes", "hours"):
        amount = _minutes(words[1:-1]) if words[1] not in _NUMBERS or len(words) > 3 else _NUMBERS[words[1]]
        if amount is not None and amount > 1 and (words[-1] == "minutes" or amount <= 12):
            return f"in {amount} {words[-1]}"
    return None


def _parse_at_clock(words: list[str]) -> str | None:
    """A clock time with its preposition ("at seven", "around half six")."""
    if len(words) >= 2 and words[0] in _CLOCK_PREFIXES and words[1] != "at":
        return _parse_clock(words[1:])
    return None


def canonical_time(text: str) -> str | None:
    """Canonical form of a spoken time phrase, or None when it is not one.

    ``day``, ``at H:MM`` or ``day at H:MM`` (clock and day in either order), or a relative
    time ("in an hour")."""
    words = text.split()
    if not words:
        return None
    relative = _parse_relative(words)
    if relative is not None:
        return relative
    day = _parse_day(words)
    if day is not None:
        return day
    clock = _parse_at_clock(words)
    if clock is not None:
        return f"at {clock}"
    for split in range(1, len(words)):
        head, tail = words[:split], words[split:]
        # day then clock ("tomorrow at seven", "saturday half six"), or clock then day
        day, clock = _parse_day(head), _parse_at_clock(tail) or _parse_clock_after_day(tail)
        if day is None or clock is None:
            day, clock = _parse_day(tail), _parse_at_clock(head)
        if day is not None and clock is not None:
            return f"{day} at {clock}"
    return None


def _parse_clock_after_day(words: list[str]) -> str | None:
    """A clock time straight after a day, without "at" ("saturday half six")."""
    if words and (words[0] == "half" or words[-1] in ("pm", "am", "o'clock")):
        return _parse_clock(words)
    return None
