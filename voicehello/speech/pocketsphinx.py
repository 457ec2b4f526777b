"""PocketSphinx: the bundled engine, decoding with a word graph compiled from the catalog.

The wheel carries the US English acoustic model and dictionary, so this engine works on a
fresh machine with nothing to download. Decoding is restricted to the catalog's sentences;
speech that fits none of them either fails to reach the grammar's final state (no text) or
fits badly, which shows in the acoustic score per frame that :attr:`Transcript.confidence`
is computed from.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from voicehello.errors import CatalogError, ModelError, RecognizerError
from voicehello.speech.grammar import WordGraph
from voicehello.speech.recognizer import SAMPLE_RATE, Transcript

log = logging.getLogger(__name__)

PAD_SECONDS = 0.25
"""Near-silence added around each utterance: the grammar search needs some to settle."""

SCORE_FLOOR = -8.0
"""Mean log acoustic score per frame mapped to confidence 0 (scores are relative to the best
senone in each frame, so 0 is a perfect fit)."""

_FILLERS = {"<s>", "</s>", "<sil>", "[noise]", "[breath]", "[cough]", "[laugh]", "[smack]", "[uh]", "[um]"}


def _silence(seconds: float) -> bytes:
    """Low-level dither rather than digital zeros, which upset the feature extractor."""
    count = int(SAMPLE_RATE * seconds)
    pattern = bytes([1, 0, 255, 255])  # +1, -1 as int16 little endian
    return (pattern * (count // 2 + 1))[: count * 2]


class PocketSphinxRecognizer:
    """PocketSphinx decoding one utterance at a time against the catalog's word graph."""

    engine = "pocketsphinx"

    def __init__(self, graph: WordGraph, model_dir: Path | None = None, **options: object) -> None:
        try:
            from pocketsphinx import Decoder, get_model_path
        except ImportError as exc:  # pragma: no cover - it is a hard dependency
            raise ModelError("the pocketsphinx package is not installed") from exc
        model_root = Path(model_dir) if model_dir else Path(get_model_path())
        hmm = model_root / "en-us" / "en-us"
        dictionary = model_root / "en-us" / "cmudict-en-us.dict"
        if not hmm.is_dir() or not dictionary.is_file():
            raise ModelError(f"no PocketSphinx English model under {model_root}")
        try:
            self._decoder = Decoder(
                samprate=SAMPLE_RATE, hmm=str(hmm), dict=str(dictionary), lm=None, loglevel="FATAL", **options
            )
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"PocketSphinx failed to load its model from {model_root}: {exc}") from exc
        words = {word for out in graph.arcs for word in out}
        unknown = sorted(word for word in words if self._decoder.lookup_word(word) is None)
        if unknown:
            raise CatalogError(
                f"{len(unknown)} catalog word(s) are not in the PocketSphinx dictionary: {', '.join(unknown[:10])}"
            )
        try:
            start, final, transitions = graph.transitions()
            fsg = self._decoder.create_fsg("catalog", start, final, transitions)
            self._decoder.add_fsg("catalog", fsg)
            self._decoder.activate_search("catalog")
        except (RuntimeError, ValueError) as exc:
            raise CatalogError(f"PocketSphinx rejected the generated grammar: {exc}") from exc
        self._samples = 0
        self._started = False

    def start(self) -> None:
        """Begin a new utterance."""
        if self._started:
            self._decoder.end_utt()
        self._decoder.start_utt()
        self._decoder.process_raw(_silence(PAD_SECONDS), False, False)
        self._samples = 0
        self._started = True

    def feed(self, pcm: bytes) -> None:
        """Decode a chunk of 16 kHz mono int16 PCM."""
        if not self._started:
            self.start()
        try:
            self._decoder.process_raw(pcm, False, False)
        except (RuntimeError, ValueError) as exc:
            raise RecognizerError(f"PocketSphinx failed while decoding: {exc}") from exc
        self._samples += len(pcm) // 2

    def finish(self) -> Transcript:
        """End the utterance and return the best grammar path, or empty text."""
        if not self._started:
            self.start()
        self._decoder.process_raw(_silence(PAD_SECONDS), False, False)
        self._decoder.end_utt()
        self._started = False
        text, score = self._best_path()
        return Transcript(
            text=text,
            confidence=score_to_confidence(score),
            engine=self.engine,
            audio_seconds=self._samples / SAMPLE_RATE,
        )

    def _best_path(self) -> tuple[str, float | None]:
        """The hypothesis and its mean log acoustic score per speech frame."""
        hypothesis = self._decoder.hyp()
        segments = list(self._decoder.seg() or [])
        if hypothesis is None or not hypothesis.hypstr or not segments:
            return "", None
        words = [segment for segment in segments if segment.word not in _FILLERS]
        frames = sum(segment.end_frame - segment.start_frame + 1 for segment in words)
        total = sum(math.log(max(segment.ascore, 1e-300)) for segment in words)
        return " ".join(hypothesis.hypstr.split()), total / max(frames, 1)


def score_to_confidence(score: float | None) -> float:
    """Map a mean log acoustic score per frame (<= 0) onto 0..1."""
    if score is None:
        return 0.0
    return round(min(1.0, max(0.0, 1.0 - score / SCORE_FLOOR)), 4)
