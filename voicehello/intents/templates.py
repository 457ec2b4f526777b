"""Sentence templates: a small, Home Assistant-style syntax.

``(a|b)`` alternatives, ``[x]`` optional, ``{slot}`` a slot, anything else a word::

    (can|could) i borrow [a|an|some] {item}

A template parses into a tree of :class:`Seq`, :class:`Alt`, :class:`Word` and
:class:`Slot` nodes that can be expanded into word sequences or written as JSGF.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

from voicehello.errors import CatalogError

MAX_EXPANSIONS = 5000
"""Most word sequences one template may expand to (before slot values are filled in)."""


@dataclass(frozen=True)
class Word:
    """A literal word."""

    text: str


@dataclass(frozen=True)
class Slot:
    """A reference to a slot, filled from a value list."""

    name: str


@dataclass(frozen=True)
class Seq:
    """Items spoken one after another."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Alt:
    """One of several options; an empty :class:`Seq` option makes it optional."""

    options: tuple[Seq, ...]


Node = Word | Slot | Seq | Alt
Token = str | Slot
"""One element of an expanded sentence: a word, or a slot placeholder."""

_TOKEN_RE = re.compile(r"\{[a-z_][a-z0-9_]*\}|[()\[\]|]|[a-z][a-z'.\-]*")


def _tokenize(template: str) -> list[str]:
    text = template.strip().lower()
    tokens: list[str] = []
    position = 0
    for match in _TOKEN_RE.finditer(text):
        gap = text[position : match.start()]
        if gap.strip():
            raise CatalogError(f"template {template!r}: unexpected {gap.strip()!r}")
        tokens.append(match.group())
        position = match.end()
    if text[position:].strip():
        raise CatalogError(f"template {template!r}: unexpected {text[position:].strip()!r}")
    return tokens


class _Parser:
    """Recursive-descent parser over template tokens."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.tokens = _tokenize(template)
        self.position = 0

    def parse(self) -> Seq:
        node = self._sequence(closing=None)
        if self.position != len(self.tokens):
            raise CatalogError(f"template {self.template!r}: unbalanced {self.tokens[self.position]!r}")
        if not node.items:
            raise CatalogError(f"template {self.template!r} is empty")
        if _nullable(node):
            raise CatalogError(f"template {self.template!r} can match nothing (every part is optional)")
        return node

    def _sequence(self, closing: str | None) -> Seq:
        items: list[Node] = []
        while self.position < len(self.tokens):
            token = self.tokens[self.position]
            if token in ("|", ")", "]"):
                break
            self.position += 1
            if token in ("(", "["):
                items.append(self._group(optional=token == "["))
            elif token.startswith("{"):
                items.append(Slot(token[1:-1]))
            else:
                items.append(Word(token))
        return Seq(tuple(items))

    def _group(self, optional: bool) -> Alt:
        closing = "]" if optional else ")"
        options = [self._sequence(closing)]
        while self.position < len(self.tokens) and self.tokens[self.position] == "|":
            self.position += 1
            options.append(self._sequence(closing))
        if self.position >= len(self.tokens) or self.tokens[self.position] != closing:
            raise CatalogError(f"template {self.template!r}: missing {closing!r}")
        self.position += 1
        if any(not option.items for option in options):
            raise CatalogError(f"template {self.template!r}: empty alternative (use [...] for optional)")
        if optional:
            options.append(Seq(()))
        return Alt(tuple(options))


def _nullable(node: Node) -> bool:
    """True when ``node`` can match no words at all."""
    if isinstance(node, (Word, Slot)):
        return False
    if isinstance(node, Alt):
        return any(_nullable(option) for option in node.options)
    return all(_nullable(item) for item in node.items)


def parse_template(template: str) -> Seq:
    """Parse one template string; raises :class:`CatalogError` on bad syntax."""
    return _Parser(template).parse()


def expand(node: Node) -> Iterator[tuple[Token, ...]]:
    """Every token sequence a node can produce (slots left as placeholders)."""
    if isinstance(node, Word):
        yield (node.text,)
    elif isinstance(node, Slot):
        yield (node,)
    elif isinstance(node, Alt):
        for option in node.options:
            yield from expand(option)
    else:
        sequences: list[tuple[Token, ...]] = [()]
        for item in node.items:
            sequences = [head + tail for head in sequences for tail in expand(item)]
            if len(sequences) > MAX_EXPANSIONS:
                raise CatalogError(f"a template expands to more than {MAX_EXPANSIONS} sentences; simplify it")
        yield from sequences


def words(node: Node) -> Iterator[str]:
    """Every literal word in a node."""
    if isinstance(node, Word):
        yield node.text
    elif isinstance(node, Seq):
        for item in node.items:
            yield from words(item)
    elif isinstance(node, Alt):
        for option in node.options:
            yield from words(option)


def slots(node: Node) -> Iterator[str]:
    """Every slot name referenced in a node."""
    if isinstance(node, Slot):
        yield node.name
    elif isinstance(node, Seq):
        for item in node.items:
            yield from slots(item)
    elif isinstance(node, Alt):
        for option in node.options:
            yield from slots(option)


def to_jsgf(node: Node, slot_rules: dict[str, str]) -> str:
    """Write a node as a JSGF expression; slots become ``<rule>`` references."""
    if isinstance(node, Word):
        return node.text
    if isinstance(node, Slot):
        return f"<{slot_rules[node.name]}>"
    if isinstance(node, Alt):
        required = [option for option in node.options if option.items]
        body = " | ".join(to_jsgf(option, slot_rules) for option in required)
        return f"[ {body} ]" if len(required) < len(node.options) else f"( {body} )"
    return " ".join(to_jsgf(item, slot_rules) for item in node.items)


def sample(node: Node, rng: random.Random) -> tuple[Token, ...]:
    """One random token sequence of a node (each alternative equally likely)."""
    if isinstance(node, Word):
        return (node.text,)
    if isinstance(node, Slot):
        return (node,)
    if isinstance(node, Alt):
        return sample(rng.choice(node.options), rng)
    return tuple(token for item in node.items for token in sample(item, rng))
