"""A small trigram language model of the catalog's sentences, in ARPA format.

PocketSphinx's n-gram search over a vocabulary of a thousand words is fast and forgiving:
it decodes what was said even when it is slightly off-catalog, and leaves the decision to
the text parser, which rejects what matches no sentence. Counts come from sentences
sampled evenly over every template and slot value; probabilities use absolute discounting
with back-off.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

DISCOUNT = 0.5
"""Absolute discount taken from every seen n-gram count, given to the back-off."""

BOS, EOS = "<s>", "</s>"


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


def build_arpa(sentences: Iterable[str]) -> str:
    """An ARPA trigram model of ``sentences`` (one per item, words separated by spaces)."""
    unigrams, bigrams, trigrams = _ngrams(sentences)
    total = sum(unigrams.values())
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
    p1 = {w: (unigrams.get((w,), 0) + 0.5) / (total + 0.5 * len(predictable)) for w in predictable}
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
