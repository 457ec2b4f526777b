"""The catalog trigram model: ARPA validity, loading in a real PocketSphinx decoder, normalization."""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pocketsphinx
import pytest

from voicehello.intents.catalog import Catalog
from voicehello.speech.lm import BOS, DISCOUNT, EOS, build_arpa

SMALL = [
    "can i borrow a ladder",
    "can i borrow a drill",
    "can i borrow a cup of sugar",
    "i have a ladder to lend",
    "i have soup to share",
    "count me in",
    "can someone lend me a drill",
    "never mind",
]


@dataclass
class Arpa:
    """An ARPA file parsed in the test: header counts and log10 probabilities / back-off weights."""

    counts: dict[int, int]
    grams: dict[int, dict[tuple[str, ...], tuple[float, float | None]]]

    @property
    def vocabulary(self) -> list[str]:
        return [gram[0] for gram in self.grams[1]]

    def backoff(self, history: tuple[str, ...]) -> float:
        entry = self.grams[len(history)].get(history) if history else None
        return 10 ** (entry[1] or 0.0) if entry is not None else 1.0

    def prob(self, word: str, history: tuple[str, ...]) -> float:
        """P(word | history) with standard ARPA back-off."""
        gram = (*history, word)
        if gram in self.grams[len(gram)]:
            return 10 ** self.grams[len(gram)][gram][0]
        return self.backoff(history) * self.prob(word, history[1:])


def parse_arpa(text: str) -> Arpa:
    lines = text.split("\n")
    assert lines[0] == "\\data\\"
    counts: dict[int, int] = {}
    grams: dict[int, dict[tuple[str, ...], tuple[float, float | None]]] = {}
    section: int | None = None
    ended = False
    for number, line in enumerate(lines[1:], start=2):
        if ended:
            assert line == "", f"text after \\end\\ on line {number}"
            continue
        if not line:
            continue
        if header := re.fullmatch(r"ngram (\d+)=(\d+)", line):
            assert section is None, f"count after the data sections on line {number}"
            counts[int(header[1])] = int(header[2])
        elif section_header := re.fullmatch(r"\\(\d+)-grams:", line):
            section = int(section_header[1])
            assert section not in grams
            grams[section] = {}
        elif line == "\\end\\":
            ended = True
        else:
            assert section is not None, f"entry outside a section on line {number}: {line!r}"
            fields = line.split("\t")
            assert len(fields) in (2, 3), f"line {number}: {line!r}"
            words = tuple(fields[1].split(" "))
            assert len(words) == section, f"line {number}: {line!r}"
            assert words not in grams[section], f"duplicate n-gram on line {number}"
            backoff = float(fields[2]) if len(fields) == 3 else None
            grams[section][words] = (float(fields[0]), backoff)
    assert ended, "no \\end\\"
    return Arpa(counts=counts, grams=grams)


@pytest.fixture(scope="module")
def small_text() -> str:
    return build_arpa(SMALL)


@pytest.fixture(scope="module")
def small(small_text: str) -> Arpa:
    return parse_arpa(small_text)


@pytest.fixture(scope="module")
def catalog_arpa(catalog: Catalog) -> Arpa:
    return parse_arpa(build_arpa(catalog.sentences(max_per_intent=60, seed=1)))


@pytest.fixture(scope="module")
def decoder(tmp_path_factory: pytest.TempPathFactory, small_text: str) -> Any:
    """A real PocketSphinx decoder (bundled US English model) with the small model loaded from a file.

    Its dictionary holds just the model's words, copied from the bundled one: loading the whole
    dictionary takes seconds."""
    folder = tmp_path_factory.mktemp("lm")
    arpa = folder / "small.arpa"
    arpa.write_text(small_text, encoding="utf-8")
    model = Path(pocketsphinx.get_model_path()) / "en-us"
    words = {word for sentence in SMALL for word in sentence.split()}
    dictionary = folder / "small.dict"
    with (model / "cmudict-en-us.dict").open(encoding="utf-8") as full:
        dictionary.write_text(
            "".join(line for line in full if re.sub(r"\(\d+\)$", "", line.split()[0]) in words),
            encoding="utf-8",
        )
    return pocketsphinx.Decoder(
        hmm=str(model / "en-us"), dict=str(dictionary), lm=str(arpa), samprate=16000, loglevel="FATAL"
    )


# ----------------------------------------------------------------------------- format


def test_header_counts_match_the_sections(small: Arpa) -> None:
    assert sorted(small.counts) == [1, 2, 3]
    for order, count in small.counts.items():
        assert len(small.grams[order]) == count, order


def test_vocabulary_is_the_words_plus_sentence_markers(small: Arpa) -> None:
    words = {word for sentence in SMALL for word in sentence.split()}
    assert set(small.vocabulary) == words | {BOS, EOS}


def test_ngrams_are_the_ones_in_the_text(small: Arpa) -> None:
    padded = [[BOS, *sentence.split(), EOS] for sentence in SMALL]
    for order in (2, 3):
        expected = {tuple(s[i : i + order]) for s in padded for i in range(len(s) - order + 1)}
        assert set(small.grams[order]) == expected, order


def test_every_probability_is_a_log_probability(small: Arpa, catalog_arpa: Arpa) -> None:
    for arpa in (small, catalog_arpa):
        for order in (1, 2, 3):
            for gram, (logprob, _) in arpa.grams[order].items():
                assert logprob <= 0.0, gram
                assert math.isfinite(logprob), gram


def test_sentence_start_is_never_predicted(small: Arpa) -> None:
    assert small.grams[1][(BOS,)][0] <= -99.0
    assert all(gram[-1] != BOS for order in (2, 3) for gram in small.grams[order])


def test_every_ngram_has_its_prefix_and_suffix(small: Arpa, catalog_arpa: Arpa) -> None:
    for arpa in (small, catalog_arpa):
        for order in (2, 3):
            for gram in arpa.grams[order]:
                assert gram[:-1] in arpa.grams[order - 1], gram
                assert gram[1:] in arpa.grams[order - 1], gram


def test_only_histories_carry_backoff_weights(small: Arpa) -> None:
    for order in (1, 2):
        continued = {gram[:-1] for gram in small.grams[order + 1]}
        for gram, (_, backoff) in small.grams[order].items():
            assert (backoff is not None) == (gram in continued), gram
    assert all(backoff is None for _, backoff in small.grams[3].values())


def test_model_is_deterministic() -> None:
    assert build_arpa(SMALL) == build_arpa(list(SMALL))
    assert build_arpa(SMALL) != build_arpa(SMALL[:-1])


def test_seen_continuations_beat_unseen_ones(small: Arpa) -> None:
    assert small.prob("borrow", (BOS, "can")) < small.prob("i", (BOS, "can"))
    assert small.prob("ladder", ("borrow", "a")) > small.prob("soup", ("borrow", "a"))
    # seen once after "cup of": absolute discounting leaves 1 - DISCOUNT
    assert small.prob("sugar", ("cup", "of")) == pytest.approx(1 - DISCOUNT, abs=1e-4)


# ----------------------------------------------------------------------------- a real decoder


def test_a_real_decoder_loads_the_model(decoder: Any) -> None:
    model = decoder.get_lm()
    assert model is not None
    for word in {word for sentence in SMALL for word in sentence.split()}:
        assert decoder.lookup_word(word) is not None, word
    assert decoder.lookup_word("zebra") is None


def test_the_decoder_computes_the_same_probabilities(decoder: Any, small: Arpa) -> None:
    """PocketSphinx's own back-off agrees with the test's reading of the file (to ARPA rounding)."""
    model, logmath = decoder.get_lm(), decoder.get_logmath()
    rng = random.Random(0)
    vocabulary = [word for word in small.vocabulary if word != BOS]
    histories: list[tuple[str, ...]] = [
        (),
        (BOS,),
        ("a",),
        ("borrow", "a"),
        ("can", "i"),
        ("ladder", "count"),
    ]
    histories += [tuple(rng.sample(vocabulary, 2)) for _ in range(5)]
    for history in histories:
        for word in vocabulary:
            # NGramModel.prob takes the word first, then the history most recent first.
            theirs = logmath.log_to_log10(model.prob([word, *reversed(history)]))
            ours = math.log10(small.prob(word, history))
            assert theirs == pytest.approx(ours, abs=2e-3), (word, history)


# ----------------------------------------------------------------------------- normalization


def total(arpa: Arpa, history: tuple[str, ...]) -> float:
    return sum(arpa.prob(word, history) for word in arpa.vocabulary)


def test_probability_check_can_fail(small: Arpa) -> None:
    broken = Arpa(counts=small.counts, grams={order: dict(grams) for order, grams in small.grams.items()})
    logprob, backoff = broken.grams[2][("can", "i")]
    broken.grams[2][("can", "i")] = (logprob + 0.1, backoff)
    assert total(broken, ("can",)) > 1.05


def test_unigrams_sum_to_one(small: Arpa) -> None:
    assert total(small, ()) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("source", ["small", "catalog"])
def test_backoff_distributions_sum_to_one(small: Arpa, catalog_arpa: Arpa, source: str) -> None:
    arpa = small if source == "small" else catalog_arpa
    rng = random.Random(5)
    one_word = sorted({gram[:1] for gram in arpa.grams[2]})
    two_words = sorted({gram[:2] for gram in arpa.grams[3]})
    histories = rng.sample(one_word, min(25, len(one_word))) + rng.sample(two_words, min(25, len(two_words)))
    histories += [(BOS,), ("a",), ("borrow", "a"), ("ladder", "count")]
    # <s>'s own unigram mass is the only leak allowed here (see test_unigrams_sum_to_one).
    leak = 1e-3 if source == "catalog" else 2e-2
    sums = {history: total(arpa, history) for history in histories}
    off = {history: round(value, 4) for history, value in sums.items() if abs(value - 1.0) > leak}
    assert off == {}
