"""``voicehello listen`` end to end: espeak-ng speech played into a virtual microphone
(PulseAudio null sink -> ALSA pulse plugin -> PortAudio -> voicehello), and from WAV files."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pulse import PORTAUDIO_DEVICE, PulseServer

from voicehello.app import Understander

pytestmark = pytest.mark.integration

WOKEN = "hey neighbor, can someone help me move a couch"
UNWOKEN = "can someone help me move a couch"
LISTENING_TIMEOUT_S = 30  # loading the model and opening the device
RESULT_TIMEOUT_S = 20


def is_listening(line: str) -> bool:
    return line.startswith("listening with ")


def parse_json_line(line: str) -> dict[str, Any]:
    record = json.loads(line)
    assert isinstance(record, dict), line
    return record


@pytest.fixture(scope="module")
def woken_wav(espeak: Any, understander: Understander) -> Path:
    """The woken request, checked to be understood from the file itself, so that a failure of
    the microphone tests points at the live path rather than at speech recognition."""
    wav: Path = espeak(WOKEN)
    heard = understander.hear_file(wav)
    assert (heard.parse.intent, heard.parse.slots, heard.parse.woke) == (
        "ask_help",
        {"task": "move a couch"},
        True,
    ), heard.transcript.text
    return wav


def start_listening(spawn: Callable[..., Any], *args: str, verbose: bool = False) -> Any:
    """``voicehello listen --json --device pulse`` started and past its "listening" line."""
    listener = spawn(*(["-v"] if verbose else []), "listen", "--json", "--device", PORTAUDIO_DEVICE, *args)
    line = listener.wait_for("stderr", is_listening, LISTENING_TIMEOUT_S)
    assert line is not None, f"no 'listening' line:\n{listener.transcript()}"
    return listener


def test_spoken_request_is_printed_and_sigterm_stops_cleanly(
    pulse: PulseServer, spawn_voicehello: Callable[..., Any], woken_wav: Path
) -> None:
    listener = start_listening(spawn_voicehello)
    pulse.play(woken_wav)
    line = listener.wait_for("stdout", lambda _: True, RESULT_TIMEOUT_S)
    assert line is not None, f"nothing heard:\n{listener.transcript()}"
    record = parse_json_line(line)
    assert record["intent"] == "ask_help", record
    assert record["slots"] == {"task": "move a couch"}
    assert record["woke"] is True
    assert record["engine"] == "pocketsphinx"
    assert 2.0 < record["audio_seconds"] < 10.0

    code = listener.terminate(timeout=10)  # fails the test if SIGTERM does not end it
    assert code == 0, listener.transcript()
    assert listener.stdout == [line], "exactly one line for one request"
    assert len(listener.stderr) == 1, listener.transcript()  # only the "listening" line: no warnings


def test_speech_without_the_wake_phrase_is_not_printed(
    pulse: PulseServer, spawn_voicehello: Callable[..., Any], espeak: Any, woken_wav: Path
) -> None:
    """With ``intents.require_wake`` on (the default), a request without "hey neighbor" is
    heard, logged as ignored, and not printed; the next woken request is."""
    listener = start_listening(spawn_voicehello, verbose=True)  # logs "ignored speech ..." (INFO)
    pulse.play(espeak(UNWOKEN))
    ignored = listener.wait_for("stderr", lambda line: "without a wake phrase" in line, RESULT_TIMEOUT_S)
    assert ignored is not None, f"the unwoken request was never heard:\n{listener.transcript()}"
    assert listener.wait_for("stdout", lambda _: True, 1.0) is None, listener.transcript()

    pulse.play(woken_wav)
    line = listener.wait_for("stdout", lambda _: True, RESULT_TIMEOUT_S)
    assert line is not None, f"the woken request was not printed:\n{listener.transcript()}"
    record = parse_json_line(line)
    assert (record["intent"], record["slots"], record["woke"]) == ("ask_help", {"task": "move a couch"}, True)
    assert listener.terminate() == 0
    assert listener.stdout == [line], listener.transcript()


def test_no_wake_flag_prints_unwoken_requests_live(
    pulse: PulseServer, spawn_voicehello: Callable[..., Any], espeak: Any
) -> None:
    listener = start_listening(spawn_voicehello, "--no-wake")
    pulse.play(espeak("could someone lend me a cup of sugar"))
    line = listener.wait_for("stdout", lambda _: True, RESULT_TIMEOUT_S)
    assert line is not None, f"nothing heard:\n{listener.transcript()}"
    record = parse_json_line(line)
    assert (record["intent"], record["slots"], record["woke"]) == (
        "borrow_item",
        {"item": "cup of sugar"},
        False,
    )
    assert listener.terminate() == 0


# --------------------------------------------------------------------------- from a file, no PulseAudio

SEQUENCE = (
    ("hey neighbor, could someone lend me a cup of sugar", "en-us"),
    ("yes I can lend it", "en-us+f2"),
    ("I have a ladder to lend", "en-us+f2"),
)

NO_PULSEAUDIO = {
    "PULSE_SERVER": "unix:/nonexistent/voicehello-test/native",
    "XDG_RUNTIME_DIR": "/nonexistent/voicehello-test",
}
"""Environment in which any attempt to reach a sound server fails."""


@pytest.fixture(scope="module")
def three_requests(espeak: Any) -> Path:
    """One WAV: three requests separated by 1.2 s of silence; only the first is woken."""
    wav: Path = espeak.sequence(SEQUENCE, name="three-requests")
    return wav


def test_listen_file_no_wake_prints_every_utterance_in_order(
    voicehello: Callable[..., subprocess.CompletedProcess[str]], three_requests: Path
) -> None:
    result = voicehello("listen", "--file", three_requests, "--no-wake", "--json", env=NO_PULSEAUDIO)
    assert result.returncode == 0, result.stderr
    records = [parse_json_line(line) for line in result.stdout.splitlines()]
    assert [(r["intent"], r["slots"], r["woke"]) for r in records] == [
        ("borrow_item", {"item": "cup of sugar"}, True),
        ("reply_yes", {}, False),
        ("offer_item", {"item": "ladder"}, False),
    ], [r["text"] for r in records]
    assert result.stderr.splitlines() == [
        'listening with pocketsphinx; say "hey neighbor ..." (Ctrl+C to stop)'
    ]


def test_listen_file_requires_the_wake_phrase_by_default(
    voicehello: Callable[..., subprocess.CompletedProcess[str]], three_requests: Path
) -> None:
    result = voicehello("listen", "--file", three_requests, "--json", env=NO_PULSEAUDIO)
    assert result.returncode == 0, result.stderr
    records = [parse_json_line(line) for line in result.stdout.splitlines()]
    assert [(r["intent"], r["woke"]) for r in records] == [("borrow_item", True)]


def test_listen_file_plain_output(
    voicehello: Callable[..., subprocess.CompletedProcess[str]], espeak: Any
) -> None:
    result = voicehello("listen", "--file", espeak(WOKEN), env=NO_PULSEAUDIO)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"ask_help task='move a couch' \(confidence (0\.[89]\d|1\.00)\)\n", result.stdout)
