"""What ``voicehello enroll`` gains, per espeak-ng voice, on held-apart sentences (clean).

Usage (from the checkout)::

    .venv/bin/python bench/enroll.py                       # the five benchmark voices, 30 held-apart each
    .venv/bin/python bench/enroll.py --voices en-gb+m3 --held 10

For each voice: the enrollment prompts (``enrollment_prompts``, 20 by default) are spoken and
cut by the same endpointer as ``enroll``; the adaptation is made exactly as ``enroll`` makes it
(its own held-apart check included); then ``--held`` test-split sentences of the speech
benchmark, none of them an enrollment prompt, are decoded without and with the adaptation.
Strict = intent and slots right. Audio lives in memory; the adaptation file is made in a
private temporary directory and deleted.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:  # `python bench/enroll.py` puts only bench/ on the path
    sys.path.insert(0, str(PROJECT_DIR))

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402

from bench import dataset  # noqa: E402
from voicehello.audio.sources import frames  # noqa: E402
from voicehello.config import Settings  # noqa: E402
from voicehello.errors import AdaptationError  # noqa: E402
from voicehello.intents.catalog import load_catalog  # noqa: E402
from voicehello.intents.parser import IntentParser  # noqa: E402
from voicehello.speech.adaptation.enroll import adapt, record_prompts, word_errors  # noqa: E402
from voicehello.speech.adaptation.prompts import DEFAULT_PROMPTS, enrollment_prompts  # noqa: E402
from voicehello.speech.engines import create_recognizer  # noqa: E402
from voicehello.speech.recognizer import recognize  # noqa: E402

VOICES = ("en-gb+m3", "en-gb-x-rp+f4", "en-us", "en-us+f2", "en-us+m7")
READING_WPM = 160
"""espeak-ng rate of the enrollment readings."""
GAP = bytes(32000)
"""One second of silence between readings."""


@dataclass(frozen=True)
class Tally:
    """Held-apart result of one voice with or without adaptation."""

    strict: int
    total: int
    errors: int
    words: int

    def text(self) -> str:
        """``63% (19/30), WER 26%``."""
        return (
            f"{self.strict / self.total:.0%} ({self.strict}/{self.total}), WER {self.errors / self.words:.0%}"
        )


def tally(settings: Settings, catalog: object, prompts: list[dataset.Prompt], audio: list[bytes]) -> Tally:
    """Decode ``audio`` with the recognizer ``settings`` make; strict accuracy and word errors."""
    recognizer = create_recognizer(settings.speech, catalog)  # type: ignore[arg-type]
    parser = IntentParser(catalog)  # type: ignore[arg-type]
    strict = errors = words = 0
    for prompt, pcm in zip(prompts, audio, strict=True):
        text = recognize(recognizer, pcm).text
        got = parser.parse(text)
        strict += int(got.intent == prompt.intent and dict(got.slots) == prompt.slots)
        errors += word_errors(prompt.text.split(), text.split())
        words += len(prompt.text.split())
    return Tally(strict=strict, total=len(prompts), errors=errors, words=words)


def main(argv: list[str] | None = None) -> int:
    """Enroll each voice and print before/after on held-apart sentences."""
    options = argparse.ArgumentParser(prog="bench/enroll.py", description=__doc__.splitlines()[0])
    options.add_argument("--voices", default=",".join(VOICES), help="comma-separated espeak-ng voices")
    options.add_argument(
        "--prompts", type=int, default=DEFAULT_PROMPTS, help="enrollment sentences per voice"
    )
    options.add_argument("--held", type=int, default=30, help="held-apart test sentences per voice")
    options.add_argument("--json", type=Path, help="also write the numbers here")
    args = options.parse_args(argv)
    dataset.check_tools()
    base = Settings()
    catalog = load_catalog(base.intents.catalog)
    parser = IntentParser(catalog)
    enroll = enrollment_prompts(catalog, args.prompts)
    said = {prompt.text for prompt in enroll}
    held, _ = dataset.build_prompts(catalog, parser, "test", args.held + len(said))
    held = [prompt for prompt in held if prompt.text not in said][: args.held]
    unadapted = replace(base, speech=replace(base.speech, engine="pocketsphinx", adaptation=None))
    rows: list[dict[str, object]] = []
    print(f"{'voice':<15} {'before':<24} {'after':<24} method        enroll check (5 held-apart prompts)")
    for voice in args.voices.split(","):
        started = time.monotonic()
        reading = b"".join(GAP + dataset.synthesize(p.text, voice, READING_WPM) for p in enroll) + GAP
        recordings = record_prompts(frames(reading, base.audio.block_ms), enroll, base.audio, lambda *_: None)
        audio = [dataset.synthesize(p.text, voice, p.speed) for p in held]
        before = tally(unadapted, catalog, held, audio)
        with tempfile.TemporaryDirectory(prefix="voicehello-bench-enroll-") as folder:
            try:
                outcome = adapt(recordings, unadapted.speech, catalog, parser)
            except AdaptationError as exc:
                print(f"{voice:<15} {before.text():<24} refused: {exc}")
                rows.append({"voice": voice, "before": before.__dict__, "refused": str(exc)})
                continue
            path = Path(folder) / "adaptation"
            path.write_bytes(outcome.chosen.data)
            adapted = replace(unadapted, speech=replace(unadapted.speech, adaptation=path))
            after = tally(adapted, catalog, held, audio)
        check = f"{outcome.unadapted.describe()} -> {outcome.chosen.score.describe()}"
        print(
            f"{voice:<15} {before.text():<24} {after.text():<24} {outcome.chosen.method:<13} {check}",
            flush=True,
        )
        rows.append(
            {
                "voice": voice,
                "before": before.__dict__,
                "after": after.__dict__,
                "method": outcome.chosen.method,
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
