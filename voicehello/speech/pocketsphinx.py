"""PocketSphinx: the bundled engine, decoding with a language model or grammar from the catalog.

The wheel carries the US English acoustic model and dictionary, so this engine works on a
fresh machine with nothing to download. Two searches are built from the intent catalog:

* ``lm`` (default): a small trigram model of the catalog's sentences
  (:mod:`voicehello.speech.lm`). Fast, and off-catalog speech comes out as off-catalog
  words that the parser rejects.
* ``grammar``: the catalog's exact sentences as a minimal word graph
  (:mod:`voicehello.speech.grammar`). Every result is a catalog sentence, which makes
  everyday talk come out as requests more often; slower on a large catalog.

The benchmark in ``bench/`` measures both; the README has the numbers.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from voicehello.errors import CatalogError, ModelError, RecognizerError
from voicehello.speech.adaptation.store import load_adapted
from voicehello.speech.cepstra import CepstralMean
from voicehello.speech.grammar import WordGraph
from voicehello.speech.recognizer import SAMPLE_RATE, Transcript

log = logging.getLogger(__name__)

MAX_UTTERANCE_BYTES = 30 * SAMPLE_RATE * 2
"""Longest utterance held for decoding (30 s); the buffer lives in memory only."""

PAD_SECONDS = 0.25
"""Background-level audio added around each utterance: the search needs some to settle."""

NOISE_FLOOR = 30.0
"""Standard deviation (in int16 units, about -61 dBFS) of the noise added to every sample.

Synthesized or digitally muted audio holds runs of exact zeros, whose log energy
derails the feature extraction; a microphone never delivers them. A faint, deterministic
noise floor makes both behave alike."""


DECODER_OPTIONS: dict[str, object] = {
    "fwdflat": False,
    "maxhmmpf": 3000,
    "remove_noise": False,
    "maxwpf": 20,
}
"""No second flat-lexicon pass and at most 3,000 HMMs a frame (on a dev set, about 30% faster
with the same accuracy); no spectral noise removal, whose running noise estimate would carry
one utterance's background into the next (accuracy was the same without it).

At most 20 words ending per frame (default: no limit): on the dev split (60 sentences, clean
and 10 dB) the same strict accuracy within one sentence, 2-8% less decoding time. Tried and left
out: ``topn`` 3 (5% less CPU, but a clear "I have a ladder to lend" of the contract suite came
out wrong), and, each losing 2-8 of 60 sentences, ``ds`` 2, ``topn`` 2, ``maxwpf`` 10, tighter
``beam``/``pbeam`` (1e-44, 1e-40), ``wbeam`` 1e-24, ``lponlybeam`` 1e-25, ``pl_window`` 3,
``bestpath`` off (which also loses the word posteriors of :func:`word_posterior_confidence`);
``maxhmmpf`` 1500-2000, ``pl_window`` 0/10 and ``pl_beam`` 1e-6 saved nothing."""


BLOCK_BYTES = 960
"""Streaming decodes in blocks of 30 ms, whatever the size of the pieces fed."""

LAG_BLOCKS = 10
"""Streaming keeps its decoding 300 ms behind the audio, so each block is normalized with a
cepstral mean that has seen a little of what follows it (on the dev split: no lag lost 4 of
40 clean sentences against batch CMN; 150-300 ms matched or beat it)."""


class NoiseFloor:
    """Adds a faint, reproducible noise floor to PCM (restarted for every utterance)."""

    def __init__(self, level: float = NOISE_FLOOR) -> None:
        self.level = level
        self._rng = np.random.default_rng(0)

    def restart(self) -> None:
        """Start the same noise sequence again."""
        self._rng = np.random.default_rng(0)

    def apply(self, pcm: bytes) -> bytes:
        """``pcm`` with the noise floor added (int16, clipped)."""
        samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float32)
        samples += np.asarray(self._rng.normal(0.0, self.level, samples.shape[0]), dtype=np.float32)
        return np.clip(samples, -32768, 32767).astype("<i2").tobytes()

    def silence(self, seconds: float) -> bytes:
        """``seconds`` of the noise floor alone."""
        return self.apply(bytes(int(SAMPLE_RATE * seconds) * 2))


class PocketSphinxRecognizer:
    """PocketSphinx decoding one utterance at a time against the catalog."""

    engine = "pocketsphinx"

    def __init__(
        self,
        words: set[str],
        *,
        arpa: str | None = None,
        graph: WordGraph | None = None,
        classes: dict[str, dict[str, float]] | None = None,
        model_dir: Path | None = None,
        streaming: bool = True,
        **options: object,
    ) -> None:
        """Load the bundled model with either an ARPA language model (whose n-grams may name
        word ``classes``: class -> word -> weight) or a word graph. ``streaming``: decode
        while the audio arrives (else the whole utterance at :meth:`finish`)."""
        if (arpa is None) == (graph is None):
            raise ValueError("give exactly one of arpa= or graph=")
        if classes and arpa is None:
            raise ValueError("word classes need arpa=")
        if arpa is not None and classes:
            self._decoder = _load_with_classes(model_dir, options, arpa, classes)
            arpa = None  # already loaded, as the decoder's own search
        else:
            self._decoder = _load_decoder(model_dir, options)
        unknown = sorted(word for word in words if self._decoder.lookup_word(word) is None)
        if unknown:
            raise CatalogError(
                f"{len(unknown)} catalog word(s) are not in the PocketSphinx dictionary: {', '.join(unknown[:10])}"
            )
        try:
            if arpa is not None:
                _add_language_model(self._decoder, arpa)
            elif graph is not None:
                start, final, transitions = graph.transitions()
                self._decoder.add_fsg(
                    "catalog", self._decoder.create_fsg("catalog", start, final, transitions)
                )
            self._decoder.activate_search("catalog")
        except (RuntimeError, ValueError) as exc:
            raise CatalogError(f"PocketSphinx rejected the search built from the catalog: {exc}") from exc
        self._noise = NoiseFloor()
        self._audio = bytearray()
        self.streaming = streaming
        self._live: _LiveUtterance | None = None

    def start(self) -> None:
        """Begin a new utterance (an unfinished one is dropped)."""
        self._audio.clear()
        self._end_live()
        if self.streaming:
            self._noise.restart()
            self._live = _LiveUtterance(self._decoder)
            self._live.take_padding(self._noise.silence(PAD_SECONDS))

    def feed(self, pcm: bytes) -> None:
        """Take a chunk of 16 kHz mono int16 PCM: decoded now when streaming, else held in
        memory until :meth:`finish`."""
        if self._live is not None:
            self._live.take_audio(pcm, self._noise)
            return
        room = MAX_UTTERANCE_BYTES - len(self._audio)
        if len(pcm) > room:
            log.warning(
                "utterance longer than %.0f s; the rest is ignored", MAX_UTTERANCE_BYTES / 2 / SAMPLE_RATE
            )
        self._audio += pcm[: max(room, 0)]

    def partial(self) -> str:
        """The best hypothesis of the audio fed so far (streaming; ``""`` otherwise)."""
        if self._live is None:
            return ""
        return self._live.partial()

    def finish(self) -> Transcript:
        """End the utterance and return the best hypothesis (empty text when none).

        Streaming: the rest of the audio is decoded now (normally the last 0.3 s and the
        padding). Otherwise the whole utterance is decoded at once, with batch cepstral mean
        normalization.
        """
        if self._live is not None:
            return self._finish_live()
        if self.streaming:  # finish() without start(): nothing was heard
            return self._transcript(None, 0)
        self._noise.restart()
        pcm = self._audio[: len(self._audio) - len(self._audio) % 2]
        audio = (
            self._noise.silence(PAD_SECONDS)
            + self._noise.apply(bytes(pcm))
            + self._noise.silence(PAD_SECONDS)
        )
        self._audio.clear()
        try:
            self._decoder.reinit_feat()  # fresh feature state (CMN): nothing carried over from the last utterance
            self._decoder.start_utt()
            self._decoder.process_raw(audio, False, True)
            self._decoder.end_utt()
        except (RuntimeError, ValueError, IndexError) as exc:
            raise RecognizerError(f"PocketSphinx failed while decoding: {exc}") from exc
        return self._transcript(self._decoder.hyp(), len(pcm))

    def _finish_live(self) -> Transcript:
        live, self._live = self._live, None
        assert live is not None
        try:
            live.take_padding(self._noise.silence(PAD_SECONDS), last=True)
            self._decoder.end_utt()
        except (RuntimeError, ValueError, IndexError) as exc:
            raise RecognizerError(f"PocketSphinx failed while decoding: {exc}") from exc
        return self._transcript(self._decoder.hyp(), live.bytes_taken)

    def _end_live(self) -> None:
        """Drop a streamed utterance that was never finished."""
        if self._live is not None:
            self._live = None
            try:
                self._decoder.end_utt()
            except RuntimeError as exc:
                log.debug("ending an abandoned utterance: %s", exc)

    def _transcript(self, hypothesis: Any, audio_bytes: int) -> Transcript:
        text = " ".join(hypothesis.hypstr.split()) if hypothesis is not None else ""
        confidence = word_posterior_confidence(self._decoder) if text else 0.0
        return Transcript(
            text=text,
            confidence=round(min(1.0, max(0.0, confidence)), 4),
            engine=self.engine,
            audio_seconds=audio_bytes / 2 / SAMPLE_RATE,
        )


class _LiveUtterance:
    """One utterance decoded as it arrives, in fixed blocks (so the result does not depend on
    how the audio was chunked), ``LAG_BLOCKS`` behind the audio received: before each block
    is decoded the decoder's cepstral mean is set to the running estimate over everything
    received so far (:class:`CepstralMean`), a close stand-in for batch CMN."""

    def __init__(self, decoder: Any) -> None:
        self._decoder = decoder
        self._mean = CepstralMean()
        self._raw = bytearray()
        self._pending = bytearray()
        self._waiting: deque[bytes] = deque()
        self.bytes_taken = 0
        """Bytes of the caller's audio taken (without the padding)."""
        try:
            decoder.reinit_feat()  # nothing carried over from the last utterance
            decoder.start_utt()
        except (RuntimeError, ValueError) as exc:
            raise RecognizerError(f"PocketSphinx failed to start an utterance: {exc}") from exc

    def take_audio(self, pcm: bytes, noise: NoiseFloor) -> None:
        """Queue the caller's ``pcm`` with the noise floor added, and decode every block that is
        ``LAG_BLOCKS`` behind."""
        room = MAX_UTTERANCE_BYTES - self.bytes_taken
        if len(pcm) > room:
            if room > 0:
                log.warning(
                    "utterance longer than %.0f s; the rest is ignored", MAX_UTTERANCE_BYTES / 2 / SAMPLE_RATE
                )
            pcm = pcm[: max(room, 0)]
        self.bytes_taken += len(pcm)
        self._raw += pcm
        even = len(self._raw) - len(self._raw) % 2
        if even:
            self._pending += noise.apply(bytes(self._raw[:even]))
            del self._raw[:even]
        self._queue(whole_blocks=True)
        self._decode(LAG_BLOCKS)

    def take_padding(self, pcm: bytes, *, last: bool = False) -> None:
        """Queue padding (already noise floor); ``last``: decode everything (the end)."""
        self._pending += pcm
        self._queue(whole_blocks=not last)
        self._decode(0 if last else LAG_BLOCKS)

    def _queue(self, *, whole_blocks: bool) -> None:
        size = len(self._pending) - len(self._pending) % (BLOCK_BYTES if whole_blocks else 2)
        for offset in range(0, size, BLOCK_BYTES):
            piece = bytes(self._pending[offset : min(offset + BLOCK_BYTES, size)])
            self._mean.add(piece)
            self._waiting.append(piece)
        del self._pending[:size]

    def partial(self) -> str:
        """Decode everything received, and return the hypothesis so far."""
        self._decode(0)
        hypothesis = self._decoder.hyp()
        return " ".join(hypothesis.hypstr.split()) if hypothesis is not None else ""

    def _decode(self, keep: int) -> None:
        if len(self._waiting) <= keep:
            return
        mean = self._mean.mean()
        try:
            if mean is not None:
                self._decoder.set_cmn(mean)
            while len(self._waiting) > keep:
                self._decoder.process_raw(self._waiting.popleft(), False, False)
        except (RuntimeError, ValueError, IndexError) as exc:
            raise RecognizerError(f"PocketSphinx failed while decoding: {exc}") from exc


def word_posterior_confidence(decoder: Any) -> float:
    """The mean lattice posterior of the words in the best hypothesis (silences, fillers and
    sentence marks left out): near 1 when the search had no rival for each word, low when
    noise left it many (a half-heard request). 0 when there is no word or no lattice."""
    try:
        posteriors = [
            min(1.0, max(0.0, float(segment.prob)))
            for segment in decoder.seg()
            if segment.word and segment.word[0] not in "<["
        ]
    except (RuntimeError, ValueError) as exc:
        log.debug("no word posteriors: %s", exc)
        return 0.0
    return sum(posteriors) / len(posteriors) if posteriors else 0.0


def model_root(model_dir: Path | None = None) -> Path:
    """Where the English model is: ``model_dir``, else the one the wheel carries."""
    from pocketsphinx import get_model_path

    return Path(model_dir) if model_dir else Path(get_model_path())


def dictionary_path(model_dir: Path | None = None) -> Path:
    """The pronunciation dictionary of the English model."""
    return model_root(model_dir) / "en-us" / "cmudict-en-us.dict"


def _load_decoder(model_dir: Path | None, options: dict[str, object]) -> Any:
    from pocketsphinx import Decoder

    root = model_root(model_dir)
    hmm = root / "en-us" / "en-us"
    dictionary = dictionary_path(model_dir)
    if not hmm.is_dir() or not dictionary.is_file():
        raise ModelError(f"no PocketSphinx English model under {root}")
    settings: dict[str, object] = {"lm": None, **DECODER_OPTIONS, **options}
    adaptation = settings.pop("adaptation", None)  # the speaker adaptation file (voicehello enroll)

    def make(extra: dict[str, object]) -> Any:
        return Decoder(
            samprate=SAMPLE_RATE, hmm=str(hmm), dict=str(dictionary), loglevel="FATAL", **settings, **extra
        )

    try:
        return load_adapted(make, Path(str(adaptation)) if adaptation else None, hmm)
    except (RuntimeError, ValueError) as exc:
        if "lmctl" in options:
            raise CatalogError(
                f"PocketSphinx rejected the language model built from the catalog: {exc}"
            ) from exc
        raise ModelError(f"PocketSphinx failed to load its model from {root}: {exc}") from exc


def _load_with_classes(
    model_dir: Path | None, options: dict[str, object], arpa: str, classes: dict[str, dict[str, float]]
) -> Any:
    """A decoder whose search ``catalog`` is ``arpa`` with word classes: PocketSphinx takes
    classes only from an ``lmctl`` file read when the decoder is made, so the model, its class
    definitions and the control file are written to a private temporary directory (text
    only, never audio) and removed once loaded."""
    from voicehello.speech.lm import classdef

    with tempfile.TemporaryDirectory(prefix="voicehello-lm-") as folder:
        root = Path(folder)
        (root / "catalog.arpa").write_text(arpa, encoding="utf-8")
        names = []
        for index, (name, members) in enumerate(classes.items()):
            path = root / f"class{index}.classdef"
            path.write_text(classdef(name, members), encoding="utf-8")
            names.append(str(path))
        control = root / "catalog.lmctl"
        control.write_text(
            "{ "
            + " ".join(names)
            + " }\n"
            + f"{root / 'catalog.arpa'} catalog {{\n"
            + "".join(f"  {name}\n" for name in classes)
            + "}\n",
            encoding="utf-8",
        )
        return _load_decoder(model_dir, {**options, "lm": None, "lmctl": str(control), "lmname": "catalog"})


def _add_language_model(decoder: Any, arpa: str) -> None:
    """PocketSphinx reads language models from files: write the ARPA text (never audio)
    to a private temporary file, load it, and remove it at once."""
    fd, name = tempfile.mkstemp(prefix="voicehello-", suffix=".arpa")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(arpa)
        decoder.add_lm_file("catalog", name)
    finally:
        os.unlink(name)
