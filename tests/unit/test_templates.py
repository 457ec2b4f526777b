"""Sentence templates: parsing, syntax errors, expansion, the expansion guard, JSGF and sampling."""

from __future__ import annotations

import itertools
import random
import string

import pytest

from voicehello.errors import CatalogError
from voicehello.intents import templates
from voicehello.intents.templates import (
    MAX_EXPANSIONS,
    Alt,
    Seq,
    Slot,
    Word,
    expand,
    parse_template,
    sample,
    to_jsgf,
)


def _texts(node: templates.Node) -> list[str]:
    """Expansions as strings, slots written ``{name}``, sorted (duplicates kept)."""
    return sorted(
        " ".join(f"{{{t.name}}}" if isinstance(t, Slot) else t for t in tokens) for tokens in expand(node)
    )


def _distinct_words(count: int) -> list[str]:
    """``count`` different lower-case words (``aaa``, ``aab``, ...)."""
    letters = string.ascii_lowercase
    return ["".join(pair) for pair in itertools.islice(itertools.product(letters, repeat=3), count)]


# ----------------------------------------------------------------------------- parsing


def test_words_parse_to_a_sequence_of_words() -> None:
    assert parse_template("say hello") == Seq((Word("say"), Word("hello")))


def test_alternatives_parse_to_an_alt_of_sequences() -> None:
    assert parse_template("(a|b c)") == Seq((Alt((Seq((Word("a"),)), Seq((Word("b"), Word("c"))))),))


def test_optional_parses_to_an_alt_with_an_empty_option() -> None:
    assert parse_template("[please] stop") == Seq((Alt((Seq((Word("please"),)), Seq(()))), Word("stop")))


def test_slot_parses_to_a_slot_node() -> None:
    assert parse_template("borrow {item}") == Seq((Word("borrow"), Slot("item")))


def test_nested_groups_parse() -> None:
    tree = parse_template("(a|[b|c] d)")
    inner = Alt((Seq((Word("b"),)), Seq((Word("c"),)), Seq(())))
    assert tree == Seq((Alt((Seq((Word("a"),)), Seq((inner, Word("d"))))),))


def test_parsing_lowercases_and_ignores_extra_spaces() -> None:
    assert parse_template("  Can   I  ( Borrow | Use ) {Item} ") == parse_template(
        "can i (borrow|use) {item}"
    )


def test_apostrophes_hyphens_and_dots_stay_inside_words() -> None:
    assert list(templates.words(parse_template("i'm at seven o'clock t-shirt"))) == [
        "i'm",
        "at",
        "seven",
        "o'clock",
        "t-shirt",
    ]


def test_words_and_slots_helpers_list_everything_in_order() -> None:
    tree = parse_template("(can|could) i [please] borrow {item} at {time}")
    assert list(templates.words(tree)) == ["can", "could", "i", "please", "borrow", "at"]
    assert list(templates.slots(tree)) == ["item", "time"]


# ----------------------------------------------------------------------------- syntax errors


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("(a|b", "missing ')'"),
        ("[a", "missing ']'"),
        ("(a]", "missing ')'"),
        ("[a)", "missing ']'"),
        ("a)", "unbalanced ')'"),
        ("a] b", "unbalanced ']'"),
        ("a | b", "unbalanced '|'"),
        ("((a)", "missing ')'"),
        ("(a|)", "empty alternative"),
        ("(|a)", "empty alternative"),
        ("()", "empty alternative"),
        ("(a||b)", "empty alternative"),
        ("can i borrow a ladder?", "unexpected '?'"),
        ("hey, neighbor", "unexpected ','"),
        ("at 7 tonight", "unexpected '7'"),
        ("{1item}", "unexpected"),
        ("{item", "unexpected"),
        ("borrow {}", "unexpected"),
        ("", "is empty"),
        ("   ", "is empty"),
    ],
)
def test_syntax_errors_name_the_template(template: str, problem: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_template(template)
    message = str(caught.value)
    assert repr(template) in message
    assert problem in message
    assert "\n" not in message


@pytest.mark.parametrize("template", ["[]", "[ ]", "[a|]", "[|a]", "[a||b] c"])
def test_empty_alternative_inside_optional_is_an_error(template: str) -> None:
    with pytest.raises(CatalogError, match="empty alternative"):
        parse_template(template)


def test_template_that_can_match_nothing_is_an_error() -> None:
    with pytest.raises(CatalogError, match="please"):
        parse_template("[please]")


# ----------------------------------------------------------------------------- expansion


def test_expand_small_template_exactly() -> None:
    assert _texts(parse_template("(can|could) i [please] borrow {item}")) == [
        "can i borrow {item}",
        "can i please borrow {item}",
        "could i borrow {item}",
        "could i please borrow {item}",
    ]


def test_expand_nested_groups_exactly() -> None:
    assert _texts(parse_template("(a|[b|c] d) e")) == ["a e", "b d e", "c d e", "d e"]


def test_expand_single_word() -> None:
    assert list(expand(parse_template("stop"))) == [("stop",)]


def test_expand_keeps_slots_as_placeholders() -> None:
    assert list(expand(parse_template("{event} {time}"))) == [(Slot("event"), Slot("time"))]


def test_expand_multiword_alternatives() -> None:
    assert _texts(parse_template("(never mind|forget it) [thanks|thank you]")) == [
        "forget it",
        "forget it thank you",
        "forget it thanks",
        "never mind",
        "never mind thank you",
        "never mind thanks",
    ]


def test_expansion_guard_allows_exactly_the_limit() -> None:
    assert MAX_EXPANSIONS == 5000
    first, second = _distinct_words(50), _distinct_words(100)
    tree = parse_template(f"({'|'.join(first)}) ({'|'.join(second)})")
    assert len(list(expand(tree))) == MAX_EXPANSIONS


def test_expansion_guard_rejects_one_more_than_the_limit() -> None:
    # 1667 * 3 = 5001
    tree = parse_template(f"({'|'.join(_distinct_words(1667))}) (x|y|z)")
    with pytest.raises(CatalogError, match=f"more than {MAX_EXPANSIONS}"):
        list(expand(tree))


def test_expansion_guard_catches_stacked_optionals() -> None:
    tree = parse_template("stop " + " ".join(f"[w{letter}]" for letter in "abcdefghijklm"))  # 2**13
    with pytest.raises(CatalogError, match="simplify"):
        list(expand(tree))


# ----------------------------------------------------------------------------- JSGF


def test_to_jsgf_of_a_small_template() -> None:
    tree = parse_template("(can|could) i [please] borrow [a|an] {item}")
    assert to_jsgf(tree, {"item": "list_items"}) == (
        "( can | could ) i [ please ] borrow [ a | an ] <list_items>"
    )


def test_to_jsgf_of_nested_groups() -> None:
    assert to_jsgf(parse_template("(a|[b|c] d)"), {}) == "( a | [ b | c ] d )"


def test_to_jsgf_needs_a_rule_for_every_slot() -> None:
    with pytest.raises(KeyError):
        to_jsgf(parse_template("borrow {item}"), {})


# ----------------------------------------------------------------------------- sampling


@pytest.mark.parametrize(
    "template",
    [
        "(can|could) i [please] borrow [a|an|the] {item}",
        "(a|[b|c] d) e [f|(g|h) i]",
        "say (hello|hi|good (morning|evening)) [to (everyone|the street)]",
    ],
)
def test_sample_only_yields_expansions_and_reaches_all_of_them(template: str) -> None:
    tree = parse_template(template)
    allowed = set(expand(tree))
    rng = random.Random(7)
    drawn = [sample(tree, rng) for _ in range(2000)]
    assert set(drawn) <= allowed
    assert set(drawn) == allowed  # small templates: 2000 draws reach every sequence


def test_sample_is_deterministic_for_a_seed() -> None:
    tree = parse_template("(a|b|c) [d|e] (f|g)")
    first = [sample(tree, random.Random(3)) for _ in range(5)]
    again = [sample(tree, random.Random(3)) for _ in range(5)]
    assert first == again
