"""The sentences read aloud during ``voicehello enroll``.

Most are requests of the kind the device hears, filled from the catalog; a few are
phonetically rich sentences, so that sounds rare in requests are heard too. A quarter of the
prompts (all of them requests) are held apart: they are not used to adapt, only to check
that the adaptation helps, decoded with the catalog's own language model.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from voicehello.intents import templates
from voicehello.intents.catalog import SLOT, Catalog

RICH_SENTENCES = (
    "the quick brown fox jumps over the lazy dog",
    "she sells fresh fish and thick soup at the corner shop",
    "a yellow jug of warm milk stood on the wooden table",
    "the boy judged the huge vase with a puzzled look",
    "we thought the weather would change by thursday morning",
    "join us for pizza and cheese in the garden at noon",
    "the lazy cat was sleeping in a patch of sun",
    "my brother bought a blue shirt and a pair of shoes",
    "he measured the beige rug with a yellow tape",
    "our neighbor plays the violin every evening in june",
    "the child chose a red toy from the big box",
    "a loud whistle woke the dog before the bus arrived",
)
"""Sentences covering English sounds (written for voicehello; every word is in the dictionary)."""
DEFAULT_PROMPTS = 20
"""How many sentences an enrollment asks for."""
MIN_PROMPTS = 8
"""Fewer sentences than this are too little to adapt to."""
HELD_SHARE = 4
"""One prompt in this many is held apart for the check."""
RICH_SHARE = 3
"""One adaptation prompt in this many is a phonetically rich sentence."""


@dataclass(frozen=True)
class EnrollPrompt:
    """One sentence to read aloud."""

    text: str
    """The words, lower case, as the recognizer writes them."""
    held: bool
    """Held apart: used only to check the adaptation, never to make it."""


def _request(catalog: Catalog, rng: random.Random, seen: set[str]) -> str:
    """A request filled from a random template of a random intent, not seen before."""
    intents = sorted(catalog.intents)
    for _ in range(200):
        intent = rng.choice(intents)
        tokens = templates.sample(rng.choice(catalog.intents[intent].trees), rng)
        pattern = " ".join(SLOT % t.name if isinstance(t, templates.Slot) else t for t in tokens)
        text = " ".join(catalog.fill(intent, pattern, rng).split())
        if text not in seen and len(text.split()) >= 3:
            seen.add(text)
            return text
    raise ValueError("the catalog gives too few different requests to enroll with")


def enrollment_prompts(catalog: Catalog, count: int = DEFAULT_PROMPTS, seed: int = 0) -> list[EnrollPrompt]:
    """``count`` prompts in reading order (the same for the same catalog, count and seed):
    every ``HELD_SHARE``-th is held apart; of the others, every ``RICH_SHARE``-th is a
    phonetically rich sentence."""
    if count < MIN_PROMPTS:
        raise ValueError(f"at least {MIN_PROMPTS} prompts are needed")
    rng = random.Random(f"voicehello-enroll-{seed}")
    rich = list(RICH_SENTENCES)
    rng.shuffle(rich)
    seen: set[str] = set()
    prompts: list[EnrollPrompt] = []
    adapting = 0
    for index in range(count):
        if index % HELD_SHARE == HELD_SHARE - 1:
            prompts.append(EnrollPrompt(_request(catalog, rng, seen), held=True))
            continue
        adapting += 1
        if adapting % RICH_SHARE == 0 and rich:
            prompts.append(EnrollPrompt(rich.pop(), held=False))
        else:
            prompts.append(EnrollPrompt(_request(catalog, rng, seen), held=False))
    return prompts
