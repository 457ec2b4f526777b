"""The intent catalog: intents, their sentence templates, what they mean, and slot value lists.

Loaded from ``config/intents.yaml``; everything else (the PocketSphinx JSGF grammar, the
Vosk phrase list, the text parser's patterns) is generated from it, and everything other
modules need to know about an intent comes from it too: its message kind, its read-back, what a
reply to it and its cancellation mean, and which answers confirm or drop a read-back. Adding an
intent means editing the YAML only.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml

from voicehello.errors import CatalogError
from voicehello.intents import templates
from voicehello.intents.kinds import ANSWERS, KINDS, MAX_TTL_S, TTL_S, Kind, as_kind
from voicehello.intents.templates import Seq, Slot, Token
from voicehello.intents.times import TIME_TEMPLATE, canonical_time

log = logging.getLogger(__name__)

FORMS: tuple[str, ...] = ("indef", "the", "your", "any", "bare", "share", "to")
"""How a phrase template may ask for a slot: ``{item}`` (= ``indef``: "a ladder", "some eggs"),
``{item:the}``, ``{item:your}``, ``{item:any}``, ``{item:bare}`` (no article), ``{item:share}``
(no article for mass and plural values, else a/an) and ``{task:to}`` (a verb phrase after
"help": "to move a couch", "with the garden")."""

SPOKEN_AS: tuple[str, ...] = ("noun", "verb", "noun_or_statement")
"""How a list's values are spoken (``spoken_as:``): noun phrases get an article; verb phrases
("move a couch") none; ``noun_or_statement`` values may also be statements ("bin wasn't
collected", spoken "that the bin wasn't collected")."""

Readback = Literal["send", "drop"]
"""What an answer does to a request waiting after its read-back."""

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_PLACEHOLDER_PARTS = re.compile(r"^(\w+)(?::(\w+))?$")

SLOT = "{%s}"


@dataclass(frozen=True)
class SlotList:
    """A slot's possible values: spoken phrases mapped to one canonical value each."""

    name: str
    phrases: dict[str, str]
    """Spoken phrase -> canonical value (each canonical value maps to itself too)."""
    kind: str = "values"
    """``values`` (an explicit list) or ``time`` (the built-in day and clock grammar)."""
    spoken_as: str = "noun"
    """How its values are spoken: ``noun``, ``verb`` or ``noun_or_statement`` (:data:`SPOKEN_AS`)."""
    mass_article: str = "some"
    """The article of mass and plural values ("some eggs"; "" for "reports flooding")."""

    @cached_property
    def grammar(self) -> Seq:
        """The list as a template tree."""
        if self.kind == "time":
            return templates.parse_template(TIME_TEMPLATE)
        return templates.parse_template("(" + "|".join(sorted(self.phrases)) + ")")

    @cached_property
    def longest_phrase(self) -> int:
        """Most words in one phrase."""
        if self.kind == "time":
            return 7
        return max(len(phrase.split()) for phrase in self.phrases)

    def canonical(self, phrase: str) -> str | None:
        """The canonical value of an exactly spoken phrase, or None."""
        if self.kind == "time":
            return canonical_time(phrase)
        return self.phrases.get(phrase)

    @property
    def values(self) -> list[str]:
        """Canonical values, sorted."""
        return sorted(set(self.phrases.values()))


@dataclass(frozen=True)
class Intent:
    """One thing a neighbor can say, with its slots and sentence templates."""

    name: str
    description: str
    slots: dict[str, str]
    """Slot name -> list name."""
    announce: str
    """What a neighbor's device says after the sender's name, with ``{slot}`` fields."""
    sentences: tuple[str, ...]
    trees: tuple[Seq, ...]
    kind: Kind = "request"
    """The kind of message it makes (:data:`voicehello.intents.kinds.KINDS`)."""
    readback: str | None = None
    """The question asked before sending it; None: "Send to your neighbors: <announce>?"
    (answers are never read back)."""
    replies: dict[bool, str] = field(default_factory=dict)
    """What a neighbor's yes (True) or no (False) to it means, after the neighbor's name."""
    cancelled: str | None = None
    """What its cancellation means, after the sender's name."""
    choice: str | None = None
    """How it is named when two intents are close: "to borrow" ("Did you want to borrow or to lend?")."""
    means: bool | None = None
    """For replies: yes (True) or no (False)."""
    on_readback: Readback | None = None
    """For answers: said after a read-back, ``send`` sends the request, ``drop`` drops it."""
    ttl_s: float | None = None
    """How long its messages live; None: the kind's default (:data:`voicehello.intents.kinds.TTL_S`)."""

    @property
    def lifetime_s(self) -> float:
        """How long its messages live."""
        return TTL_S[self.kind] if self.ttl_s is None else self.ttl_s

    @property
    def is_answer(self) -> bool:
        """True for replies and cancellations (they answer an earlier message)."""
        return self.kind in ANSWERS

    def patterns(self) -> Iterator[str]:
        """Every sentence of this intent with slots as ``{slot}`` placeholders."""
        for tree in self.trees:
            for tokens in templates.expand(tree):
                yield _render(tokens)


def _render(tokens: tuple[Token, ...]) -> str:
    return " ".join(SLOT % token.name if isinstance(token, Slot) else token for token in tokens)


@dataclass(frozen=True)
class Catalog:
    """All intents, slot lists and wake phrases."""

    wake_phrases: tuple[str, ...]
    intents: dict[str, Intent]
    lists: dict[str, SlotList]

    @property
    def kinds(self) -> dict[str, Kind]:
        """Intent -> the kind of message it makes."""
        return {name: intent.kind for name, intent in self.intents.items()}

    def kind(self, intent: str) -> Kind | None:
        """The kind of message ``intent`` makes, or None for an intent not in the catalog."""
        entry = self.intents.get(intent)
        return None if entry is None else entry.kind

    def slot_list(self, intent: str, slot: str) -> SlotList:
        """The value list that fills ``slot`` of ``intent``."""
        return self.lists[self.intents[intent].slots[slot]]

    def words(self) -> set[str]:
        """Every word any sentence, value or wake phrase can contain."""
        found = {word for phrase in self.wake_phrases for word in phrase.split()}
        for intent in self.intents.values():
            for tree in intent.trees:
                found.update(templates.words(tree))
        for slot_list in self.lists.values():
            found.update(templates.words(slot_list.grammar))
        return found

    def jsgf(self, wake: bool = True) -> str:
        """A JSGF grammar of every sentence, with an optional wake phrase in front."""
        lines = ["#JSGF V1.0;", "grammar voicehello;"]
        body = " | ".join(f"<{name}>" for name in self.intents)
        prefix = "[ <wake> ] " if wake and self.wake_phrases else ""
        lines.append(f"public <utterance> = {prefix}( {body} );")
        if self.wake_phrases:
            lines.append(f"<wake> = {' | '.join(self.wake_phrases)};")
        for intent in self.intents.values():
            rules = {slot: f"list_{list_name}" for slot, list_name in intent.slots.items()}
            options = " | ".join(templates.to_jsgf(tree, rules) for tree in intent.trees)
            lines.append(f"<{intent.name}> = {options};")
        for slot_list in self.lists.values():
            lines.append(f"<list_{slot_list.name}> = {templates.to_jsgf(slot_list.grammar, {})};")
        return "\n".join(lines) + "\n"

    def sentences(self, max_per_intent: int = 4000, seed: int = 0) -> list[str]:
        """Concrete sentences (slots filled), sampled to at most ``max_per_intent`` per intent.

        This is the Vosk grammar: Vosk takes whole phrases, not rules.
        """
        rng = random.Random(seed)
        result: list[str] = []
        for intent in self.intents.values():
            filled: set[str] = set()
            patterns = list(intent.patterns())
            attempts = 0
            while len(filled) < max_per_intent and attempts < max_per_intent * 4:
                attempts += 1
                pattern = (
                    patterns[attempts % len(patterns)] if attempts <= len(patterns) else rng.choice(patterns)
                )
                filled.add(self.fill(intent.name, pattern, rng))
            result.extend(sorted(filled))
        return result

    def training_sentences(self, per_intent: int = 3000, seed: int = 5) -> list[str]:
        """Sentences to train a language model on: catalog sentences, each also after a
        wake phrase (taken in turn), and the wake phrases alone."""
        sentences = self.sentences(max_per_intent=per_intent, seed=seed)
        wakes = self.wake_phrases or ("",)
        woken = [f"{wakes[i % len(wakes)]} {sentence}".strip() for i, sentence in enumerate(sentences)]
        return sentences + woken + list(self.wake_phrases)

    def fill(self, intent: str, pattern: str, rng: random.Random) -> str:
        """Fill a pattern's slots with random spoken phrases."""
        sentence = pattern
        for slot in self.intents[intent].slots:
            grammar = self.slot_list(intent, slot).grammar
            while SLOT % slot in sentence:
                phrase = " ".join(token for token in templates.sample(grammar, rng) if isinstance(token, str))
                sentence = sentence.replace(SLOT % slot, phrase, 1)
        return sentence


def _as_str_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise CatalogError(f"{where} must be a list of strings")
    return [" ".join(item.lower().split()) for item in value]


def _load_list(name: str, raw: Any) -> SlotList:
    if not isinstance(raw, dict):
        raise CatalogError(f"list {name!r} must be a mapping")
    kind = raw.get("kind", "values")
    if kind == "time":
        return SlotList(name=name, phrases={}, kind="time")
    if kind != "values":
        raise CatalogError(f"list {name!r}: unknown kind {kind!r} (values or time)")
    values = raw.get("values")
    if not isinstance(values, dict) or not values:
        raise CatalogError(f"list {name!r} needs a non-empty mapping `values: {{canonical: [synonyms]}}`")
    phrases: dict[str, str] = {}
    for canonical, synonyms in values.items():
        canonical_text = " ".join(str(canonical).lower().split())
        for phrase in [canonical_text, *_as_str_list(synonyms, f"list {name!r} value {canonical!r}")]:
            if phrases.get(phrase, canonical_text) != canonical_text:
                raise CatalogError(
                    f"list {name!r}: {phrase!r} means both {phrases[phrase]!r} and {canonical_text!r}"
                )
            phrases[phrase] = canonical_text
    spoken_as = raw.get("spoken_as", "noun")
    if spoken_as not in SPOKEN_AS:
        raise CatalogError(f"list {name!r}: spoken_as must be one of {', '.join(SPOKEN_AS)}")
    mass_article = raw.get("mass_article", "some")
    if not isinstance(mass_article, str) or len(mass_article.split()) > 1:
        raise CatalogError(f'list {name!r}: mass_article must be one word or ""')
    return SlotList(
        name=name, phrases=phrases, spoken_as=str(spoken_as), mass_article=mass_article.strip().lower()
    )


def _phrase(name: str, key: str, value: Any, slots: dict[str, str]) -> str | None:
    """An optional phrase template of intent ``name``, its ``{slot}`` and ``{slot:form}`` checked."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"intent {name!r}: {key} must be a non-empty string")
    for inner in _PLACEHOLDER.findall(value):
        parts = _PLACEHOLDER_PARTS.match(inner)
        if parts is None:
            raise CatalogError(f"intent {name!r}: {key} has a malformed placeholder {{{inner}}}")
        if parts.group(1) not in slots:
            raise CatalogError(f"intent {name!r}: {key} uses undeclared slot {parts.group(1)!r}")
        if parts.group(2) is not None and parts.group(2) not in FORMS:
            raise CatalogError(
                f"intent {name!r}: {key} asks for unknown form {parts.group(2)!r} (one of {', '.join(FORMS)})"
            )
    return " ".join(value.split())


def _yes_no(value: Any) -> bool | None:
    """``yes``/``no`` as YAML writes them (booleans) or as strings."""
    if isinstance(value, bool):
        return value
    return {"yes": True, "no": False}.get(str(value).strip().lower()) if isinstance(value, str) else None


def _load_replies(name: str, raw: Any, slots: dict[str, str]) -> dict[bool, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise CatalogError(f"intent {name!r}: replies must map yes and no to phrases")
    replies: dict[bool, str] = {}
    for key, phrase in raw.items():
        meaning = _yes_no(key)
        if meaning is None:
            raise CatalogError(f"intent {name!r}: replies has {str(key)[:40]!r}, not yes or no")
        replies[meaning] = _phrase(name, f"replies {'yes' if meaning else 'no'}", phrase, slots) or ""
    return replies


def _load_meaning(name: str, raw: dict[str, Any], kind: Kind) -> tuple[bool | None, Readback | None]:
    """``means`` and ``on_readback``: what an answer intent means."""
    means = None
    if "means" in raw:
        means = _yes_no(raw["means"])
        if kind != "reply" or means is None:
            raise CatalogError(f"intent {name!r}: means (yes or no) is for intents of kind reply")
    elif kind == "reply":
        raise CatalogError(f"intent {name!r} is a reply: say what it means (means: yes or means: no)")
    on_readback = raw.get("on_readback")
    if on_readback is None:
        return means, None
    if kind not in ANSWERS or on_readback not in ("send", "drop"):
        raise CatalogError(
            f"intent {name!r}: on_readback (send or drop) is for intents of kind reply or cancel"
        )
    if on_readback == "send" and means is not True:
        raise CatalogError(f"intent {name!r}: only a reply that means yes can send a read-back request")
    return means, "send" if on_readback == "send" else "drop"


def _load_intent(name: str, raw: Any, lists: dict[str, SlotList]) -> Intent:
    if not isinstance(raw, dict):
        raise CatalogError(f"intent {name!r} must be a mapping")
    slot_map = raw.get("slots") or {}
    if not isinstance(slot_map, dict):
        raise CatalogError(f"intent {name!r}: slots must map slot names to list names")
    for slot, list_name in slot_map.items():
        if list_name not in lists:
            raise CatalogError(f"intent {name!r}: slot {slot!r} uses unknown list {list_name!r}")
    sentences = _as_str_list(raw.get("sentences"), f"intent {name!r} sentences")
    if not sentences:
        raise CatalogError(f"intent {name!r} has no sentences")
    trees = []
    for sentence in sentences:
        tree = templates.parse_template(sentence)
        try:
            for _ in templates.expand(tree):
                pass
        except CatalogError as exc:
            raise CatalogError(f"intent {name!r}: sentence {sentence!r}: {exc}") from exc
        unknown = set(templates.slots(tree)) - set(slot_map)
        if unknown:
            raise CatalogError(
                f"intent {name!r}: sentence {sentence!r} uses undeclared slot {sorted(unknown)[0]!r}"
            )
        trees.append(tree)
    announce = raw.get("announce", name.replace("_", " "))
    if not isinstance(announce, str):
        raise CatalogError(f"intent {name!r}: announce must be a string")
    slots = {str(slot): str(list_name) for slot, list_name in slot_map.items()}
    _phrase(name, "announce", announce, slots)
    kind = as_kind(raw.get("kind"))
    if kind is None:
        raise CatalogError(f"intent {name!r}: kind must be one of {', '.join(KINDS)}")
    if kind in ANSWERS:
        for key in ("readback", "replies", "cancelled", "choice"):
            if raw.get(key) is not None:
                raise CatalogError(f"intent {name!r}: {key} is not for intents of kind {kind} (answers)")
    means, on_readback = _load_meaning(name, raw, kind)
    minutes = raw.get("lifetime_minutes")
    if minutes is not None and (
        isinstance(minutes, bool)
        or not isinstance(minutes, int | float)
        or not 1 <= minutes <= MAX_TTL_S / 60
    ):
        raise CatalogError(
            f"intent {name!r}: lifetime_minutes must be a number from 1 to {MAX_TTL_S / 60:.0f}"
        )
    return Intent(
        name=name,
        description=str(raw.get("description", "")),
        slots=slots,
        announce=announce,
        sentences=tuple(sentences),
        trees=tuple(trees),
        kind=kind,
        readback=_phrase(name, "readback", raw.get("readback"), slots),
        replies=_load_replies(name, raw.get("replies"), slots),
        cancelled=_phrase(name, "cancelled", raw.get("cancelled"), slots),
        choice=_phrase(name, "choice", raw.get("choice"), {}),
        means=means,
        on_readback=on_readback,
        ttl_s=None if minutes is None else float(minutes) * 60,
    )


def parse_catalog(raw: Any) -> Catalog:
    """Build and check a catalog from its parsed YAML document."""
    if not isinstance(raw, dict):
        raise CatalogError("the catalog must be a mapping with `intents` and `lists`")
    if raw.get("version", 1) != 1:
        raise CatalogError(f"unsupported catalog version {raw.get('version')!r} (expected 1)")
    raw_lists = raw.get("lists") or {}
    raw_intents = raw.get("intents") or {}
    if not isinstance(raw_lists, dict) or not isinstance(raw_intents, dict):
        raise CatalogError("`intents` and `lists` must be mappings")
    lists = {str(name): _load_list(str(name), body) for name, body in raw_lists.items()}
    intents = {str(name): _load_intent(str(name), body, lists) for name, body in raw_intents.items()}
    if not any(intent.on_readback == "send" for intent in intents.values()):
        raise CatalogError(
            "the catalog needs a reply that sends a read-back request (means: yes, on_readback: send)"
        )
    wake = tuple(_as_str_list(raw.get("wake_phrases"), "wake_phrases"))
    return Catalog(wake_phrases=wake, intents=intents, lists=lists)


def load_catalog(path: Path) -> Catalog:
    """Load the catalog file; every problem becomes a one-line :class:`CatalogError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CatalogError(f"intent catalog not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"cannot read intent catalog {path}: {exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"intent catalog {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    try:
        catalog = parse_catalog(raw)
    except CatalogError as exc:
        raise CatalogError(f"intent catalog {path}: {exc}") from exc
    log.debug("loaded %d intents and %d lists from %s", len(catalog.intents), len(catalog.lists), path)
    return catalog
