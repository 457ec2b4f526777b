"""A running estimate of an utterance's cepstral mean, for PocketSphinx's live CMN.

PocketSphinx decodes short commands best with *batch* cepstral mean normalization: the mean
of the whole utterance's cepstra is subtracted from every frame. Decoding while the person
speaks has only the audio so far. :class:`CepstralMean` computes, in numpy, MFCCs laid out
like PocketSphinx's front end for the bundled model (``feat.params``: 25 mel filters
130-6800 Hz, 25.6 ms Hamming window every 10 ms, pre-emphasis 0.97, orthonormal DCT,
lifter 22) and keeps their running mean, which the recognizer hands to the decoder
(``set_cmn``) before each block it decodes. It is an estimate (within about 1 unit of the
decoder's own batch mean per coefficient on espeak-ng speech, c0 is near 55), which was
enough to decode as accurately as batch CMN on the dev split (see the README).

Only the running sum of the cepstra and a window's worth of samples are kept.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from voicehello.speech.recognizer import SAMPLE_RATE

FloatArray = npt.NDArray[np.float64]

WINDOW = 410
"""Samples per analysis frame (25.625 ms at 16 kHz, PocketSphinx's default)."""
SHIFT = 160
"""Samples between frames (100 frames a second)."""
FFT_SIZE = 512
FILTERS = 25
CEPSTRA = 13
LOWER_HZ = 130.0
UPPER_HZ = 6800.0
LIFTER = 22
PRE_EMPHASIS = 0.97


def _mel(hz: float) -> float:
    return 2595.0 * float(np.log10(1.0 + hz / 700.0))


def _hz(mel: float) -> float:
    return float(700.0 * (10.0 ** (mel / 2595.0) - 1.0))


def _filterbank() -> FloatArray:
    """Triangular mel filters of unit area on the FFT bins, edges rounded to bins."""
    step = SAMPLE_RATE / FFT_SIZE
    low, high = _mel(LOWER_HZ), _mel(UPPER_HZ)
    width = (high - low) / (FILTERS + 1)
    bank = np.zeros((FILTERS, FFT_SIZE // 2 + 1))
    hz = np.arange(FFT_SIZE // 2 + 1) * step
    for index in range(FILTERS):
        left, centre, right = (round(_hz(low + width * k) / step) * step for k in range(index, index + 3))
        height = 2.0 / (right - left)
        rising = (hz - left) / (centre - left)
        falling = (right - hz) / (right - centre)
        inside = (hz > left) & (hz < right)
        bank[index] = np.where(inside, height * np.where(hz < centre, rising, falling), 0.0)
    return bank


def _dct() -> FloatArray:
    """Orthonormal DCT-II rows for the first cepstra, liftered."""
    rows = np.array(
        [[np.cos(np.pi * i * (j + 0.5) / FILTERS) for j in range(FILTERS)] for i in range(CEPSTRA)]
    )
    rows[0] *= np.sqrt(1.0 / FILTERS)
    rows[1:] *= np.sqrt(2.0 / FILTERS)
    lifter = 1.0 + LIFTER / 2.0 * np.sin(np.pi * np.arange(CEPSTRA) / LIFTER)
    return np.asarray(rows * lifter[:, None], dtype=np.float64)


_BANK = _filterbank()
_DCT = _dct()
_HAMMING = 0.54 - 0.46 * np.cos(2.0 * np.pi * np.arange(WINDOW) / (WINDOW - 1))


class CepstralMean:
    """The running mean of a stream's cepstra (fed in pieces of any length)."""

    def __init__(self) -> None:
        self._sum = np.zeros(CEPSTRA)
        self._frames = 0
        self._tail = np.zeros(0)
        self._last = 0.0

    @property
    def frames(self) -> int:
        """Frames seen so far."""
        return self._frames

    def add(self, pcm: bytes) -> None:
        """Take 16 kHz mono int16 PCM (an even number of bytes)."""
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        if samples.size == 0:
            return
        emphasized = np.empty_like(samples)
        emphasized[0] = samples[0] - PRE_EMPHASIS * self._last
        emphasized[1:] = samples[1:] - PRE_EMPHASIS * samples[:-1]
        self._last = float(samples[-1])
        signal = np.concatenate([self._tail, emphasized])
        count = 0 if signal.size < WINDOW else 1 + (signal.size - WINDOW) // SHIFT
        if count:
            starts = SHIFT * np.arange(count)[:, None] + np.arange(WINDOW)[None, :]
            power = np.abs(np.fft.rfft(signal[starts] * _HAMMING, FFT_SIZE)) ** 2
            cepstra = np.log(np.maximum(power @ _BANK.T, 1e-10)) @ _DCT.T
            self._sum += cepstra.sum(axis=0)
            self._frames += count
        self._tail = signal[count * SHIFT :]

    def mean(self) -> str | None:
        """The mean so far as PocketSphinx's ``cmn`` string ("56.10,-2.31,..."); None before a frame."""
        if not self._frames:
            return None
        return ",".join(f"{value:.2f}" for value in self._sum / self._frames)
