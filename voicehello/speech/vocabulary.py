"""The broad vocabulary that speech recognition may hear in an open slot's place.

Neighbors ask for things no list holds ("a pasta maker", "some courgettes"). A recognizer that
knows only the catalog's values cannot hear them, so whatever the parser can do with an open
slot never happens. This module picks the words a slot may also contain: common English words
from ``wordfreq``'s frequency lists (shipped inside the package, nothing is downloaded), kept
to words the pronunciation dictionary has, without function words, common verbs, adverbs,
numbers and swear words, and weighted by frequency (tempered by :data:`FREQUENCY_EXPONENT`, so
the most common words do not take everything). The speech engines give these words a small
share of each open slot (see :mod:`voicehello.speech.lm` and :func:`open_slot_phrases`); the
catalog's own values keep the rest, so they stay preferred.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from voicehello.errors import ModelError
from voicehello.intents.catalog import SLOT, Catalog

log = logging.getLogger(__name__)

DEFAULT_SIZE = 1000
"""Words in the broad vocabulary (Vosk's grammar phrases; PocketSphinx's class when its weight
is above 0)."""
DEFAULT_WEIGHT = 0.0
"""Share of an open slot's probability that PocketSphinx gives to the broad vocabulary (the rest
stays with the catalog's values). Off by default: on the benchmark's dev split every setting
tried (100-10,000 words, weights 0.002-0.1) lost more requests than it won with the bundled US
English model and espeak-ng voices (README, "Open slots in speech"); ``bench/run.py
--open-weight 0.01`` measures it."""
FREQUENCY_EXPONENT = 0.5
"""A word's weight is its frequency to this power: 1 follows the corpus, 0 makes all equal."""
CANDIDATES = 30_000
"""How far down wordfreq's list to look for :data:`DEFAULT_SIZE` usable words."""
MIN_LETTERS = 3

OPEN_KIND = "values"
"""Slot lists of this kind are open (items, foods, tasks, events, issues); ``time`` is not."""

SHAPES: tuple[tuple[str, float], ...] = (("{w}", 1.0),)
"""How an unknown value is built from open words (``{w}``): one word. Longer shapes (two or
three open words, "{w} of {w}", "{w} a {w}") were tried on the dev split: an open word after an
open word makes chains cheap ("awesome god legal force" for "a gazebo for saturday"), whatever
the class weight, and cost far more accuracy than they won."""


def _word_list(text: str) -> frozenset[str]:
    return frozenset(text.split())


STOP_WORDS = _word_list(
    """
    a about above after again against all almost along already also although always am among an
    and another any anybody anyone anything anyway anywhere are around as at away back be became
    because become becomes been before behind being below beside besides between beyond both but
    by can cannot could did do does doing done down during each either else enough even ever every
    everybody everyone everything everywhere few for from further had has have having he hence her
    here hers herself him himself his how however i if in indeed instead into is it its itself
    just least less let like many may me might mine more most much must my myself neither never
    nevertheless next no nobody none nor not nothing now nowhere of off often on once one only onto
    or other others otherwise our ours ourselves out over own per perhaps quite rather really same
    shall she should since so some somebody someone something sometimes somewhere soon still such
    than that the their theirs them themselves then there therefore these they this those though
    through thus till to together too toward towards under unless until up upon us very via was we
    well were what whatever when whenever where whereas wherever whether which while who whoever
    whole whom whose why will with within without would yes yet you your yours yourself yourselves
    oh ok okay yeah yep nope hey hi hello lol ha haha wow um uh hmm mr mrs ms dr st jr vs etc
    zero two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty
    hundred thousand million billion first second third
    get got gets getting go goes going gone went make makes made making take takes took taken
    taking come comes came coming see sees saw seen seeing know knows knew known think thinks
    thought say says said saying tell tells told give gives gave given want wants wanted look
    looks looked use used uses find found put puts seem seems seemed feel feels felt try tried
    tries leave left call called keep kept let lets begin began begun show shows showed shown hear
    heard play played run ran move moved live lived believe believed bring brought happen happened
    write wrote written sit sat stand stood lose lost pay paid meet met include included continue
    continued set learn learned change changed lead led understand understood watch watched
    follow followed stop stopped create created speak spoke spoken read allow allowed add added
    spend spent grow grew open opened walk walked win won offer offered remember remembered love
    loved consider considered appear appeared buy bought wait waited serve served die died send
    sent expect expected build built stay stayed fall fell cut reach reached kill killed remain
    remained suggest suggested raise raised pass passed sell sold require required report reported
    decide decided pull pulled gonna wanna gotta ain
    good bad new old great big small little long short high low large young early late right
    wrong real sure true false best better worse worst hard easy able free full important possible
    different whole certain clear likely major public private special local national political
    social human
    """
)
"""Words that are not things: function words, numbers, common verbs and adjectives."""

REFUSED_WORDS = _word_list(
    """
    fuck fucking fucked fucker shit shitty bitch bitches bastard asshole dick dicks cock cunt
    pussy whore slut porn porno nigga nigger fag faggot retard retarded damn crap piss pissed
    sex sexy nude naked rape raped kill killed murder suicide bomb bombs terrorist
    """
)
"""Words a misheard request must never carry to the whole street."""

_WORD = re.compile(r"[a-z]+")
_VARIANT = re.compile(r"\(\d+\)$")


@dataclass(frozen=True)
class OpenVocabulary:
    """Words an open slot may hold beyond the catalog's values, with weights summing to 1."""

    words: tuple[str, ...]
    weights: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.words)

    def as_dict(self) -> dict[str, float]:
        """Word -> weight."""
        return dict(zip(self.words, self.weights, strict=True))


def dictionary_words(path: Path) -> frozenset[str]:
    """The words of a CMU-style pronunciation dictionary (``word(2)`` variants folded)."""
    try:
        with path.open(encoding="utf-8") as lines:
            return frozenset(_VARIANT.sub("", line.split(maxsplit=1)[0]) for line in lines if line.strip())
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read the pronunciation dictionary {path}: {exc}") from exc


def is_candidate(word: str) -> bool:
    """A plain lower-case word of at least :data:`MIN_LETTERS` letters, not a stop or refused word."""
    return (
        len(word) >= MIN_LETTERS
        and _WORD.fullmatch(word) is not None
        and word not in STOP_WORDS
        and word not in REFUSED_WORDS
        and not word.endswith("ly")
    )


def broad_vocabulary(
    size: int = DEFAULT_SIZE,
    *,
    pronounceable: Callable[[str], bool] | None = None,
    exclude: Iterable[str] = (),
    exponent: float = FREQUENCY_EXPONENT,
) -> OpenVocabulary:
    """The ``size`` most frequent usable English words (see the module docstring), weighted.

    ``pronounceable`` keeps words the recognizer can say (its dictionary); ``exclude`` drops
    words the engine already models some other way (the catalog's own words).
    """
    if size <= 0:
        return OpenVocabulary((), ())
    from wordfreq import top_n_list, word_frequency

    skipped = set(exclude)
    words: list[str] = []
    for word in top_n_list("en", max(CANDIDATES, size * 4)):
        if word in skipped or not is_candidate(word):
            continue
        if pronounceable is not None and not pronounceable(word):
            continue
        skipped.add(word)
        words.append(word)
        if len(words) == size:
            break
    raw = [word_frequency(word, "en") ** exponent for word in words]
    total = sum(raw) or 1.0
    log.debug("open-slot vocabulary: %d words", len(words))
    return OpenVocabulary(tuple(words), tuple(value / total for value in raw))


def open_slots(catalog: Catalog, intent: str) -> list[str]:
    """The intent's slots whose lists are open (``values`` lists; not ``time``)."""
    return [
        slot for slot in catalog.intents[intent].slots if catalog.slot_list(intent, slot).kind == OPEN_KIND
    ]


def open_value(rng: random.Random, draw: Callable[[], str]) -> str:
    """One unknown value: a shape from :data:`SHAPES` with every ``{w}`` drawn by ``draw``."""
    shapes, weights = zip(*SHAPES, strict=True)
    shape = rng.choices(shapes, weights)[0]
    return " ".join(draw() if part == "{w}" else part for part in shape.split())


def open_patterns(catalog: Catalog, intent: str, count: int, rng: random.Random) -> list[str]:
    """``count`` of the intent's patterns with every open slot filled by ``{w}`` shapes, the
    other slots (time) filled from the catalog; ``{w}`` is left for the caller to replace."""
    slots = open_slots(catalog, intent)
    if not slots or count <= 0:
        return []
    patterns = list(catalog.intents[intent].patterns())
    result: list[str] = []
    for _ in range(count):
        pattern = rng.choice(patterns)
        for slot in slots:
            while SLOT % slot in pattern:
                pattern = pattern.replace(SLOT % slot, open_value(rng, lambda: "{w}"), 1)
        result.append(catalog.fill(intent, pattern, rng))
    return result


def open_slot_phrases(
    catalog: Catalog, vocabulary: OpenVocabulary, *, per_word: int = 1, seed: int = 0
) -> list[str]:
    """Whole phrases that put every broad word into open slots (for phrase-list grammars such
    as Vosk's): each word ``per_word`` times, in a carrier sentence of an intent with an open
    slot (taken in turn), as one of the value's words."""
    intents = [name for name in sorted(catalog.intents) if open_slots(catalog, name)]
    if not intents or not vocabulary.words:
        return []
    rng = random.Random(seed)
    phrases: list[str] = []
    index = 0
    for word in vocabulary.words:
        for _ in range(per_word):
            intent = intents[index % len(intents)]
            index += 1
            pattern = open_patterns(catalog, intent, 1, rng)[0]
            first = True

            def draw(word: str = word) -> str:
                nonlocal first
                if first:
                    first = False
                    return word
                return rng.choices(vocabulary.words, vocabulary.weights)[0]

            while "{w}" in pattern:
                pattern = pattern.replace("{w}", draw(), 1)
            phrases.append(pattern)
    return phrases


def vosk_phrases(catalog: Catalog, size: int | None = None) -> list[str]:
    """Vosk's runtime grammar: the catalog's sentences plus :func:`open_slot_phrases` of the
    broad vocabulary (``size`` words, default :data:`DEFAULT_SIZE`). Words the Vosk model
    does not know are dropped with their phrase when the grammar is built."""
    size = DEFAULT_SIZE if size is None else size
    words = broad_vocabulary(size, exclude=catalog.words())
    return catalog.sentences() + open_slot_phrases(catalog, words)
