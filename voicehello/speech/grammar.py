"""The catalog compiled into one small word graph for grammar-constrained decoding.

Template trees (with slot lists inlined) become a word NFA, which is determinized and then
minimized. Sentences that share a beginning share states, and so do sentences that share an
ending, so the recognizer searches a graph of a few thousand arcs instead of the hundreds of
thousands of word copies a rule-by-rule JSGF expansion produces. That is what keeps
decoding fast and accurate as the catalog grows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from voicehello.intents.catalog import Catalog
from voicehello.intents.templates import Alt, Node, Seq, Slot, Word


@dataclass(frozen=True)
class WordGraph:
    """A deterministic, minimal word automaton: state -> word -> next state."""

    start: int
    finals: frozenset[int]
    arcs: tuple[dict[str, int], ...]

    @property
    def arc_count(self) -> int:
        """Number of word transitions."""
        return sum(len(out) for out in self.arcs)

    def accepts(self, words: list[str]) -> bool:
        """True when the word sequence is a whole sentence of the grammar."""
        state = self.start
        for word in words:
            following = self.arcs[state].get(word)
            if following is None:
                return False
            state = following
        return state in self.finals

    def transitions(self) -> tuple[int, int, list[tuple[int, int, float, str] | tuple[int, int, float]]]:
        """``(start, final, [(from, to, probability[, word])])`` for a single-final FSG.

        Accepting states get a null transition to one extra final state; each state's
        outgoing probability mass is shared equally.
        """
        final = len(self.arcs)
        result: list[tuple[int, int, float, str] | tuple[int, int, float]] = []
        for state, out in enumerate(self.arcs):
            exits = len(out) + (1 if state in self.finals else 0)
            for word, target in sorted(out.items()):
                result.append((state, target, 1.0 / exits, word))
            if state in self.finals:
                result.append((state, final, 1.0 / exits))
        return self.start, final, result


class _Nfa:
    """A word NFA with epsilon moves, built from template trees."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.words: list[list[tuple[str, int]]] = []
        self.eps: list[list[int]] = []

    def new_state(self) -> int:
        self.words.append([])
        self.eps.append([])
        return len(self.words) - 1

    def add(self, node: Node, source: int, slot_lists: dict[str, str]) -> int:
        """Add ``node`` starting at ``source``; return the state it ends in."""
        if isinstance(node, Word):
            target = self.new_state()
            self.words[source].append((node.text, target))
            return target
        if isinstance(node, Slot):
            return self.add(self.catalog.lists[slot_lists[node.name]].grammar, source, {})
        if isinstance(node, Alt):
            target = self.new_state()
            for option in node.options:
                self.eps[self.add(option, source, slot_lists)].append(target)
            return target
        state = source
        for item in node.items:
            state = self.add(item, state, slot_lists)
        return state


def _closures(nfa: _Nfa) -> list[frozenset[int]]:
    """Epsilon closure of every NFA state (template graphs have no epsilon cycles)."""
    closures: list[frozenset[int] | None] = [None] * len(nfa.eps)
    for root in reversed(range(len(nfa.eps))):
        stack = [root]
        while stack:
            state = stack[-1]
            if closures[state] is not None:
                stack.pop()
                continue
            pending = [e for e in nfa.eps[state] if closures[e] is None]
            if pending:
                stack.extend(pending)
                continue
            members = {state}
            for e in nfa.eps[state]:
                members |= closures[e] or frozenset()
            closures[state] = frozenset(members)
            stack.pop()
    return [c if c is not None else frozenset() for c in closures]


def _determinize(nfa: _Nfa, start: int, final: int) -> tuple[list[dict[str, int]], set[int]]:
    closures = _closures(nfa)
    first = closures[start]
    index = {first: 0}
    subsets = [first]
    arcs: list[dict[str, int]] = []
    finals: set[int] = set()
    position = 0
    while position < len(subsets):
        subset = subsets[position]
        moves: dict[str, set[int]] = defaultdict(set)
        for state in subset:
            for word, target in nfa.words[state]:
                moves[word] |= closures[target]
        out: dict[str, int] = {}
        for word, targets in moves.items():
            key = frozenset(targets)
            if key not in index:
                index[key] = len(subsets)
                subsets.append(key)
            out[word] = index[key]
        arcs.append(out)
        if final in subset:
            finals.add(position)
        position += 1
    return arcs, finals


def _minimize(arcs: list[dict[str, int]], finals: set[int], start: int) -> WordGraph:
    """Merge equivalent states of an acyclic DFA bottom-up (register of right languages)."""
    order: list[int] = []
    seen: set[int] = set()
    stack: list[tuple[int, bool]] = [(start, False)]
    while stack:
        state, expanded = stack.pop()
        if expanded:
            order.append(state)
            continue
        if state in seen:
            continue
        seen.add(state)
        stack.append((state, True))
        stack.extend((target, False) for target in arcs[state].values() if target not in seen)
    representative: dict[int, int] = {}
    register: dict[tuple[bool, frozenset[tuple[str, int]]], int] = {}
    new_arcs: list[dict[str, int]] = []
    new_finals: set[int] = set()
    for state in order:  # post-order: successors first
        out = {word: representative[target] for word, target in arcs[state].items()}
        key = (state in finals, frozenset(out.items()))
        if key not in register:
            register[key] = len(new_arcs)
            new_arcs.append(out)
            if state in finals:
                new_finals.add(register[key])
        representative[state] = register[key]
    return WordGraph(start=representative[start], finals=frozenset(new_finals), arcs=tuple(new_arcs))


def compile_catalog(catalog: Catalog, wake: bool = True) -> WordGraph:
    """Every catalog sentence, optionally after a wake phrase, as one minimal word graph.

    A wake phrase alone is a sentence too, so "hey neighbor" ... pause ... "can I borrow a
    ladder" works as two utterances.
    """
    nfa = _Nfa(catalog)
    start = nfa.new_state()
    body = nfa.new_state()
    final = nfa.new_state()
    nfa.eps[start].append(body)
    if wake and catalog.wake_phrases:
        wake_tree = Alt(tuple(Seq(tuple(Word(w) for w in phrase.split())) for phrase in catalog.wake_phrases))
        after_wake = nfa.add(wake_tree, start, {})
        nfa.eps[after_wake].extend([body, final])
    for intent in catalog.intents.values():
        for tree in intent.trees:
            nfa.eps[nfa.add(tree, body, intent.slots)].append(final)
    arcs, finals = _determinize(nfa, start, final)
    return _minimize(arcs, finals, 0)
