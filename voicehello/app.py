"""Wires the stages together: audio -> speech -> intents -> conversation -> bus -> announce.

This is the only module that knows about more than one stage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from voicehello.announce.phrasing import announcement, in_pod
from voicehello.announce.policy import AnnouncePolicy
from voicehello.announce.rates import RateWindows
from voicehello.announce.speaker import AnnounceEvent, Announcer
from voicehello.audio import vad
from voicehello.audio.sources import read_wav
from voicehello.bus.messages import Message, Sender, use_intent_kinds
from voicehello.bus.mqtt import BusClient
from voicehello.config import Settings
from voicehello.conversation import Action, Conversation, Option, Publish, Say
from voicehello.errors import BusError, MessageError, VoicehelloError
from voicehello.intents.catalog import Catalog, load_catalog
from voicehello.intents.parser import IntentParser, ParseResult, slot_text
from voicehello.intents.times import HOURS, MINUTES, PARTS_OF_DAY, WEEKDAYS
from voicehello.privacy.held import HeldMessages
from voicehello.privacy.membership import Membership
from voicehello.speech.engines import create_recognizer
from voicehello.speech.recognizer import Recognizer, Transcript, recognize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Heard:
    """One utterance understood: what the engine heard and the intent it means."""

    transcript: Transcript
    parse: ParseResult
    decode_s: float = 0.0
    """Wall-clock seconds spent decoding and parsing this utterance (live audio: while it was
    spoken too)."""
    speech_end_s: float | None = None
    """Audio time where the speech ended, for live audio."""
    early: bool = False
    """Live audio: ended after ``speech.early_end_ms`` of silence, being a complete request."""
    unsure: bool = False
    """The words parsed to a request but the recognizer was unsure of them (acoustic confidence
    below ``speech.min_acoustic_confidence``): rejected, ``parse.intent`` is None and
    ``parse.guess`` names the request it would have been."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON line ``transcribe --json`` and ``listen --json`` print."""
        return {
            "text": self.transcript.text,
            "intent": self.parse.intent,
            "slots": dict(self.parse.slots),
            "confidence": self.parse.confidence,
            "engine": self.transcript.engine,
            "woke": self.parse.woke,
            "acoustic_confidence": self.transcript.confidence,
            "unsure": self.unsure,
            "audio_seconds": round(self.transcript.audio_seconds, 3),
        }


WAKE_WINDOW_S = 6.0
"""After a wake phrase said on its own, how long (audio time) the next utterance counts as woken."""


class WakeGate:
    """Decides which live utterances to act on: those that start with a wake phrase, or that
    follow a wake phrase said on its own ("hey neighbor" ... "can I borrow a ladder")."""

    def __init__(self, required: bool = True, window_s: float = WAKE_WINDOW_S) -> None:
        self.required = required
        self.window_s = window_s
        self._woken_until: float | None = None

    def admit(self, heard: Heard, now_s: float) -> bool:
        """True when ``heard`` (ending at audio time ``now_s``) should be acted on."""
        if not self.required:
            return True
        if heard.parse.woke:
            wake_only = heard.parse.intent is None and not heard.parse.text_after_wake
            self._woken_until = now_s + self.window_s if wake_only else None
            return not wake_only
        if self._woken_until is not None and now_s <= self._woken_until:
            self._woken_until = None
            return True
        return False


class Understander:
    """Speech (or typed text) -> intent: one recognizer, one parser, loaded once."""

    def __init__(
        self, settings: Settings, catalog: Catalog | None = None, recognizer: Recognizer | None = None
    ):
        self.settings = settings
        self.catalog = catalog or load_catalog(settings.intents.catalog)
        self.parser = IntentParser(self.catalog, threshold=settings.intents.threshold)
        self.recognizer = recognizer or create_recognizer(settings.speech, self.catalog)
        self._value_starts = _value_starts(self.catalog)

    @property
    def engine(self) -> str:
        """Name of the speech engine in use."""
        return self.recognizer.engine

    def read(self, text: str) -> ParseResult:
        """Parse typed text."""
        return self.parser.parse(text)

    def hear(self, pcm: bytes) -> Heard:
        """Decode one utterance held in memory (16 kHz mono int16) and parse it."""
        started = time.perf_counter()
        transcript = recognize(self.recognizer, pcm)
        parse, unsure = self._judge(transcript)
        return Heard(
            transcript=transcript, parse=parse, decode_s=time.perf_counter() - started, unsure=unsure
        )

    def _judge(self, transcript: Transcript) -> tuple[ParseResult, bool]:
        """Parse ``transcript``; a request heard with acoustic confidence below
        ``speech.min_acoustic_confidence`` is rejected (True: rejected for that)."""
        parse = self.parser.parse(transcript.text)
        floor = self.settings.speech.min_acoustic_confidence
        if parse.intent is None or transcript.confidence >= floor:
            return parse, False
        log.info(
            "%r -> %s rejected: acoustic confidence %.2f < %.2f",
            transcript.text,
            parse.intent,
            transcript.confidence,
            floor,
        )
        return replace(parse, intent=None, slots={}, guess=parse.intent, alternatives=()), True

    def hear_file(self, path: Path) -> Heard:
        """Read a WAV file, keep its speech and understand it (raises :class:`AudioError`)."""
        pcm = read_wav(path)
        utterances = vad.require_utterances(pcm, self.settings.audio, str(path))
        return self.hear(b"".join(utterance.pcm for utterance in utterances))

    def listen(self, blocks: Iterable[bytes]) -> Iterator[Heard]:
        """Understand every utterance in a stream of audio blocks, as it ends.

        Each utterance is decoded while it is spoken and finished when the endpointer closes
        it: after ``audio.end_silence_ms`` of silence, or ``speech.early_end_ms`` when what was
        heard so far already parses to a complete request. Only bounded in-memory buffers
        hold audio; nothing is written anywhere.
        """
        endpointer = vad.Endpointer(self.settings.audio)
        size = self.settings.audio.block_ms * vad.BYTES_PER_MS
        live: _Live | None = None
        for block in blocks:
            for offset in range(0, len(block), size):  # one endpointer block at a time
                for utterance in endpointer.feed(block[offset : offset + size]):
                    yield self._finish_live(utterance, live)
                    live = None
                live = self._follow(endpointer, live)
        last = endpointer.flush()
        if last is not None:
            yield self._finish_live(last, live)

    def _follow(self, endpointer: vad.Endpointer, live: _Live | None) -> _Live | None:
        """Feed the recognizer what the utterance in progress gained, and let it end early when
        it is a complete request."""
        audio = endpointer.open_audio(live.fed_until_ms if live is not None else -(2**31))
        if audio is None:
            return live
        started = time.perf_counter()
        if live is None:
            self.recognizer.start()
            live = _Live(speech_start_ms=audio.speech_start_ms, fed_until_ms=audio.start_ms)
        if audio.pcm:
            self.recognizer.feed(audio.pcm)
            live.fed_bytes += len(audio.pcm)
            live.fed_until_ms = audio.end_ms
        if self._may_end_early(endpointer) and self._complete(self.parser.parse(self._partial())):
            endpointer.end_after(self.settings.speech.early_end_ms)
            live.early = True
        live.busy_s += time.perf_counter() - started
        return live

    def _may_end_early(self, endpointer: vad.Endpointer) -> bool:
        """In a pause long enough to decide (one block before ``early_end_ms``) but not over."""
        early_ms = self.settings.speech.early_end_ms
        if early_ms <= 0 or not self.settings.speech.streaming or endpointer.speech_end_s is None:
            return False
        silence_ms = round((endpointer.audio_s - endpointer.speech_end_s) * 1000)
        return early_ms - self.settings.audio.block_ms <= silence_ms < self.settings.audio.end_silence_ms

    def _partial(self) -> str:
        partial = getattr(self.recognizer, "partial", None)
        return str(partial()) if callable(partial) else ""

    def _complete(self, parse: ParseResult) -> bool:
        """A confident intent with every slot it names, woken or an answer ("yes"), not ending on a word that leads on
        ("can I borrow a"), on the start of a longer slot value ("some sleeping" of "sleeping
        bag") or on a time, which can always go on ("at seven" ... "thirty")."""
        if parse.intent is None or parse.confidence < self.parser.threshold:
            return False
        entry = self.catalog.intents.get(parse.intent)
        if entry is None or any(slot not in parse.slots for slot in entry.slots):
            return False
        if not (parse.woke or entry.is_answer):  # unwoken talk is cut into pieces that parse
            return False
        words = tuple(parse.text.split())
        if not words or words[-1] in LEADING_ON or words[-1] in TIME_WORDS:
            return False
        return not any(words[-size:] in self._value_starts for size in range(1, 4))

    def _tail_slack_bytes(self) -> int:
        """Audio already decoded that the endpointer may trim from an utterance without it being
        decoded again: its silence wait (the tail past the speaker's last frame, cut to
        ``audio.trailing_keep_ms``) plus the pre-roll. Re-decoding for that alone decoded 20 of
        32 clean dev utterances twice, for the same words."""
        audio = self.settings.audio
        return (audio.end_silence_ms + audio.pre_roll_ms) * vad.BYTES_PER_MS

    def _finish_live(self, utterance: vad.Utterance, live: _Live | None) -> Heard:
        """Decode the rest of ``utterance`` and parse it. When the endpointer moved its start
        well after the audio streamed (background talk before it), it is decoded afresh."""
        started = time.perf_counter()
        moved_ms = round(utterance.start_s * 1000) - (live.speech_start_ms if live else 0)
        cut_bytes = live.fed_bytes - len(utterance.pcm) if live is not None else 0
        if live is None or moved_ms > self.settings.audio.pre_roll_ms or cut_bytes > self._tail_slack_bytes():
            log.debug("utterance decoded afresh (its start moved by %d ms)", moved_ms)
            self.recognizer.start()
            rest, busy_s = utterance.pcm, 0.0
        else:
            rest, busy_s = utterance.pcm[live.fed_bytes :], live.busy_s
        if rest:
            self.recognizer.feed(rest)
        transcript = self.recognizer.finish()
        parse, unsure = self._judge(transcript)
        return Heard(
            transcript=transcript,
            parse=parse,
            decode_s=busy_s + time.perf_counter() - started,
            speech_end_s=utterance.end_s,
            early=live is not None and live.early,
            unsure=unsure,
        )


LEADING_ON = frozenset(
    [
        "a",
        "an",
        "the",
        "some",
        "any",
        "my",
        "our",
        "your",
        "his",
        "her",
        "their",
        "this",
        "these",
        "those",
        "at",
        "to",
        "for",
        "of",
        "from",
        "with",
        "and",
        "or",
        "but",
        "in",
        "on",
        "by",
        "about",
        "into",
        "than",
        "i",
        "we",
        "he",
        "she",
        "they",
        "is",
        "are",
        "was",
        "be",
        "can",
        "could",
        "would",
        "will",
        "may",
        "might",
        "shall",
        "should",
        "have",
        "has",
        "do",
        "does",
    ]
)
"""Words a request does not end on: heard last, more is coming (no early end)."""

TIME_WORDS = frozenset(
    [
        *HOURS,
        *WEEKDAYS,
        *PARTS_OF_DAY,
        *" ".join(MINUTES).split(),
        "noon",
        "midnight",
        "tonight",
        "today",
        "tomorrow",
        "weekend",
        "week",
        "pm",
        "am",
        "twenty",
        "forty",
        "fifty",
    ]
)
"""Words of a time: a request ending on one may be saying more of it (no early end)."""


def _value_starts(catalog: Catalog) -> frozenset[tuple[str, ...]]:
    """Every proper start of a multi-word slot value or synonym ("sleeping" of "sleeping bag")."""
    starts: set[tuple[str, ...]] = set()
    for values in catalog.lists.values():
        for phrase in values.phrases:
            words = tuple(phrase.split())
            starts.update(words[:size] for size in range(1, len(words)))
    return frozenset(starts)


@dataclass
class _Live:
    """The utterance being decoded while it is spoken."""

    speech_start_ms: int
    fed_until_ms: int
    fed_bytes: int = 0
    busy_s: float = 0.0
    """Wall time spent in the recognizer and the parser for it so far."""
    early: bool = False


Report = Callable[[str], None]
"""Where a device prints what it does, one human-readable line at a time."""

NOT_CAUGHT = "Sorry, I didn't catch that."
"""Said when a woken request was heard too unsure to act on (low acoustic confidence)."""

ECHO_TAIL_S = 0.4
"""After this device stops speaking, its microphone stays deaf this long (room echo)."""
TICK_EVERY_S = 0.25
"""How often (audio time) the conversation's timers are checked while listening."""


class Device:
    """One kitchen device: hears its user, reads requests back, publishes them, and speaks
    what the neighbors say. The only place where the stages meet."""

    def __init__(
        self,
        settings: Settings,
        *,
        understander: Understander | None = None,
        catalog: Catalog | None = None,
        announcer: Announcer | None = None,
        bus: BusClient | None = None,
        report: Report | None = None,
        on_announce: Callable[[AnnounceEvent], None] | None = None,
        show: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.understander = understander
        self.catalog = catalog or (
            understander.catalog if understander else load_catalog(settings.intents.catalog)
        )
        self.parser = (
            understander.parser if understander else IntentParser(self.catalog, settings.intents.threshold)
        )
        self.sender = Sender(device=settings.device.id, name=settings.device.name)
        use_intent_kinds(self.catalog.kinds)  # the catalog in use decides each intent's message kind
        self.conversation = Conversation(settings.conversation, self.sender, self.catalog, clock)
        keys_dir = settings.privacy.keys_dir  # held messages and rate windows survive a restart
        held = HeldMessages(keys_dir)
        self.announcer = announcer or Announcer(
            settings.announce,
            on_event=self._on_announce_event,
            show=show,
            policy=AnnouncePolicy(settings.announce, rates=RateWindows(keys_dir)),
            held=held,
        )
        self.bus = bus or BusClient(
            settings.bus,
            settings.device,
            self._on_bus_message,
            membership=Membership.from_settings(settings, clock=clock),
            clock=clock,
            held=held,
        )
        self.report: Report = report or (lambda line: log.info("%s", line))
        self.on_announce = on_announce
        self.clock = clock
        self.gate = WakeGate(required=settings.intents.require_wake)
        self._lock = threading.Lock()
        self._waiting: dict[str, Message] = {}
        """Neighbors' messages handed to the announcer and not yet spoken."""
        self._spoken: OrderedDict[str, Message] = OrderedDict()
        """Neighbors' messages recently spoken here (to announce their cancellations)."""
        self._early_cancels: OrderedDict[str, set[str]] = OrderedDict()
        """Message id -> devices that cancelled it before it arrived here."""
        self._deaf_until = 0.0
        self._speaking = False

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start speaking and connect to the broker (a broker that is down is retried)."""
        self.announcer.start()
        self.bus.start()

    def stop(self) -> None:
        """Say goodbye on the bus (presence offline) and stop the voice."""
        self.bus.stop()
        self.announcer.stop()

    # -- the user ---------------------------------------------------------------------------
    def hear_text(self, text: str, *, confirmed: bool = False) -> list[Action]:
        """Typed input, handled exactly as if it had been spoken (and woken)."""
        parse = self.parser.parse(text)
        return self._converse(parse, text, confirmed=confirmed)

    def listen(self, blocks: Iterable[bytes]) -> Iterator[Heard]:
        """Act on every utterance heard in ``blocks`` (the daemon's main loop); yields each
        utterance acted on. The microphone is deaf while this device speaks."""
        if self.understander is None:
            raise VoicehelloError("this device has no speech recognizer")
        for heard in self.understander.listen(self._housekeeping(blocks)):
            if not self._admit(heard):
                log.info("ignored speech without a wake phrase")
                continue
            text = heard.parse.text_after_wake or heard.transcript.text
            self.report(
                f"heard: {heard.transcript.text!r} -> {heard.parse.describe(confidence=heard.parse.intent is None)}"
            )
            if heard.unsure:  # half heard: say so, never act on it as another request
                self._carry_out(Say(NOT_CAUGHT))
            else:
                self._converse(heard.parse, text)
            yield heard
        for action in self.conversation.tick():
            self._carry_out(action)

    def _admit(self, heard: Heard) -> bool:
        if heard.parse.woke:
            return self.gate.admit(heard, heard.speech_end_s or 0.0)
        if self.conversation.expecting_answer():
            return True
        return self.gate.admit(heard, heard.speech_end_s or 0.0)

    def _housekeeping(self, blocks: Iterable[bytes]) -> Iterator[bytes]:
        """Pass audio blocks on, silenced while this device speaks, checking timers as it goes."""
        audio_s = next_tick = 0.0
        block_s = self.settings.audio.block_ms / 1000
        for block in blocks:
            audio_s += block_s
            if audio_s >= next_tick:
                next_tick = audio_s + TICK_EVERY_S
                for action in self.conversation.tick():
                    self._carry_out(action)
            yield bytes(len(block)) if self._deaf() else block

    def _deaf(self) -> bool:
        with self._lock:
            return self._speaking or time.monotonic() < self._deaf_until

    def _converse(self, parse: ParseResult, text: str, *, confirmed: bool = False) -> list[Action]:
        actions = self.conversation.heard(
            parse.intent, dict(parse.slots), text, confirmed=confirmed, options=self._options(parse, text)
        )
        for action in actions:
            self._carry_out(action)
        return actions

    def _options(self, parse: ParseResult, text: str) -> tuple[Option, ...]:
        """For a close call (two intents equally likely), both with the slots ``text`` gives
        them, so the conversation can ask which one was meant; () when either cannot be filled."""
        if parse.intent is not None or len(parse.alternatives) != 2:
            return ()
        options = []
        for intent in parse.alternatives:
            slots = self.parser.slots_for(text, intent)
            if slots is None:
                return ()
            options.append(Option(intent, slots))
        return tuple(options)

    def _carry_out(self, action: Action) -> None:
        if isinstance(action, Publish):
            self.report(f"sent: {_describe_message(action.message)}")
            self.bus.publish(action.message)
        else:
            if self.settings.announce.output == "speaker":  # else the announcer prints it
                self.report(f"says: {action.text}")
            self.announcer.prompt(action.text)

    def send_typed(self, message: Message, *, pod: str | None = None, timeout_s: float = 10.0) -> str:
        """Publish a message confirmed elsewhere (``voicehello say``, over the control socket) on
        this device's own broker connection, and wait up to ``timeout_s`` for the broker to take
        it; returns its id. It is remembered as sent here, so replies to it are announced.

        Raises :class:`MessageError` for another device's or an expired message,
        :class:`PrivacyError` for a pod this device is not in, :class:`BusError` when the broker
        did not take it in time (it stays in the outbox) or refused it.
        """
        if message.sender.device != self.sender.device:
            raise MessageError(
                f"message {message.id[:8]} is from {message.sender.device!r}, not from this device"
                f" ({self.sender.device!r})"
            )
        if message.expired(self.clock()):
            raise MessageError(f"message {message.id[:8]} had expired")
        self.conversation.remember_sent(message)  # before a reply can come
        self.bus.publish(message, pod=pod)
        bus = self.settings.bus
        if not self.bus.flush(timeout_s):
            raise BusError(
                f"broker {bus.host}:{bus.port} did not take the message within {timeout_s:g} s; "
                "the running daemon keeps it and sends it when the broker is back (until it expires)"
            )
        reason = self.bus.refused(message.id)
        if reason is not None:
            raise BusError(
                f"the broker refused the message ({reason}): is {self.sender.device!r} the user name "
                "it knows this device by? nothing was sent"
            )
        self.report(f"sent: {_describe_message(message)} (typed with say)")
        return message.id

    # -- the neighbors ----------------------------------------------------------------------
    def _on_bus_message(self, message: Message) -> None:
        """A valid, unexpired, first-seen message from the bus (called on the bus client's receiver thread)."""
        if message.sender.device == self.sender.device:
            self.conversation.remember_sent(message)  # our own echo (maybe sent by `voicehello say`)
            return
        message = self._with_pinned_name(message)
        answered = self._answered(message)
        if message.kind in ("reply", "cancel") and answered is None:
            log.debug("%s %s answers a message not spoken or sent here", message.kind, message.id)
            return
        if message.in_reply_to is None and self._cancelled_early(message):
            return
        text = announcement(message, self.catalog, answered)
        if text is None:
            log.warning(
                "message %s has intent %r that is not in the catalog; not spoken", message.id, message.intent
            )
            return
        text = in_pod(text, self._other_pod(message))
        with self._lock:
            self._waiting[message.id] = message
        self.report(f"received: {_describe_message(message)}")
        self.announcer.submit(message, text)

    def _with_pinned_name(self, message: Message) -> Message:
        """``message`` with the name pinned with its sender's key in its pod as the sender's name:
        the ``from.name`` inside a message is never spoken (a member may write any name there)."""
        pod = self.bus.pod_of(message.id)
        device = message.sender.device
        name = device if pod is None else self.bus.membership.display_name(pod.id, device)
        return replace(message, sender=replace(message.sender, name=name))

    def _other_pod(self, message: Message) -> str | None:
        """The name of the pod ``message`` was said in, when it is not this device's default pod."""
        pod = self.bus.pod_of(message.id)
        try:
            default = self.bus.membership.default()
        except VoicehelloError:
            default = None
        return None if pod is None or (default is not None and pod.id == default.id) else pod.name

    def _answered(self, message: Message) -> Message | None:
        """For a reply: our own message it answers (:meth:`_replied_to`). For a cancellation: the
        message it takes back when that was already spoken here (:meth:`_taken_back`; one still
        waiting is withdrawn, and None returned)."""
        if message.in_reply_to is None:
            return None
        if message.kind == "reply":
            return self._replied_to(message, message.in_reply_to)
        return self._taken_back(message, message.in_reply_to)

    def _replied_to(self, reply: Message, answered_id: str) -> Message | None:
        """Our own message ``reply`` answers; anyone may reply, but only in the pod the message
        was said in (checked when the bus knows both pods)."""
        sent = self.conversation.sent(answered_id)
        if sent is None:
            return None
        asked_in, answered_in = self.bus.pod_of(answered_id), self.bus.pod_of(reply.id)
        if asked_in is not None and answered_in is not None and asked_in.id != answered_in.id:
            log.warning(
                "reply %s from %s ignored: it answers message %s of another pod",
                reply.id[:8],
                reply.sender.device,
                answered_id[:8],
            )
            return None
        return sent

    def _taken_back(self, cancel: Message, target: str) -> Message | None:
        """Act on ``cancel`` only when its sender sent ``target``, checked before anything is
        withdrawn: a message still waiting (or held for the quiet hours) is withdrawn, a spoken
        one is returned (its cancellation is announced). A cancel for a message not seen yet is
        remembered with its sender, for :meth:`_cancelled_early`."""
        with self._lock:
            original = self._waiting.get(target) or self._spoken.get(target)
            if original is None:
                self._early_cancels.setdefault(target, set()).add(cancel.sender.device)
                while len(self._early_cancels) > EARLY_CANCEL_MEMORY:
                    self._early_cancels.popitem(last=False)
                return None
            if original.sender.device != cancel.sender.device:
                log.warning(
                    "cancel %s from %s ignored: only %s may take back message %s",
                    cancel.id[:8],
                    cancel.sender.device,
                    original.sender.device,
                    target[:8],
                )
                return None
            waiting = self._waiting.pop(target, None)
        if waiting is not None:
            self.announcer.cancel(target)
            return None
        return original

    def _cancelled_early(self, message: Message) -> bool:
        """True when ``message``'s own sender cancelled it before it arrived here (queued
        messages can arrive in another order); anyone else's cancel for it is ignored."""
        with self._lock:
            cancellers = self._early_cancels.pop(message.id, set())
        if message.sender.device in cancellers:
            log.info("message %s not announced: its sender cancelled it before it arrived", message.id[:8])
            return True
        if cancellers:
            log.warning(
                "cancel for message %s from %s ignored: only %s may take it back",
                message.id[:8],
                ", ".join(sorted(cancellers)),
                message.sender.device,
            )
        return False

    def _on_announce_event(self, event: AnnounceEvent) -> None:
        """Track what has been spoken: open the reply window, keep the microphone deaf."""
        if self.on_announce is not None:
            self.on_announce(event)
        with self._lock:
            if event.kind == "started":
                self._speaking = True
            elif event.kind in ("finished", "restarted"):
                self._speaking = False
                self._deaf_until = time.monotonic() + ECHO_TAIL_S
            if event.kind not in ("finished", "printed", "dropped", "restarted") or not event.message_id:
                return
            message = self._waiting.pop(event.message_id, None)
            if message is None or event.kind not in ("finished", "printed"):
                return
            self._spoken[message.id] = message
            while len(self._spoken) > SPOKEN_MEMORY:
                self._spoken.popitem(last=False)
        self.conversation.announced(message)


SPOKEN_MEMORY = 64
"""How many spoken neighbors' messages are remembered (to announce their cancellations)."""
EARLY_CANCEL_MEMORY = 1_000
"""How many cancels of messages not (yet) seen here are remembered."""


def _describe_message(message: Message) -> str:
    slots = slot_text(message.slots)
    return f"{message.intent} {slots} from {message.sender.device} (id {message.id[:8]})".replace("  ", " ")
