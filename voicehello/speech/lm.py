"""A small trigram language model of the catalog's sentences, in ARPA format.

PocketSphinx's n-gram search over a vocabulary of a thousand words is fast and forgiving:
it decodes what was said even when it is slightly off-catalog, and leaves the decision to
the text parser, which rejects what matches no sentence. Counts come from sentences
sampled evenly over every template and slot value; probabilities use absolute discounting
with back-off.

Open slots (items, foods, tasks, events, issues) are a class, :data:`OPEN_CLASS`: training
sentences put the catalog's values in a slot's place most of the time, and the class token
(once, twice or in a short phrase, see :data:`voicehello.speech.vocabulary.SHAPES`) in the
rest, so the n-grams learn where an unknown value may stand and how much room it gets. The
class's members are the broad vocabulary of :mod:`voicehello.speech.vocabulary`, each with its
own weight; PocketSphinx expands the class while decoding (an ``lmctl`` file with a class
definition), so the ARPA text stays the size of the catalog's.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from voicehello.intents.catalog import Catalog
from voicehello.speech import vocabulary as vocab

DISCOUNT = 0.5
"""Absolute discount taken from every seen n-gram count, given to the back-off."""

BOS, EOS = "<s>", "</s>"

OPEN_CLASS = "[open]"
"""The class token of open slot words in the n-grams (PocketSphinx's class syntax)."""
OPEN_UNIGRAM_SCALE = 0.01
"""The class token's unigram weight is scaled by this: open words belong in slot positions
(where the n-grams put them), not wherever the model backs off to unigrams."""
TRAINING_PER_INTENT = 3000
"""Catalog sentences per intent the model is trained on (each also after a wake phrase)."""
TRAINING_SEED = 5


@dataclass(frozen=True)
class LanguageModel:
    """An ARPA model and the word classes its n-grams name (class -> word -> weight)."""

    arpa: str
    classes: dict[str, dict[str, float]] = field(default_factory=dict)


def open_sentences(catalog: Catalog, share: float, rng: random.Random) -> list[str]:
    """Training sentences with :data:`OPEN_CLASS` in open slots: for each intent with an open
    slot, enough that the class takes ``share`` of that slot's training occurrences."""
    if share <= 0:
        return []
    if share >= 1:
        raise ValueError("the open-slot share must be below 1")
    wakes = catalog.wake_phrases or ("",)
    sentences: list[str] = []
    for intent in catalog.intents:
        count = round(TRAINING_PER_INTENT * share / (1 - share))
        patterns = vocab.open_patterns(catalog, intent, count, rng)
        filled = [pattern.replace("{w}", OPEN_CLASS) for pattern in patterns]
        sentences += filled
        sentences += [f"{wakes[i % len(wakes)]} {text}".strip() for i, text in enumerate(filled)]
    return sentences


def catalog_model(
    catalog: Catalog,
    *,
    pronounceable: Callable[[str], bool] | None = None,
    dictionary: Path | None = None,
    size: int | None = None,
    weight: float | None = None,
) -> LanguageModel:
    """The catalog's language model, with open slots as a class of ``size`` broad words that
    take ``weight`` of each open slot (defaults: :data:`voicehello.speech.vocabulary.DEFAULT_SIZE`,
    :data:`~voicehello.speech.vocabulary.DEFAULT_WEIGHT`; size 0 or weight 0: no class). Words
    must pass ``pronounceable``, or else be in the pronunciation ``dictionary`` file."""
    size = vocab.DEFAULT_SIZE if size is None else size
    weight = vocab.DEFAULT_WEIGHT if weight is None else weight
    sentences = catalog.training_sentences(per_intent=TRAINING_PER_INTENT, seed=TRAINING_SEED)
    if weight <= 0 or size <= 0:
        return LanguageModel(build_arpa(sentences))
    if pronounceable is None and dictionary is not None:  # read only when the class is wanted
        pronounceable = vocab.dictionary_words(dictionary).__contains__
    words = vocab.broad_vocabulary(size, pronounceable=pronounceable, exclude=catalog.words())
    if not len(words):
        return LanguageModel(build_arpa(sentences))
    sentences += open_sentences(catalog, weight, random.Random(TRAINING_SEED))
    arpa = build_arpa(sentences, unigram_scale={OPEN_CLASS: OPEN_UNIGRAM_SCALE})
    return LanguageModel(arpa, {OPEN_CLASS: words.as_dict()})


def classdef(name: str, members: dict[str, float]) -> str:
    """A PocketSphinx class definition file: ``LMCLASS [name]``, ``word weight`` lines, ``END``."""
    lines = [f"LMCLASS {name}", *(f"{word} {weight:.8g}" for word, weight in members.items()), f"END {name}"]
    return "\n".join(lines) + "\n"


def _ngrams(sentences: Iterable[str]) -> list[Counter[tuple[str, ...]]]:
    counts: list[Counter[tuple[str, ...]]] = [Counter(), Counter(), Counter()]
    for sentence in sentences:
        words = [BOS, *sentence.split(), EOS]
        for order in (1, 2, 3):
            for i in range(len(words) - order + 1):
                gram = tuple(words[i : i + order])
                if order == 1 and gram == (BOS,):
                    continue
                counts[order - 1][gram] += 1
    return counts


def build_arpa(sentences: Iterable[str], unigram_scale: dict[str, float] | None = None) -> str:
    """An ARPA trigram model of ``sentences`` (one per item, words separated by spaces).

    ``unigram_scale`` multiplies some words' unigram weight (then renormalized): a class
    token scaled down is predicted where its n-grams were seen, rarely anywhere else."""
    unigrams, bigrams, trigrams = _ngrams(sentences)
    scale = unigram_scale or {}
    vocabulary = sorted({gram[0] for gram in unigrams} | {BOS})

    def context_stats(
        grams: Counter[tuple[str, ...]],
    ) -> tuple[Counter[tuple[str, ...]], Counter[tuple[str, ...]]]:
        totals: Counter[tuple[str, ...]] = Counter()
        types: Counter[tuple[str, ...]] = Counter()
        for gram, count in grams.items():
            totals[gram[:-1]] += count
            types[gram[:-1]] += 1
        return totals, types

    # Unigrams: add-half smoothing, <s> never predicted.
    predictable = [w for w in vocabulary if w != BOS]
    raw = {w: (unigrams.get((w,), 0) + 0.5) * scale.get(w, 1.0) for w in predictable}
    total = sum(raw.values())
    p1 = {w: value / total for w, value in raw.items()}
    bi_totals, bi_types = context_stats(bigrams)
    tri_totals, tri_types = context_stats(trigrams)

    def p_bigram(gram: tuple[str, str]) -> float:
        context = gram[:1]
        seen = max(bigrams.get(gram, 0) - DISCOUNT, 0) / bi_totals[context] if bi_totals[context] else 0.0
        reserved = DISCOUNT * bi_types[context] / bi_totals[context] if bi_totals[context] else 1.0
        return seen + reserved * p1[gram[1]]

    successors: dict[tuple[str, ...], list[str]] = {}
    for gram in bigrams:
        successors.setdefault(gram[:1], []).append(gram[1])
    tri_successors: dict[tuple[str, ...], list[str]] = {}
    for gram in trigrams:
        tri_successors.setdefault(gram[:2], []).append(gram[2])

    lines = [
        "\\data\\",
        f"ngram 1={len(vocabulary)}",
        f"ngram 2={len(bigrams)}",
        f"ngram 3={len(trigrams)}",
        "",
    ]
    lines.append("\\1-grams:")
    for w in vocabulary:
        prob = -99.0 if w == BOS else math.log10(p1[w])
        context: tuple[str, ...] = (w,)
        if context in successors:
            reserved = DISCOUNT * bi_types[context] / bi_totals[context]
            weight = reserved  # listed bigrams already include their unigram share
            lines.append(f"{prob:.5f}\t{w}\t{math.log10(weight):.5f}")
        else:
            lines.append(f"{prob:.5f}\t{w}")
    lines.extend(["", "\\2-grams:"])
    for gram in sorted(bigrams):
        prob = math.log10(p_bigram((gram[0], gram[1])))
        if gram in tri_successors:
            reserved = DISCOUNT * tri_types[gram] / tri_totals[gram]
            used = sum(p_bigram((gram[1], w)) for w in tri_successors[gram])
            weight = reserved / max(1e-12, 1.0 - used)
            lines.append(f"{prob:.5f}\t{' '.join(gram)}\t{math.log10(weight):.5f}")
        else:
            lines.append(f"{prob:.5f}\t{' '.join(gram)}")
    lines.extend(["", "\\3-grams:"])
    for gram in sorted(trigrams):
        context = gram[:2]
        prob = max(trigrams[gram] - DISCOUNT, 0) / tri_totals[context]
        lines.append(f"{math.log10(max(prob, 1e-12)):.5f}\t{' '.join(gram)}")
    lines.extend(["", "\\end\\", ""])
    return "\n".join(lines)
