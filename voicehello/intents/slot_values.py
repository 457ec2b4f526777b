"""The one rule for what a slot value may be: a short, request-shaped phrase.

A neighbor's device always speaks "<sender's name> <intent phrase with the slot>" ("Maya at
number 12 asks to borrow a ladder"). Slot values come from the bus, so they are someone else's
text: the frame around them only protects the listener if the value cannot break out of it or
sound like someone else speaking. "The fire brigade reports a gas leak, everyone must leave now"
as an "item" was once spoken word for word. So every slot value must pass this rule, checked
when a message is made (a device never sends a value that breaks it) and when it is received
(a message with such a value is dropped, with one log line naming the slot and the rule, never
the value):

**Phrase slots** (every slot but the time slots: items, foods, tasks, events, issues, and the
open slots to come):

1. 1 to :data:`MAX_CHARS` characters and at most :data:`MAX_WORDS` words (a hyphen separates
   words too): a thing, a task or an event, never a sentence. "pasta maker", "moving a
   wardrobe", "fix a leaky faucet" fit.
2. Only letters, single spaces between words, and hyphens or apostrophes inside words. A letter
   is a Latin letter, plain or with accents (``é``, ``ñ``: ``crème brûlée`` fits). Nothing
   else: no sentence punctuation (``. , ! ? ; :``), no quotes, no digits (a number alone is not
   a request; times have a slot of their own), no symbols or markup (``< > [ ] { }``: SSML and
   espeak's phoneme brackets), no control or format characters (zero-width joiners, right-to-
   left marks), no other scripts ("police" spelled with a Cyrillic o would slip past the word
   list below while sounding the same), no fullwidth or compatibility forms (fullwidth letters,
   the "fi" ligature), no line breaks or runs of spaces (a pause a TTS engine reads as a new
   sentence).
3. Not an authority, an alarm or an order. The value, with accents removed, case folded and
   each word taken both as written and with its hyphens and apostrophes removed, contains none
   of :data:`DENIED_WORDS` ("police", "everyone", "must", "evacuate", "warning", "now", "you"
   ...), none of the word sequences in :data:`DENIED_PHRASES` ("fire brigade", "all
   residents", "stay inside", "do not" ...), and, with all spaces, hyphens and apostrophes
   removed, none of :data:`DENIED_STEMS` ("po lice", "every-one", "evac uate").

   Why these: the frame makes every sentence a *neighbor's* request, offer, event or report,
   attributed to the name pinned with their key. What it cannot stop by itself is a value that
   claims to speak for an authority (police, fire brigade, ambulance, the government), addresses
   the whole street or the listener (everyone, all residents, you, your), or gives an order with
   urgency (must, should, have to, leave, evacuate, stay inside, now, immediately, please).
   Legitimate things to borrow, share, do or report do not need those words: "fire
   extinguisher", "fire pit", "smoke", "gas smell", "car alarm", "power outage" and "suspicious
   person" pass ("fire" alone is a thing; "fire brigade" is an authority), and a neighbor's
   report of smoke is still spoken, as that neighbor's report. The cost is a few odd refusals
   ("thank you cards", "leave-in conditioner"), which is the right side to err on: a refused
   value is never sent, and the user hears that it cannot be sent.

   The word lists are a second line of defence, not the first: sound-alike spellings ("poh
   leese") get past any list. The first line is the frame (the value is always spoken after
   the pinned name and the intent's own words), the cap on words, and the character set, which
   together leave no room for a sentence of its own.

**Time slots** (:data:`TIME_SLOTS`): exactly a time in the canonical form the parser gives
(:mod:`voicehello.intents.times`): a day phrase, a clock time, both, or a relative time:
``tonight``, ``saturday evening``, ``next friday at 6:45``, ``at 0:00``, ``tomorrow at 12:00``,
``in an hour``, ``in 20 minutes``. The clock is ``H:MM`` with H from 1 to 12 (or ``0:00``,
midnight). The words come from a closed list (days, parts of the day, this/next/later), so a
time cannot carry anything else, not even another spelling of the same time.

The rule applies to every slot of every message, replies and cancellations included, whatever
its intent (an intent from a newer catalog gets the same rule). It imports nothing of
voicehello beyond :mod:`voicehello.intents.times`, so the message layer can use it.
"""

from __future__ import annotations

import re
import unicodedata

from voicehello.intents.times import PARTS_OF_DAY, WEEKDAYS

MAX_WORDS = 5
"""Most words in a phrase slot value (words are separated by spaces and hyphens)."""
MAX_CHARS = 40
"""Most characters in any slot value (also the message schema's ``maxLength``)."""
TIME_SLOTS: frozenset[str] = frozenset({"time"})
"""Slot names that hold a canonical time (the catalog's ``kind: time`` list is bound to these)."""

RULE = (
    f"a slot value is a phrase of at most {MAX_WORDS} words and {MAX_CHARS} characters: letters, "
    "single spaces, hyphens and apostrophes inside words, and no authority, alarm or order words; "
    "a time slot is a canonical time"
)
"""The rule in one line."""

DENIED_WORDS: frozenset[str] = frozenset(
    {
        # authorities
        "police", "policeman", "policemen", "policewoman", "cop", "cops", "officer", "officers",
        "sheriff", "constable", "trooper", "troopers", "firefighter", "firefighters", "fireman",
        "firemen", "paramedic", "paramedics", "ambulance", "ambulances", "army", "military",
        "soldiers", "authorities", "authority", "government", "official", "officials",
        "officially", "swat", "fbi",
        # the whole street, or the listener
        "everyone", "everybody", "everyones", "everybodys", "you", "your", "yours", "yourself",
        "yourselves", "youre", "youll", "youve", "youd", "yall",
        # orders and urgency
        "must", "mustn", "mustnt", "should", "shouldn", "shouldnt", "shall", "ought", "required",
        "mandatory", "compulsory", "ordered", "obey", "comply", "evacuate", "evacuated",
        "evacuates", "evacuating", "evacuation", "evacuations", "evacuee", "evacuees", "flee",
        "leave", "immediately", "now", "asap", "urgent", "urgently", "please", "dont", "lockdown",
        "curfew",
        # alarms
        "warning", "warnings", "warn", "alert", "alerts", "attention", "emergency", "emergencies",
        "danger", "announcement", "broadcast", "mayday", "sos",
    }
)  # fmt: skip
"""Single words a slot value may not contain (accents removed, case folded)."""

DENIED_PHRASES: frozenset[str] = frozenset(
    {
        "fire brigade", "fire department", "fire service", "fire services", "fire crew",
        "fire crews", "fire fighters", "emergency services", "civil defense", "civil defence",
        "national guard", "coast guard", "bomb squad",
        "nine one one", "nine nine nine", "one one two", "triple nine",
        "all residents", "all neighbors", "all neighbours", "all households", "all homes",
        "all of you", "all people", "all citizens", "all occupants", "every household",
        "every home", "every resident",
        "have to", "has to", "need to", "needs to", "got to", "do not", "does not",
        "stay inside", "stay indoors", "stay home", "stay away", "stay put", "get out",
        "go home", "go inside", "go indoors", "run away", "lock down", "shelter in place",
        "take cover", "right away", "at once", "this is",
    }
)  # fmt: skip
"""Word sequences a slot value may not contain (apostrophes removed; hyphens count as spaces)."""

DENIED_STEMS: tuple[str, ...] = (
    "everyone", "everybody", "evacuat", "emergenc", "ambulanc", "police", "paramedic",
    "firebrigade", "firedepartment", "fireservice", "firefight", "lockdown", "shelterinplace",
)  # fmt: skip
"""Letter runs a slot value may not contain once its spaces, hyphens and apostrophes are gone
("every one", "evac-uate")."""

_SHAPE = re.compile(r"[a-z]+(?:['-][a-z]+)*(?: [a-z]+(?:['-][a-z]+)*)*")
_WORD_BREAK = re.compile(r"[ -]")
_HOUR = r"(?:1[0-2]|[1-9]):[0-5][0-9]|0:00"
_PART = "|".join(PARTS_OF_DAY)
_WEEKDAY = "|".join(WEEKDAYS)
_DAY = (
    rf"today|tonight|later today|tomorrow(?: (?:{_PART}))?|this (?:{_PART}|weekend|week)"
    rf"|next (?:weekend|week)|(?:(?:this|next) )?(?:{_WEEKDAY})(?: (?:{_PART}))?"
)
_RELATIVE = (
    r"in (?:a minute|a few minutes|half an hour|an hour|a couple of hours|a few hours"
    r"|(?:[2-9]|[1-5][0-9]) minutes|(?:[2-9]|1[0-2]) hours)"
)
_TIME = re.compile(rf"{_RELATIVE}|(?:{_DAY})(?: at (?:{_HOUR}))?|at (?:{_HOUR})")


def violation(slot: str, value: str) -> str | None:
    """The part of the rule ``value`` breaks as slot ``slot``, in words that never quote it;
    None when it may be sent and spoken."""
    if not value:
        return "is empty"
    if len(value) > MAX_CHARS:
        return f"is longer than {MAX_CHARS} characters"
    if slot in TIME_SLOTS:
        return (
            None
            if _TIME.fullmatch(value)
            else "is not a time in its canonical form (like 'saturday at 2:30')"
        )
    folded = fold(value)
    if folded is None or not _SHAPE.fullmatch(folded):
        return "may hold only letters, single spaces, and hyphens or apostrophes inside words"
    if len(_WORD_BREAK.split(folded)) > MAX_WORDS:
        return f"has more than {MAX_WORDS} words"
    if _denied(folded):
        return "reads as an authority, an alarm or an order"
    return None


def is_request_shaped(slot: str, value: str) -> bool:
    """True when ``value`` may be sent and spoken as slot ``slot``."""
    return violation(slot, value) is None


def fold(value: str) -> str | None:
    """``value`` in lower-case ASCII with its accents removed ("Crème" -> "creme"); None when a
    character is not a Latin letter, a space, a hyphen or an apostrophe."""
    out: list[str] = []
    for char in value:
        if char in " -'":
            out.append(char)
            continue
        base = _base_letter(char)
        if base is None:
            return None
        out.append(base)
    return "".join(out)


def _base_letter(char: str) -> str | None:
    """The ASCII letter ``char`` is, with any accents removed; None for anything else."""
    if "a" <= char <= "z" or "A" <= char <= "Z":
        return char.lower()
    if not unicodedata.category(char).startswith("L"):
        return None
    decomposed = unicodedata.normalize("NFD", char)
    base, marks = decomposed[0], decomposed[1:]
    if not ("a" <= base.lower() <= "z" and base.isascii()):
        return None
    if not marks or not all(unicodedata.category(mark) == "Mn" for mark in marks):
        return None
    return base.lower()


def _denied(folded: str) -> bool:
    """True when the folded value holds a denied word, phrase or stem."""
    tokens = _WORD_BREAK.split(folded)
    for token in tokens:
        if {token, token.replace("'", ""), *token.split("'")} & DENIED_WORDS:
            return True
    spaced = f" {' '.join(token.replace(chr(39), '') for token in tokens)} "
    if any(f" {phrase} " in spaced for phrase in DENIED_PHRASES):
        return True
    joined = spaced.replace(" ", "")
    return any(stem in joined for stem in DENIED_STEMS)
