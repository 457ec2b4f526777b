"""Text -> intent with slots and an honest confidence, using the catalog.

The parser works on any transcript (either engine, or typed text):

1. normalize the text and strip a leading wake phrase;
2. **exact template**: when the words are a catalog sentence with known slot values, that is
   the answer (confidence 1.0);
3. **model** (:mod:`voicehello.intents.nlu`): a linear intent classifier over word n-grams,
   slot placeholders and gazetteer features gives each intent (and ``none``) a probability; a
   CRF tagger finds the slot spans, so a value the catalog does not list still fills its slot
   ("a pasta maker");
4. slot values snap to the catalog's canonical value (exactly, or nearly with ``rapidfuzz``);
   other values pass through cleaned and capped (:data:`MAX_VALUE_WORDS`); times become their
   canonical form;
5. reject rather than guess: below the threshold, ``none`` on top, two intents close together
   (``alternatives`` names them, so a conversation could ask), a required slot missing, or text
   that is too long or mostly unfamiliar words.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from voicehello.intents.catalog import SLOT, Catalog
from voicehello.intents.nlu.cache import load_or_train
from voicehello.intents.nlu.data import NONE
from voicehello.intents.nlu.features import Span, is_negation
from voicehello.intents.nlu.model import NluModel, Tagged
from voicehello.intents.nlu.values import clean_value
from voicehello.intents.slot_values import violation
from voicehello.intents.times import NUMBER_WORDS, canonical_time

log = logging.getLogger(__name__)

SNAP_CUTOFF = 88.0
"""Least similarity (0..100) for an unlisted slot value to snap to a listed phrase ("lader")."""

MARGIN = 0.25
"""Least lead of the best intent over the second; closer than this is a rejection with
``alternatives`` (never a guess)."""

RESPELL_CUTOFF = 85.0
"""Least similarity for an unseen word to be read as a template word ("borow" -> borrow)."""

MAX_WORDS = 40
"""Longer text is not one request."""

MIN_FAMILIAR = 0.5
"""Least share of words the model has seen in training (else: another language, or noise)."""

_PRONOUNS = frozenset(
    {"it", "them", "one", "some", "something", "anything", "that", "this", "stuff", "things"}
)
"""Slot values that name nothing ("can i borrow it")."""

_ONES = NUMBER_WORDS
_TENS = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty"}


@dataclass(frozen=True)
class SlotSpan:
    """How one slot was filled, for ``parse --explain``."""

    slot: str
    words: str
    """The words of the sentence that filled it."""
    value: str
    how: str
    """``known`` (a listed phrase), ``near`` (snapped to one), ``open`` (unlisted), ``time``."""


@dataclass(frozen=True)
class Explanation:
    """Why a parse came out as it did."""

    source: str
    """``template`` (an exact catalog sentence), ``model``, or ``none`` (nothing to parse)."""
    scores: tuple[tuple[str, float], ...] = ()
    """The best intents (``none`` included) with their probabilities, best first."""
    spans: tuple[SlotSpan, ...] = ()
    reason: str = ""
    """Why it was rejected; empty when accepted."""

    def to_dict(self) -> dict[str, object]:
        """For ``parse --explain --json``."""
        return {
            "source": self.source,
            "scores": dict(self.scores),
            "spans": [{"slot": s.slot, "words": s.words, "value": s.value, "how": s.how} for s in self.spans],
            "reason": self.reason,
        }

    def lines(self) -> list[str]:
        """The explanation for people, a few lines."""
        out = [f"source: {self.source}"]
        if self.scores:
            out.append("scores: " + ", ".join(f"{name} {score:.3f}" for name, score in self.scores))
        out.extend(f"slot {span.slot}: {span.words!r} -> {span.value!r} ({span.how})" for span in self.spans)
        if self.reason:
            out.append(f"rejected: {self.reason}")
        return out


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
    alternatives: tuple[str, ...] = ()
    """When rejected because two intents were close: both, best first (a conversation may ask
    "did you want to borrow or to lend?")."""
    explanation: Explanation | None = field(default=None, compare=False)
    """Scores, slot spans and the stage that decided (``voicehello parse --explain``)."""

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
    """Parses transcripts against one catalog (its model is trained or loaded on creation)."""

    def __init__(
        self,
        catalog: Catalog,
        threshold: float = 0.97,
        *,
        model: NluModel | None = None,
        margin: float = MARGIN,
    ) -> None:
        self.catalog = catalog
        self.threshold = threshold
        self.margin = margin
        self.model = model or load_or_train(catalog)
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
        self._list_phrases = {name: list(slot_list.phrases) for name, slot_list in catalog.lists.items()}
        self._familiar = frozenset(feature[3:] for feature in self.model.index if feature.startswith("w1="))
        self._template_words = sorted(self.model.template_words)
        self._compounds = _compounds(catalog)
        self._negating = frozenset(
            intent.name
            for intent in catalog.intents.values()
            if any(_negations(pattern.split()) for pattern in intent.patterns())
        )

    def parse(self, text: str) -> ParseResult:
        """The best intent for ``text``; ``intent`` is None when it is rejected."""
        normalized = normalize(text)
        words, woke = self._strip_wake(normalized.split())
        rest = " ".join(words)
        base = ParseResult(text=normalized, intent=None, woke=woke, text_after_wake=rest)
        if not words:
            return _with(base, explanation=Explanation("none", reason="no words"))
        if len(words) > MAX_WORDS:
            return _with(base, explanation=Explanation("none", reason=f"more than {MAX_WORDS} words"))
        words, spelling = self._respell(words)
        familiar = sum(word in self._familiar for word in words) / len(words)
        if familiar < MIN_FAMILIAR:
            return _with(base, explanation=Explanation("none", reason="mostly unfamiliar words"))
        spans = self.model.gazetteer.all_spans(words)
        exact = self._exact(words, spans)
        if exact is not None:
            intent, slots, filled = exact
            source = "template" if spelling == 1.0 else "template (respelled)"
            explanation = Explanation(source, spans=filled)
            return _with(
                base, intent=intent, slots=slots, confidence=spelling, guess=intent, explanation=explanation
            )
        return self._by_model(base, words, self.model.gazetteer.spans(words))

    def slots_for(self, text: str, intent: str) -> dict[str, str] | None:
        """The slot values ``text`` gives ``intent`` (for a close call the user settles by
        naming one of its ``alternatives``); None when ``intent`` is unknown, a required slot
        is missing or a value breaks the slot value rule."""
        words, _ = self._strip_wake(normalize(text).split())
        if not words or len(words) > MAX_WORDS or intent not in self.catalog.intents:
            return None
        words, _ = self._respell(words)
        slots, _, _, missing = self._slots(intent, words, self.model.gazetteer.spans(words))
        return None if missing or _broken_rule(slots) else slots

    # ------------------------------------------------------------------ stages

    def _exact(
        self, words: list[str], spans: list[Span]
    ) -> tuple[str, dict[str, str], tuple[SlotSpan, ...]] | None:
        """An exact catalog sentence with listed slot values, or None."""
        by_list: dict[str, list[Span]] = {}
        for span in spans:
            by_list.setdefault(span.list_name, []).append(span)
        for signature, patterns in self._patterns.items():
            options = [by_list.get(list_name, []) for _, list_name in signature]
            for combo in itertools.product(*options):
                if not all(a.end <= b.start for a, b in itertools.pairwise(combo)):
                    continue
                skeleton = _skeleton(words, signature, combo)
                if skeleton in patterns:
                    slots = {slot: span.value for (slot, _), span in zip(signature, combo, strict=True)}
                    filled = tuple(
                        SlotSpan(slot, " ".join(words[span.start : span.end]), span.value, "known")
                        for (slot, _), span in zip(signature, combo, strict=True)
                    )
                    return patterns[skeleton], slots, filled
        return None

    def _by_model(self, base: ParseResult, words: list[str], spans: list[Span]) -> ParseResult:
        scores = self.model.intent_scores(words, spans)
        ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
        top = tuple((name, round(score, 4)) for name, score in ranked[:3])
        candidates = [(name, score) for name, score in ranked if name != NONE]
        guess, confidence = candidates[0] if candidates else (None, 0.0)
        second = candidates[1][1] if len(candidates) > 1 else 0.0

        def reject(reason: str, score: float = confidence, **changes: object) -> ParseResult:
            explanation = Explanation("model", top, reason=reason)
            return _with(base, confidence=round(score, 4), guess=guess, explanation=explanation, **changes)

        if guess is None or ranked[0][0] == NONE:
            return reject("not a request (none is most likely)")
        slots, filled, factor, missing = self._slots(guess, words, spans)
        score = confidence
        if not missing and any(span.how == "near" for span in filled):
            # Scored again as spelled in the list; a snap still costs a tenth of its distance,
            # so only an exact catalog sentence is ever 1.0.
            score = self._rescored(guess, words, filled) * (0.9 + 0.1 * factor)
        if confidence - second < self.margin and confidence + second >= self.threshold:
            # Together sure enough that it is one of these two, alone neither: a close call.
            other = candidates[1][0]
            return reject(f"{guess} and {other} are close", score, alternatives=(guess, other))
        if score < self.threshold:
            return reject(f"confidence {score:.2f} below {self.threshold:.2f}", score)
        if confidence - second < self.margin:
            other = candidates[1][0]
            return reject(f"{guess} and {other} are close", score, alternatives=(guess, other))
        if missing:
            return reject(f"no value for {missing}", score)
        broken = _broken_rule(slots)
        if broken:
            return reject(broken, score)
        if guess not in self._negating and _negations(_outside(words, filled)):
            return reject(f"negated ({guess} is never said with a negation)", score)
        explanation = Explanation("model", top, filled)
        return _with(
            base, intent=guess, slots=slots, confidence=round(score, 4), guess=guess, explanation=explanation
        )

    def _rescored(self, intent: str, words: list[str], filled: Sequence[SlotSpan]) -> float:
        """The probability of ``intent`` once values that snapped to a listed phrase ("lader" ->
        ladder, at least :data:`SNAP_CUTOFF` alike) are spelled as listed; otherwise its score."""
        text = f" {' '.join(words)} "
        for span in filled:
            if span.how == "near":
                text = text.replace(f" {span.words} ", f" {span.value} ", 1)
        mended = text.split()
        return self.model.intent_scores(mended, self.model.gazetteer.spans(mended))[intent]

    def _slots(
        self, intent: str, words: list[str], spans: list[Span]
    ) -> tuple[dict[str, str], tuple[SlotSpan, ...], float, str]:
        """Slot values of ``intent`` (tagger first, gazetteer as a fallback), how sure they are
        (1.0 unless snapped), and the name of a required slot left empty (or "")."""
        declared = self.catalog.intents[intent].slots
        slots: dict[str, str] = {}
        filled: list[SlotSpan] = []
        factor = 1.0
        for tagged in self.model.tag(intent, words, spans):
            if tagged.slot not in declared or tagged.slot in slots:
                continue
            resolved = self._resolve(declared[tagged.slot], words, tagged)
            if resolved is not None:
                value, how, score = resolved
                slots[tagged.slot] = value
                filled.append(SlotSpan(tagged.slot, " ".join(words[tagged.start : tagged.end]), value, how))
                factor *= score
        for slot, list_name in declared.items():
            if slot in slots:
                continue
            match = next((span for span in spans if span.list_name == list_name), None)
            if match is not None:
                slots[slot] = match.value
                filled.append(SlotSpan(slot, " ".join(words[match.start : match.end]), match.value, "known"))
            elif self.catalog.lists[list_name].kind != "time":
                return {}, (), 0.0, slot
        ordered = {slot: slots[slot] for slot in declared if slot in slots}
        return ordered, tuple(filled), factor, ""

    def _resolve(self, list_name: str, words: list[str], tagged: Tagged) -> tuple[str, str, float] | None:
        """(value, how, score) for the words of a tagged span, or None when they name nothing."""
        slot_list = self.catalog.lists[list_name]
        phrase = " ".join(words[tagged.start : tagged.end])
        if slot_list.kind == "time":
            time = canonical_time(phrase) or canonical_time(clean_value(phrase, cap=False))
            return (time, "time", 1.0) if time is not None else None
        known = slot_list.canonical(phrase) or slot_list.canonical(clean_value(phrase, cap=False))
        if known is not None:
            return known, "known", 1.0
        if tagged.slot == "task" and tagged.start and words[tagged.start - 1] == "with":
            phrase = "with " + phrase
        cleaned = clean_value(phrase, tagged.slot)
        if not cleaned or cleaned in _PRONOUNS:
            return None
        known = slot_list.canonical(cleaned)
        if known is not None:
            return known, "known", 1.0
        near = process.extractOne(
            cleaned, self._list_phrases[list_name], scorer=fuzz.ratio, score_cutoff=SNAP_CUTOFF
        )
        if near is not None:
            return slot_list.phrases[near[0]], "near", float(near[1]) / 100.0
        return cleaned, "open", 1.0

    def _respell(self, words: list[str]) -> tuple[list[str], float]:
        """Split compounds the catalog spells apart ("streetlight" -> "street light") and mend
        near-misses of template words ("borow" -> "borrow") that the model has never seen; with
        the least similarity of a mended word (1.0 when none was)."""
        out: list[str] = []
        least = 1.0
        for word in words:
            if word in self._familiar:
                out.append(word)
            elif word in self._compounds:
                out.extend(self._compounds[word])
            elif len(word) >= 5:
                near = process.extractOne(
                    word, self._template_words, scorer=fuzz.ratio, score_cutoff=RESPELL_CUTOFF
                )
                out.append(near[0] if near is not None else word)
                least = min(least, float(near[1]) / 100.0) if near is not None else least
            else:
                out.append(word)
        return out, round(least, 4)

    def _strip_wake(self, words: list[str]) -> tuple[list[str], bool]:
        """Remove a leading wake phrase ("hey neighbor"), allowing a near-miss."""
        for phrase in self._wake:
            size = len(phrase.split())
            head = " ".join(words[:size])
            if head == phrase or (len(words) > size and fuzz.ratio(head, phrase) >= 85):
                return words[size:], True
        return words, False


def _compounds(catalog: Catalog) -> dict[str, list[str]]:
    """Two words of a listed phrase written as one ("streetlight") -> the two words."""
    found: dict[str, list[str]] = {}
    for slot_list in catalog.lists.values():
        for phrase in slot_list.phrases:
            words = phrase.split()
            for first, second in itertools.pairwise(words):
                found.setdefault(first + second, [first, second])
    return found


POLITE_NEGATIONS = (
    "i don't suppose",
    "don't mind",
    "wouldn't mind",
    "no rush",
    "no worries",
    "no problem",
    "if not",
)
"""Negations that soften a request rather than turn it around."""


def _negations(words: Sequence[str]) -> bool:
    """True when the words hold a negation outside the polite phrases of :data:`POLITE_NEGATIONS`."""
    text = f" {' '.join(words)} "
    for phrase in POLITE_NEGATIONS:
        text = text.replace(f" {phrase} ", " ")
    return any(is_negation(word) for word in text.split())


def _outside(words: Sequence[str], filled: Sequence[SlotSpan]) -> list[str]:
    """The words of the sentence less the slot values (a value may hold "not": "street light not working")."""
    text = f" {' '.join(words)} "
    for span in filled:
        text = text.replace(f" {span.words} ", " ", 1)
    return text.split()


def _broken_rule(slots: Mapping[str, str]) -> str:
    """Why a slot value may not be sent (:mod:`voicehello.intents.slot_values`), or ""."""
    for slot, value in slots.items():
        problem = violation(slot, value)
        if problem is not None:
            return f"slot {slot} {problem}"
    return ""


def _with(result: ParseResult, **changes: object) -> ParseResult:
    """``result`` with some fields changed."""
    from dataclasses import replace

    return replace(result, **changes)  # type: ignore[arg-type]


def _skeleton(
    words: Sequence[str], signature: tuple[tuple[str, str], ...], assignment: Sequence[Span]
) -> str:
    """The words with each assigned span replaced by its ``{slot}`` placeholder."""
    out: list[str] = []
    position = 0
    for (slot, _), span in zip(signature, assignment, strict=True):
        out.extend(words[position : span.start])
        out.append(SLOT % slot)
        position = span.end
    out.extend(words[position:])
    return " ".join(out)
