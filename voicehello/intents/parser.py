"""Text -> intent with slots and an honest confidence, using the catalog.

The parser works on any transcript (either engine, or typed text):

1. normalize the text and strip a leading wake phrase;
2. find word spans that name a slot value, exactly or nearly (``rapidfuzz``);
3. replace them with ``{slot}`` placeholders and compare the result with every sentence
   pattern of the catalog that has the same slots (``rapidfuzz``);
4. confidence = pattern similarity x slot similarities; below the threshold -> no intent.

Everyday talk ("please pass the salt") matches no pattern closely and is rejected.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from voicehello.intents.catalog import SLOT, Catalog, SlotList

log = logging.getLogger(__name__)

SLOT_CUTOFF = 80.0
"""Least similarity (0..100) for a span of words to count as a slot value."""

CANDIDATES_PER_SLOT = 4
"""Slot value spans tried per slot when the sentence does not match exactly."""

NEGATIONS = frozenset({"not", "no", "cannot", "nobody", "never", "nothing", "none", "neither", "nor"})
"""Words that turn a request around ("i can't lend my ladder"); a sentence may only match a
pattern that has the same ones, or fuzzy matching would turn refusals into offers."""

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty"}


@dataclass(frozen=True)
class ParseResult:
    """The intent a transcript expresses, or ``intent=None`` when it was rejected."""

    text: str
    """The normalized text that was parsed (wake phrase included)."""
    intent: str | None
    """Intent name, or None when nothing matched well enough."""
    slots: dict[str, str] = field(default_factory=dict)
    """Slot name -> canonical value."""
    confidence: float = 0.0
    """0..1: how closely the text matches a catalog sentence and its slot values."""
    woke: bool = False
    """Whether the text started with a wake phrase."""
    guess: str | None = None
    """The best-matching intent even when rejected (for logs and tuning)."""
    text_after_wake: str = ""
    """The words after the wake phrase (all of them when there was none)."""

    def describe(self, *, confidence: bool = True) -> str:
        """One line for people: ``borrow_item item='ladder' (confidence 0.93)``."""
        score = f"confidence {self.confidence:.2f}"
        if self.intent is None:
            return f"(no intent, {score})"
        said = " ".join([self.intent, slot_text(self.slots)]).strip()
        return f"{said} ({score})" if confidence else said


def slot_text(slots: Mapping[str, str]) -> str:
    """``item='ladder' time='19:00'``: slots as they are shown in logs and on the console."""
    return " ".join(f"{name}={value!r}" for name, value in slots.items())


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    value: str
    score: float


def _number_words(number: int) -> str:
    if number < 20:
        return _ONES[number]
    tens, ones = divmod(number, 10)
    return _TENS.get(tens, str(number)) + (f" {_ONES[ones]}" if ones else "")


def _spell_numbers(match: re.Match[str]) -> str:
    hour, minute = int(match.group(1)), match.group(2)
    if hour > 59:
        return match.group(0)
    words = _number_words(hour)
    if minute is not None and int(minute) > 0:
        words += " " + _number_words(int(minute)) if int(minute) >= 10 else f" oh {_ONES[int(minute)]}"
    return f" {words} "


def normalize(text: str) -> str:
    """Lower case, digits spelled out ("7:30" -> "seven thirty"), punctuation removed."""
    text = text.lower().replace("&", " and ").replace("\u2019", "'")
    text = re.sub(r"(\d)\s*[ap]\.?m\b\.?", r"\1", text)
    text = re.sub(r"(\d{1,2})(?::(\d{2}))?", _spell_numbers, text)
    text = re.sub(r"[^a-z' ]+", " ", text)
    return " ".join(word.strip("'") for word in text.split() if word.strip("'"))


class IntentParser:
    """Parses transcripts against one catalog."""

    def __init__(self, catalog: Catalog, threshold: float = 0.8) -> None:
        self.catalog = catalog
        self.threshold = threshold
        self._wake = sorted(catalog.wake_phrases, key=len, reverse=True)
        # signature = ((slot, list), ...) in spoken order -> pattern text -> intent
        self._patterns: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        for intent in catalog.intents.values():
            for pattern in intent.patterns():
                signature = tuple((slot, intent.slots[slot]) for slot in re.findall(r"\{(\w+)\}", pattern))
                known = self._patterns.setdefault(signature, {})
                if known.get(pattern, intent.name) != intent.name:
                    log.warning("sentence %r belongs to both %s and %s", pattern, known[pattern], intent.name)
                known.setdefault(pattern, intent.name)
        self._choices = {signature: list(patterns) for signature, patterns in self._patterns.items()}
        self._list_phrases = {name: list(slot_list.phrases) for name, slot_list in catalog.lists.items()}

    def parse(self, text: str) -> ParseResult:
        """The best intent for ``text``; ``intent`` is None below the threshold."""
        normalized = normalize(text)
        words, woke = self._strip_wake(normalized.split())
        rest = " ".join(words)
        if not words:
            return ParseResult(text=normalized, intent=None, woke=woke)
        spans = {name: self._find_spans(words, slot_list) for name, slot_list in self.catalog.lists.items()}
        best: tuple[float, str, dict[str, str]] | None = None
        for signature, patterns in self._patterns.items():
            for assignment in self._assignments(signature, spans):
                skeleton = _skeleton(words, signature, assignment)
                slot_score = 1.0
                for span in assignment:
                    slot_score *= span.score / 100.0
                if skeleton in patterns:
                    pattern_score, pattern = 100.0, skeleton
                else:
                    found = process.extractOne(skeleton, self._choices[signature], scorer=fuzz.ratio)
                    if found is None:
                        continue
                    pattern, pattern_score = found[0], found[1]
                    if _negations(skeleton) != _negations(pattern):
                        continue
                score = pattern_score / 100.0 * slot_score
                if best is None or score > best[0]:
                    slots = {slot: span.value for (slot, _), span in zip(signature, assignment, strict=True)}
                    best = (score, patterns[pattern], slots)
        if best is None:
            return ParseResult(text=normalized, intent=None, woke=woke, text_after_wake=rest)
        score, intent, slots = best
        accepted = score >= self.threshold
        return ParseResult(
            text=normalized,
            intent=intent if accepted else None,
            slots=slots if accepted else {},
            confidence=round(score, 4),
            woke=woke,
            guess=intent,
            text_after_wake=rest,
        )

    def _strip_wake(self, words: list[str]) -> tuple[list[str], bool]:
        """Remove a leading wake phrase ("hey neighbor"), allowing a near-miss."""
        for phrase in self._wake:
            size = len(phrase.split())
            head = " ".join(words[:size])
            if head == phrase or (len(words) > size and fuzz.ratio(head, phrase) >= 85):
                return words[size:], True
        return words, False

    def _find_spans(self, words: list[str], slot_list: SlotList) -> list[_Span]:
        """The best word spans that name a value of ``slot_list``."""
        found: list[_Span] = []
        longest = slot_list.longest_phrase + 1
        for start in range(len(words)):
            for end in range(start + 1, min(len(words), start + longest) + 1):
                phrase = " ".join(words[start:end])
                exact = slot_list.canonical(phrase)
                if exact is not None:
                    found.append(_Span(start, end, exact, 100.0))
                elif slot_list.kind == "values" and len(phrase) >= 3:
                    match = process.extractOne(
                        phrase,
                        self._list_phrases[slot_list.name],
                        scorer=fuzz.ratio,
                        score_cutoff=SLOT_CUTOFF,
                    )
                    if match is not None:
                        found.append(_Span(start, end, slot_list.phrases[match[0]], float(match[1])))
        found.sort(key=lambda span: (span.score, span.end - span.start), reverse=True)
        return found[: CANDIDATES_PER_SLOT * 3]

    @staticmethod
    def _assignments(
        signature: tuple[tuple[str, str], ...], spans: dict[str, list[_Span]]
    ) -> list[tuple[_Span, ...]]:
        """Non-overlapping spans, in spoken order, one for each slot of the signature."""
        if not signature:
            return [()]
        options = [spans[list_name][:CANDIDATES_PER_SLOT] for _, list_name in signature]
        return [
            combo
            for combo in itertools.product(*options)
            if all(first.end <= second.start for first, second in itertools.pairwise(combo))
        ]


def _negations(text: str) -> frozenset[str]:
    """The negating words of a text ("can't" counts as "n't")."""
    return frozenset(
        word if word in NEGATIONS else "n't"
        for word in text.split()
        if word in NEGATIONS or word.endswith("n't")
    )


def _skeleton(words: list[str], signature: tuple[tuple[str, str], ...], assignment: tuple[_Span, ...]) -> str:
    """The words with each assigned span replaced by its ``{slot}`` placeholder."""
    out: list[str] = []
    position = 0
    for (slot, _), span in zip(signature, assignment, strict=True):
        out.extend(words[position : span.start])
        out.append(SLOT % slot)
        position = span.end
    out.extend(words[position:])
    return " ".join(out)
