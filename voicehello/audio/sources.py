"""Audio sources: WAV files and the microphone, always as 16 kHz mono int16 PCM blocks.

Audio lives only in bounded in-memory buffers: nothing here writes audio to disk, logs
audio bytes or keeps history beyond a fixed-size queue.

* :func:`read_wav` decodes a WAV of any rate, channel count and common sample format
  (8-bit unsigned, 16/24/32-bit PCM, 32/64-bit float, WAVE_FORMAT_EXTENSIBLE) by parsing
  the RIFF chunks itself, then downmixes and resamples with :class:`Resampler`.
* :class:`MicrophoneSource` records from a PortAudio input device (via ``sounddevice``).
* :class:`WavFileSource` plays a WAV file as blocks, optionally paced at real time.

``sounddevice`` is imported lazily: importing it loads PortAudio, which scans devices once,
and a missing PortAudio library must become a :class:`~voicehello.errors.DeviceError`.
"""

from __future__ import annotations

import logging
import math
import queue
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from voicehello.errors import AudioError, DeviceError
from voicehello.speech.recognizer import SAMPLE_RATE, SAMPLE_WIDTH

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

MAX_WAV_BYTES = 512 * 1024 * 1024
"""Largest WAV file :func:`read_wav` accepts (it is read into memory whole)."""

_PCM = 0x0001
_FLOAT = 0x0003
_EXTENSIBLE = 0xFFFE
_KNOWN_ENCODINGS = {
    0x0002: "MS ADPCM",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0050: "MPEG",
    0x0055: "MP3",
}


# --------------------------------------------------------------------------- resampling


class Resampler:
    """Streaming polyphase resampler with a Kaiser-windowed sinc low-pass filter.

    Converts float samples from ``rate_in`` to ``rate_out`` (any integer rates). Feed any
    number of chunks with :meth:`process`, then call :meth:`flush` once for the tail; the
    concatenated output has ``ceil(n_in * rate_out / rate_in)`` samples and no delay.
    The filter cuts off at 90 % of the lower Nyquist frequency (about 80 dB stop band).
    """

    ZERO_CROSSINGS = 32
    """Filter half-length, in zero crossings of the low-pass sinc."""
    CUTOFF = 0.9
    """Cut-off as a fraction of the lower of the two Nyquist frequencies."""
    KAISER_BETA = 8.0

    def __init__(self, rate_in: int, rate_out: int) -> None:
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError(f"sample rates must be positive, not {rate_in} -> {rate_out}")
        g = math.gcd(rate_in, rate_out)
        self.up = rate_out // g
        self.down = rate_in // g
        self._phases, self._center = self._design(self.up, self.down)
        self._taps = self._phases.shape[1]
        self._buf: FloatArray = np.zeros(self._taps - 1)
        self._buf_start = -(self._taps - 1)
        self._next_out = 0
        self._n_in = 0

    @classmethod
    def _design(cls, up: int, down: int) -> tuple[FloatArray, int]:
        """Return the polyphase filter bank (``up`` rows) and the filter's centre tap."""
        factor = max(up, down)
        half = cls.ZERO_CROSSINGS * factor
        n = np.arange(2 * half + 1) - half
        fc = cls.CUTOFF / (2 * factor)  # cycles per sample at the upsampled rate
        h = 2 * fc * np.sinc(2 * fc * n) * np.kaiser(2 * half + 1, cls.KAISER_BETA)
        h *= up / h.sum()
        taps = -(-len(h) // up)
        padded = np.zeros(taps * up)
        padded[: len(h)] = h
        return padded.reshape(taps, up).T.copy(), half

    @property
    def identity(self) -> bool:
        """True when the rates are equal and samples pass through unchanged."""
        return self.up == self.down

    def process(self, samples: FloatArray) -> FloatArray:
        """Resample a chunk; returns every output sample that is already determined."""
        if self.identity:
            return np.asarray(samples, dtype=np.float64)
        self._buf = np.concatenate([self._buf, np.asarray(samples, dtype=np.float64)])
        self._n_in += len(samples)
        last = self._n_in - 1
        stop = (last * self.up + self.up - 1 - self._center) // self.down + 1
        return self._emit(stop)

    def flush(self) -> FloatArray:
        """Return the remaining output samples (the input is taken to end here)."""
        if self.identity:
            return np.zeros(0)
        stop = -(-self._n_in * self.up // self.down)
        self._buf = np.concatenate([self._buf, np.zeros(self._taps + self._center // self.up + 1)])
        return self._emit(stop)

    def _emit(self, stop: int, chunk: int = 8192) -> FloatArray:
        parts = []
        for first in range(self._next_out, stop, chunk):
            n = np.arange(first, min(stop, first + chunk))
            pos = n * self.down + self._center
            phase = pos % self.up
            base = pos // self.up - self._buf_start
            idx = base[:, None] - np.arange(self._taps)[None, :]
            parts.append(np.einsum("ij,ij->i", self._buf[idx], self._phases[phase]))
        self._next_out = max(stop, self._next_out)
        keep_from = (self._next_out * self.down + self._center) // self.up - self._taps + 1
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start :]
            self._buf_start = keep_from
        return np.concatenate(parts) if parts else np.zeros(0)


def resample(samples: FloatArray, rate_in: int, rate_out: int) -> FloatArray:
    """Resample a whole signal held in memory (see :class:`Resampler`)."""
    resampler = Resampler(rate_in, rate_out)
    if resampler.identity:
        return np.asarray(samples, dtype=np.float64)
    return np.concatenate([resampler.process(samples), resampler.flush()])


def to_pcm16(samples: FloatArray) -> bytes:
    """Convert floats in [-1, 1] to signed 16-bit little-endian PCM (clipping)."""
    scaled = np.clip(np.round(samples * 32768.0), -32768, 32767)
    return scaled.astype("<i2").tobytes()


def from_pcm16(pcm: bytes) -> FloatArray:
    """Convert signed 16-bit little-endian PCM to floats in [-1, 1)."""
    usable = len(pcm) - len(pcm) % SAMPLE_WIDTH
    return np.frombuffer(pcm[:usable], dtype="<i2").astype(np.float64) / 32768.0


# --------------------------------------------------------------------------- WAV files


@dataclass(frozen=True)
class _WavFormat:
    encoding: int
    channels: int
    rate: int
    block_align: int
    bits: int


def read_wav(path: Path) -> bytes:
    """Read a WAV file as 16 kHz mono signed 16-bit little-endian PCM.

    Raises :class:`AudioError` with a one-line message naming the file when it is missing,
    unreadable, not a WAV file, in an unsupported encoding or holds no audio.
    """
    path = Path(path)
    data = _read_file(path)
    fmt, payload = _parse_riff(path, data)
    samples = _decode(path, fmt, payload)
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no audio")
    mono = samples.mean(axis=1) if fmt.channels > 1 else samples[:, 0]
    return to_pcm16(resample(mono, fmt.rate, SAMPLE_RATE))


def _read_file(path: Path) -> bytes:
    try:
        if path.is_dir():
            raise AudioError(f"{path}: is a directory, not a WAV file")
        if not path.exists():
            raise AudioError(f"{path}: no such file")
        size = path.stat().st_size
        if size > MAX_WAV_BYTES:
            raise AudioError(
                f"{path}: file too large ({size // 2**20} MB; the limit is {MAX_WAV_BYTES // 2**20} MB)"
            )
        return path.read_bytes()
    except PermissionError as exc:
        raise AudioError(f"{path}: cannot read the file (permission denied)") from exc
    except OSError as exc:
        raise AudioError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc


def _not_wav(path: Path, data: bytes) -> AudioError:
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        hint = " (it looks like MP3; convert it with `sox in.mp3 -r 16000 -c 1 out.wav`)"
    elif data[:4] == b"OggS":
        hint = " (it looks like Ogg)"
    elif data[:4] == b"fLaC":
        hint = " (it looks like FLAC)"
    elif not data:
        hint = " (the file is empty)"
    else:
        hint = " (no RIFF/WAVE header)"
    return AudioError(f"{path}: not a WAV file{hint}")


def _parse_riff(path: Path, data: bytes) -> tuple[_WavFormat, bytes]:
    """Walk the RIFF chunks; return the format and the raw sample bytes."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        if data[:4] == b"RIFF" and len(data) < 12:
            raise AudioError(f"{path}: damaged WAV file (truncated header)")
        raise _not_wav(path, data)
    fmt: _WavFormat | None = None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        body = data[offset + 8 : offset + 8 + size]
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(path, body)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioError(f"{path}: damaged WAV file (data before format chunk)")
            usable = len(body) - len(body) % fmt.block_align
            return fmt, body[:usable]
        offset += 8 + size + (size & 1)
    if fmt is None:
        raise AudioError(f"{path}: damaged WAV file (truncated header)")
    raise AudioError(f"{path}: the file holds no audio")


def _parse_fmt(path: Path, body: bytes) -> _WavFormat:
    if len(body) < 16:
        raise AudioError(f"{path}: damaged WAV file (truncated header)")
    encoding, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if encoding == _EXTENSIBLE:
        if len(body) < 26:
            raise AudioError(f"{path}: damaged WAV file (truncated header)")
        (encoding,) = struct.unpack_from("<H", body, 24)  # first two bytes of the subformat GUID
    fmt = _WavFormat(encoding, channels, rate, block_align, bits)
    supported = (encoding == _PCM and bits in (8, 16, 24, 32)) or (encoding == _FLOAT and bits in (32, 64))
    if not supported:
        if encoding in (_PCM, _FLOAT):
            kind = f"{bits}-bit {'float' if encoding == _FLOAT else 'PCM'}"
        else:
            kind = _KNOWN_ENCODINGS.get(encoding, f"format 0x{encoding:04x}")
        raise AudioError(
            f"{path}: unsupported WAV encoding ({kind}); convert it with `sox in.wav -b 16 out.wav`"
        )
    if channels < 1 or rate < 1 or block_align != channels * bits // 8:
        raise AudioError(f"{path}: damaged WAV file (inconsistent format chunk)")
    return fmt


def _decode(path: Path, fmt: _WavFormat, payload: bytes) -> FloatArray:
    """Decode interleaved samples to a float array of shape (frames, channels)."""
    raw = np.frombuffer(payload, dtype=np.uint8)
    if fmt.encoding == _FLOAT:
        values = np.frombuffer(payload, dtype="<f4" if fmt.bits == 32 else "<f8").astype(np.float64)
        values = np.clip(np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    elif fmt.bits == 8:
        values = (raw.astype(np.float64) - 128.0) / 128.0
    elif fmt.bits == 16:
        values = np.frombuffer(payload, dtype="<i2").astype(np.float64) / 32768.0
    elif fmt.bits == 24:
        triples = raw.reshape(-1, 3).astype(np.int32)
        ints = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        values = ints.astype(np.float64) / float(1 << 23)
    else:
        values = np.frombuffer(payload, dtype="<i4").astype(np.float64) / float(1 << 31)
    return values.reshape(-1, fmt.channels)


def frames(pcm: bytes, block_ms: int) -> Iterator[bytes]:
    """Split 16 kHz int16 PCM into ``block_ms`` blocks; the last one is padded with silence."""
    size = block_bytes(block_ms)
    for offset in range(0, len(pcm), size):
        block = pcm[offset : offset + size]
        yield block + bytes(size - len(block))


def block_bytes(block_ms: int) -> int:
    """Bytes in one ``block_ms`` block of 16 kHz int16 mono PCM."""
    if block_ms <= 0:
        raise ValueError(f"block_ms must be positive, not {block_ms}")
    return SAMPLE_RATE * block_ms // 1000 * SAMPLE_WIDTH


class WavFileSource:
    """Blocks of a WAV file held in memory, for ``listen --file``.

    With ``realtime=True`` each block is yielded when it would have been captured by a
    microphone, so downstream timing behaves as it does live.
    """

    def __init__(
        self,
        path: Path,
        block_ms: int = 30,
        realtime: bool = False,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        self.block_ms = block_ms
        self.realtime = realtime
        self.pcm = read_wav(self.path)
        self._clock = clock
        self._sleep = sleep
        self._closed = False

    @property
    def duration_s(self) -> float:
        """Length of the audio in seconds."""
        return len(self.pcm) / (SAMPLE_RATE * SAMPLE_WIDTH)

    def __iter__(self) -> Iterator[bytes]:
        start = self._clock()
        for i, block in enumerate(frames(self.pcm, self.block_ms)):
            if self._closed:
                return
            if self.realtime:
                delay = start + (i + 1) * self.block_ms / 1000 - self._clock()
                if delay > 0:
                    self._sleep(delay)
            yield block

    def request_stop(self) -> None:
        """Ask iteration to end (safe from a signal handler)."""
        self._closed = True

    def close(self) -> None:
        """Stop any iteration in progress."""
        self._closed = True

    def __enter__(self) -> WavFileSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# --------------------------------------------------------------------------- devices


@dataclass(frozen=True)
class DeviceInfo:
    """An audio input device as PortAudio reports it."""

    index: int
    """PortAudio device index (what ``--device 3`` means)."""
    name: str
    """Device name; ``--device`` also accepts a case-insensitive substring of it."""
    channels: int
    """Maximum number of input channels."""
    default_samplerate: float
    """The device's default sample rate in Hz."""
    is_default: bool
    """True for the system's default input device."""


def _sounddevice() -> Any:
    """Import ``sounddevice``, turning a missing PortAudio library into a DeviceError."""
    try:
        import sounddevice
    except OSError as exc:
        raise DeviceError(
            "the PortAudio library is missing; install it (Debian: `apt install libportaudio2`)"
        ) from exc
    return sounddevice


def _default_input_index(sd: Any) -> int | None:
    index = sd.default.device[0]
    if isinstance(index, int) and index >= 0:
        return index
    try:
        return int(sd.query_devices(kind="input")["index"])
    except sd.PortAudioError:
        return None


def list_input_devices() -> list[DeviceInfo]:
    """All devices that can record, in PortAudio's order."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        default = _default_input_index(sd)
    except sd.PortAudioError as exc:
        raise DeviceError(f"cannot list audio devices: {exc}") from exc
    return [
        DeviceInfo(
            index=int(d["index"]),
            name=str(d["name"]),
            channels=int(d["max_input_channels"]),
            default_samplerate=float(d["default_samplerate"]),
            is_default=int(d["index"]) == default,
        )
        for d in devices
        if int(d["max_input_channels"]) > 0
    ]


def resolve_input_device(spec: str | None) -> int | None:
    """Turn ``--device`` (an index or a name substring) into a PortAudio index.

    ``None`` or an empty string means the system default (returns ``None``). Several
    matching names: an exact (case-insensitive) match wins, else the first; a log line
    says which was picked.
    """
    if spec is None or not spec.strip():
        return None
    wanted = spec.strip()
    devices = list_input_devices()
    unknown = DeviceError(f"unknown audio input device '{wanted}'; run `voicehello devices` to list them")
    if wanted.isdigit():
        if any(d.index == int(wanted) for d in devices):
            return int(wanted)
        raise unknown
    matches = [d for d in devices if wanted.lower() in d.name.lower()]
    if not matches:
        raise unknown
    exact = [d for d in matches if d.name.lower() == wanted.lower()]
    chosen = (exact or matches)[0]
    if len(matches) > 1:
        names = ", ".join(f"{d.index}: {d.name}" for d in matches)
        level = logging.INFO if exact else logging.WARNING
        log.log(level, "input device '%s' matches %s; using %d: %s", wanted, names, chosen.index, chosen.name)
    return chosen.index


# --------------------------------------------------------------------------- microphone


class MicrophoneSource:
    """Live 16 kHz mono int16 blocks of ``block_ms`` from a PortAudio input device.

    Use as a context manager and iterate::

        with MicrophoneSource(settings.input_device, settings.block_ms) as mic:
            for block in mic:
                ...

    PortAudio's callback puts blocks into a bounded queue holding ``queue_s`` seconds; when
    the consumer falls behind, the oldest block is dropped (counted in :attr:`dropped_blocks`,
    one warning per burst). A device that cannot record at 16 kHz is opened at its default
    rate and resampled. Iteration ends after :meth:`close`; no audio for ``timeout_s``
    raises :class:`DeviceError`.
    """

    def __init__(
        self,
        device: str | int | None = None,
        block_ms: int = 30,
        *,
        samplerate: int | None = None,
        queue_s: float = 5.0,
        timeout_s: float = 5.0,
    ) -> None:
        self.device = device
        self.block_ms = block_ms
        self.timeout_s = timeout_s
        self._block_bytes = block_bytes(block_ms)
        self._requested_rate = samplerate
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=max(1, math.ceil(queue_s * 1000 / block_ms)))
        self._lock = threading.Lock()
        self._dropped = 0
        self._in_burst = False
        self._stream: Any = None
        self._closed = False
        self._pending = bytearray()
        self._resampler: Resampler | None = None
        self._channels = 1
        self.samplerate = SAMPLE_RATE
        """The rate the device is actually recorded at (blocks are always 16 kHz)."""

    @property
    def dropped_blocks(self) -> int:
        """How many device blocks were dropped because the consumer fell behind."""
        return self._dropped

    def open(self) -> MicrophoneSource:
        """Open and start the input stream."""
        if self._stream is not None:
            return self
        sd = _sounddevice()
        index = self.device if isinstance(self.device, int) else resolve_input_device(self.device)
        label = "the default audio input device" if index is None else f"audio input device '{self.device}'"
        try:
            rate, channels = self._choose_format(sd, index)
            stream = sd.RawInputStream(
                samplerate=rate,
                blocksize=rate * self.block_ms // 1000,
                device=index,
                channels=channels,
                dtype="int16",
                callback=self._callback,
            )
            stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise DeviceError(f"cannot open {label}: {exc}") from exc
        self.samplerate, self._channels, self._stream = rate, channels, stream
        self._resampler = Resampler(rate, SAMPLE_RATE)
        self._closed = False
        log.info("recording from %s at %d Hz, %d channel(s)", label, rate, channels)
        return self

    def _choose_format(self, sd: Any, index: int | None) -> tuple[int, int]:
        """Pick (rate, channels): 16 kHz mono if possible, else the device's default rate."""
        if index is None:
            try:
                info = sd.query_devices(kind="input")
            except sd.PortAudioError as exc:
                raise DeviceError(
                    "no default audio input device; connect a microphone or pick one with --device "
                    "(run `voicehello devices` to list them)"
                ) from exc
        else:
            info = sd.query_devices(index, kind="input")
        default_rate = int(info["default_samplerate"])
        rates = [self._requested_rate] if self._requested_rate else [SAMPLE_RATE, default_rate]
        for rate in rates:
            for channels in (1, min(2, int(info["max_input_channels"]))):
                try:
                    sd.check_input_settings(device=index, channels=channels, dtype="int16", samplerate=rate)
                except (sd.PortAudioError, ValueError):
                    continue
                return rate, channels
        return rates[-1], 1  # let the stream report why it cannot open

    def _callback(self, indata: Any, frame_count: int, time_info: Any, status: Any) -> None:
        """PortAudio thread: queue a copy of the block, dropping the oldest when full."""
        block = bytes(indata)
        with self._lock:
            try:
                self._queue.put_nowait(block)
                self._in_burst = False
                return
            except queue.Full:
                pass
            try:
                self._queue.get_nowait()
            except queue.Empty:
                log.debug("queue drained by the consumer while dropping")
            self._queue.put_nowait(block)
            self._dropped += 1
            if not self._in_burst:
                self._in_burst = True
                log.warning(
                    "audio consumer too slow: dropping the oldest audio (%d blocks so far)", self._dropped
                )

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._stream is None and not self._closed:
            raise RuntimeError("open the MicrophoneSource first (use it as a context manager)")
        while len(self._pending) < self._block_bytes:
            self._pending += self._convert(self._get_device_block())
        block = bytes(self._pending[: self._block_bytes])
        del self._pending[: self._block_bytes]
        return block

    def _get_device_block(self) -> bytes:
        waited = 0.0
        while True:
            stream = self._stream
            if self._closed or stream is None:
                raise StopIteration
            try:
                return self._queue.get(timeout=0.05)
            except queue.Empty:
                waited += 0.05
            if self._closed:
                raise StopIteration
            if not stream.active:
                raise DeviceError("the audio input device stopped delivering audio")
            if waited >= self.timeout_s:
                raise DeviceError(f"no audio from the input device for {self.timeout_s:g} s")

    def _convert(self, raw: bytes) -> bytes:
        if self._channels == 1 and self.samplerate == SAMPLE_RATE:
            return raw
        samples = from_pcm16(raw)
        if self._channels > 1:
            samples = samples.reshape(-1, self._channels).mean(axis=1)
        assert self._resampler is not None
        return to_pcm16(self._resampler.process(samples))

    def request_stop(self) -> None:
        """Ask iteration to end soon; safe from a signal handler (takes no lock, stops no
        stream: :meth:`close` does that afterwards, outside the handler)."""
        self._closed = True

    def close(self) -> None:
        """Stop and close the stream and forget any queued audio; iteration then stops."""
        self._closed = True
        stream, self._stream = self._stream, None
        if stream is not None:
            sd = _sounddevice()
            try:
                stream.stop()
                stream.close()
            except sd.PortAudioError as exc:
                log.warning("closing the audio input stream failed: %s", exc)
        with self._lock:
            while not self._queue.empty():
                self._queue.get_nowait()
        self._pending.clear()

    def __enter__(self) -> MicrophoneSource:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
