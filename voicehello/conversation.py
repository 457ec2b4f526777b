"""The conversation: read a request back before it leaves the kitchen, ask which one was
meant when two intents are close ("Did you want to borrow or to lend?"), and turn a quick
"yes I can lend it" after an announcement into a reply to it.

What each intent does here comes from the catalog: its kind (replies answer an announcement, a
cancel takes back the last message sent), ``on_readback`` (which answers send or drop a request
read back) and ``choice`` (how a close call names it).

Pure logic on an injected clock: it is fed what the user said (an intent with slots) and
what was announced, and answers with :class:`Say` (speak to the user in this kitchen) and
:class:`Publish` (send to the neighbors) actions. ``app.py`` carries the actions out.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from voicehello.announce.phrasing import choice_question, readback
from voicehello.bus.messages import ANSWERS, Message, Sender, new_message
from voicehello.config import ConversationSettings
from voicehello.errors import MessageError
from voicehello.intents.catalog import Catalog

log = logging.getLogger(__name__)

SENT_MEMORY = 64
"""How many of this device's own sent messages are remembered (to phrase the replies to them)."""


@dataclass(frozen=True)
class Say:
    """Speak ``text`` to the user in this kitchen (not sent anywhere)."""

    text: str


@dataclass(frozen=True)
class Publish:
    """Send ``message`` to the neighbors."""

    message: Message


Action = Say | Publish


@dataclass(frozen=True)
class Option:
    """One of two close intents the parser could not choose between, with its slot values."""

    intent: str
    slots: dict[str, str]


ORDINALS = {"first": 0, "former": 0, "second": 1, "latter": 1, "last": 1}
"""Answer words that pick an option by its place in the question."""
NOT_AN_ANSWER = frozenset({"no", "not", "nope", "nah", "neither", "nor", "never", "don't", "cancel", "both"})
"""Words that never settle a close call (it is dropped)."""
_FUNCTION_WORDS = frozenset(
    {"to", "a", "an", "the", "for", "some", "your", "my", "with", "about", "of", "and", "or", "be", "it"}
)


@dataclass(frozen=True)
class _Choice:
    """A close call asked about ("Did you want to borrow or to lend?") and waiting for an answer."""

    options: tuple[Option, Option]
    text: str
    """What the user said first (sent as the message's text once settled)."""
    until: float


@dataclass(frozen=True)
class _Pending:
    """A request read back and waiting for "yes" or "no"."""

    message: Message
    until: float


@dataclass(frozen=True)
class _Window:
    """An announced neighbor's message that can still be answered."""

    message: Message
    until: float


class Conversation:
    """One device's side of the conversation. Thread-safe: the listening loop calls
    :meth:`heard` and :meth:`tick`, the announcer calls :meth:`announced`."""

    def __init__(
        self,
        settings: ConversationSettings,
        sender: Sender,
        catalog: Catalog,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.sender = sender
        self.catalog = catalog
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: _Pending | None = None
        self._choice: _Choice | None = None
        self._window: _Window | None = None
        self._sent: OrderedDict[str, Message] = OrderedDict()

    # -- what the user said -------------------------------------------------------------
    def heard(
        self,
        intent: str | None,
        slots: dict[str, str],
        text: str,
        *,
        confirmed: bool = False,
        options: Sequence[Option] = (),
    ) -> list[Action]:
        """React to one understood utterance (``intent`` None: not understood).

        ``confirmed`` sends a request at once, without the read-back (``say --yes``).
        ``options``: when the parser rejected ``text`` because two intents were close, both
        (with their slots): the user is asked which one was meant.
        """
        with self._lock:
            now = self.clock()
            actions = self._expire(now)
            if self._choice is not None:
                settled = self._settle(intent, text, now, confirmed=confirmed)
                if settled is not None:
                    return [*actions, *settled]
            if intent is None:
                return [*actions, *self._ask(options, text, now)]
            entry = self.catalog.intents.get(intent)
            answer = self._answer_pending(intent) if self._pending is not None else None
            if answer is None and entry is not None and entry.kind == "reply":
                answer = self._reply(intent, slots, text, now)
            elif answer is None and entry is not None and entry.kind == "cancel":
                answer = self._cancel_last(intent, text, now)
            elif answer is None:
                answer = self._request(intent, slots, text, now, confirmed=confirmed)
            return [*actions, *answer]

    def decline(self) -> list[Action]:
        """The user said something that does not answer the read-back (``voicehello say``):
        the request waiting for it is dropped."""
        with self._lock:
            if self._pending is None:
                return []
            self._pending = None
            return [Say("Okay, not sent.")]

    def tick(self) -> list[Action]:
        """Let time pass: a read-back left unanswered is dropped."""
        with self._lock:
            return self._expire(self.clock())

    # -- what the neighbors said ----------------------------------------------------------
    def announced(self, message: Message) -> None:
        """``message`` was just spoken here: an answer heard soon after is a reply to it."""
        if message.kind in ANSWERS or message.sender.device == self.sender.device:
            return
        with self._lock:
            self._window = _Window(message, self.clock() + self.settings.reply_window_s)

    def remember_sent(self, message: Message) -> None:
        """Note a message this device sent some other way (``voicehello say``, seen echoed by the
        broker), so that replies to it are announced here too."""
        if message.sender.device == self.sender.device:
            with self._lock:
                self._remember(message)

    def sent(self, message_id: str) -> Message | None:
        """One of this device's own recent messages, by id (to phrase replies to it)."""
        with self._lock:
            return self._sent.get(message_id)

    def expecting_answer(self) -> bool:
        """True while a read-back or a reply window is open: no wake phrase is needed then."""
        with self._lock:
            now = self.clock()
            return (
                (self._pending is not None and now <= self._pending.until)
                or (self._choice is not None and now <= self._choice.until)
                or (self._window is not None and now <= self._window.until)
            )

    @property
    def pending(self) -> Message | None:
        """The request waiting for confirmation, if any."""
        with self._lock:
            return self._pending.message if self._pending else None

    # -- the rules ----------------------------------------------------------------------
    def _expire(self, now: float) -> list[Action]:
        actions: list[Action] = []
        if self._pending is not None and now > self._pending.until:
            log.info("read-back not answered; request dropped")
            self._pending = None
            actions.append(Say("Not sent."))
        if self._choice is not None and now > self._choice.until:
            log.info("close call not settled in time; dropped")
            self._choice = None
            actions.append(Say("Not sent."))
        if self._window is not None and now > self._window.until:
            self._window = None
        return actions

    def _answer_pending(self, intent: str) -> list[Action] | None:
        assert self._pending is not None
        entry = self.catalog.intents.get(intent)
        does = None if entry is None else entry.on_readback
        if does == "send":
            message = self._pending.message
            self._pending = None
            return [*self._publish(message), Say("Sent.")]
        if does == "drop":
            self._pending = None
            return [Say("Okay, not sent.")]
        return None  # anything else: a new request replaces it, a reply goes to its window

    def _ask(self, options: Sequence[Option], text: str, now: float) -> list[Action]:
        """Two close intents: ask which one was meant (never guess); nothing when the catalog
        names either without a ``choice``."""
        if len(options) != 2 or options[0].intent == options[1].intent:
            return []
        question = choice_question(options[0].intent, options[1].intent, self.catalog)
        if question is None:
            log.info(
                "close call between %s and %s not asked (no choice phrase)", *(o.intent for o in options)
            )
            return []
        self._pending = None
        self._choice = _Choice((options[0], options[1]), text, now + self.settings.confirm_window_s)
        return [Say(question)]

    def _settle(self, intent: str | None, text: str, now: float, *, confirmed: bool) -> list[Action] | None:
        """The answer to "Did you want to borrow or to lend?": the option it names goes on as a
        request (read back as usual); anything else drops the close call, and a new request is
        then handled as such (None)."""
        assert self._choice is not None
        choice, self._choice = self._choice, None
        picked = self._pick(choice.options, text)
        if picked is not None:
            return self._request(picked.intent, picked.slots, choice.text, now, confirmed=confirmed)
        log.info("close call not settled by the answer; dropped")
        entry = None if intent is None else self.catalog.intents.get(intent)
        if entry is not None and not entry.is_answer:
            return None
        return [Say("Okay, not sent.")]

    def _pick(self, options: tuple[Option, Option], text: str) -> Option | None:
        """The option ``text`` names ("borrow", "to lend", "the first"), or None when it names
        neither, both, or says no."""
        words = re.findall(r"[a-z']+", text.lower())
        if not words or NOT_AN_ANSWER.intersection(words):
            return None
        content = [self._choice_words(option.intent) for option in options]
        named = {
            index
            for index, own in enumerate(content)
            if any(_names(word, stem) for word in words for stem in own - content[1 - index])
        }
        named.update(ORDINALS[word] for word in words if word in ORDINALS)
        return options[named.pop()] if len(named) == 1 else None

    def _choice_words(self, intent: str) -> set[str]:
        entry = self.catalog.intents.get(intent)
        phrase = "" if entry is None or entry.choice is None else entry.choice
        return {word for word in phrase.lower().split() if word not in _FUNCTION_WORDS}

    def _request(
        self, intent: str, slots: dict[str, str], text: str, now: float, *, confirmed: bool
    ) -> list[Action]:
        entry = self.catalog.intents.get(intent)
        if entry is None or entry.is_answer:
            log.warning("intent %s cannot be sent as a request", intent)
            return []
        try:
            message = new_message(
                self.sender, intent, slots, text, now=now, kind=entry.kind, ttl_s=entry.lifetime_s
            )
        except MessageError as exc:  # a slot value that breaks the slot value rule is never sent
            log.warning("request not sent: %s", exc)
            return [Say("Sorry, I can't send that.")]
        question = readback(intent, slots, self.catalog)
        if confirmed or not self.settings.confirm or question is None:
            return [*self._publish(message), Say("Sent.")]
        self._pending = _Pending(message, now + self.settings.confirm_window_s)
        return [Say(question)]

    def _reply(self, intent: str, slots: dict[str, str], text: str, now: float) -> list[Action]:
        window = self._window
        if window is None or now > window.until or window.message.expired(now):
            log.info("heard %s but there is nothing to answer", intent)
            return []
        self._window = None
        entry = self.catalog.intents[intent]
        reply = new_message(
            self.sender,
            intent,
            slots,
            text,
            in_reply_to=window.message.id,
            now=now,
            kind=entry.kind,
            ttl_s=entry.lifetime_s,
        )
        return [*self._publish(reply), Say(f"Told {window.message.sender.name}.")]

    def _cancel_last(self, intent: str, text: str, now: float) -> list[Action]:
        last = next(
            (m for m in reversed(self._sent.values()) if m.kind not in ANSWERS and not m.expired(now)),
            None,
        )
        if last is None:
            log.info("heard cancel but nothing was sent that could be cancelled")
            return []
        del self._sent[last.id]
        entry = self.catalog.intents[intent]
        cancel = new_message(
            self.sender,
            intent,
            {},
            text,
            in_reply_to=last.id,
            now=now,
            kind=entry.kind,
            ttl_s=entry.lifetime_s,
        )
        return [*self._publish(cancel), Say("Cancelled.")]

    def _publish(self, message: Message) -> list[Action]:
        self._remember(message)
        return [Publish(message)]

    def _remember(self, message: Message) -> None:
        self._sent[message.id] = message
        while len(self._sent) > SENT_MEMORY:
            self._sent.popitem(last=False)


def _names(word: str, stem: str) -> bool:
    """True when ``word`` is ``stem`` or a form of it ("lend", "lending", "shares", "sharing")."""
    if word == stem:
        return True
    forms = {stem + "s", stem + "ing", stem + "ed", stem + "d"}
    if stem.endswith("e"):
        forms.add(stem[:-1] + "ing")
    return word in forms
