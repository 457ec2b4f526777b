"""The catalog compiled into a minimal word graph: exact language, minimality, FSG transitions."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import pytest

from voicehello.intents.catalog import Catalog, parse_catalog
from voicehello.intents.templates import Alt, Node, Seq, Slot, Word
from voicehello.speech.grammar import WordGraph, compile_catalog

Sentence = tuple[str, ...]

WAKE = ("hey neighbor", "hi there neighbor")


def tiny_document() -> dict[str, Any]:
    """A small valid catalog: every required intent, overlapping beginnings and endings, a time slot."""
    return {
        "version": 1,
        "wake_phrases": list(WAKE),
        "intents": {
            "borrow_item": {
                "kind": "request",
                "slots": {"item": "items"},
                "sentences": ["(can|could) i borrow [a|the] {item} [please]", "borrow {item}"],
            },
            "offer_item": {
                "kind": "offer",
                "slots": {"item": "items"},
                "sentences": ["i have [a] {item} to lend"],
            },
            "share_food": {
                "kind": "offer",
                "slots": {"item": "foods"},
                "sentences": ["i have {item} to share"],
            },
            "say_hello": {"kind": "hello", "sentences": ["say (hello|hi) [to everyone]"]},
            "ask_help": {
                "kind": "request",
                "slots": {"task": "tasks"},
                "sentences": ["can someone help me {task}"],
            },
            "announce_event": {
                "kind": "event",
                "slots": {"event": "events", "time": "time"},
                "sentences": ["{event} {time}", "come to [the] {event}"],
            },
            "report_issue": {
                "kind": "report",
                "slots": {"issue": "issues"},
                "sentences": ["there is a {issue}"],
            },
            "reply_yes": {
                "kind": "reply",
                "means": "yes",
                "on_readback": "send",
                "sentences": ["(yes|yeah) [please]"],
            },
            "reply_no": {"kind": "reply", "means": "no", "sentences": ["no [thanks]"]},
            "rsvp": {"kind": "reply", "means": "yes", "sentences": ["count me in"]},
            "cancel": {"kind": "cancel", "sentences": ["never mind", "cancel [that]"]},
        },
        "lists": {
            "items": {"values": {"ladder": ["step ladder"], "drill": [], "cup of sugar": ["sugar"]}},
            "foods": {"values": {"soup": [], "apple pie": ["pie"]}},
            "tasks": {"values": {"move a couch": ["move my couch"]}},
            "events": {"values": {"film night": ["movie night"]}},
            "issues": {"values": {"pothole": ["big pothole"]}},
            "time": {"kind": "time"},
        },
    }


# ----------------------------------------------------------------------------- an independent oracle


def language(node: Node, catalog: Catalog, slot_lists: dict[str, str]) -> set[Sentence]:
    """Every word sequence of a template tree, slots filled with every phrase (no expansion limit)."""
    if isinstance(node, Word):
        return {(node.text,)}
    if isinstance(node, Slot):
        return language(catalog.lists[slot_lists[node.name]].grammar, catalog, {})
    if isinstance(node, Alt):
        return set().union(*(language(option, catalog, slot_lists) for option in node.options))
    assert isinstance(node, Seq)
    result: set[Sentence] = {()}
    for item in node.items:
        tails = language(item, catalog, slot_lists)
        result = {head + tail for head in result for tail in tails}
    return result


def catalog_language(catalog: Catalog) -> set[Sentence]:
    sentences: set[Sentence] = set()
    for intent in catalog.intents.values():
        for tree in intent.trees:
            sentences |= language(tree, catalog, intent.slots)
    return sentences


def graph_language(graph: WordGraph) -> Iterator[Sentence]:
    """Every sentence of an acyclic word graph (depth first)."""
    stack: list[tuple[int, Sentence]] = [(graph.start, ())]
    while stack:
        state, words = stack.pop()
        if state in graph.finals:
            yield words
        for word, target in graph.arcs[state].items():
            stack.append((target, (*words, word)))


def reachable(graph: WordGraph) -> set[int]:
    seen = {graph.start}
    stack = [graph.start]
    while stack:
        for target in graph.arcs[stack.pop()].values():
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tiny() -> Catalog:
    return parse_catalog(tiny_document())


@pytest.fixture(scope="module")
def tiny_sentences(tiny: Catalog) -> set[Sentence]:
    return catalog_language(tiny)


@pytest.fixture(scope="module")
def tiny_graph(tiny: Catalog) -> WordGraph:
    return compile_catalog(tiny, wake=True)


@pytest.fixture(scope="module")
def tiny_graph_no_wake(tiny: Catalog) -> WordGraph:
    return compile_catalog(tiny, wake=False)


@pytest.fixture(scope="module")
def graph(catalog: Catalog) -> WordGraph:
    return compile_catalog(catalog)


@pytest.fixture(scope="module")
def graph_no_wake(catalog: Catalog) -> WordGraph:
    return compile_catalog(catalog, wake=False)


# ----------------------------------------------------------------------------- tiny catalog: exact language


def test_oracle_sees_the_time_grammar(tiny_sentences: set[Sentence]) -> None:
    assert ("film", "night", "tonight", "at", "half", "past", "seven") in tiny_sentences
    assert ("movie", "night", "at", "noon", "on", "saturday") in tiny_sentences
    assert ("can", "i", "borrow", "a", "step", "ladder", "please") in tiny_sentences
    assert len(tiny_sentences) > 50_000


def test_graph_without_wake_accepts_exactly_the_catalog_sentences(
    tiny_graph_no_wake: WordGraph, tiny_sentences: set[Sentence]
) -> None:
    assert set(graph_language(tiny_graph_no_wake)) == tiny_sentences


def test_graph_with_wake_accepts_exactly_wake_plus_catalog_sentences(
    tiny_graph: WordGraph, tiny_sentences: set[Sentence]
) -> None:
    wakes = {tuple(phrase.split()) for phrase in WAKE}
    expected = tiny_sentences | wakes | {wake + sentence for wake in wakes for sentence in tiny_sentences}
    assert set(graph_language(tiny_graph)) == expected


@pytest.mark.parametrize(
    "sentence",
    [
        "can i borrow a ladder please",
        "could i borrow sugar",
        "borrow cup of sugar",
        "i have apple pie to share",
        "say hi to everyone",
        "film night tonight at seven",
        "movie night at quarter to eight on friday",
        "come to the movie night",
        "there is a big pothole",
        "count me in",
        "cancel",
    ],
)
def test_accepts_catalog_sentences_with_and_without_wake(
    tiny_graph: WordGraph, tiny_graph_no_wake: WordGraph, sentence: str
) -> None:
    words = sentence.split()
    assert tiny_graph_no_wake.accepts(words)
    assert tiny_graph.accepts(words)
    assert tiny_graph.accepts(["hey", "neighbor", *words])
    assert tiny_graph.accepts(["hi", "there", "neighbor", *words])
    assert not tiny_graph_no_wake.accepts(["hey", "neighbor", *words])


@pytest.mark.parametrize(
    "sentence",
    [
        "can i borrow a ladder please",
        "film night tonight at seven",
        "i have apple pie to share",
        "there is a big pothole",
    ],
)
def test_rejects_prefixes_and_extra_words(
    tiny_graph: WordGraph, tiny_graph_no_wake: WordGraph, tiny_sentences: set[Sentence], sentence: str
) -> None:
    words = sentence.split()
    for graph in (tiny_graph, tiny_graph_no_wake):
        for cut in range(1, len(words)):
            assert graph.accepts(words[:cut]) == (tuple(words[:cut]) in tiny_sentences), words[:cut]
        assert not graph.accepts([*words, "please", "please"])
        assert not graph.accepts([*words, "ladder"])
        assert not graph.accepts(["please", *words])
        assert not graph.accepts([*words[:1], "zebra", *words[1:]])
    assert not tiny_graph.accepts(["hey", "neighbor", "hey", "neighbor", *words])


def test_prefix_that_is_itself_a_sentence_is_accepted(tiny_graph: WordGraph) -> None:
    # "film night tonight" and "film night tonight at seven" are both sentences
    assert tiny_graph.accepts(["film", "night", "tonight"])
    assert tiny_graph.accepts(["film", "night", "tonight", "at", "seven"])
    assert not tiny_graph.accepts(["film", "night", "tonight", "at"])


def test_empty_and_wake_alone(tiny_graph: WordGraph, tiny_graph_no_wake: WordGraph) -> None:
    assert not tiny_graph.accepts([])
    assert not tiny_graph_no_wake.accepts([])
    assert tiny_graph.accepts(["hey", "neighbor"])
    assert not tiny_graph.accepts(["hey"])
    assert not tiny_graph_no_wake.accepts(["hey", "neighbor"])


def test_catalog_without_wake_phrases_ignores_wake(tiny_sentences: set[Sentence]) -> None:
    document = tiny_document()
    del document["wake_phrases"]
    graph = compile_catalog(parse_catalog(document), wake=True)
    assert set(graph_language(graph)) == tiny_sentences


# ----------------------------------------------------------------------------- structure


def assert_minimal_and_trim(graph: WordGraph) -> None:
    signatures = [(state in graph.finals, frozenset(out.items())) for state, out in enumerate(graph.arcs)]
    assert len(signatures) == len(set(signatures)), "two states have identical (final, out-arcs)"
    assert reachable(graph) == set(range(len(graph.arcs))), "unreachable states"
    assert all(out or state in graph.finals for state, out in enumerate(graph.arcs)), "dead-end states"


def test_tiny_graph_is_minimal(tiny_graph: WordGraph, tiny_graph_no_wake: WordGraph) -> None:
    assert_minimal_and_trim(tiny_graph)
    assert_minimal_and_trim(tiny_graph_no_wake)
    # The time grammar is shared: the graph is far smaller than the sentence count.
    assert tiny_graph.arc_count < 2000


def test_tiny_graph_has_one_final_state_after_minimization(tiny_graph_no_wake: WordGraph) -> None:
    # Every sentence ending merges into the single state without out-arcs.
    assert sum(1 for state in tiny_graph_no_wake.finals if not tiny_graph_no_wake.arcs[state]) == 1


def assert_transitions_are_stochastic(graph: WordGraph) -> None:
    start, final, transitions = graph.transitions()
    assert start == graph.start
    assert final == len(graph.arcs)
    mass: dict[int, float] = {}
    word_arcs = 0
    for transition in transitions:
        source, target, probability = transition[0], transition[1], transition[2]
        assert 0.0 < probability <= 1.0
        assert source != final
        if len(transition) == 4:
            word_arcs += 1
            assert graph.arcs[source][transition[3]] == target
        else:
            assert target == final
            assert source in graph.finals
        mass[source] = mass.get(source, 0.0) + probability
    assert word_arcs == graph.arc_count
    assert set(mass) == set(range(len(graph.arcs)))
    for state, total in mass.items():
        assert math.isclose(total, 1.0, rel_tol=1e-9), state


def test_tiny_transitions_sum_to_one(tiny_graph: WordGraph) -> None:
    assert_transitions_are_stochastic(tiny_graph)


# ----------------------------------------------------------------------------- the real catalog


def test_real_graph_accepts_sampled_sentences_with_and_without_wake(
    catalog: Catalog, graph: WordGraph, graph_no_wake: WordGraph
) -> None:
    sentences = catalog.sentences(max_per_intent=150, seed=2)
    assert len(sentences) > 1000
    for sentence in sentences:
        words = sentence.split()
        assert graph.accepts(words), sentence
        assert graph_no_wake.accepts(words), sentence
    for wake, sentence in zip(itertools.cycle(catalog.wake_phrases), sentences[::7], strict=False):
        assert graph.accepts([*wake.split(), *sentence.split()]), (wake, sentence)
        assert not graph_no_wake.accepts([*wake.split(), *sentence.split()])


def test_real_graph_accepts_the_wake_phrase_alone(catalog: Catalog, graph: WordGraph) -> None:
    for wake in catalog.wake_phrases:
        assert graph.accepts(wake.split())
    assert graph.accepts(["hey", "neighbor"])


@pytest.mark.parametrize(
    "talk",
    [
        "please pass the salt",
        "i forgot to buy milk",
        "can i borrow a",
        "can i borrow a ladder ladder",
        "hey neighbor hey neighbor",
        "",
    ],
)
def test_real_graph_rejects_off_catalog_word_sequences(graph: WordGraph, talk: str) -> None:
    assert not graph.accepts(talk.split())


def test_real_graph_is_minimal_and_small(graph: WordGraph, graph_no_wake: WordGraph) -> None:
    assert_minimal_and_trim(graph)
    assert_minimal_and_trim(graph_no_wake)
    assert graph.arc_count < 100_000


def test_real_transitions_sum_to_one(graph: WordGraph) -> None:
    assert_transitions_are_stochastic(graph)
