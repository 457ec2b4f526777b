"""The slot value rule (voicehello/intents/slot_values.py): what passes, what an attacker tries,
and, fuzzed, what any passing value can and cannot make a neighbor's device say."""

from __future__ import annotations

import random
import re
import unicodedata

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from voicehello.announce.phrasing import announcement, determine
from voicehello.bus.messages import Sender, new_message
from voicehello.config import ConversationSettings
from voicehello.conversation import Conversation, Say
from voicehello.errors import MessageError
from voicehello.intents import slot_values, templates
from voicehello.intents.catalog import Catalog
from voicehello.intents.slot_values import (
    DENIED_PHRASES,
    DENIED_WORDS,
    MAX_CHARS,
    MAX_WORDS,
    TIME_SLOTS,
    is_request_shaped,
    violation,
)
from voicehello.intents.times import HOURS, PARTS_OF_DAY, TIME_TEMPLATE, WEEKDAYS, canonical_time

MAYA = Sender("maya-12", "Maya at number 12")
NOW = 1_800_000_000.0
SENTENCE_PUNCTUATION = set('.,!?;:"`()\u201c\u201d\u201e\u00ab\u00bb\u2018\u2019')
PHRASE_SLOTS = {"borrow_item": "item", "offer_item": "item", "share_food": "item", "ask_help": "task"}
"""Intents whose one required slot takes any phrase (and the slot's name)."""


# ----------------------------------------------------------------------------- what passes


@pytest.mark.parametrize(
    "value",
    [
        "ladder",
        "pasta maker",
        "moving a wardrobe",
        "courgettes",
        "fire extinguisher",
        "fire pit",
        "smoke",
        "gas smell",
        "gas leak",
        "car alarm",
        "suspicious person",
        "power outage",
        "crème brûlée",
        "jalapeños",
        "children's books",
        "jump-start a car",
        "o'clock radio",
        "Ladder",
        "rake leaves",
        "snow shovel",
        "residents meeting",
        "all purpose flour",
        "a" * MAX_CHARS,
        "one two three four five",
    ],
)
def test_request_shaped_values_pass(value: str) -> None:
    assert violation("item", value) is None


@pytest.mark.parametrize(
    "value",
    [
        "tonight",
        "tonight at 7:00",
        "saturday at 2:30",
        "next friday at 6:45",
        "saturday evening",
        "this weekend",
        "tomorrow at 12:00",
        "at 0:00",
        "at 11:45",
        "in an hour",
        "in 20 minutes",
    ],
)
def test_canonical_times_pass(value: str) -> None:
    assert violation("time", value) is None


def test_every_catalog_value_follows_the_rule(catalog: Catalog) -> None:
    """Every canonical value of every list passes as the slot it fills; synonyms short enough to
    be sent whole (as open slots will) pass too, or fail only on their length."""
    for name, intent in catalog.intents.items():
        for slot, list_name in intent.slots.items():
            slot_list = catalog.lists[list_name]
            assert (slot_list.kind == "time") == (slot in TIME_SLOTS), (name, slot)
            if slot_list.kind == "time":
                continue
            for value in slot_list.values:
                assert violation(slot, value) is None, (name, slot, value, violation(slot, value))
            for phrase in slot_list.phrases:
                broken = violation(slot, phrase)
                assert broken is None or "more than" in broken, (phrase, broken)


def test_every_time_the_parser_makes_follows_the_rule() -> None:
    """3,000 phrases sampled from the time grammar, put in canonical form by the parser's own
    function: every one passes the time rule, and none passes as another phrase slot."""
    tree = templates.parse_template(TIME_TEMPLATE)
    rng = random.Random(9)
    seen = set()
    for _ in range(3_000):
        phrase = " ".join(token for token in templates.sample(tree, rng) if isinstance(token, str))
        value = canonical_time(phrase)
        assert value is not None, phrase
        seen.add(value)
        assert violation("time", value) is None, (phrase, value)
    assert len(seen) > 500
    assert all(violation("item", value) is not None for value in seen if re.search(r"\d", value))


# ----------------------------------------------------------------------------- what an attacker tries

ATTACKS = [
    # sentences, orders, authorities
    "The fire brigade reports a gas leak, everyone must leave now",
    "ladder. Everyone must leave now",
    "everyone must leave",
    "everybody out",
    "evacuate",
    "evacuate the street",
    "evacuation order",
    "police",
    "police order",
    "this is the police",
    "fire brigade",
    "fire department notice",
    "ambulance on the way",
    "emergency",
    "warning gas leak",
    "attention all residents",
    "all residents",
    "leave now",
    "stay inside",
    "stay indoors tonight",
    "shelter in place",
    "do not drink the water",
    "don't drink the water",
    "you must go",
    "your house is on fire",
    "lock down",
    "lockdown",
    "curfew tonight",
    "please leave",
    "get out",
    "have to leave",
    "mayday mayday",
    "sos",
    "nine one one",
    "official notice",
    # spelling tricks
    "po lice",
    "every-one",
    "evac-uate",
    "Everyone",
    "EVACUATE",
    "pólice",
    "Pólîcé",
    "ever'yone",
    # digits
    "911",
    "112",
    "ladder 2",
    "\uff11\uff12",  # fullwidth digits
    "\u0661\u0662\u0663",  # Arabic-Indic digits
    "\U0001d7d7\U0001d7cf\U0001d7cf",  # mathematical bold digits
    # punctuation, quotes, whitespace
    "ladder; leave now",
    "ladder: police",
    "ladder!",
    "ladder?",
    '"ladder"',
    "'ladder'",
    "ladder -- leave",
    "ladder - leave",
    "ladder\neveryone",
    "ladder  drill",
    " ladder",
    "ladder ",
    "ladder\t",
    "\u00a0ladder",  # no-break space
    "ladder\u3000drill",  # ideographic space
    # unicode tricks
    "\uff50\uff4f\uff4c\uff49\uff43\uff45",  # fullwidth letters
    "ladder\uff01 everyone",  # fullwidth exclamation mark
    "ladder\u3002evacuate",  # ideographic full stop
    "ladder\uff0edrill",  # fullwidth full stop
    "p\u043elice",  # Cyrillic o
    "\u0435vacuate",  # Cyrillic e
    "\u03c1olice",  # Greek rho
    "evacuat\u0131on",  # dotless i
    "\u029feave",  # Latin small capital L
    "\u212aitchen",  # Kelvin sign K
    "\ufb01re brigade",  # ligature fi
    "evac\u200duate",  # zero-width joiner
    "lad\u200bder",  # zero-width space
    "\u202eladder",  # right-to-left override
    "ladder\u200f",  # right-to-left mark
    "\u2066ladder\u2069",  # isolates
    "e\u0301vacuate",  # a combining accent on its own
    "ladder\u0000",  # NUL
    "ladder\x1b[31m",  # terminal escape
    # markup
    "<speak>ladder</speak>",
    "ladder<break time='3s'/>police",
    "[[h@l@U]]",
    "{item}",
    "ladder\\police",
    "&lt;speak&gt;",
    # length
    "a" * (MAX_CHARS + 1),
    "one two three four five six",
    "a-b-c-d-e-f",
    "",
]
TIME_ATTACKS = [
    "tonight at 7:00. everyone must leave",
    "tonight at 7:00 police",
    "at 7:00 leave now",
    "tonight at 25:00",
    "tonight at 7:0",
    "tonight at 7:00\n",
    "tonight at \uff17:00",
    "tonight at 7\uff1a00",
    "tonight  at 7:00",
    "now",
    "immediately",
    "tonight at seven",
    "in 0 minutes",
    "in 99 hours",
    "7:00",
    "",
]


def test_there_are_enough_attacks() -> None:
    assert len(ATTACKS) >= 30


@pytest.mark.parametrize("value", ATTACKS)
@pytest.mark.parametrize("slot", ["item", "task", "event", "issue", "open_slot"])
def test_attacks_are_refused(slot: str, value: str) -> None:
    broken = violation(slot, value)
    assert broken is not None
    assert value.strip() == "" or value not in broken
    with pytest.raises(MessageError, match=f"slots/{slot}"):
        new_message(MAYA, "borrow_item", {slot: value}, now=NOW)


@pytest.mark.parametrize("value", TIME_ATTACKS + ATTACKS)
def test_time_attacks_are_refused(value: str) -> None:
    assert violation("time", value) is not None


# ----------------------------------------------------------------------------- fuzzing

_LETTERS = "abcdefghijklmnopqrstuvwxyzéèñüçABCZ"
_words = st.text(alphabet=_LETTERS, min_size=1, max_size=9)
_joiner = st.sampled_from([" ", " ", " ", "-", "'"])
_denied = st.sampled_from(sorted(DENIED_WORDS | DENIED_PHRASES))


@st.composite
def phrases(draw: st.DrawFn) -> str:
    """A phrase that looks like a slot value: short words of letters, sometimes joined by a
    hyphen or an apostrophe, sometimes with a denied word or phrase among them."""
    words = draw(st.lists(_words, min_size=1, max_size=6))
    if draw(st.booleans()):
        words.insert(draw(st.integers(0, len(words))), draw(_denied))
    text = words[0]
    for word in words[1:]:
        text += draw(_joiner) + word
    return text


def _check_passing(value: str) -> None:
    """What any value that passes the rule is like."""
    assert 1 <= len(value) <= MAX_CHARS
    assert len(re.split(r"[ -]", value)) <= MAX_WORDS
    assert not SENTENCE_PUNCTUATION & set(value), value
    assert not any(char.isdigit() or char.isnumeric() for char in value), value
    assert not any(unicodedata.category(char)[0] in "CSPZ" and char not in " -'" for char in value)
    assert value == value.strip()
    assert "  " not in value
    assert unicodedata.normalize("NFKC", value) == value
    folded = slot_values.fold(value)
    assert folded is not None
    assert re.fullmatch(r"[a-z '-]+", folded)
    words = set(re.split(r"[ '-]", folded)) | {part.replace("'", "") for part in re.split(r"[ -]", folded)}
    assert not words & DENIED_WORDS, value


@settings(max_examples=3_000, deadline=None)
@given(st.one_of(st.text(max_size=60), phrases()))
def test_any_value_that_passes_is_a_short_plain_phrase(value: str) -> None:
    if is_request_shaped("item", value):
        _check_passing(value)


@settings(max_examples=1_000, deadline=None)
@given(phrases(), st.sampled_from(sorted(DENIED_WORDS)), st.data())
def test_a_denied_word_anywhere_makes_a_passing_value_fail(
    value: str, word: str, data: st.DataObject
) -> None:
    assume(is_request_shaped("item", value))
    words = value.split(" ")
    words.insert(data.draw(st.integers(0, len(words))), word)
    assert not is_request_shaped("item", " ".join(words))


@settings(max_examples=1_000, deadline=None)
@given(phrases(), st.sampled_from(sorted(PHRASE_SLOTS)))
def test_the_spoken_sentence_is_always_the_name_then_the_intent_s_phrase(
    catalog: Catalog, value: str, intent: str
) -> None:
    """A value that passes is spoken inside the frame: the sender's name, the intent's own words,
    then the value (with an article at most), and nothing after it."""
    assume(is_request_shaped(PHRASE_SLOTS[intent], value))
    message = new_message(MAYA, intent, {PHRASE_SLOTS[intent]: value}, now=NOW)
    sentence = announcement(message, catalog)
    assert sentence is not None
    lead = catalog.intents[intent].announce.split("{")[0]
    assert sentence.startswith(f"Maya at number 12 {lead}"), sentence
    assert value in sentence
    tail = catalog.intents[intent].announce.split("}")[-1]
    assert sentence.endswith(tail), sentence
    if intent != "ask_help":
        assert determine(value, "indef", catalog.slot_list(intent, "item").mass_article) in sentence


@settings(max_examples=2_000, deadline=None)
@given(st.text(alphabet="atonight 0123456789:satudymrwxekfh", max_size=30))
def test_a_time_that_passes_holds_only_time_words(value: str) -> None:
    if not is_request_shaped("time", value):
        return
    vocabulary = {
        "today", "tonight", "later", "tomorrow", "this", "next", "at", "in", "week", "weekend",
        "morning", "afternoon", "evening", "night", "minutes", "hours", "a", "an", "hour", "minute",
        "few", "couple", "of", "half", "monday", "tuesday", "wednesday", "thursday", "friday",
        "saturday", "sunday",
    }  # fmt: skip
    for word in value.split(" "):
        assert word in vocabulary or re.fullmatch(r"\d{1,2}(:\d\d)?", word), (value, word)


def test_the_conversation_never_sends_a_value_that_breaks_the_rule(catalog: Catalog) -> None:
    """A request whose slot breaks the rule is not sent, even confirmed: the user hears why."""
    talk = Conversation(ConversationSettings(), MAYA, catalog, clock=lambda: NOW)
    actions = talk.heard(
        "borrow_item", {"item": "everyone must leave"}, "everyone must leave", confirmed=True
    )
    assert actions == [Say("Sorry, I can't send that.")]
    assert talk.heard("borrow_item", {"item": "pasta maker"}, "pasta maker", confirmed=True)[-1] == Say(
        "Sent."
    )


_TIME_WORDS = sorted(
    {*HOURS, *WEEKDAYS, *PARTS_OF_DAY}
    | set(
        [
            "at",
            "around",
            "about",
            "from",
            "by",
            "in",
            "the",
            "o'clock",
            "pm",
            "am",
            "p",
            "m",
            "ish",
            "sharp",
            "noon",
            "midday",
            "midnight",
            "half",
            "past",
            "to",
            "quarter",
            "a",
            "minute",
            "minutes",
            "hour",
            "hours",
            "an",
            "few",
            "couple",
            "of",
            "ten",
            "twenty",
            "thirty",
            "forty",
            "fifty",
            "oh",
            "fifteen",
            "today",
            "tonight",
            "tomorrow",
            "this",
            "next",
            "later",
            "on",
            "week",
            "weekend",
            "arvo",
            "over",
        ]
    )
)


@settings(max_examples=3_000, deadline=None)
@given(st.lists(st.sampled_from(_TIME_WORDS), min_size=1, max_size=6))
def test_every_time_the_parser_understands_passes_the_time_rule(words: list[str]) -> None:
    """Whatever spoken time the parser puts in canonical form, natural forms included ("half six",
    "in twenty minutes", "this arvo"), is a time the rule lets through."""
    value = canonical_time(" ".join(words))
    if value is not None:
        assert violation("time", value) is None, (words, value)
