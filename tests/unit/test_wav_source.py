"""read_wav, the resampler, frames() and WavFileSource, on WAVs written in memory by the tests."""

from __future__ import annotations

import builtins
import logging
import math
import struct
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from voicehello.audio import sources
from voicehello.audio.sources import (
    DeviceInfo,
    Resampler,
    WavFileSource,
    frames,
    list_input_devices,
    read_wav,
    resample,
    resolve_input_device,
)
from voicehello.errors import AudioError, DeviceError

RATE = 16_000
Signal = npt.NDArray[np.float64]


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> Signal:
    """A sine wave as floats in [-1, 1]."""
    t = np.arange(round(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def encode(samples: Signal, bits: int, is_float: bool) -> bytes:
    """Interleaved float samples as little-endian WAV sample bytes."""
    if is_float:
        return bytes(samples.astype("<f4" if bits == 32 else "<f8").tobytes())
    if bits == 8:
        return bytes(np.clip(np.round(samples * 128 + 128), 0, 255).astype(np.uint8).tobytes())
    scale = 2 ** (bits - 1)
    ints = np.clip(np.round(samples * scale), -scale, scale - 1).astype(np.int64)
    if bits == 24:
        raw = ints.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
        return bytes(raw.tobytes())
    return bytes(ints.astype(f"<i{bits // 8}").tobytes())


def write_wav(
    path: Path,
    channels: list[Signal],
    rate: int,
    *,
    bits: int = 16,
    is_float: bool = False,
    extensible: bool = False,
) -> Path:
    """Write a WAV with a hand-made RIFF header (stdlib ``wave`` cannot write float)."""
    interleaved = np.stack(channels, axis=1).reshape(-1)
    data = encode(interleaved, bits, is_float)
    n_channels = len(channels)
    block_align = n_channels * bits // 8
    tag = 3 if is_float else 1
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack("<HHIIHH", 0xFFFE, n_channels, rate, rate * block_align, block_align, bits)
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + guid_tail
    else:
        fmt = struct.pack("<HHIIHH", tag, n_channels, rate, rate * block_align, block_align, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"LIST" + struct.pack("<I", 5) + b"INFOx\x00"  # odd-sized chunk, padded
    chunks += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
    return path


def to_float(pcm: bytes) -> Signal:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0


def peak_hz(samples: Signal, rate: int = RATE) -> float:
    """Frequency of the strongest FFT bin (Hann-windowed)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def rms(samples: Signal) -> float:
    return float(np.sqrt(np.mean(np.square(samples))))


@dataclass(frozen=True)
class WavSpec:
    """How a test WAV is encoded."""

    bits: int
    is_float: bool
    extensible: bool
    rate: int
    channels: int


FORMATS = {
    "8-bit-unsigned": WavSpec(8, False, False, 16_000, 1),
    "16-bit": WavSpec(16, False, False, 16_000, 1),
    "24-bit": WavSpec(24, False, False, 16_000, 1),
    "32-bit-int": WavSpec(32, False, False, 16_000, 1),
    "32-bit-float": WavSpec(32, True, False, 16_000, 1),
    "64-bit-float": WavSpec(64, True, False, 16_000, 1),
    "extensible-float-48k-stereo": WavSpec(32, True, True, 48_000, 2),
    "extensible-24-bit-22k": WavSpec(24, False, True, 22_050, 1),
    "16-bit-44.1k-stereo": WavSpec(16, False, False, 44_100, 2),
    "16-bit-8k": WavSpec(16, False, False, 8_000, 1),
}


@pytest.mark.parametrize("spec", FORMATS.values(), ids=FORMATS.keys())
def test_read_wav_decodes_every_format_to_16k_mono(tmp_path: Path, spec: WavSpec) -> None:
    rate = spec.rate
    tone = sine(440.0, rate, 1.0)
    path = write_wav(
        tmp_path / "tone.wav",
        [tone] * spec.channels,
        rate,
        bits=spec.bits,
        is_float=spec.is_float,
        extensible=spec.extensible,
    )

    pcm = read_wav(path)

    assert len(pcm) == 2 * math.ceil(len(tone) * RATE / rate)
    samples = to_float(pcm)
    assert peak_hz(samples) == pytest.approx(440.0, abs=2.0)
    middle = samples[800:-800]  # away from the resampler's edges
    assert rms(middle) == pytest.approx(0.5 / math.sqrt(2), rel=0.02)


def test_read_wav_of_16k_mono_16_bit_is_bit_exact(tmp_path: Path) -> None:
    ints = np.random.default_rng(7).integers(-32768, 32767, size=4000, dtype=np.int16)
    path = tmp_path / "exact.wav"
    with wave.open(str(path), "wb") as out:  # stdlib writer as an independent reference
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(ints.astype("<i2").tobytes())
    assert read_wav(path) == ints.astype("<i2").tobytes()


def test_read_wav_averages_channels(tmp_path: Path) -> None:
    left = sine(300.0, RATE, 0.5, amplitude=0.6)
    path = write_wav(tmp_path / "stereo.wav", [left, np.zeros_like(left)], RATE)
    samples = to_float(read_wav(path))
    assert rms(samples) == pytest.approx(0.3 / math.sqrt(2), rel=0.01)


def test_read_wav_with_stdlib_8_bit_file(tmp_path: Path) -> None:
    path = tmp_path / "u8.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(11_025)
        out.writeframes(np.full(11_025, 128 + 64, dtype=np.uint8).tobytes())  # +0.5 DC
    samples = to_float(read_wav(path))
    assert len(samples) == RATE
    assert np.median(samples) == pytest.approx(0.5, abs=0.01)


def test_resampling_from_44k_removes_tones_above_8k(tmp_path: Path) -> None:
    alias = sine(12_000.0, 44_100, 1.0)  # would fold to 4 kHz without a low-pass filter
    kept = sine(1_000.0, 44_100, 1.0)
    path = write_wav(tmp_path / "mix.wav", [alias + kept], 44_100, bits=32, is_float=True)
    samples = to_float(read_wav(path))
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1 / RATE)

    def at(hz: float) -> float:
        return float(spectrum[np.argmin(np.abs(freqs - hz))])

    assert peak_hz(samples) == pytest.approx(1_000.0, abs=2.0)
    assert at(4_000.0) < at(1_000.0) * 1e-3  # aliased image at least 60 dB down


@pytest.mark.parametrize(("rate_in", "rate_out"), [(44_100, 16_000), (8_000, 16_000), (48_000, 16_000)])
def test_streaming_resampler_matches_whole_signal(rate_in: int, rate_out: int) -> None:
    signal = np.random.default_rng(3).standard_normal(rate_in // 2) * 0.1
    whole = resample(signal, rate_in, rate_out)
    resampler = Resampler(rate_in, rate_out)
    pieces = [resampler.process(signal[i : i + 333]) for i in range(0, len(signal), 333)]
    streamed = np.concatenate([*pieces, resampler.flush()])
    assert len(whole) == math.ceil(len(signal) * rate_out / rate_in)
    np.testing.assert_allclose(streamed, whole, atol=1e-12)


# --------------------------------------------------------------------------- bad input


def _expect_error(path: Path, fragment: str) -> str:
    with pytest.raises(AudioError) as excinfo:
        read_wav(path)
    message = str(excinfo.value)
    assert path.name in message
    assert fragment in message
    assert "\n" not in message
    return message


def test_missing_file(tmp_path: Path) -> None:
    _expect_error(tmp_path / "nope.wav", "no such file")


def test_directory(tmp_path: Path) -> None:
    directory = tmp_path / "folder.wav"
    directory.mkdir()
    _expect_error(directory, "is a directory")


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("buy milk\n", encoding="utf-8")
    _expect_error(path, "not a WAV file")


def test_mp3_file(tmp_path: Path) -> None:
    path = tmp_path / "song.mp3"
    path.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(100))
    assert "MP3" in _expect_error(path, "not a WAV file")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    _expect_error(path, "not a WAV file")


@pytest.mark.parametrize("keep", [6, 20, 30], ids=["in-riff-header", "in-fmt-header", "in-fmt-body"])
def test_truncated_header(tmp_path: Path, keep: int) -> None:
    whole = write_wav(tmp_path / "whole.wav", [sine(440, RATE, 0.1)], RATE).read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(whole[:keep])
    _expect_error(path, "truncated header")


def test_zero_frames(tmp_path: Path) -> None:
    path = tmp_path / "silent.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
    _expect_error(path, "the file holds no audio")


def test_unsupported_encoding(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "alaw.wav", [sine(440, 8000, 0.1)], 8000, bits=8)
    data = bytearray(path.read_bytes())
    data[20:22] = struct.pack("<H", 6)  # A-law
    path.write_bytes(bytes(data))
    assert "A-law" in _expect_error(path, "unsupported WAV encoding")


def test_truncated_data_uses_the_whole_frames_present(tmp_path: Path) -> None:
    whole = write_wav(tmp_path / "whole.wav", [sine(440, RATE, 0.5)], RATE).read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(whole[:-1001])  # data chunk says more than the file holds
    data_bytes = 8000 * 2 - 1001  # 0.5 s at 16 kHz, minus what was cut
    assert len(read_wav(path)) == data_bytes - data_bytes % 2


# --------------------------------------------------------------------------- frames, WavFileSource


def test_frames_splits_and_pads_the_last_block() -> None:
    pcm = bytes(range(256)) * 4  # 1024 bytes; 10 ms blocks are 320 bytes
    blocks = list(frames(pcm, 10))
    assert [len(b) for b in blocks] == [320] * 4
    assert b"".join(blocks)[: len(pcm)] == pcm
    assert blocks[-1][64:] == bytes(256)


def test_frames_of_nothing_is_empty() -> None:
    assert list(frames(b"", 30)) == []


class FakeClock:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wav_file_source_yields_blocks_of_the_file(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "tone.wav", [sine(440, 22_050, 1.0)], 22_050)
    source = WavFileSource(path, block_ms=30)
    blocks = list(source)
    assert len(blocks) == math.ceil(source.duration_s * 1000 / 30)
    assert all(len(b) == 960 for b in blocks)
    assert b"".join(blocks)[: len(source.pcm)] == source.pcm
    assert source.duration_s == pytest.approx(1.0, abs=1e-3)


def test_wav_file_source_paces_at_real_time(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "tone.wav", [sine(440, RATE, 0.3)], RATE)
    clock = FakeClock()
    source = WavFileSource(path, block_ms=30, realtime=True, clock=clock.time, sleep=clock.sleep)
    for i, _ in enumerate(source):
        assert clock.now - 100.0 == pytest.approx((i + 1) * 0.030)
    assert sum(clock.sleeps) == pytest.approx(0.3)


def test_wav_file_source_stops_after_close(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "tone.wav", [sine(440, RATE, 0.3)], RATE)
    with WavFileSource(path, block_ms=30) as source:
        iterator = iter(source)
        next(iterator)
        source.close()
        assert list(iterator) == []


def test_wav_file_source_reports_bad_files_at_construction(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"missing\.wav: no such file"):
        WavFileSource(tmp_path / "missing.wav")


def test_missing_portaudio_becomes_a_device_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_portaudio(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    with pytest.raises(DeviceError, match=r"PortAudio library is missing.*libportaudio2"):
        list_input_devices()


FAKE_DEVICES = [
    DeviceInfo(0, "USB Mic (hw:1,0)", 1, 48_000.0, False),
    DeviceInfo(2, "pulse", 32, 44_100.0, False),
    DeviceInfo(3, "USB Mic", 1, 48_000.0, False),
    DeviceInfo(5, "default", 32, 44_100.0, True),
]


@pytest.fixture
def fake_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "list_input_devices", lambda: FAKE_DEVICES)


@pytest.mark.usefixtures("fake_devices")
@pytest.mark.parametrize(
    ("spec", "index"),
    [(None, None), ("", None), ("5", 5), ("PULSE", 2), ("usb mic", 3), ("hw:1", 0), ("mic", 0)],
)
def test_resolve_input_device(spec: str | None, index: int | None) -> None:
    assert resolve_input_device(spec) == index


@pytest.mark.usefixtures("fake_devices")
def test_ambiguous_device_name_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="voicehello.audio.sources")
    assert resolve_input_device("mic") == 0
    assert "using 0: USB Mic (hw:1,0)" in caplog.text
    assert "3: USB Mic" in caplog.text


@pytest.mark.usefixtures("fake_devices")
@pytest.mark.parametrize("spec", ["4", "webcam"])
def test_unknown_device_is_a_device_error(spec: str) -> None:
    with pytest.raises(DeviceError) as excinfo:
        resolve_input_device(spec)
    assert str(excinfo.value) == f"unknown audio input device '{spec}'; run `voicehello devices` to list them"
