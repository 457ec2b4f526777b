"""Kitchen-like background noise, made deterministically, and mixing at a target SNR.

The noise is half (in power) stationary rumble and hiss — pink and brown noise in a
random proportion, like a fridge, an extractor hood or a kettle — and half "babble": real
human speech (the LibriVox recordings of pocketsphinx-testdata), three stretches from random
places summed and band-limited like a small radio talking in the background.

The SNR is the utterance's active speech power (30 ms frames within 30 dB of its loudest
frame) over the mean noise power, so pauses in the speech do not dilute the speech level.

A "TV talker" condition (:class:`TvTalk`) adds one more voice in the room: another espeak-ng
voice reading off-topic sentences without pause, band-limited like a TV's speaker, its active
speech level a given number of dB below the person talking to the device, on top of the
kitchen noise. It talks through the lead-in, the request and the tail.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from voicehello.audio.sources import from_pcm16, to_pcm16

FloatArray = npt.NDArray[np.float64]

RATE = 16_000
FRAME = RATE * 30 // 1000
"""Samples per 30 ms frame, for the active speech level."""
ACTIVE_RANGE_DB = 30.0
"""Frames within this many dB of the loudest frame count as active speech."""
BABBLE_SHARE = 0.5
"""Share of the noise power that is background speech (the rest is pink/brown noise)."""
BABBLE_TALKERS = 3
"""Stretches of LibriVox speech summed into the babble."""
RADIO_BAND_HZ = (200.0, 4000.0)
"""Pass band of the background "radio"."""
PEAK_LIMIT = 0.95
"""A mixed clip louder than this is scaled down as a whole (speech and noise alike)."""
DITHER_LSB = 1.0
"""Clean clips carry +-1 LSB of dither instead of digital silence (no real microphone gives zeros)."""
TV_VOICE = "en-us-nyc+m4"
"""The TV talker's espeak-ng voice (none of the test voices)."""
TV_SPEED = 175
"""The TV talker's speaking rate (words per minute)."""
TV_BAND_HZ = (150.0, 6000.0)
"""Pass band of the TV's loudspeaker."""
TV_PAUSE_S = (0.15, 0.4)
"""Pauses between the TV talker's sentences (drawn per sentence)."""
TV_SENTENCES = 20
"""Off-topic sentences the TV talker reads (over a minute of talk, looped)."""
TV_NOISE_SNR_DB = 10.0
"""Kitchen noise under the TV talker (SNR relative to the speaker), as the issue measures."""


@dataclass(frozen=True)
class Condition:
    """One benchmark condition: clean, kitchen noise at an SNR, or a TV talker plus noise."""

    snr_db: float | None = None
    """Kitchen noise at this SNR (dB); None: no noise (dithered)."""
    tv_db: float | None = None
    """A TV talker this many dB below the speaker's active level; None: no TV."""

    @property
    def label(self) -> str:
        """``clean``, ``10 dB`` or ``TV -10 dB + 10 dB``."""
        if self.tv_db is not None:
            return f"TV -{self.tv_db:g} dB + {self.snr_db:g} dB"
        return "clean" if self.snr_db is None else f"{self.snr_db:g} dB"

    @property
    def noisy(self) -> bool:
        """Anything but clean."""
        return self.snr_db is not None or self.tv_db is not None


def parse_condition(text: str) -> Condition:
    """``clean``, an SNR (``10``, ``5dB``), or ``tv`` / ``tvN`` (TV talker N dB down, default 10,
    plus kitchen noise at :data:`TV_NOISE_SNR_DB`). Raises ValueError otherwise."""
    part = text.strip().lower()
    if part == "clean":
        return Condition()
    if part.startswith("tv"):
        rest = part[2:].removeprefix("-").removesuffix("db")
        return Condition(snr_db=TV_NOISE_SNR_DB, tv_db=float(rest) if rest else 10.0)
    return Condition(snr_db=float(part.removesuffix("db")))


def _unit_power(signal: FloatArray) -> FloatArray:
    power = float(np.mean(np.square(signal)))
    return signal / np.sqrt(power) if power > 0 else signal


def _colored(rng: np.random.Generator, samples: int, exponent: float) -> FloatArray:
    """Noise with power spectral density ~ 1/f**exponent (1 = pink, 2 = brown), unit power."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.maximum(np.fft.rfftfreq(samples, 1.0 / RATE), 20.0)
    shaped: FloatArray = np.fft.irfft(spectrum / freqs ** (exponent / 2.0), n=samples)
    return _unit_power(shaped)


def _band_limit(signal: FloatArray, low_hz: float, high_hz: float) -> FloatArray:
    spectrum = np.fft.rfft(signal)
    freqs = np.fft.rfftfreq(len(signal), 1.0 / RATE)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0.0
    result: FloatArray = np.fft.irfft(spectrum, n=len(signal))
    return result


class KitchenNoise:
    """Makes seeded kitchen-like noise of any length (see the module docstring)."""

    def __init__(self, babble_pcm: list[bytes]) -> None:
        if not babble_pcm:
            raise ValueError("the babble needs at least one recording")
        self._speech = np.concatenate([from_pcm16(pcm) for pcm in babble_pcm])

    def make(self, samples: int, seed: int) -> FloatArray:
        """``samples`` of unit-power noise; the same seed always gives the same noise."""
        rng = np.random.default_rng(seed)
        pink_share = rng.uniform(0.3, 0.7)
        steady = np.sqrt(pink_share) * _colored(rng, samples, 1.0) + np.sqrt(1.0 - pink_share) * _colored(
            rng, samples, 2.0
        )
        babble = np.zeros(samples)
        for _ in range(BABBLE_TALKERS):
            start = int(rng.integers(0, len(self._speech)))
            babble += _unit_power(np.take(self._speech, np.arange(start, start + samples), mode="wrap"))
        babble = _band_limit(babble, *RADIO_BAND_HZ)
        steady_part = np.sqrt(1.0 - BABBLE_SHARE) * _unit_power(steady)
        return _unit_power(steady_part + np.sqrt(BABBLE_SHARE) * _unit_power(babble))


class TvTalk:
    """A TV talking in the room: sentences in another voice, one after another (see the module
    docstring). ``make`` gives a seeded stretch of it at unit active power."""

    def __init__(self, sentences_pcm: list[bytes], seed: int = 0) -> None:
        if not sentences_pcm:
            raise ValueError("the TV talker needs at least one sentence")
        rng = np.random.default_rng(seed)
        pieces: list[FloatArray] = []
        for pcm in sentences_pcm:
            pieces.append(from_pcm16(pcm))
            pieces.append(np.zeros(round(rng.uniform(*TV_PAUSE_S) * RATE)))
        talk = _band_limit(np.concatenate(pieces), *TV_BAND_HZ)
        self._talk: FloatArray = talk / np.sqrt(active_power(talk))

    def make(self, samples: int, seed: int) -> FloatArray:
        """``samples`` of TV talk from a seeded place, at unit active power."""
        start = int(np.random.default_rng(seed).integers(0, len(self._talk)))
        result: FloatArray = np.take(self._talk, np.arange(start, start + samples), mode="wrap")
        return result


def active_power(speech: FloatArray) -> float:
    """Mean power of the frames within :data:`ACTIVE_RANGE_DB` of the loudest frame."""
    usable = len(speech) - len(speech) % FRAME
    if usable == 0:
        return float(np.mean(np.square(speech))) if len(speech) else 0.0
    powers = np.mean(np.square(speech[:usable].reshape(-1, FRAME)), axis=1)
    loudest = float(powers.max())
    if loudest <= 0:
        return 0.0
    return float(powers[powers >= loudest * 10 ** (-ACTIVE_RANGE_DB / 10)].mean())


def make_clip(
    speech_pcm: bytes,
    *,
    lead_s: float,
    tail_s: float,
    snr_db: float | None,
    noise: KitchenNoise | None,
    seed: int,
    tv: TvTalk | None = None,
    tv_db: float | None = None,
) -> bytes:
    """Lead-in + speech + tail as 16 kHz int16 PCM, clean (dithered) or with noise at ``snr_db``
    (and, with ``tv_db``, a TV talker that many dB below the speech).

    In noisy clips the noise runs through the lead-in and the tail too. The noise for a given
    ``seed`` is the same at every SNR, only scaled.
    """
    speech = from_pcm16(speech_pcm)
    lead, tail = round(lead_s * RATE), round(tail_s * RATE)
    signal = np.concatenate([np.zeros(lead), speech, np.zeros(tail)])
    if snr_db is None:
        rng = np.random.default_rng(seed)
        signal += rng.uniform(-DITHER_LSB, DITHER_LSB, len(signal)) / 32768.0
        return to_pcm16(signal)
    if noise is None:
        raise ValueError("a noisy clip needs a KitchenNoise")
    noise_power = active_power(speech) / 10 ** (snr_db / 10)
    signal += noise.make(len(signal), seed) * np.sqrt(noise_power)
    if tv_db is not None:
        if tv is None:
            raise ValueError("a TV condition needs a TvTalk")
        signal += tv.make(len(signal), seed) * np.sqrt(active_power(speech) / 10 ** (tv_db / 10))
    peak = float(np.max(np.abs(signal)))
    if peak > PEAK_LIMIT:
        signal *= PEAK_LIMIT / peak
    return to_pcm16(signal)


def pad(pcm: bytes, lead_s: float, tail_s: float, seed: int) -> bytes:
    """A recording with dithered near-silence before and after it."""
    rng = np.random.default_rng(seed)
    lead, tail = round(lead_s * RATE), round(tail_s * RATE)
    before = rng.uniform(-DITHER_LSB, DITHER_LSB, lead) / 32768.0
    after = rng.uniform(-DITHER_LSB, DITHER_LSB, tail) / 32768.0
    return to_pcm16(before) + pcm + to_pcm16(after)
