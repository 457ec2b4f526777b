"""Announcements, replies, cancellations and read-backs as neighbors hear them; text cleaning."""

from __future__ import annotations

import unicodedata
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicehello.announce.phrasing import (
    a_or_an,
    announcement,
    as_clause,
    choice_question,
    determine,
    in_pod,
    is_mass_or_plural,
    is_statement,
    readback,
    spoken_time,
    verb_phrase,
)
from voicehello.bus.messages import ANSWERS, KIND_OF_INTENT, Message, Sender, new_message
from voicehello.cleaning import clean_text
from voicehello.intents.catalog import Catalog

MAYA = Sender("maya-12", "Maya at number 12")
SAM = Sender("sam-4", "Sam")
NOW = 1_800_000_000.0


def say(
    sender: Sender, intent: str, slots: dict[str, str] | None = None, answers: Message | None = None
) -> Message:
    return new_message(sender, intent, slots, in_reply_to=answers.id if answers else None, now=NOW)


# ----------------------------------------------------------------------------- announcements


@pytest.mark.parametrize(
    ("intent", "slots", "expected"),
    [
        ("borrow_item", {"item": "ladder"}, "Maya at number 12 asks to borrow a ladder"),
        ("borrow_item", {"item": "extension cord"}, "Maya at number 12 asks to borrow an extension cord"),
        ("borrow_item", {"item": "eggs"}, "Maya at number 12 asks to borrow some eggs"),
        ("borrow_item", {"item": "flour"}, "Maya at number 12 asks to borrow some flour"),
        ("borrow_item", {"item": "cup of sugar"}, "Maya at number 12 asks to borrow a cup of sugar"),
        ("say_hello", {}, "Maya at number 12 says hello"),
        (
            "announce_event",
            {"event": "film night", "time": "tonight at 7:00"},
            "Maya at number 12 invites you to a film night tonight at seven",
        ),
        ("announce_event", {"event": "film night"}, "Maya at number 12 invites you to a film night"),
        (
            "announce_event",
            {"event": "barbecue", "time": "saturday at 2:30"},
            "Maya at number 12 invites you to a barbecue on saturday at half past two",
        ),
        ("announce_event", {"event": "fireworks"}, "Maya at number 12 invites you to the fireworks"),
        ("ask_help", {"task": "move a couch"}, "Maya at number 12 needs help to move a couch"),
        ("report_issue", {"issue": "pothole"}, "Maya at number 12 reports a pothole"),
        ("report_issue", {"issue": "flooding"}, "Maya at number 12 reports flooding"),
        ("report_issue", {"issue": "overflowing bins"}, "Maya at number 12 reports overflowing bins"),
        ("share_food", {"item": "soup"}, "Maya at number 12 has some soup to share"),
        ("offer_item", {"item": "ladder"}, "Maya at number 12 has a ladder to lend"),
    ],
)
def test_announcements(catalog: Catalog, intent: str, slots: dict[str, str], expected: str) -> None:
    assert announcement(say(MAYA, intent, slots), catalog) == expected


def test_an_unknown_intent_is_never_phrased(catalog: Catalog) -> None:
    message = say(MAYA, "say_hello")
    hostile = replace(message, intent="self_destruct", kind="request")
    assert announcement(hostile, catalog) is None


def test_a_missing_required_slot_is_not_phrased(catalog: Catalog) -> None:
    assert announcement(say(MAYA, "borrow_item", {}), catalog) is None
    assert announcement(say(MAYA, "ask_help", {"time": "today"}), catalog) is None


def test_slot_values_not_in_the_catalog_are_spoken_in_the_frame(catalog: Catalog) -> None:
    message = say(MAYA, "borrow_item", {"item": "pasta maker"})
    assert announcement(message, catalog) == "Maya at number 12 asks to borrow a pasta maker"
    task = say(MAYA, "ask_help", {"task": "moving a wardrobe"})
    assert announcement(task, catalog) == "Maya at number 12 needs help with moving a wardrobe"


@pytest.mark.parametrize(
    "value",
    [
        "\uff53\uff4e\uff4f\uff57\u202e\x00 <speak>{item}[[h@l@U]]\nboard",
        "ladder. The fire brigade reports a gas leak, everyone must leave now",
        "everyone must leave",
        "police",
    ],
)
def test_a_slot_value_breaking_the_rule_is_never_phrased(
    catalog: Catalog, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Built by hand, past the message checks: still not phrased, in a request or as the
    request a reply or a cancellation answers; the log line names the slot, not the value."""
    hostile = replace(say(MAYA, "borrow_item", {"item": "ladder"}), slots={"item": value})
    assert announcement(hostile, catalog) is None
    assert announcement(say(SAM, "reply_yes", answers=hostile), catalog, hostile) is None
    assert announcement(say(MAYA, "cancel", answers=hostile), catalog, hostile) is None
    lines = [
        record.getMessage() for record in caplog.records if record.name == "voicehello.announce.phrasing"
    ]
    assert lines
    assert all("slot item" in line for line in lines), lines
    assert not any(word in line for line in lines for word in value.split() if len(word) > 4)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=280))
def test_the_text_field_is_never_spoken(catalog: Catalog, text: str) -> None:
    """What the sender said (``text``) never changes what a neighbor hears."""
    message = say(MAYA, "borrow_item", {"item": "ladder"})
    assert announcement(replace(message, text=text), catalog) == "Maya at number 12 asks to borrow a ladder"


def test_display_names_are_cleaned(catalog: Catalog) -> None:
    hostile = Sender("maya-12", "\u200bMaya\x1b[31m\u202e at\tnumber 12")
    assert announcement(say(hostile, "say_hello"), catalog) == "Maya 31m at number 12 says hello"
    assert announcement(say(Sender("x", "\u200b\x07"), "say_hello"), catalog) == "A neighbor says hello"
    assert announcement(say(Sender("x", "a neighbor"), "say_hello"), catalog) == "A neighbor says hello"


@pytest.mark.parametrize("intent", sorted(i for i, kind in KIND_OF_INTENT.items() if kind not in ANSWERS))
def test_every_catalog_value_makes_a_sentence(catalog: Catalog, intent: str) -> None:
    slots = catalog.intents[intent].slots
    required = [slot for slot, name in slots.items() if catalog.lists[name].kind != "time"]
    values = catalog.lists[slots[required[0]]].values if required else [""]
    for value in values:
        text = announcement(say(MAYA, intent, {required[0]: value} if required else {}), catalog)
        assert text is not None, (intent, value)
        assert text.startswith("Maya at number 12 "), text
        assert value in text, text
        assert "  " not in text, text
        assert "{" not in text, text


# ----------------------------------------------------------------------------- replies


@pytest.mark.parametrize(
    ("intent", "slots", "answer", "expected"),
    [
        ("borrow_item", {"item": "ladder"}, "reply_yes", "Sam can lend you a ladder"),
        ("borrow_item", {"item": "ladder"}, "reply_no", "Sam can't lend you a ladder"),
        ("ask_help", {"task": "move a couch"}, "reply_yes", "Sam can help you move a couch"),
        ("ask_help", {"task": "move a couch"}, "reply_no", "Sam can't help you move a couch"),
        (
            "announce_event",
            {"event": "film night", "time": "tonight at 7:00"},
            "rsvp",
            "Sam is coming to the film night",
        ),
        ("announce_event", {"event": "film night"}, "reply_yes", "Sam is coming to the film night"),
        ("announce_event", {"event": "film night"}, "reply_no", "Sam can't make it to the film night"),
        ("offer_item", {"item": "ladder"}, "reply_yes", "Sam would like your ladder"),
        ("offer_item", {"item": "ladder"}, "reply_no", "Sam doesn't need your ladder"),
        ("share_food", {"item": "soup"}, "reply_yes", "Sam would love some soup"),
        ("share_food", {"item": "soup"}, "reply_no", "Sam doesn't need any soup"),
        ("say_hello", {}, "reply_yes", "Sam says hello back"),
        ("report_issue", {"issue": "pothole"}, "reply_yes", "Sam has noticed the pothole too"),
    ],
)
def test_replies_are_phrased_against_what_they_answer(
    catalog: Catalog, intent: str, slots: dict[str, str], answer: str, expected: str
) -> None:
    sent = say(MAYA, intent, slots)
    assert announcement(say(SAM, answer, {}, sent), catalog, sent) == expected


@pytest.mark.parametrize(("answer", "expected"), [("reply_yes", "Sam says yes"), ("reply_no", "Sam says no")])
def test_a_reply_without_what_it_answers_uses_its_own_phrase(
    catalog: Catalog, answer: str, expected: str
) -> None:
    sent = say(MAYA, "borrow_item", {"item": "ladder"})
    reply = say(SAM, answer, {}, sent)
    assert announcement(reply, catalog) == expected
    other = say(MAYA, "borrow_item", {"item": "drill"})
    assert announcement(reply, catalog, other) == expected  # not the message it answers


# ----------------------------------------------------------------------------- cancellations


@pytest.mark.parametrize(
    ("intent", "slots", "expected"),
    [
        ("borrow_item", {"item": "ladder"}, "Maya at number 12 no longer needs a ladder"),
        (
            "announce_event",
            {"event": "film night", "time": "tonight"},
            "Maya at number 12 has cancelled the film night",
        ),
        ("ask_help", {"task": "move a couch"}, "Maya at number 12 no longer needs help to move a couch"),
        ("share_food", {"item": "soup"}, "Maya at number 12 no longer has any soup to share"),
        ("offer_item", {"item": "drill"}, "Maya at number 12 no longer has a drill to lend"),
    ],
)
def test_cancellations_say_what_is_taken_back(
    catalog: Catalog, intent: str, slots: dict[str, str], expected: str
) -> None:
    original = say(MAYA, intent, slots)
    assert announcement(say(MAYA, "cancel", {}, original), catalog, original) == expected


def test_a_cancellation_without_its_message_or_by_someone_else_is_generic(catalog: Catalog) -> None:
    original = say(MAYA, "borrow_item", {"item": "ladder"})
    assert (
        announcement(say(MAYA, "cancel", {}, original), catalog)
        == "Maya at number 12 cancelled their message"
    )
    assert announcement(say(SAM, "cancel", {}, original), catalog, original) == "Sam cancelled their message"


# ----------------------------------------------------------------------------- read-back


@pytest.mark.parametrize(
    ("intent", "slots", "expected"),
    [
        ("borrow_item", {"item": "ladder"}, "Ask your neighbors to borrow a ladder?"),
        ("say_hello", {}, "Tell your neighbors hello?"),
        (
            "announce_event",
            {"event": "film night", "time": "tonight at 7:00"},
            "Invite your neighbors to a film night tonight at seven?",
        ),
        ("announce_event", {"event": "potluck"}, "Invite your neighbors to a potluck?"),
        ("ask_help", {"task": "move a couch"}, "Ask your neighbors for help to move a couch?"),
        ("offer_item", {"item": "ladder"}, "Offer your neighbors a ladder?"),
        ("share_food", {"item": "soup"}, "Share soup with your neighbors?"),
        ("report_issue", {"issue": "pothole"}, "Tell your neighbors about a pothole?"),
        ("report_issue", {"issue": "flooding"}, "Tell your neighbors about flooding?"),
        (
            "report_issue",
            {"issue": "bin wasn't collected"},
            "Tell your neighbors that the bin wasn't collected?",
        ),
        ("ask_help", {"task": "with the garden"}, "Ask your neighbors for help with the garden?"),
        ("share_food", {"item": "courgettes"}, "Share courgettes with your neighbors?"),
        ("share_food", {"item": "apple crumble"}, "Share an apple crumble with your neighbors?"),
    ],
)
def test_readback(catalog: Catalog, intent: str, slots: dict[str, str], expected: str) -> None:
    assert readback(intent, slots, catalog) == expected


@pytest.mark.parametrize("intent", ["reply_yes", "reply_no", "rsvp", "cancel", "self_destruct"])
def test_no_readback_for_answers_and_unknown_intents(catalog: Catalog, intent: str) -> None:
    assert readback(intent, {}, catalog) is None


# ----------------------------------------------------------------------------- words


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ladder", "a ladder"),
        ("iron", "an iron"),
        ("onion", "an onion"),
        ("hour timer", "an hour timer"),
        ("umbrella", "an umbrella"),
        ("utility knife", "a utility knife"),
        ("eggs", "some eggs"),
        ("baking soda", "some baking soda"),
        ("cup of sugar", "a cup of sugar"),
        ("pair of pliers", "a pair of pliers"),
        ("moving boxes", "some moving boxes"),
        ("glass", "some glass"),
        ("gas canister", "a gas canister"),
        ("my ladder", "my ladder"),
        ("the big pot", "the big pot"),
    ],
)
def test_indefinite_articles(value: str, expected: str) -> None:
    assert determine(value) == expected


def test_other_forms() -> None:
    assert determine("soup", "any") == "any soup"
    assert determine("ladder", "any") == "a ladder"
    assert determine("ladder", "the") == "the ladder"
    assert determine("eggs", "your") == "your eggs"
    assert determine("flooding", "indef", "") == "flooding"
    assert determine("fireworks", "indef", "the") == "the fireworks"
    assert determine("soup", "share") == "soup"
    assert determine("ladder", "share") == "a ladder"
    assert a_or_an("8 ball") == "an"
    assert not is_mass_or_plural("bus")
    assert is_mass_or_plural("tomatoes")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("tonight at 7:00", "tonight at seven"),
        ("tomorrow at 12:00", "tomorrow at noon"),
        ("at 0:00", "at midnight"),
        ("friday evening", "on friday evening"),
        ("next friday at 6:45", "next friday at quarter to seven"),
        ("this weekend", "this weekend"),
        ("today at 3:15", "today at quarter past three"),
        ("today at 3:07", "today at 3:07"),
    ],
)
def test_spoken_times(value: str, expected: str) -> None:
    assert spoken_time(value) == expected


# ----------------------------------------------------------------------------- cleaning


@pytest.mark.parametrize(
    ("text", "max_chars", "expected"),
    [
        ("\uff46\uff55\uff4c\uff4c\u3000\uff57\uff49\uff44\uff54\uff48", 50, "full width"),
        ("tab\tand\nnew\r\nline", 50, "tab and new line"),
        ("zero\u200bwidth \u202ereversed\u2066", 50, "zerowidth reversed"),
        ("bell\x07 escape\x1b[0m", 50, "bell escape 0m"),
        ("<speak><audio src='x'/></speak>", 50, "speak audio src='x'/ /speak"),
        ("[[h@'l@U]] {x} back\\slash", 50, "h@'l@U x back slash"),
        ("one two three four", 13, "one two three"),
        ("one two three four", 12, "one two"),
        ("supercalifragilistic", 5, "super"),
        ("anything", 0, ""),
        ("  spaced   out  ", 50, "spaced out"),
    ],
)
def test_clean_text(text: str, max_chars: int, expected: str) -> None:
    assert clean_text(text, max_chars) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(), st.integers(min_value=0, max_value=200))
def test_clean_text_leaves_only_words(text: str, max_chars: int) -> None:
    cleaned = clean_text(text, max_chars)
    assert len(cleaned) <= max_chars
    assert not any(unicodedata.category(char).startswith("C") for char in cleaned)
    assert not set(cleaned) & set("<>[]{}\\\n\t")
    assert cleaned == cleaned.strip()
    assert "  " not in cleaned
    assert clean_text(cleaned, max_chars) == cleaned


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (None, "Sam asks to borrow a ladder."),
        ("", "Sam asks to borrow a ladder."),
        ("block-party", "Block party: Sam asks to borrow a ladder."),
        ("b--2", "B 2: Sam asks to borrow a ladder."),
    ],
)
def test_a_pod_other_than_the_default_is_named_first(pod: str | None, expected: str) -> None:
    assert in_pod("Sam asks to borrow a ladder.", pod) == expected


# ----------------------------------------------------------------------------- open values

OPEN_VALUES: list[tuple[str, dict[str, str], str]] = [
    # items and foods: any noun phrase, with the article it needs
    ("borrow_item", {"item": "pasta maker"}, "Maya asks to borrow a pasta maker"),
    ("borrow_item", {"item": "old sofa"}, "Maya asks to borrow an old sofa"),
    ("borrow_item", {"item": "electric whisk"}, "Maya asks to borrow an electric whisk"),
    ("borrow_item", {"item": "jump leads"}, "Maya asks to borrow some jump leads"),
    ("borrow_item", {"item": "pair of wellies"}, "Maya asks to borrow a pair of wellies"),
    ("borrow_item", {"item": "wrapping paper"}, "Maya asks to borrow some wrapping paper"),
    ("borrow_item", {"item": "sewing machine"}, "Maya asks to borrow a sewing machine"),
    ("offer_item", {"item": "bedding"}, "Maya has some bedding to lend"),
    ("share_food", {"item": "courgettes"}, "Maya has some courgettes to share"),
    ("share_food", {"item": "banana bread"}, "Maya has some banana bread to share"),
    ("share_food", {"item": "apple crumble"}, "Maya has an apple crumble to share"),
    # tasks: base-form verb phrases; "with" phrases and -ing phrases are spoken with "with"
    ("ask_help", {"task": "move a wardrobe"}, "Maya needs help to move a wardrobe"),
    ("ask_help", {"task": "assemble a bed frame"}, "Maya needs help to assemble a bed frame"),
    ("ask_help", {"task": "with the garden"}, "Maya needs help with the garden"),
    ("ask_help", {"task": "with some maths homework"}, "Maya needs help with some maths homework"),
    ("ask_help", {"task": "moving a wardrobe"}, "Maya needs help with moving a wardrobe"),
    # issues: statements become "that" clauses, noun phrases keep their article (or none)
    ("report_issue", {"issue": "bin wasn't collected"}, "Maya reports that the bin wasn't collected"),
    ("report_issue", {"issue": "power's gone off"}, "Maya reports that the power's gone off"),
    ("report_issue", {"issue": "road hasn't been gritted"}, "Maya reports that the road hasn't been gritted"),
    ("report_issue", {"issue": "streetlight keeps flickering"}, "Maya reports that the streetlight keeps flickering"),
    ("report_issue", {"issue": "tap water smells funny"}, "Maya reports that the tap water smells funny"),
    ("report_issue", {"issue": "lorry's knocked the bollard down"}, "Maya reports that the lorry's knocked the bollard down"),
    ("report_issue", {"issue": "someone's dumped a mattress"}, "Maya reports that someone's dumped a mattress"),
    ("report_issue", {"issue": "drains outside are blocked"}, "Maya reports that the drains outside are blocked"),
    ("report_issue", {"issue": "broken street light"}, "Maya reports a broken street light"),
    ("report_issue", {"issue": "glass all over the pavement"}, "Maya reports glass all over the pavement"),
    ("report_issue", {"issue": "fox going through the bins"}, "Maya reports a fox going through the bins"),
    ("report_issue", {"issue": "car parked across my driveway"}, "Maya reports a car parked across my driveway"),
    ("report_issue", {"issue": "fly tipping behind the shops"}, "Maya reports fly tipping behind the shops"),
    ("report_issue", {"issue": "kids throwing stones at cars"}, "Maya reports kids throwing stones at cars"),
    ("report_issue", {"issue": "wasps nest by the playground"}, "Maya reports a wasps nest by the playground"),
    ("report_issue", {"issue": "dog barking nonstop"}, "Maya reports a dog barking nonstop"),
    ("report_issue", {"issue": "neighbour's dog barking at night"}, "Maya reports a neighbour's dog barking at night"),
    # events: a noun phrase with a place kept; the list's mass article is "the"
    (
        "announce_event",
        {"event": "picnic by the river", "time": "sunday morning"},
        "Maya invites you to a picnic by the river on sunday morning",
    ),
    ("announce_event", {"event": "walk round the lake"}, "Maya invites you to a walk round the lake"),
    ("announce_event", {"event": "housewarming", "time": "in an hour"}, "Maya invites you to a housewarming in an hour"),
    ("announce_event", {"event": "wine tasting"}, "Maya invites you to the wine tasting"),
]  # fmt: skip


@pytest.mark.parametrize(("intent", "slots", "expected"), OPEN_VALUES)
def test_open_values_are_announced_naturally(
    catalog: Catalog, intent: str, slots: dict[str, str], expected: str
) -> None:
    assert announcement(say(Sender("maya-12", "Maya"), intent, slots), catalog) == expected


@pytest.mark.parametrize(
    ("intent", "slots", "answer", "expected"),
    [
        ("borrow_item", {"item": "pasta maker"}, "reply_yes", "Sam can lend you a pasta maker"),
        ("share_food", {"item": "courgettes"}, "reply_no", "Sam doesn't need any courgettes"),
        ("ask_help", {"task": "with the garden"}, "reply_yes", "Sam can help you with the garden"),
        ("ask_help", {"task": "move a wardrobe"}, "reply_no", "Sam can't help you move a wardrobe"),
        (
            "report_issue",
            {"issue": "bin wasn't collected"},
            "reply_yes",
            "Sam has noticed that the bin wasn't collected too",
        ),
        (
            "report_issue",
            {"issue": "broken street light"},
            "reply_no",
            "Sam hasn't noticed the broken street light",
        ),
        ("offer_item", {"item": "old sofa"}, "reply_yes", "Sam would like your old sofa"),
    ],
)
def test_replies_to_open_values(
    catalog: Catalog, intent: str, slots: dict[str, str], answer: str, expected: str
) -> None:
    sent = say(MAYA, intent, slots)
    assert announcement(say(SAM, answer, {}, sent), catalog, sent) == expected


@pytest.mark.parametrize(
    ("intent", "slots", "expected"),
    [
        ("borrow_item", {"item": "pasta maker"}, "Maya no longer needs a pasta maker"),
        ("share_food", {"item": "courgettes"}, "Maya no longer has any courgettes to share"),
        ("ask_help", {"task": "with the garden"}, "Maya no longer needs help with the garden"),
        ("ask_help", {"task": "move a wardrobe"}, "Maya no longer needs help to move a wardrobe"),
        (
            "report_issue",
            {"issue": "bin wasn't collected"},
            "Maya has withdrawn their report that the bin wasn't collected",
        ),
        ("report_issue", {"issue": "pothole"}, "Maya has withdrawn their report of the pothole"),
    ],
)
def test_cancellations_of_open_values(
    catalog: Catalog, intent: str, slots: dict[str, str], expected: str
) -> None:
    maya = Sender("maya-12", "Maya")
    original = say(maya, intent, slots)
    assert announcement(say(maya, "cancel", {}, original), catalog, original) == expected


@pytest.mark.parametrize(
    ("value", "statement"),
    [
        ("bin wasn't collected", True),
        ("internet is down", True),
        ("heating's out in our block", True),
        ("bus shelter's been smashed", True),
        ("phone lines are down", True),
        ("broken glass", False),
        ("gas leak near the school", False),
        ("neighbour's dog barking", False),
        ("toddler playgroup at st mary's", False),
        ("no phone signal", False),
    ],
)
def test_statements_are_told_from_noun_phrases(value: str, statement: bool) -> None:
    assert is_statement(value) is statement


def test_clauses_and_verb_phrases() -> None:
    assert as_clause("bin wasn't collected") == "that the bin wasn't collected"
    assert as_clause("nobody's emptied the bins") == "that nobody's emptied the bins"
    assert as_clause("our fence has come down") == "that our fence has come down"
    assert verb_phrase("move a couch", "to") == "to move a couch"
    assert verb_phrase("move a couch") == "move a couch"
    assert verb_phrase("for the school run", "to") == "for the school run"
    assert verb_phrase("the garden", "to") == "with the garden"


def test_a_statement_is_never_spoken_with_an_article_in_any_phrase(catalog: Catalog) -> None:
    """Every phrase of report_issue (announce, read-back, replies, cancellation) takes the clause."""
    sent = say(MAYA, "report_issue", {"issue": "water's been cut off"})
    texts = [
        announcement(sent, catalog),
        readback("report_issue", dict(sent.slots), catalog),
        announcement(say(SAM, "reply_yes", {}, sent), catalog, sent),
        announcement(say(SAM, "reply_no", {}, sent), catalog, sent),
        announcement(say(MAYA, "cancel", {}, sent), catalog, sent),
    ]
    for text in texts:
        assert text is not None
        assert "that the water's been cut off" in text, text
        assert " a water" not in text, text
        assert " of that" not in text, text
        assert " about that" not in text, text


# ----------------------------------------------------------------------------- close calls


def test_the_close_call_question_comes_from_the_catalog(catalog: Catalog) -> None:
    assert choice_question("borrow_item", "offer_item", catalog) == "Did you want to borrow or to lend?"
    assert choice_question("offer_item", "share_food", catalog) == "Did you want to lend or to share food?"
    assert choice_question("reply_yes", "rsvp", catalog) is None  # answers are never offered
    assert choice_question("borrow_item", "self_destruct", catalog) is None
