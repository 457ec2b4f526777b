"""Training data generated from the catalog, plus "none" sentences.

Every intent gets sentences from its templates with the slots filled. Slot values are catalog
phrases most of the time and, for the open lists, values the catalog does not list (from
``data/open_values.txt``), so the slot tagger learns a slot from its place in the sentence.
Some sentences get everyday openers or closers ("um", "hi all", "thanks").

The "none" class is everyday talk (``data/negatives*.txt``) and sentences generated from
:data:`CONTRAST_TEMPLATES`: negations, narration and questions to the room that mention catalog
values ("i borrowed the ladder yesterday"), so a value alone never makes a request.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path

from voicehello.intents import templates
from voicehello.intents.catalog import Catalog
from voicehello.intents.nlu.statements import everyday_statement, statement

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
"""``voicehello/intents/data``: negatives and open slot values shipped with the package."""

NONE = "none"
"""The intent label of sentences that are not requests."""

MAX_EVERYDAY = 4000
"""Most everyday sentences used (a fixed sample of the negatives files, to keep training short)."""

CONTRASTS = 1500
"""Generated negations, narration and questions."""

STATEMENTS = 800
"""Generated problem statements per intent that takes an issue."""

ISSUE_LIST = "issues"
"""The value list of street problems (its intents also learn plain problem statements)."""

EVERYDAY_STATEMENTS = 800
"""Generated statements that report nothing ("the kettle's broken"), against the problem statements."""

OPEN_SHARE = 0.35
"""Share of slot fillers taken from values the catalog does not list."""

OPENERS = (
    "um", "uh", "so", "oh", "well", "right", "hi", "hiya", "hello", "hey", "hi all", "hi everyone",
    "hey everyone", "morning all", "evening all", "hello neighbors", "quick one", "quick question",
    "sorry to bother everyone", "hi there", "okay so", "er", "just wondering", "sorry to ask",
    "long shot but", "quick favour", "hoping someone can help", "random one but", "hi guys",
)  # fmt: skip
CLOSERS = (
    "please", "thanks", "thank you", "cheers", "ta", "thanks everyone", "if that's okay",
    "if possible", "at all", "by any chance", "thanks so much", "many thanks", "x",
    "if that's alright", "if anyone can help", "would be much appreciated", "no worries if not",
    "much appreciated", "cheers in advance", "if you can",
)  # fmt: skip
NATURAL_TIMES = (
    "this saturday afternoon", "this sunday morning", "next weekend", "this weekend", "at the weekend",
    "on the weekend", "in an hour", "in half an hour", "in twenty minutes", "in two hours",
    "at half six", "at half seven", "at half five", "at seven pm", "at six thirty", "at ten past seven",
    "at twenty to eight", "around seven", "about half past two", "tomorrow at half six",
    "saturday half six", "later today", "this evening", "on sunday at three pm", "at noon",
    "tomorrow afternoon at four", "next week", "at eight in the evening", "sunday at eleven am",
)  # fmt: skip
PEOPLE = ("dave", "sue", "next door", "the neighbors", "my sister", "mrs patel", "tom", "jo", "them", "her")
PAST_TIMES = (
    "yesterday",
    "last week",
    "last night",
    "on saturday",
    "last year",
    "a while ago",
    "earlier",
    "",
)

CONTRAST_TEMPLATES = (
    "i borrowed {a_items} from {who} {past}",
    "we borrowed {a_items} from {who} {past}",
    "{who} borrowed my {items} {past}",
    "i lent my {items} to {who} {past}",
    "{who} lent me {a_items} {past}",
    "i gave the {foods} to {who} {past}",
    "i made {foods} {past}",
    "(we|i) (picked|bought|ate|cooked|found|grew) (loads of|some|too much|far too much) {foods} {past}",
    "(we're|we are) having {foods} (for dinner|for tea|on friday|tonight|for lunch)",
    "did (someone|anyone|anybody|you) (take|move|use|see|put away) (my|the) {items}",
    "did (someone|anyone|anybody|you) (take the bin out|lock the back door|feed the cat|close the window)",
    "we ate all the {foods} {past}",
    "we had {a_events} {past}",
    "the {events} was lovely {past}",
    "we went to the {events} {past}",
    "i helped {who} {tasks} {past}",
    "{who} helped me {tasks} {past}",
    "i can't lend my {items}",
    "i can't lend you my {items}",
    "i don't have {a_items}",
    "we don't have {a_items}",
    "we don't have any {foods}",
    "i'm not lending my {items} to anyone",
    "i don't need {a_items}",
    "i don't need {a_items} anymore",
    "nobody needs {a_items}",
    "i don't want any {foods}",
    "i can't find my {items}",
    "i can't find the {items}",
    "where did the {items} go",
    "where did you put the {items}",
    "where's the {items}",
    "where is my {items}",
    "have you seen my {items}",
    "have you seen the {items}",
    "is the {items} in the shed",
    "the {items} is in the garage",
    "put the {items} back",
    "my {items} is broken",
    "the {items} doesn't work",
    "i need to buy {a_items}",
    "we should get {a_items}",
    "i'll ask {who} for {a_items}",
    "maybe we could borrow {a_items} from {who}",
    "is there any {foods} left",
    "the {foods} is in the fridge",
    "the {foods} needs more salt",
    "i'm making {foods} for dinner",
    "do you want some {foods}",
    "i need to {tasks} later",
    "i'll {tasks} tomorrow",
    "did you {tasks}",
    "i forgot to {tasks}",
    "remember to {tasks}",
    "i have to {tasks} on saturday",
    "we should {tasks} at the weekend",
    "i can {tasks} myself",
    "i don't need help to {tasks}",
    "the {events} got cancelled",
    "i'm not going to the {events}",
    "i missed the {events}",
    "they fixed the {issues} {past}",
    "the {issues} was years ago",
)  # fmt: skip


@dataclass(frozen=True)
class Example:
    """One training sentence: its words, intent and one BIO tag per word."""

    words: tuple[str, ...]
    intent: str
    tags: tuple[str, ...]


def data_files() -> list[Path]:
    """The files training reads besides the catalog (their contents go into the cache key)."""
    return [
        *sorted(DATA_DIR.glob("negatives*.txt")),
        DATA_DIR / "open_values.txt",
        DATA_DIR / "phrasings.yaml",
    ]


def phrasings(catalog: Catalog) -> dict[str, list[str]]:
    """Intent -> extra sentence patterns (``data/phrasings.yaml``) for the intents and slots
    ``catalog`` has; ``{any}`` is a catalog value that fills no slot."""
    import yaml

    raw = yaml.safe_load((DATA_DIR / "phrasings.yaml").read_text(encoding="utf-8")) or {}
    found: dict[str, list[str]] = {}
    for name, sentences in raw.items():
        intent = catalog.intents.get(name)
        if intent is None:
            continue
        for sentence in sentences:
            tree = templates.parse_template(sentence)
            if set(templates.slots(tree)) - set(intent.slots) - {"any"}:
                continue
            found.setdefault(name, []).extend(
                " ".join(token if isinstance(token, str) else f"{{{token.name}}}" for token in tokens)
                for tokens in templates.expand(tree)
            )
    return found


def _lines(path: Path) -> list[str]:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def open_values() -> dict[str, list[str]]:
    """List name -> values the catalog does not have (for training only)."""
    found: dict[str, list[str]] = {}
    for line in _lines(DATA_DIR / "open_values.txt"):
        list_name, _, value = line.partition(":")
        found.setdefault(list_name.strip(), []).append(" ".join(value.lower().split()))
    return found


def negative_sentences() -> list[str]:
    """Everyday sentences that are not requests, from every ``negatives*.txt`` file.

    A line may be ``text<TAB>...`` (extra columns are ignored)."""
    found: list[str] = []
    for path in sorted(DATA_DIR.glob("negatives*.txt")):
        found.extend(line.split("\t")[0] for line in _lines(path))
    return found


def data_fingerprint() -> str:
    """A hash of every training file and of the code that turns them into a model (so a new
    version of voicehello retrains rather than reading a model made by older code)."""
    digest = hashlib.sha256()
    code = sorted(Path(__file__).resolve().parent.glob("*.py"))
    times = Path(__file__).resolve().parent.parent / "times.py"
    for path in [*data_files(), *code, times]:
        if path.exists():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


class _Filler:
    """Picks slot values: catalog phrases or open values."""

    def __init__(self, catalog: Catalog, rng: random.Random) -> None:
        self.catalog = catalog
        self.rng = rng
        self.open = open_values()
        self.phrases = {
            name: sorted(lst.phrases) for name, lst in catalog.lists.items() if lst.kind != "time"
        }

    def value(self, list_name: str) -> str:
        slot_list = self.catalog.lists[list_name]
        if slot_list.kind == "time":
            if self.rng.random() < 0.3:
                return self.rng.choice(NATURAL_TIMES)
            tokens = templates.sample(slot_list.grammar, self.rng)
            return " ".join(token for token in tokens if isinstance(token, str))
        extra = self.open.get(list_name, [])
        if extra and self.rng.random() < OPEN_SHARE:
            return self.rng.choice(extra)
        return self.rng.choice(self.phrases[list_name])

    def any_value(self) -> str:
        """A value of any list, for ``{any}``."""
        name = self.rng.choice(sorted(self.phrases))
        return self.rng.choice(self.phrases[name])


ASKERS = frozenset({"i", "we", "someone", "somebody", "anyone", "anybody", "you"})
SOFTENERS = (
    "i was wondering if {who} could", "i was just wondering if {who} could", "i was hoping {who} could",
    "do you think {who} could", "would it be okay if {who} could", "is there any chance {who} could",
    "i wonder if {who} could", "i'm hoping {who} can", "just wondering if {who} could",
)  # fmt: skip
"""Indirect ways into a request: "can i borrow ..." -> "i was wondering if i could borrow ..."."""
SOFTENED_ME = ("i was hoping to", "i'd love to", "i'm hoping to", "i'd like to", "i'm looking to")
"""Ways into a request of one's own: "can i borrow ..." -> "i was hoping to borrow ..."."""
MODALS = frozenset({"can", "could", "may", "would", "will"})
HELP_NOUNS = frozenset({"hand", "help"})
"""Words after which a task is often a gerund ("a hand moving a wardrobe")."""


def gerund(verb: str) -> str:
    """ "move" -> "moving", "put" -> "putting", "fix" -> "fixing" (a small spelling rule, for
    generating training sentences only)."""
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")) and len(verb) > 2:
        return verb[:-1] + "ing"
    vowels = "aeiou"
    if (
        len(verb) <= 4
        and len(verb) >= 3
        and verb[-1] not in vowels + "wxy"
        and verb[-2] in vowels
        and verb[-3] not in vowels
    ):
        return verb + verb[-1] + "ing"
    return verb + "ing"


def _soften(words: list[str], tags: list[str], rng: random.Random) -> tuple[list[str], list[str]]:
    """Sometimes turn "can i/someone ..." into an indirect request."""
    if len(words) < 3 or words[0] not in MODALS or words[1] not in ASKERS or rng.random() >= 0.3:
        return words, tags
    who, rest, rest_tags = words[1], words[2:], tags[2:]
    if who == "i" and rng.random() < 0.4:
        lead = rng.choice(SOFTENED_ME).split()
    else:
        lead = rng.choice(SOFTENERS).replace("{who}", who).split()
    return lead + rest, ["O"] * len(lead) + rest_tags


def _gerunds(words: list[str], tags: list[str], rng: random.Random) -> list[str]:
    """Sometimes say a task after "a hand" / "help" as a gerund ("a hand moving a wardrobe")."""
    out = list(words)
    for position, tag in enumerate(tags):
        if tag == "B-task" and position and out[position - 1] in HELP_NOUNS and rng.random() < 0.6:
            out[position] = gerund(out[position])
    return out


def _decorate(words: list[str], tags: list[str], rng: random.Random) -> tuple[list[str], list[str]]:
    """Sometimes soften the request, say a task as a gerund, add an opener or a closer ("um", "thanks")."""
    words, tags = _soften(words, tags, rng)
    words = _gerunds(words, tags, rng)
    if rng.random() < 0.2:
        opener = rng.choice(OPENERS).split()
        words, tags = opener + words, ["O"] * len(opener) + tags
    if rng.random() < 0.2:
        closer = rng.choice(CLOSERS).split()
        words, tags = words + closer, tags + ["O"] * len(closer)
    return words, tags


def _fill(pattern: str, slots: dict[str, str], filler: _Filler) -> tuple[list[str], list[str]]:
    words: list[str] = []
    tags: list[str] = []
    for token in pattern.split():
        match = re.fullmatch(r"\{(\w+)\}", token)
        if match is None:
            words.append(token)
            tags.append("O")
            continue
        slot = match.group(1)
        if slot not in slots:
            value = filler.any_value().split()
            words.extend(value)
            tags.extend(["O"] * len(value))
            continue
        value = filler.value(slots[slot]).split()
        words.extend(value)
        tags.extend([f"B-{slot}"] + [f"I-{slot}"] * (len(value) - 1))
    return words, tags


def intent_examples(catalog: Catalog, per_intent: int, rng: random.Random) -> list[Example]:
    """Sentences of every intent, slots filled, at most ``per_intent`` each (every pattern at
    least once while that fits)."""
    filler = _Filler(catalog, rng)
    extra = phrasings(catalog)
    examples: list[Example] = []
    for intent in catalog.intents.values():
        patterns = list(intent.patterns())
        rng.shuffle(patterns)
        own = extra.get(intent.name, [])
        count = (
            max(per_intent, 1) if intent.slots else min(per_intent, max((len(patterns) + len(own)) * 2, 300))
        )
        for index in range(count):
            if own and index % 2:
                pattern = own[(index // 2) % len(own)] if index < 2 * len(own) else rng.choice(own)
            else:
                pattern = patterns[(index // 2) % len(patterns)]
            words, tags = _fill(pattern, intent.slots, filler)
            words, tags = _decorate(words, tags, rng)
            examples.append(Example(tuple(words), intent.name, tuple(tags)))
    return examples


def _a(value: str) -> str:
    return ("an " if value[:1] in "aeiou" else "a ") + value


def _lists_of(template: str) -> set[str]:
    keys = set(re.findall(r"\{(\w+)\}", template)) - {"who", "past"}
    return {key[2:] if key.startswith("a_") else key for key in keys}


def contrast_examples(catalog: Catalog, count: int, rng: random.Random) -> list[Example]:
    """Negations, narration and questions that mention catalog values: "none"."""
    filler = _Filler(catalog, rng)
    usable = [template for template in CONTRAST_TEMPLATES if _lists_of(template) <= set(catalog.lists)]
    examples: list[Example] = []
    for index in range(count if usable else 0):
        template = usable[index % len(usable)]

        def fill(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "who":
                return rng.choice(PEOPLE)
            if key == "past":
                return rng.choice(PAST_TIMES)
            article = key.startswith("a_")
            name = key[2:] if article else key
            value = filler.value(name)
            return _a(value) if article else value

        text = re.sub(r"\{(\w+)\}", fill, template)
        text = re.sub(r"\(([^()]*)\)", lambda m: rng.choice(m.group(1).split("|")), text)
        words = text.split()
        examples.append(Example(tuple(words), NONE, ("O",) * len(words)))
    return examples


def none_examples(catalog: Catalog, rng: random.Random) -> list[Example]:
    """Every "none" sentence: the negatives files and the contrast sentences."""
    from voicehello.intents.parser import normalize

    examples = []
    for sentence in negative_sentences():
        words = normalize(sentence).split()
        if words:
            examples.append(Example(tuple(words), NONE, ("O",) * len(words)))
    if len(examples) > MAX_EVERYDAY:
        examples = random.Random(len(examples)).sample(examples, MAX_EVERYDAY)
    if any(ISSUE_LIST in intent.slots.values() for intent in catalog.intents.values()):
        for _ in range(EVERYDAY_STATEMENTS):
            words = everyday_statement(rng)
            examples.append(Example(tuple(words), NONE, ("O",) * len(words)))
    return examples + contrast_examples(catalog, CONTRASTS, rng)


def statement_examples(catalog: Catalog, count: int, rng: random.Random) -> list[Example]:
    """Problem statements ("the road hasn't been gritted") for each intent with a slot of the
    :data:`ISSUE_LIST` list (:mod:`voicehello.intents.nlu.statements`)."""
    examples: list[Example] = []
    for intent in catalog.intents.values():
        for slot, list_name in intent.slots.items():
            if list_name != ISSUE_LIST:
                continue
            for _ in range(count):
                words, tags = statement(slot, rng)
                examples.append(Example(tuple(words), intent.name, tuple(tags)))
    return examples


def training_examples(catalog: Catalog, per_intent: int = 1200, seed: int = 7) -> list[Example]:
    """Everything the model is trained on (deterministic for a catalog, data files and seed)."""
    rng = random.Random(seed)
    return (
        intent_examples(catalog, per_intent, rng)
        + statement_examples(catalog, STATEMENTS, rng)
        + none_examples(catalog, rng)
    )
