"""``voicehello demo``: the first thing a new user runs.

Speaks a few neighborly requests with espeak-ng (synthesized in memory, never saved),
feeds them through the live pipeline (voice activity detection -> speech recognition ->
intent parsing) block by block as a microphone would, and prints what each became and how
long it took after the speech ended. Everyday kitchen talk is included to show rejection.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

from voicehello.app import Understander
from voicehello.audio.sources import frames
from voicehello.errors import VoicehelloError
from voicehello.speech.recognizer import SAMPLE_RATE

DEMO_LINES = (
    ("en-us", "hey neighbor, can someone help me move a couch"),
    ("en-us+f2", "hey neighbor, could someone lend me a cup of sugar"),
    ("en-us", "hey neighbor, the streetlight on our corner is out"),
    ("en-us+f2", "count me in"),
    ("en-us", "please pass the salt"),
)
"""(espeak-ng voice, sentence) pairs; the last is kitchen talk that must not become a request."""


def synthesize(text: str, voice: str = "en-us", speed: int = 160) -> bytes:
    """16 kHz mono int16 PCM of ``text`` spoken by espeak-ng (kept in memory)."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        raise VoicehelloError("the demo needs espeak-ng and sox (bash scripts/setup.sh installs them)")
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text], capture_output=True, check=True
    ).stdout
    convert = [
        "sox",
        "-t",
        "wav",
        "-",
        "-t",
        "raw",
        "-r",
        str(SAMPLE_RATE),
        "-c",
        "1",
        "-b",
        "16",
        "-e",
        "signed",
        "-",
    ]
    return subprocess.run(convert, input=wav, capture_output=True, check=True).stdout


def _stream(pcm: bytes, block_ms: int, silence_s: float = 1.0) -> Iterator[bytes]:
    """The utterance followed by silence, in microphone-sized blocks."""
    yield from frames(
        bytes(int(SAMPLE_RATE * 0.3) * 2) + pcm + bytes(int(SAMPLE_RATE * silence_s) * 2), block_ms
    )


def run_demo(understander: Understander) -> int:
    """Run the demo lines through the live pipeline; returns the number that went wrong."""
    print(f"voicehello demo: speech engine {understander.engine}\n")
    wrong = 0
    for voice, line in DEMO_LINES:
        expect_request = "neighbor" in line or line == "count me in"
        pcm = synthesize(line, voice)
        started = time.perf_counter()
        results = list(understander.listen(_stream(pcm, understander.settings.audio.block_ms)))
        elapsed = time.perf_counter() - started
        heard = results[-1] if results else None
        said = heard.transcript.text if heard else ""
        parse = heard.parse if heard else None
        if parse is not None and parse.intent is not None:
            slots = ", ".join(f"{k}={v!r}" for k, v in parse.slots.items())
            outcome = f"{parse.intent}({slots})  confidence {parse.confidence:.2f}"
        else:
            outcome = "no intent (not a request: nothing would be sent)"
        decode_ms = heard.decode_s * 1000 if heard else 0.0
        print(f"  [{voice}] said:  {line!r}")
        print(f"           heard: {said!r}")
        print(f"           -> {outcome}")
        print(
            f"           decoded {decode_ms:.0f} ms after the endpoint; {elapsed:.2f} s for {len(pcm) / 2 / SAMPLE_RATE:.1f} s of speech\n"
        )
        if expect_request != (parse is not None and parse.intent is not None):
            wrong += 1
    return wrong
