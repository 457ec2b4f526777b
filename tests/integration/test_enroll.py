"""``voicehello enroll`` end to end, with espeak-ng voices: through the virtual microphone
(PulseAudio null sink -> ALSA pulse plugin -> PortAudio -> voicehello) and from WAV files,
with Debian's real SphinxTrain tools and real PocketSphinx decoders.

The British voice en-gb+m3 is one the bundled US model does worst on, so it is the speaker."""

from __future__ import annotations

import re
import signal
import stat
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pulse import PORTAUDIO_DEVICE, PulseServer

from voicehello.intents.catalog import Catalog
from voicehello.speech.adaptation.enroll import MEMORY_DIR
from voicehello.speech.adaptation.prompts import EnrollPrompt, enrollment_prompts
from voicehello.speech.adaptation.store import check_adaptation
from voicehello.speech.pocketsphinx import model_root

pytestmark = pytest.mark.integration

SPEAKER = "en-gb+m3"
PROMPTS = 12
PROMPT_LINE = re.compile(r"^\[(\d+)/(\d+)\] Please read: (.+)$")
HMM = model_root() / "en-us" / "en-us"
IDENTITY_MLLR = (
    "1\n3\n"
    + (
        "13\n"
        + "".join(" ".join("1.0" if c == r else "0.0" for c in range(13)) + "\n" for r in range(13))
        + " ".join(["0.0"] * 13)
        + "\n"
        + " ".join(["1.0"] * 13)
        + "\n"
    )
    * 3
)
"""A previous adaptation that changes nothing (a valid global MLLR transform)."""


def config_for(tmp_path: Path) -> tuple[Path, Path]:
    """A settings file whose adaptation lives in ``tmp_path``; returns (config, adaptation)."""
    adaptation = tmp_path / "keys" / "adaptation" / "pocketsphinx-en-us"
    config = tmp_path / "voicehello.toml"
    config.write_text(f'[speech]\nengine = "pocketsphinx"\nadaptation = "{adaptation}"\n', encoding="utf-8")
    return config, adaptation


def readings(
    espeak: Any, prompts: list[EnrollPrompt], say: Callable[[EnrollPrompt], tuple[str, str]], name: str
) -> Path:
    """One WAV of the prompts read in order, ``say(prompt) -> (text, voice)``."""
    return Path(espeak.sequence([say(prompt) for prompt in prompts], name=name))


def leftover_workdirs() -> set[str]:
    """Enrollment working directories in the memory directory."""
    return {path.name for path in MEMORY_DIR.glob("voicehello-enroll-*")} if MEMORY_DIR.is_dir() else set()


def keep_previous(adaptation: Path) -> bytes:
    """Put a previous adaptation in place; returns its bytes."""
    adaptation.parent.mkdir(parents=True)
    adaptation.write_text(IDENTITY_MLLR, encoding="utf-8")
    return adaptation.read_bytes()


def test_enroll_through_the_microphone_makes_an_adaptation_the_recognizer_loads(
    pulse: PulseServer,
    spawn_voicehello: Callable[..., Any],
    voicehello: Callable[..., Any],
    espeak: Any,
    tmp_path: Path,
) -> None:
    config, adaptation = config_for(tmp_path)
    before = leftover_workdirs()
    child = spawn_voicehello(
        "enroll", "--device", PORTAUDIO_DEVICE, "--prompts", str(PROMPTS), "--config", str(config)
    )
    for number in range(1, PROMPTS + 1):
        line = child.wait_for("stdout", lambda text: PROMPT_LINE.match(text) is not None, 60)
        assert line is not None, child.transcript()
        match = PROMPT_LINE.match(line)
        assert match is not None, line
        assert int(match.group(1)) == number, line
        pulse.play(espeak(match.group(3), SPEAKER, 160))
    saved = child.wait_for("stdout", lambda text: text.startswith("saved the speaker adaptation"), 180)
    assert saved is not None, child.transcript()
    assert child.process.wait(timeout=30) == 0, child.transcript()
    assert str(adaptation) in saved
    assert stat.S_IMODE(adaptation.stat().st_mode) == 0o600
    assert check_adaptation(adaptation.read_bytes(), HMM) in ("mllr", "mean")
    assert leftover_workdirs() <= before, "the enrollment's working directory was left behind"

    request = espeak("hey neighbor can I borrow a ladder", SPEAKER, 160)
    result = voicehello("-v", "transcribe", "--json", "--config", config, request)
    assert result.returncode == 0, result.stderr
    assert f"speaker adaptation loaded from {adaptation}" in result.stderr, result.stderr
    assert '"intent": "borrow_item"' in result.stdout, result.stdout


def test_enroll_refuses_an_adaptation_that_makes_its_held_apart_prompts_worse(
    voicehello: Callable[..., Any], espeak: Any, catalog: Catalog, tmp_path: Path
) -> None:
    """The sentences adapted to are not what the prompts say, and in another voice than the
    held-apart ones: the adaptation must be refused and the previous one kept."""
    config, adaptation = config_for(tmp_path)
    previous = keep_previous(adaptation)
    prompts = enrollment_prompts(catalog, PROMPTS)

    def say(prompt: EnrollPrompt) -> tuple[str, str]:
        if prompt.held:
            return prompt.text, "en-us"
        return f"the rain in spain stays mainly in the plain {prompt.text}", "en-gb-x-rp+f4"

    wav = readings(espeak, prompts, say, "enroll-wrong")
    result = voicehello("enroll", "--file", wav, "--prompts", str(PROMPTS), "--config", config, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("voicehello: the adaptation made recognition worse"), lines[0]
    assert "previous adaptation is kept" in lines[0]
    assert adaptation.read_bytes() == previous
    assert sorted(p.name for p in adaptation.parent.iterdir()) == [adaptation.name]


def test_a_noisy_room_stops_enrollment_and_keeps_the_previous_adaptation(
    voicehello: Callable[..., Any], espeak: Any, catalog: Catalog, tmp_path: Path
) -> None:
    config, adaptation = config_for(tmp_path)
    previous = keep_previous(adaptation)
    prompts = enrollment_prompts(catalog, 8)
    clean = readings(espeak, prompts, lambda p: (p.text, SPEAKER), "enroll-clean-8")
    noisy = tmp_path / "noisy.wav"
    with wave.open(str(clean), "rb") as source:
        params = source.getparams()
        samples = np.frombuffer(source.readframes(params.nframes), dtype="<i2").astype(np.float64)
    speech_rms = float(np.sqrt(np.mean(np.square(samples[np.abs(samples) > 500]))))
    noise = np.random.default_rng(7).normal(0.0, speech_rms / 2.0, samples.shape)  # 6 dB below the speech
    with wave.open(str(noisy), "wb") as out:
        out.setparams(params)
        out.writeframes(np.clip(samples + noise, -32768, 32767).astype("<i2").tobytes())
    result = voicehello("enroll", "--file", noisy, "--prompts", "8", "--config", config)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("voicehello: enrollment stopped: too noisy to enroll"), lines[0]
    assert "previous adaptation is kept" in lines[0]
    assert adaptation.read_bytes() == previous


def test_a_reading_that_never_comes_stops_enrollment(
    voicehello: Callable[..., Any], espeak: Any, catalog: Catalog, tmp_path: Path
) -> None:
    config, adaptation = config_for(tmp_path)
    prompts = enrollment_prompts(catalog, 8)
    wav = readings(espeak, prompts[:5], lambda p: (p.text, SPEAKER), "enroll-first-5")
    result = voicehello("enroll", "--file", wav, "--prompts", "8", "--config", config)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == (
        "voicehello: enrollment stopped: sentence 6 of 8 was not read (no speech for 20 s, or the audio "
        "ended); nothing saved, the previous adaptation is kept"
    )
    assert not adaptation.exists()


def test_ctrl_c_while_adapting_removes_the_working_directory_and_keeps_the_previous_adaptation(
    spawn_voicehello: Callable[..., Any], espeak: Any, catalog: Catalog, tmp_path: Path
) -> None:
    config, adaptation = config_for(tmp_path)
    previous = keep_previous(adaptation)
    prompts = enrollment_prompts(catalog, 8)
    wav = readings(espeak, prompts, lambda p: (p.text, SPEAKER), "enroll-clean-8")
    before = leftover_workdirs()
    child = spawn_voicehello("enroll", "--file", str(wav), "--prompts", "8", "--config", str(config))
    started = child.wait_for("stdout", lambda line: line.startswith("Adapting"), 60)
    assert started is not None, child.transcript()
    deadline = time.monotonic() + 60
    while not leftover_workdirs() - before and child.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # polling for the directory to appear, not waiting for something to be absent
    working = leftover_workdirs() - before
    assert working, f"no working directory appeared in {MEMORY_DIR}:\n{child.transcript()}"
    (workdir,) = working
    assert stat.S_IMODE((MEMORY_DIR / workdir).stat().st_mode) == 0o700
    child.process.send_signal(signal.SIGINT)
    assert child.process.wait(timeout=60) == 130, child.transcript()
    assert child.stderr[-1] == (
        "voicehello: enrollment interrupted; nothing saved, the previous adaptation is kept"
    ), child.transcript()
    assert adaptation.read_bytes() == previous
    assert leftover_workdirs() <= before
