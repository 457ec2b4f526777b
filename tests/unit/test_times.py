"""The built-in ``time`` slot: canonical forms of spoken days and clock times."""

from __future__ import annotations

import random

import pytest

from voicehello.intents import templates
from voicehello.intents.times import TIME_TEMPLATE, canonical_time


@pytest.mark.parametrize(
    ("spoken", "canonical"),
    [
        # day only
        ("today", "today"),
        ("tonight", "tonight"),
        ("tomorrow", "tomorrow"),
        ("tomorrow evening", "tomorrow evening"),
        ("this weekend", "this weekend"),
        ("this afternoon", "this afternoon"),
        ("on saturday", "saturday"),
        ("saturday", "saturday"),
        ("next friday", "next friday"),
        ("this sunday", "this sunday"),
        ("on monday morning", "monday morning"),
        # clock only: the canonical form keeps its preposition
        ("at seven", "at 7:00"),
        ("at twelve", "at 12:00"),
        ("at seven o'clock", "at 7:00"),
        ("at seven fifteen", "at 7:15"),
        ("at seven thirty", "at 7:30"),
        ("at five forty five", "at 5:45"),
        ("at half past two", "at 2:30"),
        ("at quarter past twelve", "at 12:15"),
        ("at quarter to eight", "at 7:45"),
        ("at quarter to one", "at 12:45"),
        ("at noon", "at 12:00"),
        ("at midnight", "at 0:00"),
        # day then clock
        ("tonight at seven", "tonight at 7:00"),
        ("on saturday at half past two", "saturday at 2:30"),
        ("tomorrow morning at ten", "tomorrow morning at 10:00"),
        ("next sunday at quarter to six", "next sunday at 5:45"),
        ("this weekend at noon", "this weekend at 12:00"),
        # clock then day
        ("at noon tomorrow", "tomorrow at 12:00"),
        ("at seven tonight", "tonight at 7:00"),
        ("at five forty five on friday", "friday at 5:45"),
        ("at eight o'clock tomorrow night", "tomorrow night at 8:00"),
        ("at midnight on saturday", "saturday at 0:00"),
        # natural forms outside the recognizer's grammar (tests/data/nlu/in_domain.tsv's header)
        ("at half six", "at 6:30"),
        ("saturday morning at half seven", "saturday morning at 7:30"),
        ("this saturday afternoon", "this saturday afternoon"),
        ("at seven fifty", "at 7:50"),
        ("at ten past seven", "at 7:10"),
        ("at twenty to eight", "at 7:40"),
        ("at seven pm", "at 7:00"),
        ("at eight in the evening", "at 8:00"),
        ("from six", "at 6:00"),
        ("around six", "at 6:00"),
        ("about half past two", "at 2:30"),
        ("at the weekend", "this weekend"),
        ("next weekend", "next weekend"),
        ("this arvo", "this afternoon"),
        ("later today", "later today"),
        ("in an hour", "in an hour"),
        ("in half an hour", "in half an hour"),
        ("in two hours", "in 2 hours"),
        ("in twenty minutes", "in 20 minutes"),
        ("tomorrow half six", "tomorrow at 6:30"),
    ],
)
def test_canonical_time(spoken: str, canonical: str) -> None:
    assert canonical_time(spoken) == canonical


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "salt",
        "at",
        "this",
        "next",
        "on",
        "at thirteen",
        "at seven at eight",
        "tonight at",
        "at forty five",
        "at half past",
        "at half to seven",
        "at quarter past",
        "at seven tonight tomorrow extra",
        "tonight at seven tomorrow",
        "saturday at thirteen",
        "pass the salt",
        "at seven salt",
        "seven",
        "in one hours",
        "in thirteen hours",
        "in an",
        "half",
        "at half",
        "around",
        "the weekend at",
    ],
)
def test_not_a_time(junk: str) -> None:
    assert canonical_time(junk) is None


def test_every_sampled_time_phrase_has_a_canonical_form() -> None:
    tree = templates.parse_template(TIME_TEMPLATE)
    rng = random.Random(11)
    for _ in range(3000):
        phrase = " ".join(token for token in templates.sample(tree, rng) if isinstance(token, str))
        assert canonical_time(phrase) is not None, phrase


def test_clock_then_day_and_day_then_clock_agree() -> None:
    assert canonical_time("at half past six tomorrow") == canonical_time("tomorrow at half past six")
    assert canonical_time("at noon on sunday") == canonical_time("on sunday at noon")


@pytest.mark.parametrize(
    "outside_grammar",
    ["night", "morning", "weekend", "tonight tonight", "this night", "monday tuesday", "at seven night"],
)
def test_phrases_outside_the_time_grammar_are_not_times(outside_grammar: str) -> None:
    assert canonical_time(outside_grammar) is None
