"""The microphone source on a real PortAudio -> ALSA -> PulseAudio chain (virtual microphone)."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

import pytest
from pulse import PORTAUDIO_DEVICE, PulseServer

from voicehello.audio.sources import (
    MicrophoneSource,
    block_bytes,
    list_input_devices,
    read_wav,
    resolve_input_device,
)
from voicehello.audio.vad import Endpointer, Utterance, split_utterances
from voicehello.config import AudioSettings
from voicehello.errors import DeviceError

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("pulse")]

SETTINGS = AudioSettings()
SENTENCE = "hey neighbor, can I borrow a ladder this afternoon"


@pytest.fixture(scope="module")
def sentence_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One spoken sentence from espeak-ng (22.05 kHz WAV)."""
    path = tmp_path_factory.mktemp("speech") / "sentence.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), SENTENCE], check=True)
    return path


def test_list_input_devices_sees_the_pulse_device() -> None:
    devices = list_input_devices()
    pulse = [d for d in devices if d.name == PORTAUDIO_DEVICE]
    assert len(pulse) == 1, [d.name for d in devices]
    assert pulse[0].channels >= 1
    assert pulse[0].default_samplerate > 0
    assert sum(d.is_default for d in devices) == 1


def test_resolve_input_device_by_name_substring_and_index() -> None:
    index = next(d.index for d in list_input_devices() if d.name == PORTAUDIO_DEVICE)
    assert resolve_input_device("PULS") == index
    assert resolve_input_device(str(index)) == index
    assert resolve_input_device(None) is None


@pytest.mark.parametrize("spec", ["no-such-microphone", "999"])
def test_unknown_device_raises_device_error(spec: str) -> None:
    message = f"unknown audio input device '{spec}'; run `voicehello devices` to list them"
    with pytest.raises(DeviceError) as excinfo:
        resolve_input_device(spec)
    assert str(excinfo.value) == message
    with pytest.raises(DeviceError, match="unknown audio input device"), MicrophoneSource(spec):
        pytest.fail("the stream should not open")


def _record_while_playing(pulse: PulseServer, wav: Path, mic: MicrophoneSource) -> list[Utterance]:
    """Feed the microphone into an Endpointer while ``wav`` plays into the virtual mic."""
    endpointer = Endpointer(SETTINGS)
    found: list[Utterance] = []
    player: subprocess.Popen[bytes] | None = None
    tail_ms = 0
    for i, block in enumerate(mic):
        assert len(block) == block_bytes(SETTINGS.block_ms)
        found += endpointer.feed(block)
        if i == 500 // SETTINGS.block_ms:  # 0.5 s of audio before the sentence
            player = pulse.play_async(wav)
        if player is not None and player.poll() is not None:
            tail_ms += SETTINGS.block_ms
        if tail_ms >= 1000 or i * SETTINGS.block_ms > 20_000:
            break
    assert player is not None
    assert player.wait(timeout=10) == 0
    last = endpointer.flush()
    return [*found, *([last] if last else [])]


@pytest.mark.parametrize("samplerate", [None, 48_000], ids=["native-16k", "resampled-48k"])
def test_microphone_hears_one_utterance_of_the_right_length(
    pulse: PulseServer, sentence_wav: Path, samplerate: int | None
) -> None:
    expected = split_utterances(read_wav(sentence_wav), SETTINGS)
    assert len(expected) == 1
    with MicrophoneSource(PORTAUDIO_DEVICE, SETTINGS.block_ms, samplerate=samplerate) as mic:
        assert mic.samplerate == (samplerate or 16_000)
        found = _record_while_playing(pulse, sentence_wav, mic)
    assert len(found) == 1, [(u.start_s, u.end_s) for u in found]
    utterance = found[0]
    assert not utterance.cut
    assert utterance.start_s >= 0.5
    assert utterance.speech_s == pytest.approx(expected[0].speech_s, abs=0.25)


def test_iteration_stops_after_close() -> None:
    mic = MicrophoneSource(None, SETTINGS.block_ms)
    with pytest.raises(RuntimeError, match="open the MicrophoneSource first"):
        next(mic)
    with mic:
        assert len(next(mic)) == block_bytes(SETTINGS.block_ms)
        mic.close()
        assert list(mic) == []


def test_slow_consumer_drops_oldest_blocks_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="voicehello.audio.sources")
    with MicrophoneSource(PORTAUDIO_DEVICE, SETTINGS.block_ms, queue_s=0.3) as mic:
        assert len(next(mic)) == block_bytes(SETTINGS.block_ms)
        for _ in range(200):  # the consumer stalls until the 10-block queue has overflowed
            if mic.dropped_blocks >= 5:
                break
            time.sleep(0.05)
        assert mic.dropped_blocks >= 5
        warnings = [r for r in caplog.records if "dropping the oldest audio" in r.getMessage()]
        assert len(warnings) == 1
        assert len(next(mic)) == block_bytes(SETTINGS.block_ms)
