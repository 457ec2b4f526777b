"""The ``voicehello`` console script, run as a user runs it: a real subprocess, real files.

Every user-caused problem must end as exactly one line on stderr that starts with
``voicehello: ``, exit code 1 and no traceback; a batch goes on past a bad file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

Run = Callable[..., "subprocess.CompletedProcess[str]"]

SUBCOMMANDS = (
    ("transcribe",),
    ("listen",),
    ("parse",),
    ("devices",),
    ("catalog",),
    ("models",),
    ("models", "list"),
    ("models", "download"),
)

REQUESTS: tuple[tuple[str, str, str, dict[str, str]], ...] = (
    # (text, espeak-ng voice, intent, slots): PocketSphinx hears these right whatever it decoded before
    ("can someone help me move a couch", "en-us", "ask_help", {"task": "move a couch"}),
    ("yes I can lend it", "en-us+f2", "reply_yes", {}),
    ("could someone lend me a cup of sugar", "en-us", "borrow_item", {"item": "cup of sugar"}),
    ("the streetlight on our corner is out", "en-us+f2", "report_issue", {"issue": "street light out"}),
    ("I have a ladder to lend", "en-us+f2", "offer_item", {"item": "ladder"}),
    ("count me in", "en-us+f2", "rsvp", {}),
)

CONFIDENCE = r"\(confidence (0\.[89]\d|1\.00)\)"
"""How the plain output shows an accepted intent's confidence (at least the 0.80 threshold)."""

JSON_FIELDS = {"file", "text", "intent", "slots", "confidence", "engine"}


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``voicehello: ...`` line a failed run printed on stderr (asserts the shape)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("voicehello: "), lines[0]
    return lines[0]


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """Each stdout line parsed as one JSON object."""
    records = [json.loads(line) for line in stdout.splitlines()]
    assert all(isinstance(record, dict) for record in records), stdout
    return records


# --------------------------------------------------------------------------- help


def test_top_level_help_lists_every_subcommand(voicehello: Run) -> None:
    result = voicehello("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: voicehello"), result.stdout
    listed = set(re.findall(r"^ {4}(\w+) {2,}", result.stdout, flags=re.MULTILINE))
    assert {command[0] for command in SUBCOMMANDS} <= listed, result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=" ".join)
def test_subcommand_help(voicehello: Run, command: tuple[str, ...]) -> None:
    result = voicehello(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: voicehello {' '.join(command)}"), result.stdout
    assert "options:" in result.stdout
    assert result.stderr == ""


def test_every_listed_subcommand_has_help(voicehello: Run) -> None:
    """Commands added later (not in SUBCOMMANDS) must have a working --help too."""
    listed = re.findall(r"^ {4}(\w+) {2,}", voicehello("--help").stdout, flags=re.MULTILINE)
    assert listed
    for command in listed:
        result = voicehello(command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout.startswith(f"usage: voicehello {command}"), (command, result.stdout)


def test_no_subcommand_is_a_usage_error(voicehello: Run) -> None:
    result = voicehello()
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("usage: voicehello"), result.stderr


# --------------------------------------------------------------------------- transcribe


def test_transcribe_json_batch(voicehello: Run, espeak: Any) -> None:
    wavs = [espeak(text, voice) for text, voice, _, _ in REQUESTS]
    result = voicehello("transcribe", "--json", *wavs)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    records = json_lines(result.stdout)
    assert [record["file"] for record in records] == [str(wav) for wav in wavs]
    for record, (text, _, intent, slots) in zip(records, REQUESTS, strict=True):
        assert record.keys() >= JSON_FIELDS, record
        assert record["engine"] == "pocketsphinx"
        assert (record["intent"], record["slots"]) == (intent, slots), (text, record)
        assert record["text"] == " ".join(record["text"].lower().split())
        assert 0.0 <= record["confidence"] <= 1.0
        assert record["confidence"] >= 0.8  # the default threshold


def test_transcribe_plain_output_names_file_and_intent(voicehello: Run, espeak: Any) -> None:
    wav = espeak("could someone lend me a cup of sugar")
    result = voicehello("transcribe", wav)
    assert result.returncode == 0, result.stderr
    line = (
        re.escape(f"{wav}: '") + r"[a-z' ]+" + re.escape("' -> borrow_item item='cup of sugar' ") + CONFIDENCE
    )
    assert re.fullmatch(line, result.stdout.rstrip("\n")), result.stdout


BAD_INPUTS = {
    # kind: what the one-line error must say
    "missing": "no such file",
    "directory": "is a directory",
    "text": "not a WAV file",
    "mp3": "it looks like MP3",
    "garbage": "not a WAV file",
    "empty": "holds no audio",
    "silent": "no speech found",
}


def make_bad_input(kind: str, directory: Path) -> Path:
    """A file (or missing file, or directory) in ``directory`` that voicehello must refuse."""
    if kind == "missing":
        return directory / "nowhere.wav"
    if kind == "directory":
        path = directory / "folder.wav"
        path.mkdir()
    elif kind == "text":
        path = directory / "notes.wav"
        path.write_text("buy milk\nask about the ladder\n", encoding="utf-8")
    elif kind == "mp3":  # an ID3 tag, then bytes that are no MPEG frames
        path = directory / "song.mp3"
        path.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 8)
    elif kind == "garbage":
        path = directory / "noise.wav"
        path.write_bytes(bytes((i * 7919) % 251 for i in range(4096)))
    elif kind == "empty":  # a valid header and zero frames
        path = directory / "empty.wav"
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
    elif kind == "silent":  # two seconds of digital silence
        path = directory / "silent.wav"
        sox = shutil.which("sox")
        if sox is None:
            pytest.fail("sox not found; install it with `apt install sox`", pytrace=False)
        subprocess.run(
            [sox, "-n", "-r", "16000", "-c", "1", "-b", "16", str(path), "trim", "0", "2"], check=True
        )
    else:
        raise ValueError(kind)
    return path


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_transcribe_bad_input_is_one_line_error(voicehello: Run, tmp_path: Path, kind: str) -> None:
    path = make_bad_input(kind, tmp_path)
    result = voicehello("transcribe", path)
    assert result.returncode == 1, result
    line = one_error_line(result)
    assert str(path) in line
    assert BAD_INPUTS[kind] in line, line
    assert result.stdout == ""


def test_transcribe_batch_goes_on_past_bad_files(voicehello: Run, espeak: Any, tmp_path: Path) -> None:
    good = [espeak("yes I can lend it"), espeak("I have a ladder to lend", "en-us+f2")]
    missing, silent, garbage = (make_bad_input(kind, tmp_path) for kind in ("missing", "silent", "garbage"))
    files = [missing, good[0], silent, good[1], garbage]
    result = voicehello("transcribe", "--json", *files)
    assert result.returncode == 1
    records = json_lines(result.stdout)
    assert [record["file"] for record in records] == [str(path) for path in files]
    assert [record["intent"] for record in records] == [None, "reply_yes", None, "offer_item", None]
    assert records[3]["slots"] == {"item": "ladder"}
    for record in (records[0], records[2], records[4]):
        assert record["file"] in record["error"]
        assert record["engine"] == "pocketsphinx"
    assert "Traceback" not in result.stderr
    errors = result.stderr.splitlines()
    assert len(errors) == 3, result.stderr
    for line, path in zip(errors, (missing, silent, garbage), strict=True):
        assert line.startswith(f"voicehello: {path}"), line


def test_transcribe_without_json_prints_nothing_for_bad_files(
    voicehello: Run, espeak: Any, tmp_path: Path
) -> None:
    good = espeak("yes I can lend it")
    missing = tmp_path / "gone.wav"
    result = voicehello("transcribe", good, missing)
    assert result.returncode == 1
    line = re.escape(f"{good}: '") + r"[a-z' ]+" + re.escape("' -> reply_yes ") + CONFIDENCE
    assert re.fullmatch(line, result.stdout.rstrip("\n")), result.stdout
    assert one_error_line(result) == f"voicehello: {missing}: no such file"


# --------------------------------------------------------------------------- real people, out of domain


@pytest.fixture(scope="module")
def human_results(
    voicehello_script: Path, cli_env: dict[str, str], human_recordings: dict[str, Path]
) -> dict[str, dict[str, Any]]:
    """``transcribe --json`` over every human recording in one run, by short name."""
    names = list(human_recordings)
    result = subprocess.run(
        [str(voicehello_script), "transcribe", "--json", *map(str, human_recordings.values())],
        env={**os.environ, **cli_env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.stderr == "", result.stderr
    records = json_lines(result.stdout)
    assert len(records) == len(names), result.stdout
    return dict(zip(names, records, strict=True))


@pytest.mark.parametrize(
    "name",
    [
        "goforward.wav",
        *(
            f"librivox/sense_and_sensibility_01_austen_64kb-{n}.wav"
            for n in ("0870", "0880", "0890", "0920", "0930")
        ),
        *(f"cards/{n:03d}.wav" for n in range(1, 6)),
    ],
)
def test_human_speech_outside_the_catalog_is_rejected(
    human_results: dict[str, dict[str, Any]], name: str
) -> None:
    record = human_results[name]
    assert record["engine"] == "pocketsphinx"
    assert record["intent"] is None, (
        f"{name} heard as {record['text']!r} -> {record['intent']} {record['slots']}"
    )
    assert record["slots"] == {}
    assert record["confidence"] < 0.8


# --------------------------------------------------------------------------- missing parts


@pytest.mark.parametrize("command", [("transcribe",), ("listen", "--file")], ids=["transcribe", "listen"])
def test_vosk_without_a_model_says_how_to_get_one(
    voicehello: Run, espeak: Any, cli_config: Path, command: tuple[str, ...]
) -> None:
    result = voicehello(*command, espeak("yes I can lend it"), "--engine", "vosk")
    assert result.returncode == 1
    line = one_error_line(result)
    assert "Vosk model" in line
    assert "`voicehello models download`" in line
    assert str(cli_config.parent / "models") in line
    assert result.stdout == ""


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("quiet", [True, False], ids=["quiet", "progress"])
def test_models_download_from_a_closed_port(voicehello: Run, cli_config: Path, quiet: bool) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/vosk-model-test.zip"
    result = voicehello("models", "download", url, "--sha256", "0" * 64, *(["--quiet"] if quiet else []))
    assert result.returncode == 1
    line = one_error_line(result)
    assert url in line
    assert "refused" in line.lower(), line
    models_dir = cli_config.parent / "models"
    assert list(models_dir.iterdir()) == [], "download scratch files were left behind"


def test_models_download_refuses_a_malformed_checksum(voicehello: Run) -> None:
    result = voicehello("models", "download", "http://127.0.0.1:9/x.zip", "--sha256", "abc")
    assert result.returncode == 1
    assert "64 hex digits" in one_error_line(result)


def test_models_list_shows_the_default_model(voicehello: Run) -> None:
    result = voicehello("models", "list")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^vosk-model-small-en-us-0\.15\s+available\b", result.stdout, flags=re.MULTILINE)


@pytest.mark.usefixtures("pulse")
def test_listen_on_an_unknown_device(voicehello: Run) -> None:
    result = voicehello("listen", "--device", "nosuchdevice")
    assert result.returncode == 1
    assert one_error_line(result) == (
        "voicehello: unknown audio input device 'nosuchdevice'; run `voicehello devices` to list them"
    )
    assert result.stdout == ""


@pytest.mark.usefixtures("pulse")
def test_devices_lists_the_virtual_microphone(voicehello: Run) -> None:
    result = voicehello("devices", "--json")
    assert result.returncode == 0, result.stderr
    names = [record["name"] for record in json_lines(result.stdout)]
    assert "pulse" in names


# --------------------------------------------------------------------------- parse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hey neighbor can someone help me move a couch", "ask_help task='move a couch'"),
        ("could someone lend me a cup of sugar", "borrow_item item='cup of sugar'"),
        ("count me in", "rsvp"),
    ],
)
def test_parse_typed_request(voicehello: Run, text: str, expected: str) -> None:
    result = voicehello("parse", *text.split())
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{expected} (confidence 1.00)\n"


def test_parse_json(voicehello: Run) -> None:
    result = voicehello("parse", "--json", "the street light on our corner is out")
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [
        {
            "text": "the street light on our corner is out",
            "intent": "report_issue",
            "slots": {"issue": "street light out"},
            "confidence": 1.0,
        }
    ]


@pytest.mark.parametrize(
    "text", ["please pass the salt", "i forgot to buy milk", "the soup needs more pepper"]
)
def test_parse_kitchen_talk_is_no_intent(voicehello: Run, text: str) -> None:
    result = voicehello("parse", text)
    assert result.returncode == 1
    assert result.stdout.startswith("(no intent"), result.stdout
    assert result.stderr == ""


# --------------------------------------------------------------------------- configuration

BAD_CONFIGS = {
    "invalid-toml": ("[speech\nengine = pocketsphinx\n", "not valid TOML"),
    "unknown-key": ('[speech]\nengin = "pocketsphinx"\n', "unknown setting speech.engin"),
    "unknown-section": ('[speach]\nengine = "pocketsphinx"\n', "unknown section [speach]"),
    "wrong-type": ('[audio]\nblock_ms = "thirty"\n', "audio.block_ms must be a number"),
    "bad-value": ('[speech]\nengine = "whisper"\n', "speech.engine must be"),
}


@pytest.mark.parametrize("kind", BAD_CONFIGS)
@pytest.mark.parametrize("how", ["--config", "VOICEHELLO_CONFIG"])
def test_bad_config_is_one_line_error(voicehello: Run, tmp_path: Path, kind: str, how: str) -> None:
    text, says = BAD_CONFIGS[kind]
    config = tmp_path / "voicehello.toml"
    config.write_text(text, encoding="utf-8")
    if how == "--config":
        result = voicehello("parse", "--config", config, "count me in")
    else:
        result = voicehello("parse", "count me in", env={"VOICEHELLO_CONFIG": str(config)})
    assert result.returncode == 1
    line = one_error_line(result)
    assert says in line, line
    assert result.stdout == ""


def test_missing_config_file_is_one_line_error(voicehello: Run, tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    result = voicehello("transcribe", "--config", missing, tmp_path / "x.wav")
    assert result.returncode == 1
    assert one_error_line(result) == f"voicehello: config file not found: {missing}"
