"""One contract for every speech engine behind the :class:`Recognizer` protocol.

``start()``, any number of ``feed(pcm)`` calls, ``finish() -> Transcript``; each engine is built
the way the application builds it (:func:`create_recognizer` with the intent catalog).

PocketSphinx always runs. Vosk runs when ``VOICEHELLO_VOSK_MODEL`` names a model directory::

    voicehello models download   # once, on a machine with internet access
    VOICEHELLO_VOSK_MODEL=models/vosk-model-small-en-us-0.15 pytest tests/contract
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import pytest

from voicehello.config import DEFAULT_CATALOG_FILE, Engine, IntentSettings, SpeechSettings
from voicehello.intents.catalog import Catalog, load_catalog
from voicehello.intents.parser import IntentParser
from voicehello.speech.engines import create_recognizer
from voicehello.speech.recognizer import SAMPLE_RATE, SAMPLE_WIDTH, Recognizer, Transcript

pytestmark = pytest.mark.integration

VOSK_MODEL = os.environ.get("VOICEHELLO_VOSK_MODEL", "")
ENGINES = [
    pytest.param("pocketsphinx", id="pocketsphinx"),
    pytest.param(
        "vosk",
        id="vosk",
        marks=[
            pytest.mark.vosk,
            pytest.mark.skipif(
                not VOSK_MODEL,
                reason="set VOICEHELLO_VOSK_MODEL to a Vosk model directory to run the Vosk contract "
                "(get one with `voicehello models download`, e.g. "
                "VOICEHELLO_VOSK_MODEL=models/vosk-model-small-en-us-0.15 pytest tests/contract)",
            ),
        ],
    ),
]

REQUESTS: tuple[tuple[str, str, str, dict[str, str]], ...] = (
    # (text, espeak-ng voice, intent, slots): clear catalog requests
    ("could someone lend me a cup of sugar", "en-us", "borrow_item", {"item": "cup of sugar"}),
    ("yes I can lend it", "en-us+f2", "reply_yes", {}),
    ("I have a ladder to lend", "en-us+f2", "offer_item", {"item": "ladder"}),
)
FIRST, SECOND = REQUESTS[0], REQUESTS[1]
LIBRIVOX = tuple(f"librivox/sense_and_sensibility_01_austen_64kb-{n}.wav" for n in ("0870", "0920"))

Factory = Callable[[], Recognizer]


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(DEFAULT_CATALOG_FILE)


@pytest.fixture(scope="session")
def parser(catalog: Catalog) -> IntentParser:
    return IntentParser(catalog, threshold=IntentSettings().threshold)


@pytest.fixture(scope="session", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def new_recognizer(engine: str, catalog: Catalog) -> Factory:
    """Builds a fresh recognizer of ``engine``, as the application does."""
    model = Path(VOSK_MODEL) if engine == "vosk" else None
    settings = SpeechSettings(engine=cast("Engine", engine), vosk_model=model)
    return lambda: create_recognizer(settings, catalog)


@pytest.fixture(scope="session")
def recognizer(new_recognizer: Factory) -> Recognizer:
    """One recognizer per engine for the session (models are slow to load)."""
    return new_recognizer()


@pytest.fixture(scope="session")
def speech(espeak: Any) -> dict[str, bytes]:
    """16 kHz PCM of each request, by text."""
    return {text: espeak.pcm(text, voice) for text, voice, _, _ in REQUESTS}


@pytest.fixture(scope="session", params=LIBRIVOX, ids=lambda name: name.rsplit("-", 1)[-1])
def librivox_pcm(testdata: Path, request: pytest.FixtureRequest) -> bytes:
    """A LibriVox reading (real, fluent, out-of-domain speech) as 16 kHz PCM, converted by sox."""
    sox = shutil.which("sox")
    if sox is None:
        pytest.fail("sox not found; install it with `apt install sox`", pytrace=False)
    wav = testdata / request.param
    command = [sox, str(wav), "-t", "raw", "-r", str(SAMPLE_RATE), "-e", "signed", "-b", "16", "-c", "1"]
    return subprocess.run([*command, "-L", "-"], check=True, capture_output=True).stdout


def decode(recognizer: Recognizer, chunks: Iterable[bytes]) -> Transcript:
    recognizer.start()
    for chunk in chunks:
        recognizer.feed(chunk)
    return recognizer.finish()


def chunked(pcm: bytes, size: int) -> list[bytes]:
    return [pcm[offset : offset + size] for offset in range(0, len(pcm), size)]


def seconds(pcm: bytes) -> float:
    return len(pcm) / (SAMPLE_RATE * SAMPLE_WIDTH)


def test_engine_name(recognizer: Recognizer, engine: str, speech: dict[str, bytes]) -> None:
    assert recognizer.engine == engine
    assert decode(recognizer, [speech[FIRST[0]]]).engine == engine


@pytest.mark.parametrize("request_", REQUESTS, ids=[r[0] for r in REQUESTS])
def test_clear_request_is_understood(
    recognizer: Recognizer,
    parser: IntentParser,
    speech: dict[str, bytes],
    request_: tuple[str, str, str, dict[str, str]],
) -> None:
    text, _, intent, slots = request_
    transcript = decode(recognizer, chunked(speech[text], 3200))
    assert isinstance(transcript, Transcript)
    assert transcript.text == " ".join(transcript.text.lower().split()), "lower case, single spaces"
    result = parser.parse(transcript.text)
    assert (result.intent, result.slots) == (intent, slots), transcript.text
    assert 0.0 <= transcript.confidence <= 1.0


@pytest.mark.parametrize("size", [160, 999, 3200, 32_001])
def test_chunk_size_does_not_change_the_text(
    recognizer: Recognizer, speech: dict[str, bytes], size: int
) -> None:
    pcm = speech[FIRST[0]]
    whole = decode(recognizer, [pcm])
    pieces = decode(recognizer, chunked(pcm, size))
    assert pieces.text == whole.text
    assert pieces.audio_seconds == pytest.approx(whole.audio_seconds, abs=1e-3)


def test_empty_feeds_are_harmless(recognizer: Recognizer, speech: dict[str, bytes]) -> None:
    pcm = speech[FIRST[0]]
    with_empties = [b"", *[piece for chunk in chunked(pcm, 3200) for piece in (chunk, b"")]]
    assert decode(recognizer, with_empties).text == decode(recognizer, [pcm]).text


def test_finish_without_audio(recognizer: Recognizer, parser: IntentParser, engine: str) -> None:
    recognizer.start()
    transcript = recognizer.finish()
    assert len(transcript.text.split()) <= 1, transcript.text
    assert parser.parse(transcript.text).intent is None
    assert transcript.audio_seconds == 0.0
    assert 0.0 <= transcript.confidence <= 1.0
    assert transcript.engine == engine


def test_silence_is_not_a_request(recognizer: Recognizer, parser: IntentParser) -> None:
    transcript = decode(recognizer, [bytes(SAMPLE_RATE * SAMPLE_WIDTH)])  # one second of zeros
    assert parser.parse(transcript.text).intent is None, transcript.text
    assert transcript.audio_seconds == pytest.approx(1.0, abs=1e-3)


def test_utterances_do_not_leak_into_each_other(new_recognizer: Factory, speech: dict[str, bytes]) -> None:
    """``start()`` discards the previous utterance: the second of two utterances decodes the
    same as it does on a fresh recognizer, whether the first was finished or abandoned."""
    first, second = speech[FIRST[0]], speech[SECOND[0]]
    recognizer = new_recognizer()
    alone = decode(recognizer, [second])  # the reference: first utterance of a fresh recognizer

    decode(recognizer, [first])
    after_finished = decode(recognizer, [second])

    recognizer.start()
    recognizer.feed(first)  # abandoned: never finished
    after_abandoned = decode(recognizer, [second])

    for label, transcript in (("after a finished", after_finished), ("after an abandoned", after_abandoned)):
        assert transcript.text == alone.text, f"{label} utterance"
        assert transcript.audio_seconds == alone.audio_seconds, f"{label} utterance"
        assert transcript.confidence == pytest.approx(alone.confidence, abs=5e-3), (
            f"{label} utterance the confidence is {transcript.confidence}, alone {alone.confidence}: "
            "state of the previous utterance leaks into the next"
        )


@pytest.mark.parametrize("text", [r[0] for r in REQUESTS])
def test_audio_seconds_is_the_audio_fed(recognizer: Recognizer, speech: dict[str, bytes], text: str) -> None:
    pcm = speech[text]
    assert decode(recognizer, chunked(pcm, 4000)).audio_seconds == pytest.approx(seconds(pcm), abs=1e-3)


def test_out_of_domain_reading_is_no_intent(
    recognizer: Recognizer, parser: IntentParser, librivox_pcm: bytes
) -> None:
    transcript = decode(recognizer, chunked(librivox_pcm, 3200))
    assert 0.0 <= transcript.confidence <= 1.0
    assert transcript.audio_seconds == pytest.approx(seconds(librivox_pcm), abs=1e-3)
    result = parser.parse(transcript.text)
    assert result.intent is None, f"{transcript.text!r} -> {result.intent} {result.slots}"
