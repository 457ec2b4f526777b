"""Acoustic confidence in rejection, on real speech: espeak-ng requests, the benchmark's kitchen
noise (bench/noise.py, fixed seeds) and the real PocketSphinx decoder through ``listen``.

A request drowned in noise (0 dB) comes out of the decoder as words that parse to another
request ("wave to everyone" -> say_hello); the words' lattice posteriors are low, so it is
rejected and the device says "Sorry, I didn't catch that" instead of reading a request back.
The same request clean, or another one, is accepted as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from announced import Announced
from pods import Circle

from bench import dataset, noise
from voicehello.app import NOT_CAUGHT, Device, Heard, Understander
from voicehello.config import AnnounceSettings, IntentSettings, PrivacySettings, Settings

pytestmark = pytest.mark.integration

HALF_HEARD = "hey neighbor does anyone have a ladder to lend"
"""At 0 dB (seed 2, en-us), decoded with early ends after 150 ms, PocketSphinx hears "wave to
everyone": say_hello, a wrong request. (Early ends are off by default; they are on here because
this is the half-heard case found with them — what is under test is the posterior floor.)"""
EARLY_END_MS = 150
CLEAR = "hey neighbor i have a spare ladder to lend"
VOICE = "en-us"
SNR_DB = 0.0
SEED = 2
WAIT_S = 10.0


def clip(text: str, snr_db: float | None) -> bytes:
    """``text`` spoken by espeak-ng, 0.5 s lead-in and 1 s tail, clean or in kitchen noise."""
    speech = dataset.synthesize(text, VOICE, 160)
    kitchen = noise.KitchenNoise(dataset.babble_sources()) if snr_db is not None else None
    return noise.make_clip(speech, lead_s=0.5, tail_s=1.0, snr_db=snr_db, noise=kitchen, seed=SEED)


def blocks(pcm: bytes, size: int = 960) -> Iterator[bytes]:
    """``pcm`` in 30 ms blocks, as a microphone delivers it."""
    for offset in range(0, len(pcm), size):
        yield pcm[offset : offset + size]


@pytest.fixture(scope="module")
def half_heard() -> bytes:
    return clip(HALF_HEARD, SNR_DB)


@pytest.fixture(scope="module")
def listening(understander: Understander) -> Understander:
    """The session's understander with early ends after :data:`EARLY_END_MS` (see HALF_HEARD)."""
    settings = understander.settings
    speech = replace(settings.speech, early_end_ms=EARLY_END_MS)
    return Understander(
        replace(settings, speech=speech), catalog=understander.catalog, recognizer=understander.recognizer
    )


def heard(understander: Understander, pcm: bytes) -> list[Heard]:
    return list(understander.listen(blocks(pcm)))


def test_a_half_heard_request_is_rejected_not_turned_into_another(
    listening: Understander, half_heard: bytes
) -> None:
    understander = listening
    assert understander.settings.speech.min_acoustic_confidence > 0
    results = heard(understander, half_heard)
    assert [h.parse.intent for h in results] == [None], [h.transcript for h in results]
    [rejected] = [h for h in results if h.unsure]
    assert rejected.parse.guess == "say_hello"  # what it would have been taken for
    assert (rejected.to_dict()["intent"], rejected.to_dict()["unsure"]) == (None, True)
    assert rejected.transcript.confidence < understander.settings.speech.min_acoustic_confidence


def test_without_the_acoustic_floor_the_same_audio_becomes_another_request(half_heard: bytes) -> None:
    """Control: with ``min_acoustic_confidence = 0`` (the old behaviour) the noise is acted on."""
    settings = Settings()
    speech = replace(
        settings.speech, engine="pocketsphinx", min_acoustic_confidence=0.0, early_end_ms=EARLY_END_MS
    )
    results = heard(Understander(replace(settings, speech=speech)), half_heard)
    assert "say_hello" in [h.parse.intent for h in results]
    assert not any(h.unsure for h in results)


def test_a_clear_request_is_accepted(understander: Understander) -> None:
    [result] = heard(understander, clip(CLEAR, None))
    assert (result.parse.intent, result.unsure) == ("offer_item", False)
    assert result.transcript.confidence >= understander.settings.speech.min_acoustic_confidence


def test_the_device_says_sorry_and_reads_back_only_the_clear_request(
    listening: Understander, half_heard: bytes, tmp_path: Path
) -> None:
    """Through ``Device.listen`` (every utterance admitted, as after a wake phrase): the
    half-heard request gets the sorry line, through the announcer's prompt; the clear request
    after it, read back, is the sentinel that nothing else was said in between."""
    understander = listening
    shown = Announced()
    settings = replace(
        understander.settings,
        intents=IntentSettings(require_wake=False),
        announce=AnnounceSettings(output="print"),
        privacy=PrivacySettings(keys_dir=Circle(tmp_path).keys_dir("kitchen")),
    )
    device = Device(settings, understander=understander, show=shown.show, report=lambda line: None)
    # the bus is never started: a read-back publishes nothing, and no broker is under test
    device.announcer.start()
    try:
        first = list(device.listen(blocks(half_heard)))
        second = list(device.listen(blocks(clip(CLEAR, None))))
        assert shown.wait_line("Offer your neighbors", WAIT_S), shown.lines()
    finally:
        device.announcer.stop()
    assert [h.unsure for h in first] == [True]
    assert [h.parse.intent for h in second] == ["offer_item"]
    spoken = [line.split(" ", 1)[1] for line in shown.lines()]
    assert spoken[0] == NOT_CAUGHT
    assert len(spoken) == 2, spoken
    assert spoken[1].startswith("Offer your neighbors"), spoken
