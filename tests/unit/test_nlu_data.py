"""The natural-phrasing sets (tests/data/nlu) and the training negatives stay what they claim to be:
well-formed, labelled with the catalog's intents and slots, split dev/test with enough lines per
intent, apart from each other, and with no test sentence that a catalog template produces word for
word (adding one to the catalog would be tuning on test)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from voicehello.config import DEFAULT_CATALOG_FILE
from voicehello.errors import VoicehelloError
from voicehello.intents.catalog import Catalog, load_catalog
from voicehello.intents.slot_values import violation
from voicehello.intents.testset import (
    OffTopic,
    Request,
    TemplateIndex,
    load_off_topic,
    load_requests,
    slots_match,
)

NEGATIVES_DIR = Path(__file__).resolve().parents[2] / "voicehello" / "intents" / "data"
NEGATIVE_FILES = ("negatives.txt", "negatives_own.txt")
"""Sentence-per-line training negatives (those that exist are checked)."""
MIN_LINES = 480
MIN_PER_SPLIT = 20
SPOKEN = re.compile(r"[a-z0-9']+(?: [a-z0-9']+)*")
"""Lower-case words, single spaces: what a recognizer gives (digits only in typed times)."""


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(DEFAULT_CATALOG_FILE)


@pytest.fixture(scope="module")
def requests() -> list[Request]:
    return load_requests()


@pytest.fixture(scope="module")
def off_topic() -> list[OffTopic]:
    return load_off_topic()


def _time_slots(catalog: Catalog, intent: str) -> set[str]:
    return {
        slot for slot, name in catalog.intents[intent].slots.items() if catalog.lists[name].kind == "time"
    }


def _negatives() -> set[str]:
    found: set[str] = set()
    for name in NEGATIVE_FILES:
        path = NEGATIVES_DIR / name
        if path.exists():
            lines = path.read_text(encoding="utf-8").splitlines()
            found.update(line.strip() for line in lines if line.strip() and not line.startswith("#"))
    return found


def test_sizes_and_spoken_form(requests: list[Request], off_topic: list[OffTopic]) -> None:
    assert len(requests) >= MIN_LINES
    assert len(off_topic) >= MIN_LINES
    for text in [r.text for r in requests] + [o.text for o in off_topic]:
        assert SPOKEN.fullmatch(text), text


def test_intents_and_slots_follow_the_catalog(catalog: Catalog, requests: list[Request]) -> None:
    for request in requests:
        where = f"in_domain.tsv:{request.line}"
        assert request.intent in catalog.intents, where
        allowed = set(catalog.intents[request.intent].slots)
        required = allowed - _time_slots(catalog, request.intent)
        assert required <= set(request.slots) <= allowed, where
        for slot, values in request.slots.items():
            for value in values:
                assert violation(slot, value) is None, f"{where}: {slot}={value!r}: {violation(slot, value)}"


def test_every_intent_has_enough_dev_and_test_lines(catalog: Catalog, requests: list[Request]) -> None:
    counts = Counter((request.intent, request.split) for request in requests)
    for intent in catalog.intents:
        assert counts[intent, "dev"] >= MIN_PER_SPLIT, intent
        assert counts[intent, "test"] >= MIN_PER_SPLIT, intent


def test_off_topic_categories_are_split(off_topic: list[OffTopic]) -> None:
    counts = Counter((sentence.category, sentence.split) for sentence in off_topic)
    for category in {sentence.category for sentence in off_topic}:
        assert counts[category, "dev"] >= MIN_PER_SPLIT // 2, category
        assert counts[category, "test"] >= MIN_PER_SPLIT // 2, category


def test_open_values_are_at_least_a_third(catalog: Catalog, requests: list[Request]) -> None:
    with_values = [
        (request, slot)
        for request in requests
        for slot in request.slots
        if slot not in _time_slots(catalog, request.intent)
    ]
    unlisted = [
        1
        for request, slot in with_values
        if request.slots[slot][0] not in catalog.slot_list(request.intent, slot).values
    ]
    assert len(unlisted) * 3 >= len(with_values)


def test_no_sentence_twice(requests: list[Request], off_topic: list[OffTopic]) -> None:
    in_domain = [request.text for request in requests]
    off = [sentence.text for sentence in off_topic]
    assert len(set(in_domain)) == len(in_domain)
    assert len(set(off)) == len(off)
    assert not set(in_domain) & set(off)


def test_training_negatives_stay_out_of_the_sets(requests: list[Request], off_topic: list[OffTopic]) -> None:
    negatives = _negatives()
    assert len(negatives) >= 1000
    evaluated = {request.text for request in requests} | {sentence.text for sentence in off_topic}
    assert not negatives & evaluated, sorted(negatives & evaluated)[:10]


def test_no_test_sentence_is_a_template_expansion(catalog: Catalog, requests: list[Request]) -> None:
    index = TemplateIndex(catalog)
    expanded = [
        f"in_domain.tsv:{request.line} {request.text!r} <- {sorted(index.intents_of(request.text))}"
        for request in requests
        if request.split == "test" and index.intents_of(request.text)
    ]
    assert not expanded, expanded


def test_template_index_recognizes_catalog_sentences(catalog: Catalog) -> None:
    """The check above can fail: real catalog sentences, with or without a wake phrase, are found."""
    index = TemplateIndex(catalog)
    sentences = catalog.sentences(max_per_intent=5, seed=3)
    assert sentences
    for number, sentence in enumerate(sentences):
        text = f"{catalog.wake_phrases[0]} {sentence}" if number % 2 else sentence
        assert index.intents_of(text), text
    assert not index.intents_of("where did the kitchen scissors end up")


def test_slots_match_accepts_alternatives_and_normalizes() -> None:
    request = Request("dev", "report_issue", {"issue": ("gas leak near the school", "gas smell")}, "x", 1)
    assert slots_match(request, {"issue": "Gas  smell"})
    assert slots_match(request, {"issue": "gas leak near the school"})
    assert not slots_match(request, {"issue": "gas leak"})
    assert not slots_match(request, {})
    assert not slots_match(request, {"issue": "gas smell", "time": "tonight"})


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("split\tintent\tslots\ttext\ndev\tsay_hello\t-\n", "4 non-empty"),
        ("split\tintent\tslots\ttext\ntrain\tsay_hello\t-\thello all\n", "split must be"),
        ("split\tintent\tslots\ttext\ndev\tborrow_item\titem\tcould i borrow it\n", "bad slots"),
        ("intent\ttext\ndev\tsay_hello\n", "header must be"),
    ],
)
def test_a_broken_file_names_the_line(tmp_path: Path, body: str, problem: str) -> None:
    path = tmp_path / "broken.tsv"
    path.write_text("# comment\n" + body, encoding="utf-8")
    with pytest.raises(VoicehelloError, match=problem) as raised:
        load_requests(path)
    assert "broken.tsv" in str(raised.value)
