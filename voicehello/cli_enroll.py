"""``voicehello enroll``: read sentences aloud so that the device adapts to a voice and microphone."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from voicehello.config import load_settings
from voicehello.errors import AdaptationError, AudioError, VoicehelloError
from voicehello.speech.adaptation.prompts import DEFAULT_PROMPTS, MIN_PROMPTS, EnrollPrompt

EXIT_INTERRUPTED = 130
KEPT = "nothing saved, the previous adaptation is kept"


def prompt_count(text: str) -> int:
    """``--prompts``: a whole number of at least :data:`MIN_PROMPTS`."""
    value = int(text)
    if value < MIN_PROMPTS:
        raise argparse.ArgumentTypeError(f"at least {MIN_PROMPTS}")
    return value


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``enroll`` to the command line."""
    p = sub.add_parser(
        "enroll",
        parents=[common],
        help="read sentences aloud; the device adapts to your voice and microphone",
    )
    p.add_argument("--device", help="input device name (substring) or index; see `voicehello devices`")
    p.add_argument("--file", help="a WAV file with the sentences read in order, instead of the microphone")
    p.add_argument(
        "--prompts",
        type=prompt_count,
        default=DEFAULT_PROMPTS,
        help=f"sentences to read (default {DEFAULT_PROMPTS})",
    )
    p.add_argument("--seed", type=int, default=0, help="pick another set of sentences")
    p.set_defaults(func=cmd_enroll)


def _show(total: int) -> Any:
    def show(number: int, prompt: EnrollPrompt) -> None:
        print(f"[{number}/{total}] Please read: {prompt.text}", flush=True)

    return show


def _stopped(exc: VoicehelloError) -> AdaptationError:
    """``exc`` as the one line enroll ends with, saying the old adaptation stays."""
    message = str(exc)
    return AdaptationError(
        message if "previous adaptation" in message else f"enrollment stopped: {message}; {KEPT}"
    )


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def cmd_enroll(args: argparse.Namespace) -> int:
    """Show the prompts, record the readings, adapt, keep the adaptation only if it helps."""
    from voicehello.audio.sources import MicrophoneSource, WavFileSource
    from voicehello.intents.catalog import load_catalog
    from voicehello.intents.parser import IntentParser
    from voicehello.speech.adaptation.enroll import adapt, record_prompts
    from voicehello.speech.adaptation.prompts import enrollment_prompts
    from voicehello.speech.adaptation.sphinxtrain import Toolchain
    from voicehello.speech.adaptation.store import save_adaptation
    from voicehello.speech.engines import choose_engine

    settings = load_settings(args.config)
    target = settings.speech.adaptation
    if target is None:
        raise AdaptationError("speech.adaptation is not set: there is nowhere to keep an adaptation")
    if choose_engine(settings.speech) != "pocketsphinx":
        raise AdaptationError(
            "enroll adapts PocketSphinx; the speech engine is Vosk, whose API offers no acoustic adaptation"
        )
    Toolchain.find()  # before anyone reads a word
    catalog = load_catalog(settings.intents.catalog)
    parser = IntentParser(catalog, threshold=settings.intents.threshold)
    prompts = enrollment_prompts(catalog, args.prompts, args.seed)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        source: Any
        if args.file:
            source = WavFileSource(Path(args.file), block_ms=settings.audio.block_ms, realtime=False)
        else:
            device = args.device if args.device is not None else settings.audio.input_device
            source = MicrophoneSource(device=device, block_ms=settings.audio.block_ms).open()
        print(
            f"Read each sentence aloud after it appears, in your normal voice ({len(prompts)} sentences).",
            flush=True,
        )
        try:
            recordings = record_prompts(source, prompts, settings.audio, _show(len(prompts)))
        finally:
            source.close()
        print("Adapting to your voice and microphone ...", flush=True)
        outcome = adapt(recordings, settings.speech, catalog, parser)
        save_adaptation(outcome.chosen.data, target)
    except KeyboardInterrupt:
        print(f"voicehello: enrollment interrupted; {KEPT}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except (AdaptationError, AudioError) as exc:
        raise _stopped(exc) from exc
    chosen = outcome.chosen
    print(
        f"saved the speaker adaptation ({chosen.method}) to {target}: held-apart sentences "
        f"{outcome.unadapted.describe()} without it, {chosen.score.describe()} with it",
        flush=True,
    )
    return 0
