"""Messages -> the one short sentence a neighbor hears, and the read-back before sending.

``announcement`` puts the sender's display name in front of the intent's ``announce`` phrase
from the catalog ("Maya at number 12" + "asks to borrow {item}"), with each slot's canonical
value given the article it needs:

* countable nouns get ``a``/``an`` by sound ("a ladder", "an iron", "a cup of sugar");
* mass nouns (:data:`MASS_NOUNS`) and plurals (a head word ending in ``s``, except the
  singular words in :data:`SINGULAR_S`) get ``some`` ("some eggs", "some flour") — or no article
  for issues ("reports flooding") and ``the`` for events ("invites you to the fireworks");
* values of :data:`PHRASE_LISTS` (tasks: "move a couch") and times are spoken as they are;
  a value that already starts with a determiner ("my", "the", a number ...) is left alone.

The head word of a value is the word before its first preposition ("cup" in "cup of sugar"),
else its last word.

Replies are phrased relative to the message they answer ("Sam can lend you a ladder"),
cancellations relative to the message they take back ("Maya no longer needs a ladder").

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
import unicodedata
from typing import Literal, cast, get_args

from voicehello.bus.messages import ANSWERS, KIND_OF_INTENT, Message
from voicehello.intents.catalog import Catalog
from voicehello.intents.slot_values import MAX_CHARS, violation
from voicehello.intents.times import HOURS, WEEKDAYS

log = logging.getLogger(__name__)

Form = Literal["indef", "the", "your", "any", "bare"]
"""How a noun slot is determined: "a ladder", "the ladder", "your ladder", "any soup", "soup"."""

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
        "help", "news",
    }
)  # fmt: skip
"""Head words that take "some" (or nothing), never "a"/"an"."""

SINGULAR_S: frozenset[str] = frozenset(
    {"gas", "bus", "canvas", "lens", "news", "series", "species", "chassis", "atlas", "iris", "yes"}
)
"""Words ending in ``s`` that are not plurals (besides those ending in -ss, -us or -is)."""

PHRASE_LISTS: frozenset[str] = frozenset({"tasks"})
"""Lists whose values are whole phrases ("move a couch"), spoken without an article."""

MASS_DETERMINER: dict[str, str] = {"issues": "", "events": "the"}
"""The indefinite determiner of mass and plural values, by list ("some" for any other list)."""

DETERMINERS: frozenset[str] = frozenset(
    {"a", "an", "the", "some", "any", "my", "your", "our", "his", "her", "their", "its", "this",
     "that", "these", "those", "one", "two", "three", "four", "five", "six", "seven", "eight",
     "nine", "ten", "twelve", "a few", "several", "no"}
)  # fmt: skip
"""A value that starts with one of these keeps its own determiner."""

_PREPOSITIONS = frozenset({"of", "on", "in", "with", "for", "from", "at", "by"})
_AN_BEFORE = ("hour", "honest", "honor", "honour", "heir", "herb")
_A_BEFORE = ("one", "once", "uni", "use", "usu", "uti", "eu", "ewe")
_MARKUP = str.maketrans(dict.fromkeys("<>[]{}\\", " "))
_PLACEHOLDER = re.compile(r"\{(\w+)(?::(\w+))?\}")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")

# ----------------------------------------------------------------------------- cleaning


def clean_text(text: str, max_chars: int) -> str:
    """``text`` safe to speak: NFKC, no control/format characters (Unicode C*) or markup
    characters (``< > [ ] { } \\``), whitespace collapsed, cut at a word boundary to ``max_chars``."""
    normalized = unicodedata.normalize("NFKC", text).translate(_MARKUP)
    kept = "".join(
        " " if char.isspace() else char for char in normalized if char.isspace() or not _is_control(char)
    )
    return _cut(" ".join(kept.split()), max_chars)


def _is_control(char: str) -> bool:
    return unicodedata.category(char).startswith("C")


def _cut(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` at the last word boundary (mid-word only when one
    word is longer than that)."""
    if max_chars <= 0:
        return ""
    if len(text) <= max_chars:
        return text
    head = text[: max_chars + 1]
    space = head.rfind(" ")
    cut = head[:space] if space > 0 else text[:max_chars]
    return cut.rstrip(" ,;:-")


# ----------------------------------------------------------------------------- articles


def _head(words: list[str]) -> str:
    """The word that decides the article: the one before the first preposition, else the last."""
    for index, word in enumerate(words[1:], start=1):
        if word in _PREPOSITIONS:
            return words[index - 1]
    return words[-1]


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
    return head in MASS_NOUNS or _is_plural(head)


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


def determine(value: str, form: Form = "indef", list_name: str = "") -> str:
    """``value`` with the determiner ``form`` asks for ("a ladder", "some eggs", "the soup")."""
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
        determiner = MASS_DETERMINER.get(list_name, "some")
        return f"{determiner} {value}".strip()
    return f"{a_or_an(value)} {value}"


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


def _render_slot(catalog: Catalog, intent: str, slot: str, value: str, form: Form) -> str:
    """One slot value, cleaned and determined for the list it comes from."""
    clean = clean_text(value, MAX_VALUE_CHARS)
    slot_list = catalog.lists.get(catalog.intents[intent].slots.get(slot, ""))
    if slot_list is None:
        return determine(clean, form)
    if slot_list.kind == "time":
        return spoken_time(clean)
    if slot_list.name in PHRASE_LISTS:
        return clean
    return determine(clean, form, slot_list.name)


def _optional(catalog: Catalog, intent: str, slot: str) -> bool:
    """Only time slots may be left unfilled."""
    slot_list = catalog.lists.get(catalog.intents[intent].slots.get(slot, ""))
    return slot_list is None or slot_list.kind == "time"


def _form(name: str | None) -> Form:
    for form in get_args(Form):
        if name == form:
            return cast(Form, form)
    return "indef"


def fill(
    template: str, intent: str, slots: dict[str, str], catalog: Catalog, *, strict: bool = True
) -> str | None:
    """``template`` with every ``{slot}`` or ``{slot:form}`` replaced by the slot of ``intent``.

    An unfilled optional slot is dropped with the space before it. An unfilled required slot
    makes the result None when ``strict``, else it is dropped too.
    """
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        slot, value = match.group(1), slots.get(match.group(1), "")
        rendered = _render_slot(catalog, intent, slot, value, _form(match.group(2))) if value else ""
        if not rendered and not _optional(catalog, intent, slot):
            missing.append(slot)
        return rendered

    text = _PLACEHOLDER.sub(replace, template)
    if missing and strict:
        log.debug("intent %s lacks slot(s) %s; not phrased", intent, ", ".join(missing))
        return None
    return " ".join(text.split()).replace(" ?", "?")


# ----------------------------------------------------------------------------- announcements

_REPLIES: dict[tuple[str, bool], str] = {
    ("borrow_item", True): "can lend you {item}",
    ("borrow_item", False): "can't lend you {item}",
    ("ask_help", True): "can help you {task}",
    ("ask_help", False): "can't help you {task}",
    ("announce_event", True): "is coming to {event:the}",
    ("announce_event", False): "can't make it to {event:the}",
    ("offer_item", True): "would like {item:your}",
    ("offer_item", False): "doesn't need {item:your}",
    ("share_food", True): "would love {item}",
    ("share_food", False): "doesn't need {item:any}",
    ("say_hello", True): "says hello back",
    ("report_issue", True): "has noticed {issue:the} too",
    ("report_issue", False): "hasn't noticed {issue:the}",
}
"""(answered intent, yes?) -> what the neighbor's answer means, after their name."""

_YES = {"reply_yes": True, "rsvp": True, "reply_no": False}

_CANCELLATIONS: dict[str, str] = {
    "borrow_item": "no longer needs {item:any}",
    "ask_help": "no longer needs help to {task}",
    "announce_event": "has cancelled {event:the}",
    "offer_item": "no longer has {item:any} to lend",
    "share_food": "no longer has {item:any} to share",
    "say_hello": "takes back their hello",
    "report_issue": "has withdrawn their report of {issue:the}",
}
"""Cancelled intent -> what the cancellation means, after the sender's name."""

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
    """A reply phrased against the message it answers, or None to use the intent's own phrase."""
    yes = _YES.get(message.intent)
    if answered is None or yes is None or answered.intent not in catalog.intents:
        return None
    template = _REPLIES.get((answered.intent, yes))
    if template is None:
        return None
    return fill(template, answered.intent, answered.slots, catalog)


def _cancellation(message: Message, catalog: Catalog, answered: Message | None) -> str:
    """A cancellation phrased against the message it takes back."""
    if answered is None or answered.sender.device != message.sender.device:
        return CANCELLED_FALLBACK
    if answered.kind in ANSWERS:
        return ANSWER_CANCELLED
    template = _CANCELLATIONS.get(answered.intent)
    if template is None or answered.intent not in catalog.intents:
        return CANCELLED_FALLBACK
    return fill(template, answered.intent, answered.slots, catalog) or CANCELLED_FALLBACK


# ----------------------------------------------------------------------------- read-back

_READBACKS: dict[str, str] = {
    "borrow_item": "Ask your neighbors to borrow {item}?",
    "say_hello": "Tell your neighbors hello?",
    "announce_event": "Invite your neighbors to {event} {time}?",
    "ask_help": "Ask your neighbors for help to {task}?",
    "offer_item": "Offer your neighbors {item}?",
    "share_food": "Share {item:share} with your neighbors?",
    "report_issue": "Report {issue:share} to your neighbors?",
}
"""Intent -> the question read back before sending (``share``: no article for mass nouns)."""


def readback(intent: str, slots: dict[str, str], catalog: Catalog) -> str | None:
    """The question this device asks before sending ``intent``; None for replies,
    cancellations and intents not in the catalog (they are sent without a read-back)."""
    entry = catalog.intents.get(intent)
    if entry is None or KIND_OF_INTENT.get(intent) in ANSWERS:
        return None
    template = _READBACKS.get(intent)
    if template is None:
        phrase = fill(entry.announce, intent, slots, catalog, strict=False)
        return f"Send to your neighbors: {phrase}?"
    return fill(_share_forms(template, intent, slots, catalog), intent, slots, catalog, strict=False)


def _share_forms(template: str, intent: str, slots: dict[str, str], catalog: Catalog) -> str:
    """Resolve ``{slot:share}``: no article for mass and plural values ("Share soup"), else a/an."""

    def resolve(match: re.Match[str]) -> str:
        slot, form = match.group(1), match.group(2)
        if form != "share":
            return match.group(0)
        mass = is_mass_or_plural(clean_text(slots.get(slot, ""), MAX_VALUE_CHARS))
        return "{" + slot + ":" + ("bare" if mass else "indef") + "}"

    return _PLACEHOLDER.sub(resolve, template)
