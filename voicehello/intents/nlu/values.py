"""Unlisted slot values, cleaned the way neighbors should hear them.

The convention is written in ``tests/data/nlu/in_domain.tsv``'s header: determiners, quantities
("a load of") and availability words ("spare", "homemade") are dropped from the front; a task
becomes a base-form verb phrase ("moving a wardrobe" -> "move a wardrobe") so that "needs help
to {task}" reads well, or keeps "with" before a noun ("with the garden"); an issue loses "there's";
an event loses the speaker's own place ("at mine"). A value longer than :data:`MAX_VALUE_WORDS`
words or :data:`MAX_VALUE_CHARS` characters loses trailing prepositional phrases until it fits.
"""

from __future__ import annotations

import logging
from functools import cache

log = logging.getLogger(__name__)

MAX_VALUE_WORDS = 5
"""Most words of a slot value the catalog does not list."""

MAX_VALUE_CHARS = 40
"""Most characters of such a value (the message schema's limit)."""

DETERMINERS = frozenset(
    ["a", "an", "the", "some", "any", "my", "your", "our", "their", "his", "her", "this", "that", "these", "those", "one"]
)  # fmt: skip
QUANTITIES = (
    "far too many", "way too many", "far too much", "way too much", "too many", "too much", "a few", "a couple of",
    "couple of", "a pair of", "pair of", "a bit of", "bit of", "a load of", "load of", "loads of", "a lot of",
    "lots of", "heaps of", "tons of", "plenty of", "a dozen", "dozen", "half a", "a glut of", "glut of",
    "a surplus of", "surplus of", "a bunch of", "bunch of", "a batch of", "batch of", "a cup of", "a bag of",
    "a box of", "a jar of", "jars of", "a pot of", "a tray of", "a sack of", "a basket of", "a portion of",
    "more", "extra",
)  # fmt: skip
AVAILABILITY = (
    "spare",
    "extra",
    "fresh",
    "homemade",
    "home made",
    "home grown",
    "grown",
    "leftover",
    "left over",
    "free",
)
FILLERS = frozenset(
    ["um", "uh", "er", "erm", "like", "just", "please", "so", "well", "oh", "and", "or", "to"]
)
TRAILING = frozenset(
    ["please", "thanks", "cheers", "ta", "x", "then", "now", "too", "again", "anyone", "anybody", "someone", "somebody", "mine", "ours", "for", "with", "of", "and", "or", "to", "a", "an", "the", "my", "our", "your", "some", "any",
     "can", "could", "will", "would", "should", "i", "we", "you", "they", "if", "that", "who", "which"]
)  # fmt: skip
"""Words a value never ends with (a modal or pronoun starts the rest of the sentence: "a tent can borrow")."""
LEFT_OVER = (("left", "over"), ("left",), ("going", "spare"), ("to", "spare"))
"""Availability said after a thing to share ("samosas left over"), dropped from the end of an item."""
OWN_PLACES = (
    "at mine", "at ours", "round mine", "round ours", "at my place", "at our place", "at my house", "at our house",
    "at my flat", "in my garden", "in our garden", "at home",
)  # fmt: skip
ISSUE_OPENERS = ("there's been", "there has been", "there's", "there is", "there are", "there were")
PREPOSITIONS = frozenset(
    ["in", "on", "at", "by", "for", "from", "with", "outside", "near", "behind", "under", "over", "up", "down", "to", "after", "before", "round", "around", "into", "across", "along", "past", "while", "during"]
)  # fmt: skip


def _strip_front(words: list[str], phrases: tuple[str, ...] | frozenset[str]) -> tuple[list[str], bool]:
    for phrase in sorted(phrases, key=len, reverse=True):
        size = len(phrase.split())
        if len(words) > size and words[:size] == phrase.split():
            return words[size:], True
    return words, False


def clean_value(phrase: str, slot: str = "", *, cap: bool = True) -> str:
    """``phrase`` as a slot value: "a load of spare courgettes" -> "courgettes",
    "moving a wardrobe" (task) -> "move a wardrobe", "there's glass all over the pavement
    outside number nine" (issue) -> "glass all over the pavement"."""
    words = phrase.split()
    changed = True
    while changed and words:
        changed = False
        if words[0] in FILLERS or words[0] in DETERMINERS:
            words, changed = words[1:], True
            continue
        for group in (QUANTITIES, AVAILABILITY, ISSUE_OPENERS if slot == "issue" else ()):
            words, hit = _strip_front(words, group)
            changed = changed or hit
    if slot == "task":
        words = _task(words)
    if slot == "event":
        for place in OWN_PLACES:
            size = len(place.split())
            if len(words) > size and words[-size:] == place.split():
                words = words[:-size]
    while words and words[-1] in TRAILING:
        words.pop()
    if slot == "item":
        for tail in LEFT_OVER:
            if len(words) > len(tail) and tuple(words[-len(tail) :]) == tail:
                words = words[: -len(tail)]
                break
    if cap:
        words = _fit(words)
    return " ".join(words)


def _fit(words: list[str]) -> list[str]:
    """Drop trailing prepositional phrases (then words) until the value fits."""
    while len(words) > MAX_VALUE_WORDS or len(" ".join(words)) > MAX_VALUE_CHARS:
        cut = max((i for i, word in enumerate(words) if i >= 1 and word in PREPOSITIONS), default=0)
        words = words[:cut] if cut else words[:-1]
        while words and words[-1] in TRAILING:
            words.pop()
    return words


def _task(words: list[str]) -> list[str]:
    """A task as a base-form verb phrase: "help moving a wardrobe" -> "move a wardrobe";
    "with the garden" stays (a noun after "with")."""
    if words[:1] == ["help"]:
        words = words[1:]
    if words[:1] == ["with"] and len(words) > 1 and words[1].endswith("ing"):
        words = words[1:]
    if words and words[0].endswith("ing") and len(words[0]) > 4:
        words = [base_form(words[0]), *words[1:]]
    return words


def base_form(verb: str) -> str:
    """ "moving" -> "move", "unblocking" -> "unblock", "getting" -> "get", checked against the
    pronunciation dictionary (stem, stem + e, undoubled stem)."""
    stem = verb[:-3]
    known = _dictionary()
    doubled = len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "aeiouylsfz"
    if doubled and stem[:-1] in known:
        return stem[:-1]
    for candidate in (stem + "e", stem) if _prefers_e(stem) else (stem, stem + "e"):
        if candidate in known:
            return candidate
    return stem + "e" if _prefers_e(stem) else stem


def _prefers_e(stem: str) -> bool:
    """Stems like "mov", "tak", "hop" (consonant-vowel-consonant end) usually drop an e."""
    vowels = "aeiou"
    return (
        len(stem) >= 2
        and stem[-1] not in vowels + "wxy"
        and stem[-2] in vowels
        and (len(stem) < 3 or stem[-3] not in vowels)
        and not stem.endswith(("en", "er", "on", "it", "et", "ow"))
    )


@cache
def _dictionary() -> frozenset[str]:
    """Words of the PocketSphinx pronunciation dictionary (loaded on first use)."""
    try:
        from pocketsphinx import get_model_path

        path = f"{get_model_path()}/en-us/cmudict-en-us.dict"
        with open(path, encoding="utf-8") as handle:
            return frozenset(line.split(" ", 1)[0] for line in handle if "(" not in line.split(" ", 1)[0])
    except (ImportError, OSError) as exc:
        log.warning("no pronunciation dictionary for task verbs: %s", exc)
        return frozenset()
