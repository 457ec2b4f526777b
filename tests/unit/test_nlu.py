"""The trained half of the parser: generalization, open slots, honest rejection, bad input, the cache.

Sentences here are written for these tests and are not catalog sentences (each test checks that
the model, not the exact-template stage, decided)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from voicehello.intents.catalog import Catalog, Intent
from voicehello.intents.nlu import cache
from voicehello.intents.nlu.model import INTENT_FILE
from voicehello.intents.nlu.values import base_form, clean_value
from voicehello.intents.parser import IntentParser

# ----------------------------------------------------------------------------- generalization


@pytest.mark.parametrize(
    ("text", "intent", "slots"),
    [
        ("does anybody have a pasta maker i could use", "borrow_item", {"item": "pasta maker"}),
        ("hi all has anyone got a jigsaw i could borrow", "borrow_item", {"item": "jigsaw"}),
        ("could someone loan me a sack truck for the afternoon", "borrow_item", {"item": "sack truck"}),
        ("we have too many courgettes does anyone want some", "share_food", {"item": "courgettes"}),
        ("i've got a glut of runner beans if anyone wants them", "share_food", {"item": "runner beans"}),
        ("can anyone give me a hand moving a wardrobe", "ask_help", {"task": "move a wardrobe"}),
        ("is anyone free to help me clear out the loft", "ask_help", {"task": "clear out the loft"}),
        ("my cordless drill is free to borrow if anyone needs it", "offer_item", {"item": "drill"}),
        ("um yeah go on then", "reply_yes", {}),
        ("nah sorry mate", "reply_no", {}),
        ("scrap that", "cancel", {}),
    ],
)
def test_sentences_outside_the_templates(
    parser: IntentParser, text: str, intent: str, slots: dict[str, str]
) -> None:
    result = parser.parse(text)
    assert (result.intent, result.slots) == (intent, slots), result.explanation
    assert result.explanation is not None
    assert result.explanation.source == "model"


def test_exact_catalog_sentences_come_from_the_template_stage(parser: IntentParser) -> None:
    result = parser.parse("could someone lend me a ladder")
    assert (result.intent, result.slots, result.confidence) == ("borrow_item", {"item": "ladder"}, 1.0)
    assert result.explanation is not None
    assert result.explanation.source == "template"


def test_event_with_a_natural_time(parser: IntentParser) -> None:
    result = parser.parse("we're doing a barbecue at ours this saturday afternoon all welcome")
    assert (result.intent, result.slots) == (
        "announce_event",
        {"event": "barbecue", "time": "this saturday afternoon"},
    )


def test_unknown_values_are_cleaned_and_capped(parser: IntentParser) -> None:
    result = parser.parse("there's glass all over the pavement outside number nine")
    assert (result.intent, result.slots) == ("report_issue", {"issue": "glass all over the pavement"})


def test_known_synonyms_snap_to_the_canonical(parser: IntentParser) -> None:
    assert parser.parse("anyone got a step ladder going spare").slots == {"item": "ladder"}


# ----------------------------------------------------------------------------- honest rejection


@pytest.mark.parametrize(
    "text",
    [
        "i can't lend my ladder",
        "we don't have a lawnmower any more",
        "nobody can help me move a couch",
        "i borrowed the ladder yesterday",
        "dave lent me his drill last week",
        "we had a barbecue last weekend",
        "where did the scissors go",
        "have you seen my tape measure",
    ],
)
def test_negations_narration_and_questions_are_not_requests(parser: IntentParser, text: str) -> None:
    result = parser.parse(text)
    assert result.intent is None, result.explanation
    assert result.slots == {}


def test_a_negation_the_intent_never_has_is_rejected(parser: IntentParser) -> None:
    """The rule, not only the model: ask_help is never said with a negation."""
    result = parser.parse("i'm not asking anyone to help me move a couch")
    assert result.intent is None
    assert result.explanation is not None


def test_close_intents_are_rejected_with_both_named(catalog: Catalog, parser: IntentParser) -> None:
    """With a margin no intent can clear, a model decision is never taken: the result names the
    two closest intents so a conversation can ask which was meant."""
    wary = IntentParser(catalog, model=parser.model, margin=1.01)
    result = wary.parse("does anybody have a pasta maker i could use")
    assert result.intent is None
    assert len(result.alternatives) == 2
    assert result.alternatives[0] == "borrow_item"
    assert parser.parse("does anybody have a pasta maker i could use").alternatives == ()


def test_slot_values_that_break_the_rule_are_rejected(parser: IntentParser) -> None:
    result = parser.parse("can anyone lend me a police siren everyone must hear")
    assert result.intent is None or "police" not in " ".join(result.slots.values())


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "\u2603\U0001f600\U0001f525",
        "asdf qwer zxcv uiop",
        "¿me puedes prestar una escalera por favor?",
        "kannst du mir bitte eine leiter leihen",
        "\u3053\u3093\u306b\u3061\u306f",
        "x" * 10_000,
        "ladder " * 2_000,
    ],
)
def test_bad_input_is_rejected_not_a_crash(parser: IntentParser, text: str) -> None:
    result = parser.parse(text)
    assert result.intent is None
    assert result.slots == {}


# ----------------------------------------------------------------------------- value cleaning


@pytest.mark.parametrize(
    ("phrase", "slot", "value"),
    [
        ("a load of spare courgettes", "item", "courgettes"),
        ("some homemade jam please", "item", "jam"),
        ("moving a wardrobe", "task", "move a wardrobe"),
        ("help putting up a fence", "task", "put up a fence"),
        ("with the garden", "task", "with the garden"),
        ("there's glass all over the pavement outside number nine", "issue", "glass all over the pavement"),
        ("coffee morning at mine", "event", "coffee morning"),
        ("picnic by the river", "event", "picnic by the river"),
    ],
)
def test_clean_value(phrase: str, slot: str, value: str) -> None:
    assert clean_value(phrase, slot) == value


@pytest.mark.parametrize(
    ("verb", "base"), [("moving", "move"), ("getting", "get"), ("painting", "paint"), ("filling", "fill")]
)
def test_base_form(verb: str, base: str) -> None:
    assert base_form(verb) == base


# ----------------------------------------------------------------------------- the cache


def test_cache_key_follows_the_catalog(catalog: Catalog) -> None:
    intent = catalog.intents["say_hello"]
    changed = replace(
        catalog,
        intents={**catalog.intents, "say_hello": replace(intent, sentences=(*intent.sentences, "yo"))},
    )
    assert cache.model_key(changed) != cache.model_key(catalog)
    assert cache.model_key(catalog) == cache.model_key(catalog)


def test_the_session_model_is_cached_under_the_test_cache_dir(
    catalog: Catalog, parser: IntentParser, model_cache: Path
) -> None:
    """Tests never write into ~/.cache: the conftest points VOICEHELLO_CACHE_DIR at a tmp dir."""
    assert cache.cache_root() == model_cache
    assert (cache.model_dir(catalog) / INTENT_FILE).is_file()


def test_a_corrupt_cache_is_retrained_with_one_log_line(
    catalog: Catalog, parser: IntentParser, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A small catalog keeps this fast: two intents' sentences are enough to train on."""
    small = _small(catalog)
    first = cache.load_or_train(small, root=tmp_path)
    stored = cache.model_dir(small, tmp_path) / INTENT_FILE
    stored.write_bytes(b"not a model")
    cache._loaded.clear()
    with caplog.at_level(logging.WARNING, logger="voicehello.intents.nlu.cache"):
        again = cache.load_or_train(small, root=tmp_path)
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "retraining" in warnings[0].getMessage()
    assert again is not first
    assert again.labels == first.labels
    assert stored.read_bytes() != b"not a model"


def _small(catalog: Catalog) -> Catalog:
    """The catalog with every intent cut to its first sentence (quick to train)."""
    intents: dict[str, Intent] = {
        name: replace(intent, sentences=intent.sentences[:1], trees=intent.trees[:1])
        for name, intent in catalog.intents.items()
    }
    return replace(catalog, intents=intents)
