"""Typed text -> intent with slots, against the real catalog: requests, replies, near misses, kitchen talk."""

from __future__ import annotations

import pytest

from voicehello.intents.catalog import Catalog
from voicehello.intents.parser import IntentParser, ParseResult, normalize

# ----------------------------------------------------------------------------- normalization


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("Hey Neighbor, can I borrow a ladder?", "hey neighbor can i borrow a ladder"),
        ("film night tonight at 7", "film night tonight at seven"),
        ("at 7:30", "at seven thirty"),
        ("at 5:45pm", "at five forty five"),
        ("at 12p.m.", "at twelve"),
        ("at 7:05", "at seven oh five"),
        ("I\u2019m   out of  eggs!!", "i'm out of eggs"),
        ("salt & pepper", "salt and pepper"),
        ("'quoted'", "quoted"),
        ("?!...", ""),
    ],
)
def test_normalize(text: str, normalized: str) -> None:
    assert normalize(text) == normalized


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("tonight at 7 pm", "tonight at seven"),
        ("tonight at 7 p.m.", "tonight at seven"),
        ("at 6:30 p.m. tonight", "at six thirty tonight"),
        ("saturday at 9am", "saturday at nine"),
        ("saturday at 9 a.m.", "saturday at nine"),
    ],
)
def test_normalize_drops_am_and_pm_after_a_number(text: str, normalized: str) -> None:
    assert normalize(text) == normalized


# ----------------------------------------------------------------------------- sentences from the issue


@pytest.mark.parametrize(
    ("text", "intent", "slots"),
    [
        ("hey neighbor, can I borrow a ladder?", "borrow_item", {"item": "ladder"}),
        ("does anyone have a drill I could borrow", "borrow_item", {"item": "drill"}),
        ("could someone lend me a cup of sugar", "borrow_item", {"item": "cup of sugar"}),
        ("can I borrow a step ladder", "borrow_item", {"item": "ladder"}),
        ("I have a ladder to lend", "offer_item", {"item": "ladder"}),
        ("i made too much soup does anyone want some", "share_food", {"item": "soup"}),
        ("can someone help me move a couch", "ask_help", {"task": "move a couch"}),
        ("count me in", "rsvp", {}),
        ("never mind", "cancel", {}),
        ("say hello", "say_hello", {}),
        ("yes", "reply_yes", {}),
        ("sorry no", "reply_no", {}),
        ("film night tonight at seven", "announce_event", {"event": "film night", "time": "tonight at 7:00"}),
        ("film night tonight at 7", "announce_event", {"event": "film night", "time": "tonight at 7:00"}),
        ("Film night tonight at 7pm!", "announce_event", {"event": "film night", "time": "tonight at 7:00"}),
        (
            "there's a block party on saturday at 4:30",
            "announce_event",
            {"event": "block party", "time": "saturday at 4:30"},
        ),
        ("you're all invited to our potluck", "announce_event", {"event": "potluck"}),
        ("the streetlight on our corner is out", "report_issue", {"issue": "street light out"}),
        ("the street light on our corner is out", "report_issue", {"issue": "street light out"}),
        ("there's a pothole on our street", "report_issue", {"issue": "pothole"}),
    ],
)
def test_issue_sentences(parser: IntentParser, text: str, intent: str, slots: dict[str, str]) -> None:
    result = parser.parse(text)
    assert (result.intent, result.slots) == (intent, slots)
    assert parser.threshold <= result.confidence <= 1.0
    assert result.guess == intent


def test_exact_catalog_sentence_has_full_confidence(parser: IntentParser) -> None:
    assert parser.parse("can i borrow a ladder").confidence == 1.0


# ----------------------------------------------------------------------------- wake phrase


@pytest.mark.parametrize(
    ("text", "woke"),
    [
        ("hey neighbor can i borrow a ladder", True),
        ("Hi neighbor, can I borrow a ladder?", True),
        ("okay neighbor can i borrow a ladder", True),
        ("hey neighbour can i borrow a ladder", True),  # near-miss spelling of the wake phrase
        ("can i borrow a ladder", False),
    ],
)
def test_woke_flag(parser: IntentParser, text: str, woke: bool) -> None:
    result = parser.parse(text)
    assert result.woke is woke
    assert (result.intent, result.slots) == ("borrow_item", {"item": "ladder"})


def test_wake_phrase_alone_wakes_without_intent(parser: IntentParser) -> None:
    result = parser.parse("Hey neighbor!")
    assert (result.text, result.intent, result.slots, result.woke) == ("hey neighbor", None, {}, True)


def test_wake_word_inside_a_sentence_is_not_a_wake(parser: IntentParser) -> None:
    assert not parser.parse("say hello to the neighbors").woke


# ----------------------------------------------------------------------------- near misses


@pytest.mark.parametrize(
    ("text", "intent", "slots"),
    [
        ("can i borrow a ladderr", "borrow_item", {"item": "ladder"}),
        ("can i borrow a lader", "borrow_item", {"item": "ladder"}),
        ("could someone lend me a dril", "borrow_item", {"item": "drill"}),
        ("can i borow a wheelbarrow", "borrow_item", {"item": "wheelbarrow"}),
        ("i have a lawnmover to lend", "offer_item", {"item": "lawnmower"}),
        ("can somone help me move a couch", "ask_help", {"task": "move a couch"}),
    ],
)
def test_near_misses_snap_to_catalog_values(
    parser: IntentParser, text: str, intent: str, slots: dict[str, str]
) -> None:
    result = parser.parse(text)
    assert (result.intent, result.slots) == (intent, slots)
    assert result.confidence < 1.0


def test_threshold_changes_the_decision(catalog: Catalog) -> None:
    lenient = IntentParser(catalog, threshold=0.5).parse("can i borrow a lader")
    assert lenient.intent == "borrow_item"
    assert lenient.confidence < 0.999
    above = (lenient.confidence + 1.0) / 2
    strict = IntentParser(catalog, threshold=above).parse("can i borrow a lader")
    assert strict.intent is None
    assert strict.slots == {}
    assert strict.guess == "borrow_item"
    assert strict.confidence == lenient.confidence
    assert strict.confidence < above


def test_a_low_threshold_never_turns_kitchen_talk_into_a_request(
    catalog: Catalog, parser: IntentParser
) -> None:
    """The model's "none" class wins for kitchen talk, whatever the threshold (the old fuzzy
    matcher accepted "can you pass me the butter" as borrow_item at threshold 0.5)."""
    text = "can you pass me the butter"
    assert parser.parse(text).intent is None
    lenient = IntentParser(catalog, threshold=0.5).parse(text)
    assert lenient.intent is None
    assert lenient.explanation is not None
    assert lenient.explanation.scores[0][0] == "none"


# ----------------------------------------------------------------------------- rejection


KITCHEN_TALK = [
    "please pass the salt",
    "i forgot to buy milk",
    "what's for dinner",
    "turn the oven off",
    "can you pass me the butter",
    "the kettle is boiling",
    "where did i put my keys",
    "we need more eggs",
    "dinner is ready",
    "wash your hands before you eat",
    "set the table please",
    "who left the fridge open",
    "the dishwasher is full",
    "put the kettle on",
    "i'm going to the shop",
    "the soup needs more salt",
    "did you feed the cat",
    "take the chicken out of the freezer",
    "let's order pizza tonight",
    "how long does the pasta take",
    "is the coffee still hot",
    "could you stir the sauce",
    "the bread is stale",
    "don't touch the stove it's hot",
    "i burned the toast",
    "what time is it",
    "can you open the window",
    "turn down the music",
    "the sink is full of dishes",
    "have you seen my phone",
    "we're out of coffee filters",
    "chop the onions for me",
    "preheat the oven to four hundred",
    "the milk has gone off",
    "i love this recipe",
    "mom can i have a snack",
    "clean up your room",
    "the baby is sleeping",
    "what are we having for lunch",
    "did anyone call",
    "pass the pepper please",
    "the timer went off",
    "put the leftovers in the fridge",
    "i need to go to the store",
    "can you help me with my homework",
    "this cake is delicious",
    "where's the can opener",
    "empty the dishwasher please",
    "the bins go out on tuesday",
    "hurry up we're going to be late",
    "the kids are watching tv",
    "is there any more juice",
    "can i have some water",
    "yes i think so",
    "no thank you",
    "good morning sweetheart",
    "i'm cooking soup",
    "bring me a spoon",
    "is the oven hot yet",
    "stir the risotto every few minutes",
    "the pasta water is boiling over",
    "can you grab the milk from the fridge",
    "we're low on bread",
    "i'll make pancakes tomorrow morning",
    "the dog ate my sandwich",
    "how much sugar goes in the cake",
    "don't forget your lunch box",
    "where are the scissors",
    "the toaster is broken again",
    "wipe the counter please",
    "dinner at six tonight",
    "did you lock the back door",
    "the cat wants to go out",
    "add a pinch of salt",
    "let the dough rise for an hour",
    "i'm making soup for dinner",
    "do we have any eggs left",
    "turn the radio up",
    "the garbage smells",
    "it's raining outside",
    "call grandma after dinner",
    "we should paint the kitchen",
    "the fridge is making a weird noise",
    "i need a cup of coffee",
    "what's the weather like today",
]

KNOWN_FALSE_ACCEPTS = {
    "dinner at six tonight": "announce_event",
    "no thank you": "reply_no",  # a fair reply (tests/data/nlu has it as reply_no); replies act only after a read-back
}
"""Kitchen talk the parser currently takes for a request (reported; kept visible here)."""


@pytest.fixture(scope="module")
def kitchen_results(parser: IntentParser) -> dict[str, ParseResult]:
    return {text: parser.parse(text) for text in KITCHEN_TALK}


def test_kitchen_talk_is_mostly_rejected(kitchen_results: dict[str, ParseResult]) -> None:
    assert len(KITCHEN_TALK) == len(set(KITCHEN_TALK)) >= 80
    accepted = {text: result.intent for text, result in kitchen_results.items() if result.intent is not None}
    rate = len(accepted) / len(KITCHEN_TALK)
    print(f"kitchen talk accepted: {len(accepted)}/{len(KITCHEN_TALK)} = {rate:.1%}: {accepted}")
    assert rate <= 0.05, accepted


def test_known_false_accepts_are_still_the_only_ones(kitchen_results: dict[str, ParseResult]) -> None:
    """Fails when the list changes, in either direction, so the report above stays true."""
    accepted = {text: result.intent for text, result in kitchen_results.items() if result.intent is not None}
    assert accepted == KNOWN_FALSE_ACCEPTS


def test_rejected_talk_has_no_slots_and_a_low_confidence(kitchen_results: dict[str, ParseResult]) -> None:
    for text, result in kitchen_results.items():
        if text not in KNOWN_FALSE_ACCEPTS:
            assert result.intent is None, text
            assert result.slots == {}, text
            assert result.confidence < 0.8, text


@pytest.mark.parametrize("text", ["", "   ", "?!", "...", ",,, !!!", "\u2019\u2019", "'"])
def test_empty_or_punctuation_only_is_rejected(parser: IntentParser, text: str) -> None:
    result = parser.parse(text)
    assert result.intent is None
    assert result.slots == {}
    assert result.confidence == 0.0


def test_very_long_text_finishes_and_is_rejected(parser: IntentParser) -> None:
    text = "hey neighbor " + "can i borrow a ladder please and " * 150
    result = parser.parse(text)
    assert result.woke
    assert result.intent is None
    assert result.confidence < 0.5


def test_long_single_token_is_rejected(parser: IntentParser) -> None:
    assert parser.parse("a" * 5000).intent is None


# ----------------------------------------------------------------------------- slot edge cases


@pytest.mark.parametrize(
    ("text", "event"),
    [
        ("join us for our open mic night", "music night"),
        ("you're all invited to the outdoor movie night", "film night"),
    ],
)
def test_event_name_ending_in_night_gets_no_time(parser: IntentParser, text: str, event: str) -> None:
    result = parser.parse(text)
    assert (result.intent, result.slots) == ("announce_event", {"event": event})


@pytest.mark.parametrize(
    ("text", "time"),
    [
        ("the block party starts at 4 pm on saturday", "saturday at 4:00"),
        ("block party at 4 p.m. tomorrow", "tomorrow at 4:00"),
    ],
)
def test_spaced_pm_keeps_the_clock_time(parser: IntentParser, text: str, time: str) -> None:
    result = parser.parse(text)
    assert (result.intent, result.slots) == ("announce_event", {"event": "block party", "time": time})


@pytest.mark.parametrize(
    "text",
    [
        "i can't lend my ladder",
        "nobody can help me move a couch",
        "i cannot gloves",
        "i never borrow a ladder",
    ],
)
def test_negated_requests_are_not_turned_into_requests(parser: IntentParser, text: str) -> None:
    result = parser.parse(text)
    assert result.intent not in {"offer_item", "borrow_item", "ask_help"}, result


def test_refusals_still_parse_as_replies(parser: IntentParser) -> None:
    assert parser.parse("no sorry we don't have one to lend").intent == "reply_no"
    assert parser.parse("sorry no i can't help").intent == "reply_no"


def test_describe_is_one_line_for_people() -> None:
    said = ParseResult("can i borrow a ladder", "borrow_item", {"item": "ladder"}, 0.934)
    assert said.describe() == "borrow_item item='ladder' (confidence 0.93)"
    assert said.describe(confidence=False) == "borrow_item item='ladder'"
    assert ParseResult("hi", "say_hello", {}, 1.0).describe(confidence=False) == "say_hello"
    assert ParseResult("pass the salt", None, {}, 0.41).describe() == "(no intent, confidence 0.41)"
