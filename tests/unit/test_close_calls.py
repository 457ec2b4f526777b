"""The parser names two close intents, so the conversation can ask which was meant.

The model's probabilities sum to one, so at the default threshold (0.8) no two intents can both
be near the top: a close call is two intents that together reach the threshold and are within
the margin of each other, and it is rejected with both named (never a guess)."""

from __future__ import annotations

from voicehello.intents.parser import IntentParser

AMBIGUOUS = [
    "i got a ladder to borrow",
    "can i have a spare ladder",
    "who have a ladder for anyone",
    "i'd offer a ladder for anyone",
    "i lend a spare ladder",
    "spare lend a ladder",
]
"""A ladder with both "borrow" and "lend" ways of saying it."""


def test_a_close_call_below_the_threshold_names_both(parser: IntentParser) -> None:
    results = [parser.parse(text) for text in AMBIGUOUS]
    assert all(result.intent is None for result in results)
    named = [result for result in results if set(result.alternatives) == {"borrow_item", "offer_item"}]
    assert named, [(r.text, r.alternatives) for r in results]  # which ones depends on the training data
    for result in named:
        scores = dict(result.explanation.scores if result.explanation else ())
        first, second = (scores[name] for name in result.alternatives)
        assert first + second >= parser.threshold
        assert first - second < parser.margin
        for intent in result.alternatives:
            assert parser.slots_for(result.text, intent) == {"item": "ladder"}


def test_clear_requests_and_kitchen_talk_name_no_alternatives(parser: IntentParser) -> None:
    assert parser.parse("can i borrow a ladder").alternatives == ()
    assert parser.parse("i have a ladder to lend").alternatives == ()
    assert parser.parse("please pass the salt").alternatives == ()


def test_slots_for_refuses_what_cannot_be_sent(parser: IntentParser) -> None:
    assert parser.slots_for("i got a ladder to borrow", "self_destruct") is None
    assert parser.slots_for("", "borrow_item") is None
    assert parser.slots_for("i got it to borrow", "borrow_item") is None  # names nothing
