"""The streaming recognizer protocol every speech engine implements.

A recognizer decodes one utterance at a time: ``start()``, any number of ``feed(pcm)``
calls with 16 kHz, mono, signed 16-bit little-endian PCM, then ``finish()`` which returns the
:class:`Transcript`. Endpointing is done by :mod:`voicehello.audio.vad` on audio time, so every
engine sees the same utterance boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

SAMPLE_RATE = 16_000
"""The only sample rate recognizers accept (Hz)."""

SAMPLE_WIDTH = 2
"""Bytes per sample (signed 16-bit)."""


@dataclass(frozen=True)
class Transcript:
    """What an engine heard in one utterance."""

    text: str
    """Recognized words, lower case, single spaces; empty when nothing in-domain was heard."""
    confidence: float
    """The engine's own confidence in ``text``, 0..1 (acoustic, not the intent's)."""
    engine: str
    """Name of the engine that produced it (``pocketsphinx`` or ``vosk``)."""
    audio_seconds: float
    """Length of the decoded audio in seconds."""


class Recognizer(Protocol):
    """A speech engine that decodes one utterance at a time."""

    @property
    def engine(self) -> str:
        """Short engine name, e.g. ``"pocketsphinx"``."""
        ...

    def start(self) -> None:
        """Begin a new utterance, discarding any state of the previous one."""
        ...

    def feed(self, pcm: bytes) -> None:
        """Decode a chunk of 16 kHz mono int16 PCM."""
        ...

    def finish(self) -> Transcript:
        """End the utterance and return what was heard."""
        ...


def recognize(recognizer: Recognizer, pcm: bytes, chunk_bytes: int = 3200) -> Transcript:
    """Decode a whole utterance held in memory, fed in streaming-sized chunks."""
    recognizer.start()
    for offset in range(0, len(pcm), chunk_bytes):
        recognizer.feed(pcm[offset : offset + chunk_bytes])
    return recognizer.finish()
