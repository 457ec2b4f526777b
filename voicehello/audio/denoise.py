"""Optional noise suppression before recognition (``audio.denoise``).

Each denoiser is a streaming filter: called with consecutive blocks of 16 kHz mono int16 PCM
(``block_ms`` long), it returns blocks of the same length, in order, holding only a few
milliseconds of state. The endpointer classifies the raw audio and hands the recognizer the
denoised audio of the same stretch.

* ``spectral``: spectral subtraction with a Wiener-like gain, the noise spectrum tracked per
  frequency as a slowly rising running minimum (numpy only; 15 ms of delay).
* ``speex``: SpeexDSP's noise suppressor (the ``speexdsp-ns`` package).
* ``rnnoise``: RNNoise (a small recurrent network; the ``pyrnnoise`` package's library), run at
  its native 48 kHz on audio resampled from 16 kHz.

Which one helped on the benchmark is said in README.md ("Speech in a noisy kitchen").
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from voicehello.config import AudioSettings
from voicehello.errors import AudioError
from voicehello.speech.recognizer import SAMPLE_RATE

log = logging.getLogger(__name__)

Denoiser = Callable[[bytes], bytes]
"""A streaming noise suppressor: one block of int16 PCM in, one block of the same length out."""

FloatArray = npt.NDArray[np.float64]

METHODS = ("off", "spectral", "speex", "rnnoise")


class SpectralDenoiser:
    """Spectral subtraction (see the module docstring), 30 ms frames with 50 % overlap."""

    FRAME = 480
    """Samples per analysis frame (30 ms)."""
    HOP = 240
    """Samples between frames (15 ms); also the delay the filter adds."""
    SMOOTHING = 0.7
    """Per-bin power smoothing over frames (recursive)."""
    RISE_PER_HOP = 10 ** (3.0 / 10 * 0.015)
    """The noise minimum may rise by 3 dB per second (so it follows noise that gets louder)."""
    OVER_SUBTRACTION = 3.0
    """The running minimum under-estimates the noise power; this scales it up before subtracting."""
    GAIN_FLOOR = 0.15
    """No bin is attenuated by more than this gain (about -16 dB): less "musical noise"."""

    def __init__(self) -> None:
        self._window = np.sqrt(np.hanning(self.FRAME + 1)[: self.FRAME])  # periodic sqrt-Hann: COLA
        self._input = np.zeros(self.FRAME - self.HOP)
        self._output = np.zeros(self.FRAME)
        self._power: FloatArray | None = None
        self._noise: FloatArray | None = None

    def __call__(self, block: bytes) -> bytes:
        """Denoise one block (a whole number of 15 ms hops)."""
        samples = np.frombuffer(block, dtype="<i2").astype(np.float64)
        if samples.size % self.HOP:
            raise ValueError(f"block of {samples.size} samples is not a multiple of {self.HOP}")
        buffer = np.concatenate([self._input, samples])
        out = np.empty(samples.size)
        for index in range(samples.size // self.HOP):
            frame = buffer[index * self.HOP : index * self.HOP + self.FRAME]
            self._output += self._frame(frame)
            out[index * self.HOP : (index + 1) * self.HOP] = self._output[: self.HOP]
            self._output = np.concatenate([self._output[self.HOP :], np.zeros(self.HOP)])
        self._input = buffer[-(self.FRAME - self.HOP) :]
        return np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes()

    def _frame(self, frame: FloatArray) -> FloatArray:
        spectrum = np.fft.rfft(frame * self._window)
        power = np.square(np.abs(spectrum))
        if self._power is None or self._noise is None:
            self._power, self._noise = power.copy(), power.copy()
        self._power = self.SMOOTHING * self._power + (1 - self.SMOOTHING) * power
        self._noise = np.minimum(self._noise * self.RISE_PER_HOP, self._power)
        gain = np.maximum(1.0 - self.OVER_SUBTRACTION * self._noise / np.maximum(self._power, 1e-9), 0.0)
        gain = np.maximum(gain, self.GAIN_FLOOR)
        result: FloatArray = np.fft.irfft(spectrum * gain, n=self.FRAME) * self._window
        return result


class SpeexDenoiser:
    """SpeexDSP's noise suppressor on 10 ms frames."""

    FRAME = 160

    def __init__(self) -> None:
        try:
            from speexdsp_ns import NoiseSuppression  # type: ignore[import-not-found]
        except ImportError as exc:
            raise AudioError("audio.denoise = 'speex' needs the speexdsp-ns package") from exc
        self._ns = NoiseSuppression.create(self.FRAME, SAMPLE_RATE)

    def __call__(self, block: bytes) -> bytes:
        """Denoise one block (a whole number of 10 ms frames)."""
        size = self.FRAME * 2
        if len(block) % size:
            raise ValueError(f"block of {len(block)} bytes is not a multiple of {size}")
        return b"".join(bytes(self._ns.process(block[i : i + size])) for i in range(0, len(block), size))


class RnnoiseDenoiser:
    """RNNoise on 10 ms frames at 48 kHz (16 kHz audio upsampled by 3, then decimated back)."""

    FRAME_48K = 480

    def __init__(self) -> None:
        spec = importlib.util.find_spec("pyrnnoise")
        library = (
            Path(next(iter(spec.submodule_search_locations or []), "")) / "librnnoise.so" if spec else None
        )
        if library is None or not library.is_file():
            raise AudioError("audio.denoise = 'rnnoise' needs the pyrnnoise package (its librnnoise.so)")
        self._lib = ctypes.CDLL(str(library))
        self._lib.rnnoise_create.restype = ctypes.c_void_p
        self._lib.rnnoise_create.argtypes = [ctypes.c_void_p]
        self._lib.rnnoise_process_frame.restype = ctypes.c_float
        self._lib.rnnoise_process_frame.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_float),
            ctypes.POINTER(ctypes.c_float),
        ]
        self._lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
        self._state = self._lib.rnnoise_create(None)
        from scipy import signal

        self._signal = signal
        taps = signal.firwin(96, 1 / 3.0 * 0.95)  # low-pass at 16 kHz's Nyquist, for both directions
        self._taps = taps
        self._up_state = np.zeros(taps.size - 1)
        self._down_state = np.zeros(taps.size - 1)

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state is not None:
            self._lib.rnnoise_destroy(state)

    def __call__(self, block: bytes) -> bytes:
        """Denoise one block (a whole number of 10 ms frames)."""
        samples = np.frombuffer(block, dtype="<i2").astype(np.float64)
        if samples.size % (self.FRAME_48K // 3):
            raise ValueError(f"block of {samples.size} samples is not a multiple of 10 ms")
        up = np.zeros(samples.size * 3)
        up[::3] = samples * 3
        up, self._up_state = self._signal.lfilter(self._taps, 1.0, up, zi=self._up_state)
        frames = up.astype(np.float32).reshape(-1, self.FRAME_48K)
        for frame in frames:
            pointer = frame.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            self._lib.rnnoise_process_frame(self._state, pointer, pointer)
        down, self._down_state = self._signal.lfilter(
            self._taps, 1.0, frames.reshape(-1).astype(np.float64), zi=self._down_state
        )
        result: bytes = np.clip(np.round(down[::3]), -32768, 32767).astype("<i2").tobytes()
        return result


def make_denoiser(settings: AudioSettings) -> Denoiser | None:
    """The denoiser ``settings.denoise`` names, or None for ``off``.

    Raises :class:`AudioError` (one line) when its package is missing.
    """
    if settings.denoise == "off":
        return None
    if settings.denoise == "spectral":
        return SpectralDenoiser()
    if settings.denoise == "speex":
        return SpeexDenoiser()
    if settings.denoise == "rnnoise":
        return RnnoiseDenoiser()
    raise AudioError(f"audio.denoise must be one of {', '.join(METHODS)}, not {settings.denoise!r}")
