"""Messages -> the one short sentence a neighbor hears, and the read-back before sending.

``announcement`` puts the sender's display name in front of the intent's ``announce`` phrase
from the catalog ("Maya at number 12" + "asks to borrow {item}"), with each slot's canonical
value (listed or open) spoken the way its list says (``spoken_as`` in the catalog):

* ``noun`` values get the article they need: ``a``/``an`` by sound ("a ladder", "an old sofa",
  "a cup of sugar"); mass nouns (:data:`MASS_NOUNS`, and gerunds like "fly tipping") and plurals
  (a head word ending in ``s``, except the singular words in :data:`SINGULAR_S`) get the list's
  ``mass_article`` ("some courgettes"; "reports flooding"; "invites you to the fireworks");
* ``verb`` values are verb phrases ("move a wardrobe"; ``{task:to}``: "to move a wardrobe"); a
  value that names no verb is spoken with "with" ("with the garden", "with moving a wardrobe");
* ``noun_or_statement`` values may be statements ("bin wasn't collected"): spoken as a clause,
  "that the bin wasn't collected" (and "report of {issue}" becomes "report that ...");
* times are spoken as times ("tonight at seven"); a value that already starts with a
  determiner ("my", "the", a number ...) keeps it.

The head word of a noun phrase is the word before its first preposition or participle ("cup" in
"cup of sugar", "fox" in "fox going through the bins"), else its last word.

Replies are phrased relative to the message they answer ("Sam can lend you a ladder": the
answered intent's ``replies``, chosen by the reply intent's ``means``), cancellations relative
to the message they take back ("Maya no longer needs a ladder": its ``cancelled``), read-backs
by the intent's ``readback``. No intent name appears in this module: all of it is the catalog's.

Every slot value must follow the slot value rule (:mod:`voicehello.intents.slot_values`: a
short phrase of letters, no sentence punctuation, no authority, alarm or order words). Messages
breaking it never get here from the bus (the message check drops them); :func:`announcement`
refuses them too (returns None), so no code path speaks a value that breaks it, and no path
speaks a raw value or a message's ``text`` alone: every sentence is the sender's name followed
by a phrase of the catalog or of this module.

Everything that comes from the bus goes through :func:`clean_text` first: the result holds
only words and ordinary punctuation, never control characters or markup a TTS engine acts on.
"""

from __future__ import annotations

import logging
import re
from typing import Literal, cast, get_args

from voicehello.bus.messages import ANSWERS, Message
from voicehello.cleaning import clean_text
from voicehello.intents.catalog import Catalog, SlotList
from voicehello.intents.slot_values import MAX_CHARS, violation
from voicehello.intents.times import HOURS, WEEKDAYS

log = logging.getLogger(__name__)

Form = Literal["indef", "the", "your", "any", "bare", "share", "to"]
"""How a slot is asked for in a phrase template (the catalog's ``FORMS``): "a ladder", "the
ladder", "your ladder", "any soup", "soup", "soup"/"a pie", "to move a couch"."""

MAX_NAME_CHARS = 60
"""Longest display name spoken (the message schema's limit)."""
MAX_VALUE_CHARS = MAX_CHARS
"""Longest slot value spoken (the slot value rule's limit, also the message schema's)."""
DEFAULT_NAME = "A neighbor"
"""Spoken when a display name is empty after cleaning."""

MASS_NOUNS: frozenset[str] = frozenset(
    {
        # pantry and drinks
        "sugar", "flour", "milk", "butter", "soda", "powder", "extract", "oil", "yeast", "coffee",
        "tea", "rice", "salt", "pepper", "water", "juice", "lemonade", "honey", "jam", "salsa",
        "cheese", "chocolate", "propane", "firewood", "mulch", "compost", "soil", "sand", "paint",
        # cooked food shared by the portion
        "soup", "chili", "stew", "lasagna", "curry", "pasta", "salad", "bread", "cornbread", "pizza",
        "cake", "pie", "quiche", "casserole", "rhubarb", "lettuce", "kale", "corn", "zucchini",
        "squash", "broccoli", "spinach", "food",
        # things that happen, issues
        "flooding", "smoke", "graffiti", "vandalism", "dumping", "theft", "glass", "music", "ice",
        "traffic", "noise", "trash", "garbage", "litter", "treating", "furniture", "equipment",
        "help", "news", "rubbish", "waste", "mud", "snow", "sewage", "rubble", "debris", "gravel",
        "diesel", "petrol", "mess", "electricity", "wifi", "asbestos", "weedkiller",
        # more pantry, cooked food and materials
        "paper", "tape", "wood", "foil", "wine", "beer", "fruit", "jelly", "chutney", "dal",
        "biryani", "hummus", "pesto", "gravy", "custard", "porridge", "fudge", "toffee", "granola",
        "mince", "stuffing", "string", "twine", "glue", "cement", "grout", "bedding", "clothing",
        "fabric", "wool", "polish", "bleach", "detergent", "fertilizer", "seed", "grass",
    }
)  # fmt: skip
"""Head words that take "some" (or nothing), never "a"/"an"."""

SINGULAR_S: frozenset[str] = frozenset(
    {"gas", "bus", "canvas", "lens", "news", "series", "species", "chassis", "atlas", "iris", "yes"}
)
"""Words ending in ``s`` that are not plurals (besides those ending in -ss, -us or -is)."""

COUNTABLE_ING: frozenset[str] = frozenset(
    {"building", "ceiling", "railing", "awning", "wedding", "meeting", "pudding", "painting",
     "evening", "morning", "offering", "crossing", "earring", "spring", "sibling", "seedling",
     "gathering", "screening", "reading", "opening", "housewarming", "christening", "viewing",
     "duckling", "stocking", "dumpling", "sapling", "fitting", "cutting", "drawing", "recording"}
)  # fmt: skip
"""Nouns ending in -ing that are countable ("a housewarming"); other -ing heads are mass ("fly tipping")."""

DETERMINERS: frozenset[str] = frozenset(
    {"a", "an", "the", "some", "any", "my", "your", "our", "his", "her", "their", "its", "this",
     "that", "these", "those", "one", "two", "three", "four", "five", "six", "seven", "eight",
     "nine", "ten", "twelve", "a few", "several", "no"}
)  # fmt: skip
"""A value that starts with one of these keeps its own determiner."""

SUBJECTS_WITHOUT_ARTICLE: frozenset[str] = frozenset(
    {"someone", "somebody", "something", "anyone", "anybody", "nobody", "nothing", "everyone",
     "everybody", "everything", "there", "it", "they", "we", "i", "he", "she", "you", "people",
     "no", "nobody's", "all", "both", "each", "every", "half", "most", "none"}
)  # fmt: skip
"""Words that start a statement's subject without "the" ("that someone's dumped a mattress")."""

FINITE_VERBS: frozenset[str] = frozenset(
    {"is", "are", "was", "were", "isn't", "aren't", "wasn't", "weren't", "has", "have", "had",
     "hasn't", "haven't", "hadn't", "been", "keeps", "won't", "can't", "cannot", "doesn't",
     "don't", "didn't", "does", "did", "will", "smells", "looks", "seems", "sounds", "needs",
     "went", "fell", "broke", "came", "got", "stopped", "started"}
)  # fmt: skip
"""Words that make a value a statement ("bin wasn't collected", "tap water smells funny")."""

AFTER_CONTRACTED_IS: frozenset[str] = frozenset(
    {"been", "got", "gone", "out", "down", "off", "not", "really", "still", "just", "broken",
     "left", "come", "fallen", "blocked", "flooded", "stopped", "started", "back", "on", "over",
     "up", "missing", "open", "closed", "dead", "a", "an", "the", "very", "so", "too", "all"}
)  # fmt: skip
"""After "X's", these words make the 's a verb ("power's gone off"), not a possessive ("Sam's dog")."""

COMPOUND_GERUNDS: frozenset[str] = frozenset(
    {"fly tipping", "carol singing", "wine tasting", "line dancing", "bird watching", "dog walking",
     "litter picking", "car washing", "speed dating", "face painting", "apple picking"}
)  # fmt: skip
"""Two words that name one thing, although the second ends in -ing ("some fly tipping")."""

VERB_PREPOSITIONS: frozenset[str] = frozenset({"with", "for"})
"""A verb-list value starting with one of these is spoken as it is ("help with the garden")."""

_PREPOSITIONS = frozenset(
    {"of", "on", "in", "with", "for", "from", "at", "by", "over", "under", "near", "outside", "behind",
     "across", "around", "round", "through", "along", "into", "onto", "beside", "between", "inside",
     "all", "down", "up", "off"}
)  # fmt: skip
"""Words that end a noun phrase's head ("glass all over the pavement", "walk round the lake")."""
_AN_BEFORE = ("hour", "honest", "honor", "honour", "heir", "herb")
_A_BEFORE = ("one", "once", "uni", "use", "usu", "uti", "eu", "ewe")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")

# ----------------------------------------------------------------------------- articles


def _head(words: list[str]) -> str:
    """The word that decides the article: the one before the first preposition or participle
    ("fox going through the bins", "car parked across the drive"), else the last."""
    for index, word in enumerate(words[1:], start=1):
        participle = (
            index < len(words) - 1
            and len(word) > 4
            and word.endswith(("ing", "ed"))
            and f"{words[index - 1]} {word}" not in COMPOUND_GERUNDS
        )
        if word in _PREPOSITIONS or participle:
            return words[index - 1]
    return words[-1]


def _is_gerund(word: str) -> bool:
    """A mass -ing noun ("fly tipping", "flooding", "bedding"), not "a building"."""
    return len(word) > 5 and word.endswith("ing") and word not in COUNTABLE_ING


def _is_plural(word: str) -> bool:
    if word in SINGULAR_S or len(word) <= 3 or not word.endswith("s"):
        return False
    return not word.endswith(("ss", "us", "is"))


def is_mass_or_plural(value: str) -> bool:
    """True when ``value`` takes "some" rather than "a"/"an" ("eggs", "flour", "cup of sugar" is not)."""
    words = value.lower().split()
    if not words:
        return False
    head = _head(words)
    return head in MASS_NOUNS or _is_plural(head) or _is_gerund(head)


def a_or_an(word: str) -> str:
    """``a`` or ``an`` for the sound ``word`` starts with."""
    lower = word.lower()
    if lower.startswith(_AN_BEFORE):
        return "an"
    if lower.startswith(_A_BEFORE):
        return "a"
    if lower[:1].isdigit():
        return "an" if lower.startswith(("8", "11", "18")) else "a"
    return "an" if lower[:1] in ("a", "e", "i", "o", "u") else "a"


def _has_determiner(value: str) -> bool:
    lower = value.lower()
    return lower[:1].isdigit() or any(lower == d or lower.startswith(d + " ") for d in DETERMINERS)


def determine(value: str, form: Form = "indef", mass_article: str = "some") -> str:
    """``value`` with the determiner ``form`` asks for ("a ladder", "some eggs", "the soup");
    ``mass_article`` is the article of mass and plural values for ``indef`` ("" for none)."""
    if not value or _has_determiner(value) or form == "bare":
        return value
    if form == "the":
        return f"the {value}"
    if form == "your":
        return f"your {value}"
    mass = is_mass_or_plural(value)
    if form == "any":
        return f"any {value}" if mass else f"{a_or_an(value)} {value}"
    if mass:
        return value if form == "share" else f"{mass_article} {value}".strip()
    return f"{a_or_an(value)} {value}"


def is_statement(value: str) -> bool:
    """True when ``value`` says something happened or is so ("bin wasn't collected", "power's
    gone off", "streetlight keeps flickering"), rather than naming a thing ("broken glass")."""
    words = value.lower().split()
    for index, word in enumerate(words):
        if index > 0 and (word in FINITE_VERBS or word.endswith(("'re", "'ve", "'ll"))):
            return True
        if word.endswith("'s") and index + 1 < len(words):
            following = words[index + 1]
            if following in AFTER_CONTRACTED_IS or following.endswith(("ed", "en")):
                return True
    return False


def as_clause(statement: str) -> str:
    """A statement as a "that" clause, its subject given "the" when it has no determiner:
    "bin wasn't collected" -> "that the bin wasn't collected"."""
    first = statement.split(maxsplit=1)[0].lower()
    bare = first.removesuffix("'s")
    if _has_determiner(statement) or bare in SUBJECTS_WITHOUT_ARTICLE or first in SUBJECTS_WITHOUT_ARTICLE:
        return f"that {statement}"
    return f"that the {statement}"


def verb_phrase(value: str, form: Form = "indef") -> str:
    """A verb-list value after "help": "move a couch" (``to`` form: "to move a couch"), "with
    the garden" as it is; a value naming no verb ("moving a wardrobe", "the garden") gets "with"."""
    words = value.lower().split()
    if not words or words[0] in VERB_PREPOSITIONS:
        return value
    if _has_determiner(value) or (len(words[0]) > 4 and words[0].endswith("ing")):
        return f"with {value}"
    return f"to {value}" if form == "to" else value


def spoken_time(value: str) -> str:
    """A canonical time as it is said: "tonight at 7:00" -> "tonight at seven",
    "saturday at 2:30" -> "on saturday at half past two"."""
    words = [_spoken_clock(word) for word in value.split()]
    if words and words[0].lower() in WEEKDAYS:
        words.insert(0, "on")
    return " ".join(words)


def _spoken_clock(word: str) -> str:
    match = _CLOCK.match(word)
    if match is None:
        return word
    hour, minute = int(match.group(1)), int(match.group(2))
    if minute == 0 and hour in (0, 24):
        return "midnight"
    if minute == 0 and hour == 12:
        return "noon"
    if not 0 <= hour <= 23 or minute not in (0, 15, 30, 45):
        return word
    name = HOURS[(hour - 1) % 12]
    if minute == 0:
        return name
    if minute == 15:
        return f"quarter past {name}"
    if minute == 30:
        return f"half past {name}"
    return f"quarter to {HOURS[hour % 12]}"


# ----------------------------------------------------------------------------- filling


def _slot_list(catalog: Catalog, intent: str, slot: str) -> SlotList | None:
    entry = catalog.intents.get(intent)
    return None if entry is None else catalog.lists.get(entry.slots.get(slot, ""))


def _render_slot(catalog: Catalog, intent: str, slot: str, value: str, form: Form) -> tuple[str, bool]:
    """One slot value, cleaned and spoken the way its list says; and whether it became a clause."""
    clean = clean_text(value, MAX_VALUE_CHARS)
    slot_list = _slot_list(catalog, intent, slot)
    if slot_list is None:
        return determine(clean, form), False
    if slot_list.kind == "time":
        return spoken_time(clean), False
    if slot_list.spoken_as == "verb":
        return verb_phrase(clean, form), False
    if slot_list.spoken_as == "noun_or_statement" and is_statement(clean):
        return as_clause(clean), True
    return determine(clean, form, slot_list.mass_article), False


def _optional(catalog: Catalog, intent: str, slot: str) -> bool:
    """Only time slots may be left unfilled."""
    slot_list = _slot_list(catalog, intent, slot)
    return slot_list is None or slot_list.kind == "time"


def _form(name: str | None) -> Form:
    for form in get_args(Form):
        if name == form:
            return cast(Form, form)
    return "indef"


_FILLED = re.compile(r"(?:\b(of|about) )?\{(\w+)(?::(\w+))?\}")
"""A placeholder, with the preposition before it (left out before a "that" clause)."""


def fill(
    template: str, intent: str, slots: dict[str, str], catalog: Catalog, *, strict: bool = True
) -> str | None:
    """``template`` with every ``{slot}`` or ``{slot:form}`` replaced by the slot of ``intent``.

    A statement value becomes a "that" clause, and an "of" or "about" just before it is left
    out ("their report that the bin wasn't collected"). An unfilled optional slot is dropped with the space before it. An unfilled required slot
    makes the result None when ``strict``, else it is dropped too.
    """
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        preposition, slot = match.group(1), match.group(2)
        value = slots.get(slot, "")
        rendered, clause = (
            _render_slot(catalog, intent, slot, value, _form(match.group(3))) if value else ("", False)
        )
        if not rendered and not _optional(catalog, intent, slot):
            missing.append(slot)
        return rendered if clause or not preposition else f"{preposition} {rendered}"

    text = _FILLED.sub(replace, template)
    if missing and strict:
        log.debug("intent %s lacks slot(s) %s; not phrased", intent, ", ".join(missing))
        return None
    return " ".join(text.split()).replace(" ?", "?")


# ----------------------------------------------------------------------------- announcements

CANCELLED_FALLBACK = "cancelled their message"
ANSWER_CANCELLED = "has taken back their answer"


def speaker_name(message: Message) -> str:
    """The sender's display name, cleaned (``A neighbor`` when nothing is left)."""
    return clean_text(message.sender.name, MAX_NAME_CHARS) or DEFAULT_NAME


def _sentence(name: str, phrase: str) -> str:
    text = " ".join(f"{name} {phrase}".split())
    return text[:1].upper() + text[1:]


def announcement(message: Message, catalog: Catalog, answered: Message | None = None) -> str | None:
    """What a neighbor's device says for ``message``; None for intents not in the catalog
    (never spoken) or messages lacking a required slot.

    ``answered`` is the message a reply answers (one this device sent) or the message a
    cancellation takes back; without it, replies and cancellations get a generic phrase.
    """
    intent = catalog.intents.get(message.intent)
    if intent is None:
        log.debug("intent %r is not in the catalog; not phrased", message.intent)
        return None
    if answered is not None and message.in_reply_to != answered.id:
        log.debug("message %s does not answer %s; phrased on its own", message.id, answered.id)
        answered = None
    if not _request_shaped(message) or (answered is not None and not _request_shaped(answered)):
        return None
    name = speaker_name(message)
    if message.kind == "cancel":
        return _sentence(name, _cancellation(message, catalog, answered))
    phrase = _reply(message, catalog, answered) if message.kind == "reply" else None
    if phrase is None:
        phrase = fill(intent.announce, message.intent, message.slots, catalog)
    return None if phrase is None else _sentence(name, phrase)


def _request_shaped(message: Message) -> bool:
    """True when every slot of ``message`` follows the slot value rule; else one log line naming
    the slot and the rule broken (never the value)."""
    for slot, value in message.slots.items():
        broken = violation(slot, value)
        if broken is not None:
            log.warning("message %s not phrased: slot %s %s", message.id[:8], slot[:40], broken)
            return False
    return True


def in_pod(sentence: str, pod_name: str | None) -> str:
    """``sentence`` introduced by the pod it was said in ("Block party: Sam ..."), for pods other
    than the device's default one; unchanged for ``None``."""
    if not pod_name:
        return sentence
    spoken = " ".join(pod_name.replace("-", " ").split())
    return f"{spoken[:1].upper()}{spoken[1:]}: {sentence}"


def _reply(message: Message, catalog: Catalog, answered: Message | None) -> str | None:
    """A reply phrased against the message it answers (the answered intent's ``replies`` phrase
    for what the reply ``means``), or None to use the reply intent's own phrase."""
    reply = catalog.intents.get(message.intent)
    original = None if answered is None else catalog.intents.get(answered.intent)
    if answered is None or original is None or reply is None or reply.means is None:
        return None
    template = original.replies.get(reply.means)
    if template is None:
        return None
    return fill(template, answered.intent, answered.slots, catalog)


def _cancellation(message: Message, catalog: Catalog, answered: Message | None) -> str:
    """A cancellation phrased against the message it takes back."""
    if answered is None or answered.sender.device != message.sender.device:
        return CANCELLED_FALLBACK
    if answered.kind in ANSWERS:
        return ANSWER_CANCELLED
    original = catalog.intents.get(answered.intent)
    template = None if original is None else original.cancelled
    if template is None:
        return CANCELLED_FALLBACK
    return fill(template, answered.intent, answered.slots, catalog) or CANCELLED_FALLBACK


# ----------------------------------------------------------------------------- read-back


def readback(intent: str, slots: dict[str, str], catalog: Catalog) -> str | None:
    """The question this device asks before sending ``intent`` (its ``readback``, else "Send to
    your neighbors: <announce>?"); None for answers and intents not in the catalog (they are
    sent without a read-back)."""
    entry = catalog.intents.get(intent)
    if entry is None or entry.is_answer:
        return None
    if entry.readback is None:
        phrase = fill(entry.announce, intent, slots, catalog, strict=False)
        return f"Send to your neighbors: {phrase}?"
    return fill(entry.readback, intent, slots, catalog, strict=False)


def choice_question(first: str, second: str, catalog: Catalog) -> str | None:
    """ "Did you want to borrow or to lend?" for two close intents, from their ``choice``
    phrases; None when either has none (then nothing is asked)."""
    names = [catalog.intents[name].choice if name in catalog.intents else None for name in (first, second)]
    if names[0] is None or names[1] is None or names[0] == names[1]:
        return None
    return f"Did you want {names[0]} or {names[1]}?"
