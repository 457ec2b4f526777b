"""The intent catalog: the real config/intents.yaml, and bad catalogs written to files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pocketsphinx
import pytest
import yaml

from voicehello.errors import CatalogError
from voicehello.intents.catalog import FORMS, Catalog, load_catalog, parse_catalog
from voicehello.intents.parser import IntentParser
from voicehello.intents.templates import expand

EXPECTED_SLOTS = {
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


@pytest.fixture(scope="module")
def dictionary_words() -> set[str]:
    path = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    words = set()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                words.add(re.sub(r"\(\d+\)$", "", line.split()[0]))
    return words


def minimal_catalog() -> dict[str, Any]:
    """A small valid catalog document: the usual intents, each with its kind."""
    return {
        "version": 1,
        "wake_phrases": ["hey neighbor"],
        "intents": {
            "borrow_item": {
                "kind": "request",
                "slots": {"item": "items"},
                "sentences": ["can i borrow [a] {item}"],
                "readback": "Ask your neighbors to borrow {item}?",
                "choice": "to borrow",
                "replies": {"yes": "can lend you {item}", "no": "can't lend you {item}"},
                "cancelled": "no longer needs {item:any}",
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
            "say_hello": {"kind": "hello", "sentences": ["say hello"]},
            "ask_help": {
                "kind": "request",
                "slots": {"task": "tasks"},
                "sentences": ["can someone help me {task}"],
            },
            "announce_event": {
                "kind": "event",
                "slots": {"event": "events", "time": "time"},
                "sentences": ["{event} {time}"],
            },
            "report_issue": {
                "kind": "report",
                "slots": {"issue": "issues"},
                "sentences": ["there is a {issue}"],
            },
            "reply_yes": {"kind": "reply", "means": True, "on_readback": "send", "sentences": ["yes"]},
            "reply_no": {"kind": "reply", "means": False, "on_readback": "drop", "sentences": ["no"]},
            "rsvp": {"kind": "reply", "means": "yes", "sentences": ["count me in"]},
            "cancel": {"kind": "cancel", "on_readback": "drop", "sentences": ["never mind"]},
        },
        "lists": {
            "items": {"values": {"ladder": ["step ladder"], "drill": []}},
            "foods": {"values": {"soup": None}},
            "tasks": {"values": {"move a couch": ["move my sofa"]}},
            "events": {"values": {"film night": ["movie night"]}},
            "issues": {"values": {"pothole": []}},
            "time": {"kind": "time"},
        },
    }


def write_catalog(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "intents.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def assert_one_line_catalog_error(path: Path, *fragments: str) -> str:
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    message = str(caught.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ----------------------------------------------------------------------------- the real catalog


def test_real_catalog_has_every_usual_intent_with_exact_slots(catalog: Catalog) -> None:
    for name, slots in EXPECTED_SLOTS.items():
        assert name in catalog.intents, name
        assert set(catalog.intents[name].slots) == slots, name


def test_real_catalog_slots_use_the_expected_lists(catalog: Catalog) -> None:
    assert catalog.slot_list("borrow_item", "item").name == "items"
    assert catalog.slot_list("offer_item", "item").name == "items"
    assert catalog.slot_list("share_food", "item").name == "foods"
    assert catalog.slot_list("ask_help", "task").name == "tasks"
    assert catalog.slot_list("announce_event", "event").name == "events"
    assert catalog.slot_list("announce_event", "time").kind == "time"
    assert catalog.slot_list("report_issue", "issue").name == "issues"


@pytest.mark.parametrize(
    ("list_name", "least"),
    [("items", 80), ("tasks", 25), ("events", 20), ("issues", 20), ("foods", 30)],
)
def test_real_catalog_list_sizes(catalog: Catalog, list_name: str, least: int) -> None:
    assert len(catalog.lists[list_name].values) >= least


def test_real_catalog_has_wake_phrases(catalog: Catalog) -> None:
    assert "hey neighbor" in catalog.wake_phrases


@pytest.mark.parametrize(
    ("list_name", "phrase", "canonical"),
    [
        ("items", "step ladder", "ladder"),
        ("items", "stepladder", "ladder"),
        ("items", "ladder", "ladder"),
        ("items", "sugar", "cup of sugar"),
        ("items", "power drill", "drill"),
        ("foods", "apple pie", "pie"),
        ("tasks", "move my sofa", "move a couch"),
        ("events", "movie night", "film night"),
        ("issues", "the street light on our corner is out", "street light out"),
    ],
)
def test_synonyms_map_to_their_canonical(
    catalog: Catalog, list_name: str, phrase: str, canonical: str
) -> None:
    assert catalog.lists[list_name].canonical(phrase) == canonical


def test_every_canonical_maps_to_itself(catalog: Catalog) -> None:
    for slot_list in catalog.lists.values():
        for value in slot_list.values:
            assert slot_list.phrases[value] == value, (slot_list.name, value)


def test_no_phrase_is_in_two_lists(catalog: Catalog) -> None:
    owner: dict[str, str] = {}
    clashes = []
    for slot_list in catalog.lists.values():
        for phrase in slot_list.phrases:
            if phrase in owner:
                clashes.append((phrase, owner[phrase], slot_list.name))
            owner[phrase] = slot_list.name
    assert clashes == []


def test_every_catalog_word_is_in_the_pocketsphinx_dictionary(
    catalog: Catalog, dictionary_words: set[str]
) -> None:
    words = set(catalog.words())
    for intent in catalog.intents.values():
        words.update(re.sub(r"\{[\w:]+\}", " ", intent.announce).split())
    assert len(words) > 500
    assert sorted(words - dictionary_words) == []


def test_dictionary_check_can_fail(dictionary_words: set[str]) -> None:
    assert "ladder" in dictionary_words
    assert "streetlight" not in dictionary_words


def test_no_sentence_pattern_belongs_to_two_intents(catalog: Catalog) -> None:
    owner: dict[tuple[str, tuple[str, ...]], str] = {}
    clashes = []
    for intent in catalog.intents.values():
        for pattern in intent.patterns():
            lists = tuple(intent.slots[slot] for slot in re.findall(r"\{(\w+)\}", pattern))
            key = (re.sub(r"\{\w+\}", "{}", pattern), lists)
            if owner.get(key, intent.name) != intent.name:
                clashes.append((key, owner[key], intent.name))
            owner.setdefault(key, intent.name)
    assert len(owner) > 1000
    assert clashes == []


def test_every_template_stays_small(catalog: Catalog) -> None:
    # The catalog's own rule: at most ~200 word sequences per template before slots are filled.
    too_big = {
        sentence: count
        for intent in catalog.intents.values()
        for tree, sentence in zip(intent.trees, intent.sentences, strict=True)
        if (count := len(list(expand(tree)))) > 200
    }
    assert too_big == {}


def test_sentences_are_deterministic_for_a_seed(catalog: Catalog) -> None:
    first = catalog.sentences(max_per_intent=40, seed=3)
    assert first == catalog.sentences(max_per_intent=40, seed=3)
    assert first != catalog.sentences(max_per_intent=40, seed=4)
    assert len(first) == len(set(first))
    assert len(first) <= 40 * len(catalog.intents)


def test_training_sentences_are_deterministic_and_include_wake_phrases(catalog: Catalog) -> None:
    first = catalog.training_sentences(per_intent=30, seed=1)
    assert first == catalog.training_sentences(per_intent=30, seed=1)
    assert first != catalog.training_sentences(per_intent=30, seed=2)
    for wake in catalog.wake_phrases:
        assert wake in first
    woken = [s for s in first if any(s.startswith(w + " ") for w in catalog.wake_phrases)]
    assert woken


def _per_intent(catalog: Catalog, name: str) -> Catalog:
    """The catalog restricted to one intent, so its sentences are known to be that intent's."""
    return Catalog(
        wake_phrases=catalog.wake_phrases, intents={name: catalog.intents[name]}, lists=catalog.lists
    )


@pytest.mark.parametrize("intent", sorted(EXPECTED_SLOTS))
def test_every_sampled_sentence_parses_back_to_its_intent(
    catalog: Catalog, parser: IntentParser, intent: str
) -> None:
    sentences = _per_intent(catalog, intent).sentences(max_per_intent=40, seed=9)
    assert sentences
    wrong = {}
    for sentence in sentences:
        result = parser.parse(sentence)
        if result.intent != intent:
            wrong[sentence] = result.intent
        else:
            assert set(result.slots) <= set(catalog.intents[intent].slots)
    assert wrong == {}


def test_training_sentences_parse_to_an_intent(catalog: Catalog, parser: IntentParser) -> None:
    sentences = catalog.training_sentences(per_intent=15, seed=4)
    rejected = []
    for sentence in sentences:
        result = parser.parse(sentence)
        if sentence in catalog.wake_phrases:
            assert result.woke
            assert result.intent is None
        elif result.intent is None:
            rejected.append(sentence)
    assert rejected == []


# ----------------------------------------------------------------------------- bad catalogs


def test_minimal_catalog_is_valid(tmp_path: Path) -> None:
    loaded = load_catalog(write_catalog(tmp_path, minimal_catalog()))
    assert set(loaded.intents) == set(EXPECTED_SLOTS)
    assert loaded.lists["items"].canonical("step ladder") == "ladder"
    assert loaded.lists["foods"].values == ["soup"]


def test_missing_file(tmp_path: Path) -> None:
    assert_one_line_catalog_error(tmp_path / "nope.yaml", "not found", "nope.yaml")


def test_file_that_is_a_directory(tmp_path: Path) -> None:
    assert_one_line_catalog_error(tmp_path, "cannot read")


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "intents.yaml"
    path.write_bytes(b"version: 1\nwake_phrases: [\xff\xfe]\n")
    assert_one_line_catalog_error(path, "cannot read")


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "intents.yaml"
    path.write_text("intents: [unclosed\nlists: {\n", encoding="utf-8")
    assert_one_line_catalog_error(path, "not valid YAML", str(path))


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "", "42\n"])
def test_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "intents.yaml"
    path.write_text(text, encoding="utf-8")
    assert_one_line_catalog_error(path, "must be a mapping")


def test_intents_not_a_mapping(tmp_path: Path) -> None:
    document = minimal_catalog()
    document["intents"] = ["borrow_item"]
    assert_one_line_catalog_error(write_catalog(tmp_path, document), "must be mappings")


def test_a_catalog_needs_an_answer_that_sends_a_read_back(tmp_path: Path) -> None:
    document = minimal_catalog()
    del document["intents"]["reply_yes"]
    assert_one_line_catalog_error(write_catalog(tmp_path, document), str(tmp_path), "on_readback: send")


def test_intents_are_open_slots_are_the_catalog_s(tmp_path: Path) -> None:
    """No intent name or slot set is fixed in code: a catalog may drop one, rename a slot, or
    add an intent of any kind."""
    document = minimal_catalog()
    del document["intents"]["rsvp"]
    document["intents"]["ask_help"]["slots"] = {"job": "tasks"}
    document["intents"]["ask_help"]["sentences"] = ["can someone help me {job}"]
    document["intents"]["lost_pet"] = {
        "kind": "report",
        "slots": {"pet": "items"},
        "announce": "has lost {pet}",
        "sentences": ["i lost my {pet}"],
        "lifetime_minutes": 720,
    }
    loaded = load_catalog(write_catalog(tmp_path, document))
    assert "rsvp" not in loaded.intents
    assert loaded.intents["lost_pet"].kind == "report"
    assert loaded.intents["lost_pet"].lifetime_s == 720 * 60
    assert loaded.kinds["lost_pet"] == "report"


def test_unknown_list(tmp_path: Path) -> None:
    document = minimal_catalog()
    document["intents"]["borrow_item"]["slots"] = {"item": "tools"}
    assert_one_line_catalog_error(write_catalog(tmp_path, document), "unknown list", "'tools'")


def test_undeclared_slot_in_sentence(tmp_path: Path) -> None:
    document = minimal_catalog()
    document["intents"]["borrow_item"]["sentences"] = ["can i borrow {item} at {time}"]
    assert_one_line_catalog_error(write_catalog(tmp_path, document), "undeclared slot", "'time'")


def test_duplicate_phrase_with_two_canonicals(tmp_path: Path) -> None:
    document = minimal_catalog()
    document["lists"]["items"]["values"] = {"ladder": ["step ladder"], "stool": ["step ladder"]}
    assert_one_line_catalog_error(write_catalog(tmp_path, document), "'step ladder'", "'ladder'", "'stool'")


def test_synonym_equal_to_another_canonical(tmp_path: Path) -> None:
    document = minimal_catalog()
    document["lists"]["items"]["values"] = {"ladder": [], "stool": ["ladder"]}
    assert_one_line_catalog_error(write_catalog(tmp_path, document), "'ladder'", "means both")


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_wrong_version(tmp_path: Path, version: object) -> None:
    document = minimal_catalog()
    document["version"] = version
    assert_one_line_catalog_error(write_catalog(tmp_path, document), "version")


def test_bad_template_names_the_template(tmp_path: Path) -> None:
    document = minimal_catalog()
    document["intents"]["cancel"]["sentences"] = ["never (mind"]
    assert_one_line_catalog_error(write_catalog(tmp_path, document), "'never (mind'")


@pytest.mark.parametrize(
    ("where", "value", "fragment"),
    [
        (("intents", "cancel"), "never mind", "must be a mapping"),
        (("intents", "cancel", "sentences"), [], "has no sentences"),
        (("intents", "cancel", "sentences"), [1, 2], "list of strings"),
        (("intents", "cancel", "slots"), ["item"], "slots must map"),
        (("intents", "cancel", "announce"), ["x"], "announce must be a string"),
        (("lists", "items"), ["ladder"], "must be a mapping"),
        (("lists", "items", "values"), {}, "non-empty mapping"),
        (("lists", "items", "values"), ["ladder"], "non-empty mapping"),
        (("lists", "items", "values", "ladder"), [["step", "ladder"]], "list of strings"),
        (("lists", "items", "kind"), "regex", "unknown kind"),
        (("wake_phrases",), {"hey": "neighbor"}, "wake_phrases"),
    ],
)
def test_malformed_parts(tmp_path: Path, where: tuple[str, ...], value: object, fragment: str) -> None:
    document = minimal_catalog()
    node = document
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    assert_one_line_catalog_error(write_catalog(tmp_path, document), fragment)


def test_parse_catalog_accepts_the_document_directly() -> None:
    parsed = parse_catalog(minimal_catalog())
    assert list(parsed.intents["borrow_item"].patterns()) == ["can i borrow a {item}", "can i borrow {item}"]


def test_template_over_the_expansion_limit_is_rejected_at_load(tmp_path: Path) -> None:
    document = minimal_catalog()
    huge = " ".join(f"[w{letter}]" for letter in "abcdefghijklm") + " stop"  # 2**13 sequences
    document["intents"]["cancel"]["sentences"] = ["never mind", huge]
    assert_one_line_catalog_error(write_catalog(tmp_path, document), "'cancel'", "more than")


# ----------------------------------------------------------------------------- what intents mean


def test_real_catalog_says_what_each_intent_means(catalog: Catalog) -> None:
    assert catalog.kinds == {
        "borrow_item": "request",
        "offer_item": "offer",
        "share_food": "offer",
        "say_hello": "hello",
        "ask_help": "request",
        "announce_event": "event",
        "report_issue": "report",
        "reply_yes": "reply",
        "reply_no": "reply",
        "rsvp": "reply",
        "cancel": "cancel",
    }
    meanings = {name: (i.means, i.on_readback) for name, i in catalog.intents.items() if i.is_answer}
    assert meanings == {
        "reply_yes": (True, "send"),
        "reply_no": (False, "drop"),
        "rsvp": (True, None),
        "cancel": (None, "drop"),
    }
    for intent in catalog.intents.values():
        if not intent.is_answer:
            assert str(intent.readback).endswith("?"), intent.name
            assert str(intent.choice).startswith("to "), intent.name
            assert intent.cancelled is not None, intent.name
            assert True in intent.replies, intent.name
    choices = [intent.choice for intent in catalog.intents.values() if intent.choice]
    assert len(choices) == len(set(choices))
    assert catalog.lists["tasks"].spoken_as == "verb"
    assert catalog.lists["issues"].spoken_as == "noun_or_statement"
    assert (catalog.lists["issues"].mass_article, catalog.lists["events"].mass_article) == ("", "the")
    assert catalog.lists["items"].mass_article == "some"


BAD_KEYS: dict[str, tuple[tuple[str, ...], object, str]] = {
    "no kind": (("intents", "say_hello", "kind"), None, "'say_hello': kind must be one of request, offer"),
    "unknown kind": (("intents", "say_hello", "kind"), "shout", "'say_hello': kind must be one of"),
    "reply without means": (("intents", "rsvp", "means"), None, "'rsvp' is a reply: say what it means"),
    "means maybe": (("intents", "rsvp", "means"), "maybe", "'rsvp': means (yes or no)"),
    "means on a request": (("intents", "say_hello", "means"), True, "'say_hello': means (yes or no)"),
    "on_readback on a request": (("intents", "say_hello", "on_readback"), "send", "'say_hello': on_readback"),
    "on_readback unknown": (
        ("intents", "cancel", "on_readback"),
        "maybe",
        "'cancel': on_readback (send or drop)",
    ),
    "a no that sends": (
        ("intents", "reply_no", "on_readback"),
        "send",
        "'reply_no': only a reply that means yes",
    ),
    "readback on an answer": (
        ("intents", "reply_no", "readback"),
        "Say no?",
        "'reply_no': readback is not for",
    ),
    "readback not a string": (("intents", "say_hello", "readback"), ["x"], "'say_hello': readback must be"),
    "readback undeclared slot": (
        ("intents", "borrow_item", "readback"),
        "Borrow {thing}?",
        "'borrow_item': readback uses undeclared slot 'thing'",
    ),
    "unknown form": (("intents", "borrow_item", "cancelled"), "lost {item:plural}", "unknown form 'plural'"),
    "malformed placeholder": (("intents", "borrow_item", "cancelled"), "lost {item thing}", "malformed"),
    "replies not a mapping": (("intents", "borrow_item", "replies"), ["x"], "replies must map yes and no"),
    "replies maybe": (("intents", "borrow_item", "replies"), {"maybe": "x"}, "replies has 'maybe'"),
    "reply undeclared slot": (
        ("intents", "borrow_item", "replies"),
        {"yes": "lends {x}"},
        "replies yes uses",
    ),
    "announce undeclared slot": (
        ("intents", "say_hello", "announce"),
        "says {what}",
        "announce uses undeclared",
    ),
    "choice on an answer": (("intents", "cancel", "choice"), "to cancel", "'cancel': choice is not for"),
    "lifetime zero": (("intents", "say_hello", "lifetime_minutes"), 0, "lifetime_minutes must be a number"),
    "lifetime too long": (("intents", "say_hello", "lifetime_minutes"), 10081, "lifetime_minutes"),
    "lifetime text": (("intents", "say_hello", "lifetime_minutes"), "soon", "lifetime_minutes"),
    "spoken_as unknown": (("lists", "tasks", "spoken_as"), "adverb", "'tasks': spoken_as must be one of"),
    "mass_article two words": (("lists", "issues", "mass_article"), "a lot of", "'issues': mass_article"),
}


@pytest.mark.parametrize("case", sorted(BAD_KEYS))
def test_bad_meaning_keys_are_one_line_naming_file_intent_and_problem(tmp_path: Path, case: str) -> None:
    where, value, fragment = BAD_KEYS[case]
    document = minimal_catalog()
    node = document
    for key in where[:-1]:
        node = node[key]
    if value is None:
        node.pop(where[-1], None)
    else:
        node[where[-1]] = value
    path = write_catalog(tmp_path, document)
    assert_one_line_catalog_error(path, f"intent catalog {path}: ", fragment)


def test_yes_and_no_may_be_written_as_yaml_writes_them(tmp_path: Path) -> None:
    """``means: yes`` and ``replies: {yes: ..., no: ...}`` are booleans to YAML; quoted they are strings."""
    path = tmp_path / "intents.yaml"
    text = yaml.safe_dump(minimal_catalog(), sort_keys=False)
    path.write_text(text.replace("means: true", "means: yes").replace("means: false", "means: 'no'"))
    loaded = load_catalog(path)
    assert (loaded.intents["reply_yes"].means, loaded.intents["reply_no"].means) == (True, False)
    assert loaded.intents["borrow_item"].replies == {
        True: "can lend you {item}",
        False: "can't lend you {item}",
    }


def test_every_form_the_catalog_allows_is_one_phrasing_knows() -> None:
    from typing import get_args

    from voicehello.announce.phrasing import Form

    assert get_args(Form) == FORMS
