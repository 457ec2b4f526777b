"""Wires the stages together: audio -> speech -> intents (and, later, the bus).

This is the only module that knows about more than one stage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from voicehello.audio import vad
from voicehello.audio.sources import read_wav
from voicehello.config import Settings
from voicehello.intents.catalog import Catalog, load_catalog
from voicehello.intents.parser import IntentParser, ParseResult
from voicehello.speech.engines import create_recognizer
from voicehello.speech.recognizer import Recognizer, Transcript, recognize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Heard:
    """One utterance understood: what the engine heard and the intent it means."""

    transcript: Transcript
    parse: ParseResult
    decode_s: float = 0.0
    """Wall-clock seconds spent decoding and parsing (after the audio was complete)."""
    speech_end_s: float | None = None
    """Audio time where the speech ended, for live audio."""

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
        parse = self.parser.parse(transcript.text)
        return Heard(transcript=transcript, parse=parse, decode_s=time.perf_counter() - started)

    def hear_file(self, path: Path) -> Heard:
        """Read a WAV file, keep its speech and understand it (raises :class:`AudioError`)."""
        pcm = read_wav(path)
        utterances = vad.require_utterances(pcm, self.settings.audio, str(path))
        return self.hear(b"".join(utterance.pcm for utterance in utterances))

    def listen(self, blocks: Iterable[bytes]) -> Iterator[Heard]:
        """Understand every utterance in a stream of audio blocks, as it ends.

        Each utterance is decoded as soon as the endpointer closes it. Only bounded
        in-memory buffers hold audio; nothing is written anywhere.
        """
        endpointer = vad.Endpointer(self.settings.audio)
        for block in blocks:
            for utterance in endpointer.feed(block):
                yield self._finish_live(utterance)
        last = endpointer.flush()
        if last is not None:
            yield self._finish_live(last)

    def _finish_live(self, utterance: vad.Utterance) -> Heard:
        return replace(self.hear(utterance.pcm), speech_end_s=utterance.end_s)
