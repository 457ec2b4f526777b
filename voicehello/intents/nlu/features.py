"""Features: gazetteer spans, intent features for the classifier, token features for the CRF."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from voicehello.intents.catalog import Catalog
from voicehello.intents.times import WEEKDAYS, canonical_time

NEGATIONS = frozenset(
    {"not", "no", "cannot", "nobody", "never", "nothing", "none", "neither", "nor", "nope", "noone"}
)
"""Words that turn a sentence around ("i can't lend my ladder"); words ending in n't count too."""

PAST_MARKERS = frozenset({"yesterday", "ago", "last", "earlier", "already", "once", "used", "before"})
"""Words that mark narration about the past ("i borrowed the ladder yesterday")."""

QUESTION_WORDS = frozenset({"where", "what", "why", "when", "how", "which", "whose"})
"""Question words that start questions to the room ("where did the scissors go")."""

TIME_STARTERS = frozenset(
    {"at", "on", "this", "next", "tonight", "today", "tomorrow", "around", "about", "from", "by", "in", "later",
     "the", "over", *WEEKDAYS}
)  # fmt: skip
"""The words a time phrase can start with (only spans starting with one are tried as times)."""

TIME_SPAN_WORDS = 8
"""Most words of one time phrase."""


@dataclass(frozen=True)
class Span:
    """Words ``start:end`` that name a value of a catalog list (or a time)."""

    start: int
    end: int
    list_name: str
    value: str
    """The canonical value."""


def is_negation(word: str) -> bool:
    """True for "not", "never", "can't", "wasn't" ..."""
    return word in NEGATIONS or word.endswith("n't")


class Gazetteer:
    """Exact matches of catalog values (every synonym) and time phrases in a sentence."""

    def __init__(self, catalog: Catalog) -> None:
        self.phrases: dict[str, dict[str, str]] = {}
        self.time_lists: list[str] = []
        self.longest = 1
        for slot_list in catalog.lists.values():
            if slot_list.kind == "time":
                self.time_lists.append(slot_list.name)
            else:
                self.phrases[slot_list.name] = dict(slot_list.phrases)
                self.longest = max(self.longest, slot_list.longest_phrase)

    def all_spans(self, words: Sequence[str]) -> list[Span]:
        """Every matching span (they may overlap)."""
        found: list[Span] = []
        size = len(words)
        for start in range(size):
            for end in range(start + 1, min(size, start + max(self.longest, TIME_SPAN_WORDS)) + 1):
                phrase = " ".join(words[start:end])
                for list_name, phrases in self.phrases.items():
                    value = phrases.get(phrase)
                    if value is not None:
                        found.append(Span(start, end, list_name, value))
                if self.time_lists and end - start <= TIME_SPAN_WORDS and words[start] in TIME_STARTERS:
                    time = canonical_time(phrase)
                    if time is not None:
                        found.extend(Span(start, end, name, time) for name in self.time_lists)
        return found

    def spans(self, words: Sequence[str]) -> list[Span]:
        """Non-overlapping spans, longest first, in sentence order."""
        chosen: list[Span] = []
        taken: set[int] = set()
        for span in sorted(self.all_spans(words), key=lambda s: (s.start - s.end, s.start)):
            cells = set(range(span.start, span.end))
            if not cells & taken:
                chosen.append(span)
                taken |= cells
        return sorted(chosen, key=lambda s: s.start)


def placeholder_words(words: Sequence[str], spans: Iterable[Span]) -> list[str]:
    """The words with each span replaced by ``{list}``."""
    out: list[str] = []
    position = 0
    for span in spans:
        out.extend(words[position : span.start])
        out.append("{" + span.list_name + "}")
        position = span.end
    out.extend(words[position:])
    return out


def _ngrams(prefix: str, words: Sequence[str]) -> list[str]:
    padded = ["<s>", *words, "</s>"]
    grams = [f"{prefix}1={word}" for word in words]
    grams += [f"{prefix}2={a}|{b}" for a, b in itertools.pairwise(padded)]
    return grams


def _shape(word: str) -> str:
    """A coarse class of a word no template uses: ``*ing``, ``*ed``, ``*s`` or ``*``."""
    for ending in ("ing", "ed", "s"):
        if word.endswith(ending) and len(word) > len(ending) + 2:
            return "*" + ending
    return "*"


def frame(words: Sequence[str], spans: Iterable[Span], known: frozenset[str]) -> list[str]:
    """The sentence's frame: spans as ``{list}``, each run of words that no template or phrasing
    uses as one shape token ("i need help wallpapering the hallway" -> "i need help *ing the *")."""
    out: list[str] = []
    for word in placeholder_words(words, spans):
        if word.startswith("{") or word in known:
            out.append(word)
        elif not out or not out[-1].startswith("*"):
            out.append(_shape(word))
    return out


def intent_features(
    words: Sequence[str], spans: Sequence[Span], known: frozenset[str] = frozenset()
) -> list[str]:
    """Features of a whole sentence for the intent classifier; ``known`` are the words of the
    templates and phrasings (the others become shape tokens in the frame n-grams)."""
    features = _ngrams("w", words)
    if known:
        shaped = ["<s>", *frame(words, spans, known), "</s>"]
        features += [f"k2={a}|{b}" for a, b in itertools.pairwise(shaped) if "*" in a + b]
        features += [f"k3={a}|{b}|{c}" for a, b, c in zip(shaped, shaped[1:], shaped[2:], strict=False)]
    placeholders = placeholder_words(words, spans)
    if spans:
        features += [gram for gram in _ngrams("p", placeholders) if "{" in gram]
    features += [f"g={span.list_name}" for span in spans]
    if any(is_negation(word) for word in words):
        features.append("neg")
        if any(is_negation(word) for word in words[:3]):
            features.append("neg_start")
    if any(word in PAST_MARKERS for word in words):
        features.append("past")
    if words and words[0] in QUESTION_WORDS:
        features.append(f"q={words[0]}")
    features.append(f"len={min(len(words), 12) // 3}")
    return features


def token_features(
    words: Sequence[str], spans: Sequence[Span], template_words: frozenset[str]
) -> list[list[str]]:
    """Features of each word for the slot tagger.

    ``template_words`` are the words of the catalog's sentence templates: a word that no
    template uses is more likely part of a slot ("pasta maker")."""
    gazette: list[list[str]] = [[] for _ in words]
    for span in spans:
        for position in range(span.start, span.end):
            mark = "B" if position == span.start else "I"
            gazette[position].append(f"g={span.list_name}:{mark}")
    padded = ["<s>", "<s>", *words, "</s>", "</s>"]
    result: list[list[str]] = []
    for index, word in enumerate(words):
        center = index + 2
        features = [
            "bias",
            f"w={word}",
            f"suf={word[-3:]}",
            f"pre={word[:3]}",
            "tpl" if word in template_words else "new",
            *gazette[index],
        ]
        for offset in (-2, -1, 1, 2):
            other = padded[center + offset]
            features.append(f"w{offset}={other}")
            features.append(f"t{offset}={'tpl' if other in template_words else 'new'}")
        features.append(f"b-1={padded[center - 1]}|{word}")
        features.append(f"b+1={word}|{padded[center + 1]}")
        if index and not gazette[index]:
            features.extend(f"gprev={mark}" for mark in gazette[index - 1])
        result.append(features)
    return result
