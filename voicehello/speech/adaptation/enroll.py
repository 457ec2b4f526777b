"""``voicehello enroll``: record prompted sentences, adapt the model to them, keep it only if it helps.

1. :func:`record_prompts` shows one prompt at a time and cuts the reading out of the audio
   stream with the same :class:`~voicehello.audio.vad.Endpointer` as ``listen``, checking that
   the speech stands well above the room's noise. The audio stays in memory.
2. :func:`adapt` writes the adaptation prompts' audio to a private working directory (mode
   0700, in ``/dev/shm`` where there is one, so in memory there too), runs SphinxTrain (see
   :mod:`~voicehello.speech.adaptation.sphinxtrain`) and deletes the directory at once, also
   on Ctrl-C. Two candidates are made: a global MLLR transform (two passes), and the means
   adapted by MLLR and then MAP.
3. Each candidate and the unadapted model (and the previous adaptation, if any) decode the
   held-apart prompts with the catalog's language model. The best candidate is kept only
   when its word errors are no more than the others': otherwise :class:`AdaptationError`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from voicehello.audio.vad import Endpointer, Utterance, rms_dbfs
from voicehello.config import AudioSettings, SpeechSettings
from voicehello.errors import AdaptationError
from voicehello.intents.catalog import Catalog
from voicehello.intents.parser import IntentParser
from voicehello.speech.adaptation import sphinxtrain
from voicehello.speech.adaptation.prompts import EnrollPrompt
from voicehello.speech.adaptation.store import check_adaptation
from voicehello.speech.recognizer import SAMPLE_RATE, SAMPLE_WIDTH, recognize

log = logging.getLogger(__name__)

MEMORY_DIR = Path("/dev/shm")
"""A memory-backed directory: the private working directory goes here when it exists."""
MIN_SNR_DB = 15.0
"""A reading whose speech is less than this above the room's noise stops the enrollment."""
PROMPT_TIMEOUT_S = 20.0
"""Audio time to wait for each prompt to be read."""
SILENCE_DBFS = -100.0
"""Level given to digital silence when estimating the noise."""


@dataclass(frozen=True)
class Recording:
    """One prompt as read."""

    prompt: EnrollPrompt
    """What was to be read."""
    pcm: bytes = field(repr=False)
    """16 kHz mono int16 PCM of the reading (memory only; left out of ``repr()``)."""
    snr_db: float
    """Speech level above the room's noise, dB."""


@dataclass(frozen=True)
class Score:
    """How well the held-apart prompts were recognized."""

    words: int
    """Words in the prompts."""
    errors: int
    """Word errors (substitutions, insertions, deletions)."""
    understood: int
    """Prompts whose intent and slots came out as from the prompt's own text."""
    prompts: int
    """Prompts decoded."""

    @property
    def wer(self) -> float:
        """Word error rate, 0..1 (can exceed 1 with many insertions)."""
        return self.errors / self.words if self.words else 0.0

    def describe(self) -> str:
        """E.g. ``4/5 understood, 12% word errors``."""
        return f"{self.understood}/{self.prompts} understood, {self.wer:.0%} word errors"


@dataclass(frozen=True)
class Adaptation:
    """A candidate adaptation and its score on the held-apart prompts."""

    method: str
    """``MLLR`` or ``MLLR + MAP``."""
    data: bytes = field(repr=False)
    """The file's bytes (an MLLR transform or adapted means)."""
    score: Score
    """Held-apart result with it."""


@dataclass(frozen=True)
class Outcome:
    """What :func:`adapt` found: the adaptation to keep and what it was compared with."""

    chosen: Adaptation
    """The adaptation to save."""
    unadapted: Score
    """Held-apart result without any adaptation."""
    previous: Score | None
    """Held-apart result with the adaptation already on the device (``None``: there is none)."""


# --------------------------------------------------------------------------- recording


def _noise_dbfs(levels: list[float]) -> float:
    """The room's level: the quietest fifth of the blocks heard while waiting."""
    finite = [max(level, SILENCE_DBFS) for level in levels] or [SILENCE_DBFS]
    return float(np.percentile(finite, 20))


def _speech_dbfs(utterance: Utterance, block_ms: int) -> float:
    """The reading's level: the loudest tenth of its blocks."""
    size = SAMPLE_RATE * SAMPLE_WIDTH * block_ms // 1000
    levels = [
        max(rms_dbfs(utterance.pcm[i : i + size]), SILENCE_DBFS) for i in range(0, len(utterance.pcm), size)
    ]
    return float(np.percentile(levels or [SILENCE_DBFS], 90))


def record_prompts(
    blocks: Iterable[bytes],
    prompts: list[EnrollPrompt],
    audio: AudioSettings,
    show: Callable[[int, EnrollPrompt], None],
    *,
    timeout_s: float = PROMPT_TIMEOUT_S,
    min_snr_db: float = MIN_SNR_DB,
) -> list[Recording]:
    """Show each prompt and take the next utterance of ``blocks`` as its reading.

    Raises :class:`AdaptationError` when a prompt is not read within ``timeout_s`` of audio,
    the audio ends first, or a reading is less than ``min_snr_db`` above the noise.
    """
    endpointer = Endpointer(audio)
    stream: Iterator[bytes] = iter(blocks)
    recordings: list[Recording] = []
    for number, prompt in enumerate(prompts, start=1):
        show(number, prompt)
        utterance, levels = _next_utterance(endpointer, stream, timeout_s, audio.block_ms)
        if utterance is None:
            raise AdaptationError(
                f"sentence {number} of {len(prompts)} was not read (no speech for {timeout_s:g} s, or the audio ended)"
            )
        snr = _speech_dbfs(utterance, audio.block_ms) - _noise_dbfs(levels)
        if snr < min_snr_db:
            raise AdaptationError(
                f"too noisy to enroll: sentence {number} was only {snr:.0f} dB above the room's noise "
                f"({min_snr_db:g} dB needed); try again somewhere quieter"
            )
        log.info(
            "sentence %d of %d read (%.1f s of speech, %.0f dB above the noise)",
            number,
            len(prompts),
            utterance.speech_s,
            snr,
        )
        recordings.append(Recording(prompt=prompt, pcm=utterance.pcm, snr_db=snr))
    return recordings


def _next_utterance(
    endpointer: Endpointer, stream: Iterator[bytes], timeout_s: float, block_ms: int
) -> tuple[Utterance | None, list[float]]:
    """The next utterance in ``stream`` (``None`` on timeout or at its end) and the levels of
    every block consumed while waiting."""
    levels: list[float] = []
    waited_s = 0.0
    while waited_s < timeout_s or endpointer.in_speech:
        block = next(stream, None)
        if block is None:
            return endpointer.flush(), levels
        levels.append(rms_dbfs(block))
        waited_s += len(block) / (SAMPLE_RATE * SAMPLE_WIDTH)
        done = endpointer.feed(block)
        if done:
            return done[0], levels
    return None, levels


# --------------------------------------------------------------------------- adapting


@contextmanager
def private_workdir() -> Iterator[Path]:
    """A new directory only this user can enter (0700), in memory where possible, removed with
    everything in it when the block ends, however it ends."""
    base = MEMORY_DIR if MEMORY_DIR.is_dir() and _writable(MEMORY_DIR) else None
    path = Path(tempfile.mkdtemp(prefix="voicehello-enroll-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            log.error("could not remove the enrollment's working directory %s", path)


def _writable(directory: Path) -> bool:
    import os

    return os.access(directory, os.W_OK | os.X_OK)


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance between two word lists."""
    previous = list(range(len(hypothesis) + 1))
    for i, word in enumerate(reference, start=1):
        current = [i]
        for j, other in enumerate(hypothesis, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other)))
        previous = current
    return previous[-1]


Decode = Callable[[Path | None], Score]
"""Score the held-apart prompts with the adaptation at a path (``None``: unadapted)."""


def held_apart_scorer(
    recordings: list[Recording], speech: SpeechSettings, catalog: Catalog, parser: IntentParser
) -> Decode:
    """A :data:`Decode` over the held-apart recordings with the catalog's language model."""
    from voicehello.speech.engines import create_recognizer

    held = [recording for recording in recordings if recording.prompt.held]
    expected = [parser.parse(recording.prompt.text) for recording in held]

    def score(adaptation: Path | None) -> Score:
        settings = replace(speech, engine="pocketsphinx", adaptation=adaptation)
        recognizer = create_recognizer(settings, catalog)
        words = errors = understood = 0
        for recording, wanted in zip(held, expected, strict=True):
            text = recognize(recognizer, recording.pcm).text
            reference = recording.prompt.text.split()
            words += len(reference)
            errors += word_errors(reference, text.split())
            got = parser.parse(text)
            understood += int(got.intent == wanted.intent and got.slots == wanted.slots)
        return Score(words=words, errors=errors, understood=understood, prompts=len(held))

    return score


def adapt(
    recordings: list[Recording],
    speech: SpeechSettings,
    catalog: Catalog,
    parser: IntentParser,
    *,
    scorer: Decode | None = None,
) -> Outcome:
    """Make the candidate adaptations from the non-held recordings, score them and the
    unadapted model on the held-apart ones, and return the best; :class:`AdaptationError` when
    it would make recognition worse than without it or than the previous adaptation."""
    from voicehello.speech.pocketsphinx import model_root

    training = [recording for recording in recordings if not recording.prompt.held]
    if not training or len(training) == len(recordings):
        raise AdaptationError("enrollment needs both sentences to adapt to and sentences held apart")
    tools = sphinxtrain.Toolchain.find()
    root = model_root()
    base = sphinxtrain.BaseModel(
        hmm=root / "en-us" / "en-us", dictionary=root / "en-us" / "cmudict-en-us.dict"
    )
    score = scorer or held_apart_scorer(recordings, speech, catalog, parser)
    with private_workdir() as work:
        candidates = _candidates(tools, base, work, training)
        unadapted = score(None)
        previous = _previous_score(speech.adaptation, base.hmm, score)
        scored: list[Adaptation] = []
        for method, path in candidates.items():
            result = score(path)
            log.info("held-apart prompts with %s: %s", method, result.describe())
            scored.append(Adaptation(method=method, data=path.read_bytes(), score=result))
    best = min(
        scored,
        key=lambda candidate: (
            candidate.score.errors,
            -candidate.score.understood,
            candidate.method != "MLLR + MAP",
        ),
    )
    log.info("held-apart prompts unadapted: %s", unadapted.describe())
    if best.score.errors > unadapted.errors:
        raise AdaptationError(
            f"the adaptation made recognition worse on the held-apart sentences ({unadapted.describe()} "
            f"without it, {best.score.describe()} with it); nothing saved, the previous adaptation is kept"
        )
    if previous is not None and best.score.errors > previous.errors:
        raise AdaptationError(
            f"the new adaptation does worse on the held-apart sentences than the one already saved "
            f"({previous.describe()} against {best.score.describe()}); the previous adaptation is kept"
        )
    return Outcome(chosen=best, unadapted=unadapted, previous=previous)


def _previous_score(path: Path | None, hmm: Path, score: Decode) -> Score | None:
    """The held-apart result with the adaptation already saved (``None``: none usable)."""
    if path is None or not path.is_file():
        return None
    try:
        check_adaptation(path.read_bytes(), hmm)
    except (OSError, AdaptationError) as exc:
        log.warning("the saved adaptation %s is unusable (%s); it will be replaced", path, exc)
        return None
    result = score(path)
    log.info("held-apart prompts with the previous adaptation: %s", result.describe())
    return result


def _candidates(
    tools: sphinxtrain.Toolchain, base: sphinxtrain.BaseModel, work: Path, training: list[Recording]
) -> dict[str, Path]:
    """Run SphinxTrain in ``work``: ``{"MLLR": transform, "MLLR + MAP": adapted means}``."""
    from voicehello.speech.pocketsphinx import PAD_SECONDS, NoiseFloor

    model = sphinxtrain.training_model(tools, base, work)
    noise = NoiseFloor()
    texts: dict[str, str] = {}
    for index, recording in enumerate(training):
        name = f"utt{index:03d}"
        noise.restart()  # exactly what the recognizer feeds its front end
        audio = noise.silence(PAD_SECONDS) + noise.apply(recording.pcm) + noise.silence(PAD_SECONDS)
        (work / f"{name}.raw").write_bytes(audio)
        texts[name] = recording.prompt.text
    sphinxtrain.cepstra(tools, base, work, list(texts))
    for name in texts:
        (work / f"{name}.raw").unlink()  # the audio goes as soon as the features exist
    data = sphinxtrain.corpus(work, texts)
    first, second = work / "pass1.mllr", work / "pass2.mllr"
    sphinxtrain.statistics(tools, base, model, data, work / "acc1")
    sphinxtrain.solve_mllr(tools, base, work / "acc1", first)
    sphinxtrain.statistics(tools, base, model, data, work / "acc2", mllr=first)
    sphinxtrain.solve_mllr(tools, base, work / "acc2", second)
    transformed, adapted = work / "mllr_means", work / "map_means"
    sphinxtrain.transform_means(tools, base, second, transformed)
    sphinxtrain.statistics(tools, base, model, data, work / "acc3", means=transformed)
    sphinxtrain.map_means(tools, base, model, prior=transformed, accumulated=work / "acc3", out=adapted)
    return {"MLLR": second, "MLLR + MAP": adapted}
