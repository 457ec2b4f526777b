"""The intent catalog: intents, their sentence templates and slot value lists.

Loaded from ``config/intents.yaml``; everything else (the PocketSphinx JSGF grammar, the
Vosk phrase list, the text parser's patterns) is generated from it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from voicehello.errors import CatalogError
from voicehello.intents import templates
from voicehello.intents.templates import Seq, Slot, Token
from voicehello.intents.times import TIME_TEMPLATE, canonical_time

log = logging.getLogger(__name__)

REQUIRED_INTENTS = {
    "borrow_item": {"item"},
    "offer_item": {"item"},
    "share_food": {"item"},
    "say_hello": set(),
    "ask_help": {"task"},
    "announce_event": {"event", "time"},
    "report_issue": {"issue"},
    "reply_yes": set(),
    "reply_no": set(),
    "rsvp": set(),
    "cancel": set(),
}
"""Intents and slot names other components and neighbors' devices rely on."""

SLOT = "{%s}"


@dataclass(frozen=True)
class SlotList:
    """A slot's possible values: spoken phrases mapped to one canonical value each."""

    name: str
    phrases: dict[str, str]
    """Spoken phrase -> canonical value (each canonical value maps to itself too)."""
    kind: str = "values"
    """``values`` (an explicit list) or ``time`` (the built-in day and clock grammar)."""

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
    return SlotList(name=name, phrases=phrases)


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
    return Intent(
        name=name,
        description=str(raw.get("description", "")),
        slots={str(slot): str(list_name) for slot, list_name in slot_map.items()},
        announce=announce,
        sentences=tuple(sentences),
        trees=tuple(trees),
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
    for name, required_slots in REQUIRED_INTENTS.items():
        if name not in intents:
            raise CatalogError(f"the catalog lacks the required intent {name!r}")
        if set(intents[name].slots) != required_slots:
            raise CatalogError(f"intent {name!r} must have slots {sorted(required_slots)}")
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
    catalog = parse_catalog(raw)
    log.debug("loaded %d intents and %d lists from %s", len(catalog.intents), len(catalog.lists), path)
    return catalog
