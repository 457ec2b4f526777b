"""The sentences ``voicehello enroll`` asks for: fixed per seed, a quarter held apart (requests
only), every word pronounceable by the bundled dictionary."""

from __future__ import annotations

import pytest

from voicehello.intents.catalog import Catalog
from voicehello.intents.parser import IntentParser
from voicehello.speech.adaptation.prompts import MIN_PROMPTS, RICH_SENTENCES, enrollment_prompts
from voicehello.speech.pocketsphinx import dictionary_path


def dictionary_words() -> set[str]:
    with dictionary_path().open(encoding="utf-8") as handle:
        return {line.split(maxsplit=1)[0] for line in handle if line.strip()}


def test_the_same_seed_gives_the_same_prompts_and_another_seed_others(catalog: Catalog) -> None:
    assert enrollment_prompts(catalog, 20) == enrollment_prompts(catalog, 20)
    assert enrollment_prompts(catalog, 20, seed=1) != enrollment_prompts(catalog, 20)


def test_a_quarter_are_held_apart_and_those_are_understood_requests(
    catalog: Catalog, parser: IntentParser
) -> None:
    prompts = enrollment_prompts(catalog, 20)
    held = [p for p in prompts if p.held]
    assert len(held) == 5
    assert not any(p.text in RICH_SENTENCES for p in held)
    assert any(p.text in RICH_SENTENCES for p in prompts if not p.held)
    assert len({p.text for p in prompts}) == 20
    understood = [p.text for p in held if parser.parse(p.text).intent is not None]
    assert len(understood) >= 3, [p.text for p in held]


def test_every_word_is_in_the_dictionary(catalog: Catalog) -> None:
    known = dictionary_words()
    words = {w for s in RICH_SENTENCES for w in s.split()}
    words |= {w for seed in range(5) for p in enrollment_prompts(catalog, 40, seed) for w in p.text.split()}
    assert sorted(words - known) == []


def test_too_few_prompts_are_refused(catalog: Catalog) -> None:
    with pytest.raises(ValueError, match=str(MIN_PROMPTS)):
        enrollment_prompts(catalog, MIN_PROMPTS - 1)
