"""Open slots in speech: the broad vocabulary, the class language model in a real PocketSphinx
decoder, and the phrases added to Vosk's runtime grammar."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from voicehello.intents.catalog import Catalog
from voicehello.speech import lm, vocabulary
from voicehello.speech.pocketsphinx import PocketSphinxRecognizer, dictionary_path

SIZE = 400
WEIGHT = 0.01


@pytest.fixture(scope="module")
def pronounceable() -> frozenset[str]:
    return vocabulary.dictionary_words(dictionary_path())


@pytest.fixture(scope="module")
def broad(catalog: Catalog, pronounceable: frozenset[str]) -> vocabulary.OpenVocabulary:
    return vocabulary.broad_vocabulary(
        SIZE, pronounceable=pronounceable.__contains__, exclude=catalog.words()
    )


@pytest.fixture(scope="module")
def model(catalog: Catalog, pronounceable: frozenset[str]) -> lm.LanguageModel:
    return lm.catalog_model(catalog, pronounceable=pronounceable.__contains__, size=SIZE, weight=WEIGHT)


@pytest.fixture(scope="module")
def decoder(catalog: Catalog, model: lm.LanguageModel) -> Any:
    """A real PocketSphinx decoder with the class model (the bundled model and dictionary)."""
    recognizer = PocketSphinxRecognizer(catalog.words(), arpa=model.arpa, classes=model.classes)
    return recognizer._decoder  # the library object, to read its language model's probabilities


def log10_prob(decoder: Any, word: str, *history: str) -> float:
    """log10 P(word | history) as the decoder computes it (classes expanded)."""
    value = decoder.get_lm().prob([word, *reversed(history)])
    return float(decoder.get_logmath().log_to_log10(value))


# ----------------------------------------------------------------------------- the vocabulary


def test_vocabulary_has_the_size_asked_and_weights_that_sum_to_one(broad: vocabulary.OpenVocabulary) -> None:
    assert len(broad) == SIZE
    assert len(set(broad.words)) == SIZE
    assert math.fsum(broad.weights) == pytest.approx(1.0)
    assert all(weight > 0 for weight in broad.weights)


def test_more_frequent_words_weigh_more(broad: vocabulary.OpenVocabulary) -> None:
    assert list(broad.weights) == sorted(broad.weights, reverse=True)
    assert broad.weights[0] > broad.weights[-1]


def test_vocabulary_words_are_pronounceable_and_new(
    broad: vocabulary.OpenVocabulary, catalog: Catalog, pronounceable: frozenset[str]
) -> None:
    assert set(broad.words) <= pronounceable
    assert not set(broad.words) & catalog.words()
    assert not set(broad.words) & (vocabulary.STOP_WORDS | vocabulary.REFUSED_WORDS)
    assert all(vocabulary.is_candidate(word) for word in broad.words)


def test_dictionary_filter_is_applied() -> None:
    only = {"wardrobe", "pasta", "zzzz"}
    words = vocabulary.broad_vocabulary(50, pronounceable=only.__contains__)
    assert set(words.words) == {"wardrobe", "pasta"}


def test_words_people_name_are_in_a_large_vocabulary(catalog: Catalog, pronounceable: frozenset[str]) -> None:
    words = vocabulary.broad_vocabulary(
        20_000, pronounceable=pronounceable.__contains__, exclude=catalog.words()
    )
    assert {"wardrobe", "pavement"} <= set(words.words)


def test_size_zero_is_empty() -> None:
    assert len(vocabulary.broad_vocabulary(0)) == 0


@pytest.mark.parametrize("word", ["the", "anyone", "fucking", "quickly", "x", "well-known", "can't", "42"])
def test_non_things_are_not_candidates(word: str) -> None:
    assert not vocabulary.is_candidate(word)


def test_missing_dictionary_is_one_model_error(tmp_path: Path) -> None:
    from voicehello.errors import ModelError

    with pytest.raises(ModelError, match=r"cannot read the pronunciation dictionary .*missing\.dict"):
        vocabulary.dictionary_words(tmp_path / "missing.dict")


# ----------------------------------------------------------------------------- the class model


def test_class_token_stands_in_open_slots_only(model: lm.LanguageModel, catalog: Catalog) -> None:
    bigrams = {
        tuple(line.split("\t")[1].split())
        for line in model.arpa.split("\\3-grams:")[0].split("\\2-grams:")[1].splitlines()
        if "\t" in line
    }
    assert ("a", lm.OPEN_CLASS) in bigrams  # "can i borrow a [open]"
    assert (lm.OPEN_CLASS, "i") in bigrams  # "... [open] i could borrow"
    assert ("yes", lm.OPEN_CLASS) not in bigrams  # replies have no slot
    assert set(model.classes) == {lm.OPEN_CLASS}


def test_no_class_without_vocabulary_or_weight(catalog: Catalog) -> None:
    for size, weight in ((0, 0.1), (100, 0.0)):
        plain = lm.catalog_model(catalog, size=size, weight=weight)
        assert plain.classes == {}
        assert lm.OPEN_CLASS not in plain.arpa


def test_open_word_is_likely_in_a_slot_and_unlikely_elsewhere(
    decoder: Any, broad: vocabulary.OpenVocabulary
) -> None:
    word = broad.words[len(broad) // 2]
    in_slot = log10_prob(decoder, word, "borrow", "a")
    at_start = log10_prob(decoder, word, "<s>")
    assert in_slot > at_start + 1.0, (word, in_slot, at_start)


def test_known_values_stay_preferred(decoder: Any, broad: vocabulary.OpenVocabulary) -> None:
    known = log10_prob(decoder, "ladder", "borrow", "a")
    for word in broad.words[:5]:  # the most frequent open words weigh most
        assert known > log10_prob(decoder, word, "borrow", "a"), word


def test_class_weight_follows_the_vocabulary_weights(decoder: Any, broad: vocabulary.OpenVocabulary) -> None:
    first, last = broad.words[0], broad.words[-1]
    gap = log10_prob(decoder, first, "borrow", "a") - log10_prob(decoder, last, "borrow", "a")
    assert gap == pytest.approx(math.log10(broad.weights[0] / broad.weights[-1]), abs=0.02)


def test_classdef_format() -> None:
    text = lm.classdef("[open]", {"wardrobe": 0.75, "pasta": 0.25})
    assert text == "LMCLASS [open]\nwardrobe 0.75\npasta 0.25\nEND [open]\n"


# ----------------------------------------------------------------------------- phrase grammars


def test_open_slot_phrases_put_every_word_in_a_slot(catalog: Catalog) -> None:
    words = vocabulary.OpenVocabulary(("wardrobe", "courgette", "gazebo"), (0.5, 0.3, 0.2))
    phrases = vocabulary.open_slot_phrases(catalog, words)
    assert len(phrases) == 3
    for word, phrase in zip(words.words, phrases, strict=True):
        assert word in phrase.split()
        assert "{" not in phrase


def test_open_patterns_leave_closed_slots_filled(catalog: Catalog) -> None:
    patterns = vocabulary.open_patterns(catalog, "announce_event", 50, random.Random(1))
    assert all("{w}" in pattern for pattern in patterns)
    assert not any("{time}" in pattern or "{event}" in pattern for pattern in patterns)
    assert vocabulary.open_patterns(catalog, "reply_yes", 5, random.Random(1)) == []


def test_vosk_grammar_gets_the_open_phrases(catalog: Catalog) -> None:
    from voicehello.speech.vosk import grammar_json

    phrases = vocabulary.vosk_phrases(catalog, size=30)
    added = phrases[len(catalog.sentences()) :]
    assert len(added) == 30
    grammar = json.loads(grammar_json(phrases))
    assert set(added) <= set(grammar)


def test_dictionary_file_filters_the_class(
    catalog: Catalog, pronounceable: frozenset[str], tmp_path: Path
) -> None:
    small = tmp_path / "small.dict"
    small.write_text("wardrobe W AO R D R OW B\npavement P EY V M AH N T\npavement(2) P EY V M IH N T\n")
    model = lm.catalog_model(catalog, dictionary=small, size=50, weight=0.01)
    assert set(model.classes[lm.OPEN_CLASS]) == {"wardrobe", "pavement"}
    assert lm.catalog_model(catalog, dictionary=tmp_path / "unused.dict", size=50, weight=0.0).classes == {}
