"""End-of-speech endpointing on audio time, not wall time.

Three layers, each testable on its own:

* :class:`SpeechSegmenter` is a pure state machine driven by ``(is_speech, chunk_ms)``
  (the pattern of Home Assistant's ``assist_pipeline/vad.py``): the same input always gives
  the same events, whatever the wall clock does.
* :class:`EnergyGate` rejects frames that are not clearly louder than the recent noise
  floor. WebRTC VAD calls a lot of steady noise (fans, extractor hoods, hiss) speech; a frame
  counts as speech only if WebRTC VAD says so *and* it is at least ``margin_db`` above the
  quietest frame of the last ``window_s`` seconds *and* above an absolute ``floor_dbfs``.
* :class:`Endpointer` re-blocks raw PCM, classifies each block, keeps a bounded pre-roll and
  returns finished :class:`Utterance` objects.

Nothing here keeps more audio than the pre-roll plus one utterance (``max_utterance_s``).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from voicehello.audio.denoise import make_denoiser
from voicehello.config import AudioSettings
from voicehello.errors import SilentAudioError
from voicehello.speech.recognizer import SAMPLE_RATE, SAMPLE_WIDTH

BYTES_PER_MS = SAMPLE_RATE * SAMPLE_WIDTH // 1000

Classifier = Callable[[bytes], bool]
"""Decides whether one block of 16 kHz int16 PCM is speech."""


class SegmentEvent(enum.Enum):
    """What :meth:`SpeechSegmenter.step` reports."""

    START = "start"
    """Enough speech was heard: an utterance began at :attr:`SpeechSegmenter.speech_start_ms`."""
    END = "end"
    """Enough silence followed the speech: the utterance is complete."""
    CUT = "cut"
    """The utterance reached the maximum length and was cut."""


class SpeechSegmenter:
    """Deterministic speech start/end state machine on audio time (milliseconds).

    * Idle -> speech: after ``start_speech_ms`` of speech chunks, with at most
      ``start_gap_ms`` of non-speech in between (the gap tolerance); the utterance starts
      where that run of speech started.
    * Speech -> idle (END): after ``end_silence_ms`` of silence. Speech shorter than
      ``resume_speech_ms`` inside a pause only pauses the silence count, so a click does not
      restart the wait; longer speech resets it.
    * Speech -> idle (CUT): at the first chunk boundary at or after ``max_utterance_ms``
      from the start of the speech.
    """

    def __init__(
        self,
        start_speech_ms: int,
        end_silence_ms: int,
        max_utterance_ms: int,
        *,
        start_gap_ms: int = 60,
        resume_speech_ms: int = 60,
    ) -> None:
        self.start_speech_ms = start_speech_ms
        self.end_silence_ms = end_silence_ms
        self.max_utterance_ms = max_utterance_ms
        self.start_gap_ms = start_gap_ms
        self.resume_speech_ms = resume_speech_ms
        self.now_ms = 0
        """Audio time consumed so far."""
        self.in_speech = False
        """True between START and END/CUT."""
        self.speech_start_ms = 0
        """Start of the current (or last) utterance's speech."""
        self.speech_end_ms: int | None = None
        """End of the last speech chunk of the current (or last) utterance; ``None`` before any."""
        self._run_ms = 0
        self._run_start_ms = 0
        self._gap_ms = 0
        self._silence_ms = 0
        self._resume_ms = 0
        self._early_ms: int | None = None
        self._early_after_ms: int | None = None

    @classmethod
    def from_settings(cls, settings: AudioSettings) -> SpeechSegmenter:
        """A segmenter using the thresholds of ``settings``."""
        return cls(settings.start_speech_ms, settings.end_silence_ms, round(settings.max_utterance_s * 1000))

    @property
    def run_start_ms(self) -> int | None:
        """While idle: where the speech run that may become an utterance started."""
        return self._run_start_ms if self._run_ms > 0 else None

    def step(self, is_speech: bool, chunk_ms: int) -> SegmentEvent | None:
        """Advance by one chunk; return the event it causes, if any."""
        begin = self.now_ms
        self.now_ms += chunk_ms
        if not self.in_speech:
            return self._step_idle(is_speech, begin, chunk_ms)
        return self._step_speech(is_speech, chunk_ms)

    def _step_idle(self, is_speech: bool, begin: int, chunk_ms: int) -> SegmentEvent | None:
        if is_speech:
            if self._run_ms == 0:
                self._run_start_ms = begin
            self._run_ms += chunk_ms
            if self._run_ms >= self.start_speech_ms:
                self.in_speech = True
                self.speech_start_ms = self._run_start_ms
                self.speech_end_ms = self.now_ms
                self._run_ms = self._gap_ms = self._silence_ms = self._resume_ms = 0
                return SegmentEvent.START
        elif self._run_ms > 0:
            self._gap_ms += chunk_ms
            if self._gap_ms > self.start_gap_ms:
                self._run_ms = self._gap_ms = 0
        return None

    def _step_speech(self, is_speech: bool, chunk_ms: int) -> SegmentEvent | None:
        if is_speech and self._silence_ms == 0:
            self.speech_end_ms = self.now_ms
        elif is_speech:  # in a pause: the silence count holds until the speech is confirmed
            self._resume_ms += chunk_ms
            if self._resume_ms >= self.resume_speech_ms:
                self._silence_ms = self._resume_ms = 0
                self.speech_end_ms = self.now_ms
        else:
            self._resume_ms = 0
            self._silence_ms += chunk_ms
        if self._silence_ms >= self.end_silence_ms or self._ends_early():
            self._to_idle()
            return SegmentEvent.END
        if self.now_ms - self.speech_start_ms >= self.max_utterance_ms:
            self._to_idle()
            return SegmentEvent.CUT
        return None

    def _to_idle(self) -> None:
        self.in_speech = False
        self._run_ms = self._gap_ms = self._silence_ms = self._resume_ms = 0
        self._early_ms = self._early_after_ms = None

    def end_after(self, silence_ms: int | None) -> None:
        """Let the current pause end the utterance after ``silence_ms`` of silence instead of
        ``end_silence_ms`` (what was said is already complete); ``None``: the usual wait.
        Speech that resumes before then cancels it."""
        active = silence_ms is not None and self.in_speech
        self._early_ms = silence_ms if active else None
        self._early_after_ms = self.speech_end_ms if active else None

    def _ends_early(self) -> bool:
        return (
            self._early_ms is not None
            and self._early_after_ms == self.speech_end_ms
            and self._silence_ms >= self._early_ms
        )

    def reset(self) -> None:
        """Forget any utterance in progress (audio time keeps running)."""
        self._to_idle()


def rms_dbfs(block: bytes) -> float:
    """RMS level of int16 PCM in dB relative to full scale (-inf for digital silence)."""
    samples = np.frombuffer(block[: len(block) - len(block) % SAMPLE_WIDTH], dtype="<i2")
    if samples.size == 0:
        return -math.inf
    power = float(np.mean(np.square(samples.astype(np.float64)))) / 32768.0**2
    return 10.0 * math.log10(power) if power > 0 else -math.inf


class EnergyGate:
    """Passes frames clearly louder than both an absolute floor and the recent noise floor.

    Frame levels are averaged over ``smooth_ms`` first. With ``quantile`` 0 the noise floor is
    the lowest of those among the non-silent frames (above ``floor_dbfs``) of the last
    ``window_s`` seconds, the current frame included. With ``quantile`` above 0 it is that
    quantile of the levels of the last frames that were *not* speech (quiet, or not voiced;
    near-silence counts as ``floor_dbfs``), and never below the lowest level of the window:
    so it sits near the mean of fluctuating noise (background talk, clatter) instead of its
    quietest moment, does not climb into the speech of a long utterance, and still rises
    within ``window_s`` when the room gets louder. A frame passes when it is ``margin_db``
    above the floor: steady noise of any level never passes, speech does.
    """

    QUANTILE_ABOVE_LOWEST_DB = 6.0
    """The quantile floor stays within this of the window's lowest level (speech with no
    pause before it has only its own quiet sounds as "noise")."""

    def __init__(
        self,
        block_ms: int,
        *,
        floor_dbfs: float = -60.0,
        margin_db: float = 6.0,
        window_s: float = 5.0,
        smooth_ms: int = 0,
        quantile: float = 0.0,
    ) -> None:
        self.floor_dbfs = floor_dbfs
        self.margin_db = margin_db
        self.quantile = quantile
        frames = max(1, round(window_s * 1000 / block_ms))
        self._levels: deque[float] = deque(maxlen=frames)
        self._quiet: deque[float] = deque(maxlen=frames)
        self._powers: deque[float] = deque(maxlen=max(1, smooth_ms // block_ms))
        self.noise_floor_db = -math.inf
        """The latest noise floor estimate (dBFS)."""

    def seed(self, level_db: float, frames: int) -> None:
        """Start from a noise floor of ``level_db`` as if ``frames`` frames of noise at that
        level had been heard (a whole recording's own quiet, for one that starts with speech)."""
        level = max(level_db, self.floor_dbfs)
        for _ in range(min(frames, self._levels.maxlen or frames)):
            self._levels.append(level)
            self._quiet.append(level)

    def __call__(self, block: bytes) -> bool:
        """True when ``block`` is loud enough to possibly be speech."""
        return self.passes(rms_dbfs(block))

    def passes(self, level: float, voiced: bool = True) -> bool:
        """Like calling the gate, for a frame whose level (dBFS) is already known; ``voiced``
        is the VAD's verdict (a frame that is not voiced counts as noise)."""
        self._powers.append(10 ** (level / 10) if math.isfinite(level) else 0.0)
        mean = sum(self._powers) / len(self._powers)
        smoothed = 10 * math.log10(mean) if mean > 0 else -math.inf
        self._levels.append(smoothed)
        if self.quantile <= 0.0:
            loud = level >= self.floor_dbfs and level >= self._lowest() + self.margin_db
        else:
            lowest = max(min(self._levels), self.floor_dbfs)
            quiet = float(np.quantile(self._quiet, self.quantile)) if self._quiet else lowest
            self.noise_floor_db = min(max(lowest, quiet), lowest + self.QUANTILE_ABOVE_LOWEST_DB)
            loud = level >= self.floor_dbfs and level >= self.noise_floor_db + self.margin_db
            if not (loud and voiced):
                self._quiet.append(max(smoothed, self.floor_dbfs))
        return loud

    def _lowest(self) -> float:
        audible = [v for v in self._levels if v >= self.floor_dbfs]
        self.noise_floor_db = min(audible) if audible else -math.inf
        return self.noise_floor_db


class SpeakerLevel:
    """The level of the person talking to the device, and what is background by comparison.

    The person talking to the device is nearer and louder than a TV or a radio across the
    room. The reference is the loudest ``smooth_ms`` mean level of the frames accepted as the
    speaker's; it falls by ``decay_db_s`` per second of audio. A frame more than
    ``relative_db`` below the reference is background, whatever the VAD says: it does not
    hold an utterance open. The :class:`Endpointer` forgets the reference when an utterance ends. ``relative_db <= 0``
    turns this off (every frame the VAD passes is the speaker's).
    """

    def __init__(self, block_ms: int, *, relative_db: float, decay_db_s: float, smooth_ms: int = 90) -> None:
        self.block_ms = block_ms
        self.relative_db = relative_db
        self.decay_db_s = decay_db_s
        self._powers: deque[float] = deque(maxlen=max(1, smooth_ms // block_ms))
        self.reference_db: float | None = None
        """The speaker's level (dBFS), ``None`` before any speech."""

    @property
    def threshold_db(self) -> float:
        """Frames below this level (dBFS) are background (``-inf`` when there is no reference)."""
        if self.reference_db is None or self.relative_db <= 0:
            return -math.inf
        return self.reference_db - self.relative_db

    def step(self, level: float, is_speech: bool) -> bool:
        """Advance by one frame of ``level`` dBFS; True when it is the speaker's speech."""
        self._powers.append(10 ** (level / 10) if math.isfinite(level) else 0.0)
        if self.reference_db is not None:
            self.reference_db -= self.decay_db_s * self.block_ms / 1000
        mean = sum(self._powers) / len(self._powers)
        smoothed = 10 * math.log10(mean) if mean > 0 else -math.inf
        speaker = is_speech and level >= self.threshold_db
        if speaker and (self.reference_db is None or smoothed > self.reference_db):
            self.reference_db = smoothed
        return speaker

    def reset(self) -> None:
        """Forget the speaker's level."""
        self._powers.clear()
        self.reference_db = None


def webrtc_classifier(settings: AudioSettings, noise_floor_db: float | None = None) -> Classifier:
    """WebRTC VAD at ``settings.vad_aggressiveness``, combined with an :class:`EnergyGate`
    (started from ``noise_floor_db`` when given)."""
    import webrtcvad

    vad = webrtcvad.Vad(settings.vad_aggressiveness)
    gate = EnergyGate(
        settings.block_ms,
        margin_db=settings.noise_margin_db,
        smooth_ms=settings.noise_smooth_ms,
        quantile=settings.noise_quantile,
    )
    if noise_floor_db is not None:
        gate.seed(noise_floor_db, max(1, SEED_MS // settings.block_ms))

    def classify(block: bytes) -> bool:
        voiced = bool(vad.is_speech(block, SAMPLE_RATE))
        return gate.passes(rms_dbfs(block), voiced) and voiced  # always update the noise floor

    return classify


@dataclass(frozen=True)
class Utterance:
    """One stretch of speech cut out of a stream."""

    pcm: bytes = field(repr=False)
    """16 kHz mono int16 PCM: pre-roll, the speech and the trailing silence that ended it.

    Left out of ``repr()`` so that logging an utterance never logs audio."""
    start_s: float
    """Audio time (seconds since the stream began) where the speech started."""
    end_s: float
    """Audio time where the last speech frame ended (for a cut utterance: the cut, mid-speech)."""
    cut: bool = False
    """True when the speech went on past ``max_utterance_s`` and was cut there."""

    @property
    def speech_s(self) -> float:
        """Length of the speech itself, ``end_s - start_s``."""
        return self.end_s - self.start_s

    @property
    def audio_s(self) -> float:
        """Length of :attr:`pcm` in seconds."""
        return len(self.pcm) / (SAMPLE_RATE * SAMPLE_WIDTH)


@dataclass(frozen=True)
class _Block:
    """One block of an utterance in progress, with what the endpointer made of it."""

    begin_ms: int
    pcm: bytes = field(repr=False)
    """The block as the recognizer gets it (denoised when ``audio.denoise`` is on)."""
    level_db: float
    speaker: bool


class Endpointer:
    """Finds utterances in a stream of 16 kHz mono int16 PCM, on audio time.

    Feed PCM of any length with :meth:`feed`; it is re-blocked to ``block_ms`` internally.
    Each block is classified (WebRTC VAD plus :class:`EnergyGate`, or ``classifier``), weighed
    against the speaker's level (:class:`SpeakerLevel`: background talk well below the person
    talking to the device is not speech) and drives a :class:`SpeechSegmenter`. Completed
    utterances are returned by :meth:`feed`; :meth:`flush` returns one still in progress when
    the stream ends. An utterance's audio runs from ``pre_roll_ms`` before the speaker's first
    frame to ``trailing_keep_ms`` after their last, so background talk before and after is
    not decoded into it.
    """

    def __init__(
        self,
        settings: AudioSettings,
        *,
        classifier: Classifier | None = None,
        noise_floor_db: float | None = None,
    ) -> None:
        if settings.block_ms not in (10, 20, 30):
            raise ValueError(f"block_ms must be 10, 20 or 30 for the VAD, not {settings.block_ms}")
        self.settings = settings
        self._block_ms = settings.block_ms
        self._block_bytes = settings.block_ms * BYTES_PER_MS
        self._classify = classifier or webrtc_classifier(settings, noise_floor_db)
        self._denoise = make_denoiser(settings)
        self._segmenter = SpeechSegmenter.from_settings(settings)
        self._speaker = SpeakerLevel(
            settings.block_ms,
            relative_db=settings.speaker_relative_db,
            decay_db_s=settings.speaker_decay_db_s,
        )
        self._pending = bytearray()
        ring_ms = settings.pre_roll_ms + settings.start_speech_ms + self._segmenter.start_gap_ms
        self._ring: deque[_Block] = deque(maxlen=ring_ms // self._block_ms + 2)
        self._utterance: list[_Block] = []

    @property
    def audio_s(self) -> float:
        """Audio time consumed so far (whole blocks), in seconds."""
        return self._segmenter.now_ms / 1000

    @property
    def in_speech(self) -> bool:
        """True while an utterance is in progress."""
        return self._segmenter.in_speech

    @property
    def speech_end_s(self) -> float | None:
        """Audio time where the last speech frame ended (``None`` before any speech).

        Measure end-of-speech latency as ``audio_s_at_result - speech_end_s``.
        """
        end = self._segmenter.speech_end_ms
        return None if end is None else end / 1000

    def feed(self, pcm: bytes) -> list[Utterance]:
        """Consume PCM; return the utterances it completed (usually none)."""
        self._pending += pcm
        done: list[Utterance] = []
        while len(self._pending) >= self._block_bytes:
            block = bytes(self._pending[: self._block_bytes])
            del self._pending[: self._block_bytes]
            utterance = self._process_block(block)
            if utterance is not None:
                done.append(utterance)
        return done

    def flush(self) -> Utterance | None:
        """End of stream: return the utterance in progress (if any) and reset."""
        utterance = None
        if self._pending:
            pad = bytes(self._block_bytes - len(self._pending))
            utterance = self._process_block(bytes(self._pending) + pad)
            self._pending.clear()
        if utterance is None and self._segmenter.in_speech:
            utterance = self._finish(cut=False)
        self.reset()
        return utterance

    def reset(self) -> None:
        """Drop buffered audio and any utterance in progress."""
        self._segmenter.reset()
        self._speaker.reset()
        self._pending.clear()
        self._ring.clear()
        self._utterance = []

    def _process_block(self, pcm: bytes) -> Utterance | None:
        begin_ms = self._segmenter.now_ms
        level = rms_dbfs(pcm)
        speaker = self._speaker.step(level, self._classify(pcm))
        heard = pcm if self._denoise is None else self._denoise(pcm)
        block = _Block(begin_ms, heard, level, speaker)
        event = self._segmenter.step(speaker, self._block_ms)
        if event is None:
            if self._segmenter.in_speech:
                self._utterance.append(block)
            else:
                self._ring.append(block)
            return None
        if event is SegmentEvent.START:
            self._utterance = list(self._ring)
            self._utterance.append(block)
            self._ring.clear()
            return None
        self._utterance.append(block)
        utterance = self._finish(cut=event is SegmentEvent.CUT)
        if event is SegmentEvent.END:  # the next utterance may be someone else, or quieter
            self._speaker.reset()
        return utterance

    def open_audio(self, from_ms: int) -> OpenAudio | None:
        """The audio of the utterance in progress from ``from_ms`` on, as far as it would be in
        the utterance if it ended now (``pre_roll_ms`` before its speech to ``trailing_keep_ms``
        after its last speech frame), for decoding while the person speaks; None when idle."""
        if not self._segmenter.in_speech:
            return None
        start = self._segmenter.speech_start_ms
        first_ms = max(from_ms, start - self.settings.pre_roll_ms)
        end = self._segmenter.speech_end_ms
        keep_until = self._segmenter.now_ms if end is None else end + self.settings.trailing_keep_ms
        blocks = [b for b in self._utterance if first_ms <= b.begin_ms < keep_until]
        if not blocks:
            return OpenAudio(start, first_ms, first_ms, b"")
        last_ms = blocks[-1].begin_ms + self._block_ms
        return OpenAudio(start, blocks[0].begin_ms, last_ms, b"".join(b.pcm for b in blocks))

    def end_after(self, silence_ms: int | None) -> None:
        """Let the utterance in progress end after ``silence_ms`` of silence, instead of
        ``end_silence_ms``, unless speech resumes (the request it holds is complete)."""
        self._segmenter.end_after(silence_ms)

    def _first_speaker_ms(self) -> int:
        """Where the speaker's speech starts: the utterance's first speaker frame still within
        ``speaker_relative_db`` of the speaker's final level (earlier, quieter talk is background)."""
        start = self._segmenter.speech_start_ms
        threshold = self._speaker.threshold_db
        for block in self._utterance:
            if block.begin_ms >= start and block.speaker and block.level_db >= threshold:
                return block.begin_ms
        return start

    def _finish(self, *, cut: bool) -> Utterance:
        end = self._segmenter.speech_end_ms
        end_ms = self._segmenter.now_ms if end is None else end
        start_ms = self._first_speaker_ms()
        first_ms = start_ms - self.settings.pre_roll_ms
        last_ms = end_ms + self.settings.trailing_keep_ms
        pcm = b"".join(b.pcm for b in self._utterance if first_ms <= b.begin_ms < last_ms)
        self._utterance = []
        self._ring.clear()
        return Utterance(pcm=pcm, start_s=start_ms / 1000, end_s=end_ms / 1000, cut=cut)


@dataclass(frozen=True)
class OpenAudio:
    """Audio of the utterance in progress, handed to a recognizer while the person speaks."""

    speech_start_ms: int
    """Where its speech started (audio time)."""
    start_ms: int
    """Audio time of the first sample of :attr:`pcm`."""
    end_ms: int
    """Audio time just after the last sample of :attr:`pcm`."""
    pcm: bytes = field(repr=False)


SEED_MS = 300
"""How much noise at the recording's quiet level a whole recording's endpointer starts with."""
QUIET_QUANTILE = 0.1
"""A whole recording's quiet level: this quantile of its frames' levels."""


def quiet_level_db(pcm: bytes, block_ms: int) -> float:
    """The level (dBFS) of a recording's quieter frames: its noise, and the pauses of its speech."""
    size = block_ms * BYTES_PER_MS
    levels = [rms_dbfs(pcm[at : at + size]) for at in range(0, len(pcm) - size + 1, size)]
    finite = [level for level in levels if math.isfinite(level)]
    return float(np.quantile(finite, QUIET_QUANTILE)) if finite else -math.inf


def split_utterances(pcm: bytes, settings: AudioSettings) -> list[Utterance]:
    """All utterances in a whole recording (16 kHz mono int16 PCM).

    A recording is often cut right at the start of its speech, leaving no quiet before it to
    measure the noise floor against; since the whole recording is at hand, the endpointer
    starts from the recording's own quiet level (:func:`quiet_level_db`) instead."""
    endpointer = Endpointer(settings, noise_floor_db=quiet_level_db(pcm, settings.block_ms))
    utterances = endpointer.feed(pcm)
    last = endpointer.flush()
    if last is not None:
        utterances.append(last)
    return utterances


def has_speech(pcm: bytes, settings: AudioSettings) -> bool:
    """True when the recording holds at least one utterance."""
    return bool(split_utterances(pcm, settings))


def require_utterances(pcm: bytes, settings: AudioSettings, source: str) -> list[Utterance]:
    """Like :func:`split_utterances`, but raise :class:`SilentAudioError` when there are none."""
    utterances = split_utterances(pcm, settings)
    if not utterances:
        raise SilentAudioError(f"{source}: no speech found in the audio")
    return utterances
