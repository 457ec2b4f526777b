"""The conversation: read a request back before it leaves the kitchen, and turn a quick
"yes I can lend it" after an announcement into a reply to it.

Pure logic on an injected clock: it is fed what the user said (an intent with slots) and
what was announced, and answers with :class:`Say` (speak to the user in this kitchen) and
:class:`Publish` (send to the neighbors) actions. ``app.py`` carries the actions out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from voicehello.announce.phrasing import readback
from voicehello.bus.messages import KIND_OF_INTENT, Message, Sender, new_message
from voicehello.config import ConversationSettings
from voicehello.errors import MessageError
from voicehello.intents.catalog import Catalog

log = logging.getLogger(__name__)

REPLY_INTENTS = frozenset({"reply_yes", "reply_no", "rsvp"})
CONFIRM_INTENTS = frozenset({"reply_yes"})
DENY_INTENTS = frozenset({"reply_no", "cancel"})
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
        self._window: _Window | None = None
        self._sent: OrderedDict[str, Message] = OrderedDict()

    # -- what the user said -------------------------------------------------------------
    def heard(
        self, intent: str | None, slots: dict[str, str], text: str, *, confirmed: bool = False
    ) -> list[Action]:
        """React to one understood utterance (``intent`` None: not understood).

        ``confirmed`` sends a request at once, without the read-back (``say --yes``).
        """
        with self._lock:
            now = self.clock()
            actions = self._expire(now)
            if intent is None:
                return actions
            answer = self._answer_pending(intent) if self._pending is not None else None
            if answer is None and intent in REPLY_INTENTS:
                answer = self._reply(intent, slots, text, now)
            elif answer is None and intent == "cancel":
                answer = self._cancel_last(text, now)
            elif answer is None:
                answer = self._request(intent, slots, text, now, confirmed=confirmed)
            return [*actions, *answer]

    def tick(self) -> list[Action]:
        """Let time pass: a read-back left unanswered is dropped."""
        with self._lock:
            return self._expire(self.clock())

    # -- what the neighbors said ----------------------------------------------------------
    def announced(self, message: Message) -> None:
        """``message`` was just spoken here: an answer heard soon after is a reply to it."""
        if message.kind in ("reply", "cancel") or message.sender.device == self.sender.device:
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
            return (self._pending is not None and now <= self._pending.until) or (
                self._window is not None and now <= self._window.until
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
        if self._window is not None and now > self._window.until:
            self._window = None
        return actions

    def _answer_pending(self, intent: str) -> list[Action] | None:
        assert self._pending is not None
        if intent in CONFIRM_INTENTS:
            message = self._pending.message
            self._pending = None
            return [*self._publish(message), Say("Sent.")]
        if intent in DENY_INTENTS:
            self._pending = None
            return [Say("Okay, not sent.")]
        return None  # anything else: a new request replaces it, a reply goes to its window

    def _request(
        self, intent: str, slots: dict[str, str], text: str, now: float, *, confirmed: bool
    ) -> list[Action]:
        if intent not in KIND_OF_INTENT:
            log.warning("intent %s cannot be sent (unknown kind)", intent)
            return []
        try:
            message = new_message(self.sender, intent, slots, text, now=now)
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
        reply = new_message(self.sender, intent, slots, text, in_reply_to=window.message.id, now=now)
        return [*self._publish(reply), Say(f"Told {window.message.sender.name}.")]

    def _cancel_last(self, text: str, now: float) -> list[Action]:
        last = next(
            (
                m
                for m in reversed(self._sent.values())
                if m.kind not in ("reply", "cancel") and not m.expired(now)
            ),
            None,
        )
        if last is None:
            log.info("heard cancel but nothing was sent that could be cancelled")
            return []
        del self._sent[last.id]
        cancel = new_message(self.sender, "cancel", {}, text, in_reply_to=last.id, now=now)
        return [*self._publish(cancel), Say("Cancelled.")]

    def _publish(self, message: Message) -> list[Action]:
        self._remember(message)
        return [Publish(message)]

    def _remember(self, message: Message) -> None:
        self._sent[message.id] = message
        while len(self._sent) > SENT_MEMORY:
            self._sent.popitem(last=False)
