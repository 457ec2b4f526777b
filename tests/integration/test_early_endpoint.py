"""Early endpointing on real speech: espeak-ng requests through ``Understander.listen`` with the
real PocketSphinx decoder and endpointer, timed on audio time (blocks fed), never wall time.

A complete request ends ``speech.early_end_ms`` after the speech; an incomplete one waits the
full ``audio.end_silence_ms``; a request that pauses and goes on is not cut. Early ends are
for woken requests (and answers), so the requests start with the wake phrase. Voices were
picked so that PocketSphinx hears the words right (en-us hears "can i borrow a" as "... egg").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest

from voicehello.app import Heard, Understander
from voicehello.config import Settings
from voicehello.speech.recognizer import SAMPLE_RATE

pytestmark = pytest.mark.integration

VOICE = "en-us"
PAUSE_VOICE = "en-us+f2"


def trimmed(pcm: bytes) -> bytes:
    """``pcm`` without espeak-ng's own leading and trailing silence (so pauses are exact)."""
    samples = np.frombuffer(pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 200)
    return samples[loud[0] : loud[-1] + 1].tobytes() if loud.size else b""


def quiet(seconds: float, seed: int) -> bytes:
    """Near-silence (±1 LSB of deterministic dither), as a quiet room gives."""
    rng = np.random.default_rng(seed)
    return rng.integers(-1, 2, round(seconds * SAMPLE_RATE)).astype("<i2").tobytes()


@dataclass(frozen=True)
class Closed:
    """One utterance understood, and the audio time at which it was handed out."""

    heard: Heard
    closed_s: float

    @property
    def wait_s(self) -> float:
        """Audio time from the end of the speech to the result."""
        assert self.heard.speech_end_s is not None
        return self.closed_s - self.heard.speech_end_s


def listen(understander: Understander, pcm: bytes) -> list[Closed]:
    """Feed ``pcm`` in 30 ms blocks; note how much audio had been fed when each result came."""
    size = understander.settings.audio.block_ms * SAMPLE_RATE * 2 // 1000
    fed = [0]

    def blocks() -> Iterator[bytes]:
        for offset in range(0, len(pcm), size):
            fed[0] += 1
            yield pcm[offset : offset + size]

    block_s = understander.settings.audio.block_ms / 1000
    return [Closed(heard, fed[0] * block_s) for heard in understander.listen(blocks())]


@pytest.fixture(scope="module")
def early(understander: Understander) -> Understander:
    """The default pipeline (PocketSphinx, streaming) with early ends after 150 ms (off by default)."""
    assert understander.settings.speech.streaming
    settings = understander.settings
    return Understander(
        replace(settings, speech=replace(settings.speech, early_end_ms=150)),
        catalog=understander.catalog,
        recognizer=understander.recognizer,
    )


def test_complete_request_ends_after_the_short_pause(early: Understander, espeak: Any) -> None:
    clip = quiet(0.5, 1) + espeak.pcm("hey neighbor can i borrow a ladder", VOICE) + quiet(1.0, 2)
    [closed] = listen(early, clip)
    assert (closed.heard.parse.intent, closed.heard.parse.slots) == ("borrow_item", {"item": "ladder"})
    assert closed.heard.early
    settings = early.settings
    assert closed.wait_s <= (settings.speech.early_end_ms + settings.audio.block_ms) / 1000 + 1e-6
    assert closed.wait_s < settings.audio.end_silence_ms / 1000


def test_incomplete_request_waits_the_full_silence(early: Understander, espeak: Any) -> None:
    clip = quiet(0.5, 3) + espeak.pcm("hey neighbor can i borrow a", PAUSE_VOICE) + quiet(1.0, 4)
    [closed] = listen(early, clip)
    assert closed.heard.parse.intent is None, closed.heard.transcript.text
    assert not closed.heard.early
    assert closed.wait_s >= early.settings.audio.end_silence_ms / 1000 - 1e-6


@pytest.mark.parametrize(
    ("first", "rest", "slots"),
    [
        ("hey neighbor can i borrow a", "ladder", {"item": "ladder"}),
        ("hey neighbor does anyone need to borrow some sleeping", "bags", {"item": "sleeping bag"}),
    ],
    ids=["after-an-article", "inside-a-slot-value"],
)
def test_a_request_that_goes_on_after_a_pause_is_not_cut(
    early: Understander, espeak: Any, first: str, rest: str, slots: dict[str, str]
) -> None:
    pause_s = 0.3  # longer than early_end_ms, shorter than end_silence_ms
    clip = (
        quiet(0.5, 5)
        + trimmed(espeak.pcm(first, PAUSE_VOICE))
        + quiet(pause_s, 6)
        + trimmed(espeak.pcm(rest, PAUSE_VOICE))
        + quiet(1.0, 7)
    )
    heard = [closed.heard for closed in listen(early, clip)]
    assert len(heard) == 1, [h.transcript.text for h in heard]
    assert heard[0].parse.slots == slots, heard[0].transcript.text
    assert heard[0].parse.intent is not None


def test_early_end_off_waits_the_full_silence(understander: Understander, espeak: Any) -> None:
    """``speech.early_end_ms = 0``: even a complete request waits ``audio.end_silence_ms``."""
    settings: Settings = understander.settings
    plain = Understander(
        replace(settings, speech=replace(settings.speech, early_end_ms=0)),
        catalog=understander.catalog,
        recognizer=understander.recognizer,
    )
    clip = quiet(0.5, 8) + espeak.pcm("hey neighbor can i borrow a ladder", VOICE) + quiet(1.0, 9)
    [closed] = listen(plain, clip)
    assert closed.heard.parse.intent == "borrow_item"
    assert not closed.heard.early
    assert closed.wait_s >= settings.audio.end_silence_ms / 1000 - 1e-6
