"""The announcer with real parts: pyttsx3 + espeak-ng in a child process, PortAudio -> ALSA ->
PulseAudio into the ``vh_speaker`` null sink, recorded from its monitor and decoded by PocketSphinx.

Also: a genuinely hung engine (SIGSTOP) is killed and replaced, ``submit`` never blocks (it
returns while the announcer's thread is held), print mode prints, a missing output device falls
back to printing, and nothing is written to disk.

No speed is asserted here: how long publish -> TTS start takes is measured by ``bench/bus.py``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pulse import PORTAUDIO_DEVICE, SPEAKER_SOURCE, PulseServer

from voicehello.announce.speaker import DRIVER_NAME, AnnounceEvent, Announcer, install_driver, match_voice
from voicehello.audio.sources import read_wav
from voicehello.bus.messages import Message, Sender, new_message
from voicehello.config import AnnounceSettings
from voicehello.speech.lm import build_arpa
from voicehello.speech.pocketsphinx import PocketSphinxRecognizer
from voicehello.speech.recognizer import recognize

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("pulse")]

MAYA = Sender("maya-12", "Maya at number 12")
SAM = Sender("sam-4", "Sam")
SETTINGS = AnnounceSettings(
    output="speaker", output_device=PORTAUDIO_DEVICE, prefix="none", tts_timeout_s=3.0
)
STEP_TIMEOUT_S = 30.0
RATE = 16_000
ITEMS = ("ladder", "drill", "wheelbarrow", "hammer")


# ----------------------------------------------------------------------------- helpers


class Events:
    """Collects announce events; waits for one that matches."""

    def __init__(self) -> None:
        self.items: list[AnnounceEvent] = []
        self._changed = threading.Condition()

    def __call__(self, event: AnnounceEvent) -> None:
        with self._changed:
            self.items.append(event)
            self._changed.notify_all()

    def wait_for(
        self, kind: str, message_id: str | None = None, timeout_s: float = STEP_TIMEOUT_S
    ) -> AnnounceEvent:
        def found() -> AnnounceEvent | None:
            return next(
                (
                    e
                    for e in self.items
                    if e.kind == kind and (message_id is None or e.message_id == message_id)
                ),
                None,
            )

        with self._changed:
            self._changed.wait_for(lambda: found() is not None, timeout_s)
            event = found()
        assert event is not None, (
            f"no {kind} event for {message_id} within {timeout_s:g} s; last: {self.items[-8:]}"
        )
        return event

    def kinds(self, message_id: str) -> list[str]:
        with self._changed:
            return [e.kind for e in self.items if e.message_id == message_id]


def borrow(item: str, sender: Sender = MAYA) -> Message:
    return new_message(sender, "borrow_item", {"item": item})


def sentence(item: str) -> str:
    return f"Maya at number 12 asks to borrow a {item}"


@pytest.fixture
def announcer() -> Iterator[Callable[..., tuple[Announcer, Events]]]:
    """``announcer(**settings)``: a started Announcer and its events; stopped at teardown."""
    started: list[Announcer] = []

    def make(**overrides: object) -> tuple[Announcer, Events]:
        events = Events()
        voice = Announcer(replace(SETTINGS, **overrides), on_event=events)  # type: ignore[arg-type]
        voice.start()
        started.append(voice)
        return voice, events

    yield make
    for voice in started:
        voice.stop()


@pytest.fixture(scope="module")
def speaker_listener(pulse: PulseServer) -> Iterator[None]:
    """A low-latency listener on the virtual speaker for this module, so that the idle null sink
    renders in small blocks (like the keeper on the virtual microphone) and recordings start on time."""
    process = subprocess.Popen(
        ["parec", f"--device={SPEAKER_SOURCE}", "--latency-msec=20", "--raw", "--rate=16000", "--channels=1"],
        env=pulse.tool_env(),
        stdout=subprocess.DEVNULL,
    )
    yield
    process.terminate()
    process.wait(timeout=10)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:g} s waiting for {what}"
        time.sleep(0.02)


def recorded_seconds(path: Path) -> float:
    return max(path.stat().st_size - 44, 0) / 2 / RATE if path.exists() else 0.0


def samples(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as recording:
        return np.frombuffer(recording.readframes(recording.getnframes()), dtype=np.int16).astype(np.float64)


def voiced_seconds(audio: np.ndarray, threshold: float = 300.0) -> float:
    """Seconds of 20 ms frames whose RMS is above ``threshold``."""
    frame = RATE // 50
    frames = audio[: len(audio) // frame * frame].reshape(-1, frame)
    return float((np.sqrt((frames**2).mean(axis=1)) > threshold).sum()) * 0.02


def hear(path: Path) -> list[str]:
    """PocketSphinx's words for the recording, over a small model of announcement sentences."""
    sentences = [sentence(item).lower().replace("12", "twelve") for item in ITEMS] + ["sam says hello"]
    words = {word for text in sentences for word in text.split()}
    recognizer = PocketSphinxRecognizer(words, arpa=build_arpa(sentences))
    return recognize(recognizer, read_wav(path)).text.split()


class Recording:
    """The virtual speaker recorded while the block runs (started once audio is flowing)."""

    def __init__(self, pulse: PulseServer) -> None:
        self.pulse = pulse
        self.path: Path | None = None

    def __enter__(self) -> Recording:
        self._context = self.pulse.record(SPEAKER_SOURCE)
        self.path = self._context.__enter__()
        wait_until(lambda: recorded_seconds(self.path) > 0.2, 10, "the recording to start")  # type: ignore[arg-type]
        return self

    def tail(self, seconds: float = 0.6) -> None:
        """Wait until ``seconds`` more audio have been recorded (the end of the sound)."""
        assert self.path is not None
        target = recorded_seconds(self.path) + seconds
        wait_until(lambda: recorded_seconds(self.path) >= target, 10, "the recording's tail")  # type: ignore[arg-type]

    def __exit__(self, *exc: object) -> None:
        self._context.__exit__(None, None, None)


# ----------------------------------------------------------------------------- speaking


@pytest.mark.usefixtures("speaker_listener")
def test_an_announcement_is_spoken_into_the_speaker(
    pulse: PulseServer, announcer: Callable[..., tuple[Announcer, Events]]
) -> None:
    voice, events = announcer()
    wait_until(lambda: voice.child_pid is not None, 10, "the TTS child")
    message = borrow("wheelbarrow")
    with Recording(pulse) as recording:
        voice.submit(message, sentence("wheelbarrow"))
        started = events.wait_for("started", message.id)
        finished = events.wait_for("finished", message.id)
        recording.tail()
    assert events.kinds(message.id) == ["handed", "started", "finished"]
    assert started.text == sentence("wheelbarrow")
    assert 1.0 < finished.t - started.t < 8.0
    assert voice.wait_idle(5)
    audio = samples(recording.path)  # type: ignore[arg-type]
    assert np.abs(audio).max() > 3000, "the recording is silent"
    assert 1.2 < voiced_seconds(audio) < 5.0  # about 2.5 s of speech at 160 wpm
    heard = hear(recording.path)  # type: ignore[arg-type]
    assert "wheelbarrow" in heard, heard
    assert "borrow" in heard, heard


@pytest.mark.usefixtures("speaker_listener")
def test_the_chime_comes_first(
    pulse: PulseServer, announcer: Callable[..., tuple[Announcer, Events]]
) -> None:
    voice, events = announcer(prefix="chime")
    message = borrow("ladder")
    with Recording(pulse) as recording:
        voice.submit(message, sentence("ladder"))
        events.wait_for("finished", message.id)
        recording.tail()
    audio = samples(recording.path)  # type: ignore[arg-type]
    onset = int(np.argmax(np.abs(audio) > 1000))
    first = audio[onset : onset + RATE // 5]  # the first 200 ms: the chime's first tone (E5)
    spectrum = np.abs(np.fft.rfft(first * np.hanning(len(first))))
    peak_hz = np.argmax(spectrum) * RATE / len(first)
    assert abs(peak_hz - 659.25) < 15, peak_hz


def test_a_hung_engine_is_restarted(
    pulse: PulseServer, announcer: Callable[..., tuple[Announcer, Events]]
) -> None:
    voice, events = announcer(tts_timeout_s=2.0, mute=("flood",))
    first, second = borrow("ladder"), borrow("drill")
    voice.submit(first, sentence("ladder") + ". " + sentence("ladder"))
    events.wait_for("started", first.id)
    hung_pid = voice.child_pid
    assert hung_pid is not None
    os.kill(hung_pid, signal.SIGSTOP)  # a genuinely hung engine: no progress, no answer
    voice.submit(second, sentence("drill"))
    flood = [borrow("hammer", Sender("flood", "Flood")) for _ in range(500)]
    for message in flood:  # taken while the engine is hung (never waiting for it: see below)
        voice.submit(message, "flood")
    restarted = events.wait_for("restarted", timeout_s=2.0 + 10)
    assert restarted.message_id == first.id
    dropped = events.wait_for("dropped", first.id)
    assert "text-to-speech engine" in dropped.reason
    assert voice.child_pid not in (None, hung_pid)
    with Recording(pulse) as recording:
        events.wait_for("started", second.id)
        events.wait_for("finished", second.id)
        recording.tail()
    assert "finished" not in events.kinds(first.id)
    assert voiced_seconds(samples(recording.path)) > 0.8  # type: ignore[arg-type]
    with pytest.raises(ProcessLookupError):
        os.kill(hung_pid, 0)  # the hung child is gone (killed and reaped)
    assert sum(e.kind == "dropped" and e.reason.endswith("is muted") for e in events.items) == 500


@pytest.mark.usefixtures("speaker_listener")
def test_rate_volume_and_voice_settings_are_honoured(
    pulse: PulseServer, caplog: pytest.LogCaptureFixture, announcer: Callable[..., tuple[Announcer, Events]]
) -> None:
    caplog.set_level(logging.WARNING, logger="voicehello.announce.speaker")
    measured = {}
    for name, settings in {
        "fast and soft": {"rate_wpm": 320, "volume": 0.3, "voice": "en-gb"},
        "slow and loud": {"rate_wpm": 110, "volume": 1.0, "voice": "no-such-voice"},
    }.items():
        voice, events = announcer(**settings)
        message = borrow("ladder")
        with Recording(pulse) as recording:
            voice.submit(message, sentence("ladder"))
            events.wait_for("finished", message.id)
            recording.tail()
        audio = samples(recording.path)  # type: ignore[arg-type]
        measured[name] = (voiced_seconds(audio, threshold=100), float(np.percentile(np.abs(audio), 99.5)))
        voice.stop()
    (fast_s, soft_peak), (slow_s, loud_peak) = measured["fast and soft"], measured["slow and loud"]
    assert slow_s > 2 * fast_s, measured
    assert loud_peak > 2 * soft_peak, measured
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("no-such-voice" in warning for warning in warnings), warnings
    assert not any("en-gb" in warning for warning in warnings), warnings


def test_submit_never_blocks_while_the_announcer_is_stuck() -> None:
    """The announcer's thread is held inside its event handler (its own lock taken, as when it
    hands a message to the engine); 500 submits from another thread all return all the same,
    and every one is handled once the thread moves on. No speed is measured: a submit that
    waited for the announcer would not return until the test let the announcer go."""
    entered, release = threading.Event(), threading.Event()
    muted = Sender("flood", "Flood")
    handled = Events()

    def stuck(event: AnnounceEvent) -> None:
        entered.set()
        release.wait(STEP_TIMEOUT_S)
        handled(event)

    voice = Announcer(replace(SETTINGS, output="print", mute=(muted.device,)), on_event=stuck)
    first, flood = borrow("ladder", muted), [borrow("hammer", muted) for _ in range(500)]

    def submit_flood() -> None:
        for message in flood:
            voice.submit(message, "flood")

    submitter = threading.Thread(target=submit_flood, daemon=True)
    voice.start()
    try:
        voice.submit(first, "first")
        assert entered.wait(STEP_TIMEOUT_S), "the announcer never handled the first message"
        submitter.start()
        submitter.join(STEP_TIMEOUT_S)
        assert not submitter.is_alive(), "submit blocked while the announcer was stuck"
        assert not release.is_set()
        release.set()
        handled.wait_for("dropped", flood[-1].id)
        assert voice.wait_idle(STEP_TIMEOUT_S)
    finally:
        release.set()
        voice.stop()
    dropped = [e.message_id for e in handled.items if e.kind == "dropped" and e.reason.endswith("is muted")]
    assert dropped == [first.id] + [m.id for m in flood]


def test_a_waiting_announcement_can_be_cancelled(announcer: Callable[..., tuple[Announcer, Events]]) -> None:
    voice, events = announcer()
    first, second, third = borrow("ladder"), borrow("drill"), borrow("hammer", SAM)
    voice.submit(first, sentence("ladder"))
    voice.submit(second, sentence("drill"))
    voice.submit(third, "Sam asks to borrow a hammer")
    events.wait_for("started", first.id)
    voice.cancel(second.id)
    assert events.wait_for("dropped", second.id).reason == "cancelled"
    events.wait_for("finished", third.id)
    assert "started" not in events.kinds(second.id)


# ----------------------------------------------------------------------------- other outputs


def test_print_mode_prints(
    capsys: pytest.CaptureFixture[str], announcer: Callable[..., tuple[Announcer, Events]]
) -> None:
    voice, events = announcer(output="print")
    message = borrow("ladder")
    voice.submit(message, sentence("ladder"))
    voice.prompt("Ask your neighbors to borrow a ladder?")
    assert events.wait_for("printed", message.id).text == sentence("ladder")
    assert events.wait_for("printed", "").text == "Ask your neighbors to borrow a ladder?"
    assert voice.wait_idle(5)
    lines = capsys.readouterr().out.splitlines()
    assert f"[announce] {sentence('ladder')}" in lines
    assert "[prompt] Ask your neighbors to borrow a ladder?" in lines
    assert voice.child_pid is None  # no TTS engine is started to print


def test_no_output_device_falls_back_to_printing(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    announcer: Callable[..., tuple[Announcer, Events]],
) -> None:
    caplog.set_level(logging.WARNING, logger="voicehello.announce.speaker")
    voice, events = announcer(output_device="no-such-speaker")
    message = borrow("ladder")
    voice.submit(message, sentence("ladder"))
    assert events.wait_for("printed", message.id).text == sentence("ladder")
    assert f"[announce] {sentence('ladder')}" in capsys.readouterr().out.splitlines()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "no usable audio output" in warnings[0]
    assert "no-such-speaker" in warnings[0]
    assert not voice.speaking_enabled
    later = borrow("drill")
    voice.submit(later, sentence("drill"))
    assert events.wait_for("printed", later.id)


def test_nothing_is_written_to_disk_while_speaking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, announcer: Callable[..., tuple[Announcer, Events]]
) -> None:
    """pyttsx3's own espeak driver writes each utterance to a temporary WAV file: ours must not.
    The child runs with an empty temp dir and an empty working directory; both stay untouched
    (their modification times would move even for a file created and deleted again)."""
    temp_dir, work_dir = tmp_path / "tmp", tmp_path / "cwd"
    temp_dir.mkdir()
    work_dir.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp_dir))
    monkeypatch.chdir(work_dir)
    before = {d: d.stat().st_mtime_ns for d in (temp_dir, work_dir)}
    voice, events = announcer(prefix="spoken")
    message = borrow("ladder")
    voice.submit(message, sentence("ladder"))
    events.wait_for("finished", message.id)
    voice.stop()
    assert list(temp_dir.iterdir()) == []
    assert list(work_dir.iterdir()) == []
    assert {d: d.stat().st_mtime_ns for d in (temp_dir, work_dir)} == before


def test_the_driver_keeps_every_sample_in_memory(tmp_path: Path) -> None:
    """In this process: pyttsx3 with the voicehello driver hands over all of espeak-ng's samples
    (the same count as espeak-ng's own WAV output), and plays nothing itself."""
    import pyttsx3

    played: list[bytes] = []
    install_driver(played.append)
    engine = pyttsx3.init(driverName=DRIVER_NAME)
    engine.setProperty("voice", "en-us")
    engine.setProperty("rate", 160)
    engine.say(sentence("ladder"))
    engine.runAndWait()
    [pcm] = played
    reference = tmp_path / "reference.wav"
    subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(reference), sentence("ladder")], check=True
    )
    with wave.open(str(reference), "rb") as wav:
        expected = wav.getnframes()
    assert len(pcm) // 2 == pytest.approx(expected, rel=0.02)
    assert np.abs(np.frombuffer(pcm, dtype=np.int16)).max() > 3000


def test_voices_are_matched_by_id_language_or_name() -> None:
    voices = [
        ("gmw/en", "English (Great Britain)", ["en-gb"]),
        ("gmw/en-us", "English (America)", ["en-us"]),
        ("roa/fr", "French", ["fr-fr"]),
    ]
    assert match_voice("en-us", voices) == "gmw/en-us"
    assert match_voice("en-gb", voices) == "gmw/en"
    assert match_voice("EN-US+f2", voices) == "gmw/en-us+f2"
    assert match_voice("gmw/en", voices) == "gmw/en"
    assert match_voice("french", voices) == "roa/fr"
    assert match_voice("klingon", voices) is None
    assert match_voice("", voices) is None
