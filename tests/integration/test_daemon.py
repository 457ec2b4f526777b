"""``voicehello run`` / ``say`` end to end, with real parts: a Mosquitto started here, the
daemons as separate processes, speech played into a PulseAudio null sink used as the first
device's microphone, and the second device's pyttsx3 voice recorded from another null sink."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pulse import PORTAUDIO_DEVICE, SPEAKER_SOURCE, PulseServer

from voicehello.audio.sources import read_wav
from voicehello.bus import topics
from voicehello.bus.broker import EmbeddedBroker
from voicehello.bus.messages import Sender, new_message
from voicehello.speech.lm import build_arpa
from voicehello.speech.pocketsphinx import PocketSphinxRecognizer
from voicehello.speech.recognizer import recognize

pytestmark = pytest.mark.integration

STARTUP_TIMEOUT_S = 40
STEP_TIMEOUT_S = 30
MAYA = ("kitchen-12", "Maya at number 12")
SAM = ("sam-4", "Sam")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(tmp_path_factory.mktemp("daemon-broker")) as running:
        yield running


def write_config(
    directory: Path, who: tuple[str, str], broker: EmbeddedBroker, **sections: dict[str, Any]
) -> Path:
    """A settings file for one device on ``broker``; ``sections`` add or override settings."""
    host, port = broker.address
    tables: dict[str, dict[str, Any]] = {
        "device": {"id": who[0], "name": who[1]},
        "bus": {"host": host, "port": port, "pod": "test-street"},
        "announce": {"output": "print", "prefix": "none"},
        "speech": {"models_dir": str(directory)},
    }
    for name, values in sections.items():
        tables.setdefault(name, {}).update(values)
    lines = []
    for name, values in tables.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
    path = directory / f"{who[0]}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def start_daemon(spawn: Callable[..., Any], config: Path, *args: str) -> Any:
    daemon = spawn("-v", "run", "--config", config, *args)
    ready = daemon.wait_for(
        "stderr", lambda line: "listening" in line or "announcing only" in line, STARTUP_TIMEOUT_S
    )
    assert ready is not None, daemon.transcript()
    connected = daemon.wait_for("stderr", lambda line: "connected to" in line, STARTUP_TIMEOUT_S)
    assert connected is not None, daemon.transcript()
    return daemon


def announced(text: str) -> Callable[[str], bool]:
    return lambda line: line.startswith("[announce]") and text in line


def test_spoken_request_is_read_back_sent_and_spoken_next_door(
    pulse: PulseServer,
    broker: EmbeddedBroker,
    spawn_voicehello: Callable[..., Any],
    espeak: Any,
    tmp_path: Path,
) -> None:
    """Maya speaks into her microphone, says "yes" to the read-back; Sam's speaker says it."""
    maya = write_config(tmp_path, MAYA, broker, audio={"input_device": PORTAUDIO_DEVICE})
    sam = write_config(tmp_path, SAM, broker, announce={"output": "both", "output_device": PORTAUDIO_DEVICE})
    sam_daemon = start_daemon(spawn_voicehello, sam, "--no-mic")
    maya_daemon = start_daemon(spawn_voicehello, maya)
    with pulse.record(SPEAKER_SOURCE) as recording:
        pulse.play(espeak("hey neighbor, can I borrow a ladder"))
        readback = maya_daemon.wait_for("stdout", lambda line: "Ask your neighbors" in line, STEP_TIMEOUT_S)
        assert readback is not None, maya_daemon.transcript()
        assert "ladder" in readback
        pulse.play(espeak("yes, send it"))
        assert maya_daemon.wait_for("stdout", lambda line: line.startswith("sent:"), STEP_TIMEOUT_S), (
            maya_daemon.transcript()
        )
        line = sam_daemon.wait_for(
            "stdout", announced("Maya at number 12 asks to borrow a ladder"), STEP_TIMEOUT_S
        )
        assert line is not None, sam_daemon.transcript()
        finished = sam_daemon.wait_for("stderr", lambda line: "finished speaking" in line, STEP_TIMEOUT_S)
        assert finished is not None, sam_daemon.transcript()
        time.sleep(0.5)  # the tail of the sound through PulseAudio
    assert sam_daemon.terminate() == 0
    assert maya_daemon.terminate() == 0
    heard = hear_announcement(recording)
    assert "ladder" in heard.split(), heard
    assert "borrow" in heard.split(), heard


def hear_announcement(recording: Path) -> str:
    """Decode the recorded speaker with PocketSphinx over announcement-like sentences."""
    sentences = [
        f"neighbor maya at number twelve asks to borrow a {item}"
        for item in ("ladder", "drill", "cup of sugar", "wheelbarrow")
    ] + ["neighbor sam says hello", "neighbor maya at number twelve has soup to share"]
    words = {word for sentence in sentences for word in sentence.split()}
    recognizer = PocketSphinxRecognizer(words, arpa=build_arpa(sentences))
    pcm = read_wav(recording)
    return recognize(recognizer, pcm).text


def test_a_spoken_reply_is_announced_to_the_requester(
    pulse: PulseServer,
    broker: EmbeddedBroker,
    spawn_voicehello: Callable[..., Any],
    voicehello: Callable[..., Any],
    espeak: Any,
    tmp_path: Path,
) -> None:
    """Maya types a request with ``say --yes``; Sam's daemon announces it and hears "yes I can
    lend it"; Maya's daemon (which did not send it itself) announces Sam's answer."""
    maya = write_config(tmp_path, MAYA, broker)
    sam = write_config(tmp_path, SAM, broker, audio={"input_device": PORTAUDIO_DEVICE})
    maya_daemon = start_daemon(spawn_voicehello, maya, "--no-mic")
    sam_daemon = start_daemon(spawn_voicehello, sam)
    result = voicehello("say", "--config", maya, "--yes", "can I borrow a ladder")
    assert result.returncode == 0, result.stderr
    assert re.search(r"sent borrow_item .*ladder", result.stdout), result.stdout
    assert sam_daemon.wait_for("stdout", announced("asks to borrow a ladder"), STEP_TIMEOUT_S), (
        sam_daemon.transcript()
    )
    pulse.play(espeak("yes, I can lend it"))
    assert sam_daemon.wait_for("stdout", lambda line: line.startswith("sent: reply_yes"), STEP_TIMEOUT_S), (
        sam_daemon.transcript()
    )
    line = maya_daemon.wait_for("stdout", announced("Sam can lend you a ladder"), STEP_TIMEOUT_S)
    assert line is not None, maya_daemon.transcript()
    assert not any("asks to borrow" in line for line in maya_daemon.stdout), "own request announced back"
    assert maya_daemon.terminate() == 0
    assert sam_daemon.terminate() == 0


def raw_publisher(broker: EmbeddedBroker) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hostile", protocol=mqtt.MQTTv5)
    client.connect(*broker.address)
    client.loop_start()
    return client


def test_hostile_messages_are_dropped_and_never_spoken(
    broker: EmbeddedBroker, spawn_voicehello: Callable[..., Any], tmp_path: Path
) -> None:
    sam = write_config(tmp_path, SAM, broker)
    daemon = start_daemon(spawn_voicehello, sam, "--no-mic")
    maya = Sender(*MAYA)
    topic = topics.intent_topic("test-street", maya.device, "borrow_item")
    valid = new_message(maya, "borrow_item", {"item": "ladder"}, "can i borrow a ladder")
    good = valid.to_dict()

    def variant(**changes: Any) -> bytes:
        """The valid message changed, under a fresh id (a reused id would be dropped as a duplicate)."""
        return json.dumps({**good, "id": uuid.uuid4().hex, **changes}).encode()

    hostile: list[tuple[str, bytes]] = [
        (topic, b"not json at all"),
        (topic, b"\xff\xfe\x00garbage"),
        (topic, b"[1, 2, 3]"),
        (topic, variant(v=99)),
        (topic, variant(slots={"item": "x" * 500})),
        (topic, variant(text="a" * 10_000)),
        (topic, b"{" * 100_000),
        (topic, variant(ts=float("nan"))),
        (topic, variant(**{"from": {"device": "sam-4", "name": "Sam"}})),  # spoofed topic
        (topic, variant(intent="self_destruct", kind="request")),
        (topics.intent_topic("test-street", maya.device, "self_destruct"), variant(intent="self_destruct")),
        (topic, variant(expires=good["ts"] + 0.001)),  # expired on arrival
    ]
    client = raw_publisher(broker)
    try:
        for where, payload in hostile:
            client.publish(where, payload, qos=1).wait_for_publish(5)
        properties = Properties(PacketTypes.PUBLISH)
        properties.MessageExpiryInterval = 60
        client.publish(topic, valid.to_json(), qos=1, properties=properties).wait_for_publish(5)
        line = daemon.wait_for("stdout", announced("asks to borrow a ladder"), STEP_TIMEOUT_S)
        assert line is not None, daemon.transcript()
    finally:
        client.loop_stop()
        client.disconnect()
    assert daemon.process.poll() is None, daemon.transcript()
    assert daemon.terminate() == 0
    spoken = [line for line in daemon.stdout if line.startswith("[announce]")]
    assert spoken == [line], daemon.transcript()
    dropped = [line for line in daemon.stderr if "dropped" in line or "not spoken" in line]
    # the 100 kB payload never reaches the daemon: it told the broker its maximum packet size
    assert len(dropped) >= len(hostile) - 1, daemon.transcript()


def test_run_without_a_broker_configured_is_a_one_line_error(
    voicehello: Callable[..., Any], tmp_path: Path
) -> None:
    config = tmp_path / "none.toml"
    config.write_text('[bus]\nhost = ""\n', encoding="utf-8")
    for command in (["run", "--no-mic"], ["say", "--yes", "say hello"]):
        result = voicehello(*command, "--config", config)
        assert result.returncode == 1
        assert result.stderr.strip().startswith("voicehello: no broker configured"), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_say_with_the_broker_down_fails_and_sends_nothing(
    voicehello: Callable[..., Any], tmp_path: Path
) -> None:
    config = tmp_path / "down.toml"
    config.write_text('[bus]\nhost = "127.0.0.1"\nport = 9\n', encoding="utf-8")
    result = voicehello("say", "--config", config, "--yes", "--timeout", "2", "can I borrow a ladder")
    assert result.returncode == 1
    assert "nothing was sent" in result.stderr, result.stderr
    assert result.stdout.strip() == ""


def test_say_reads_back_and_sends_nothing_on_no(
    broker: EmbeddedBroker, voicehello: Callable[..., Any], tmp_path: Path
) -> None:
    config = write_config(tmp_path, MAYA, broker)
    result = voicehello("say", "--config", config, "can I borrow a ladder")  # stdin is empty: silence
    assert result.returncode == 0, result.stderr
    assert "Ask your neighbors to borrow a ladder?" in result.stdout
    assert "not sent" in result.stdout
    assert "sent borrow_item" not in result.stdout


def test_say_rejects_what_it_does_not_understand(
    broker: EmbeddedBroker, voicehello: Callable[..., Any], tmp_path: Path
) -> None:
    config = write_config(tmp_path, MAYA, broker)
    result = voicehello("say", "--config", config, "--yes", "please pass the salt")
    assert result.returncode == 1
    assert result.stderr.startswith("voicehello: not understood"), result.stderr


def test_sigterm_says_offline(
    broker: EmbeddedBroker, spawn_voicehello: Callable[..., Any], tmp_path: Path
) -> None:
    sam = write_config(tmp_path, SAM, broker)
    daemon = start_daemon(spawn_voicehello, sam, "--no-mic")
    assert daemon.terminate() == 0
    seen: dict[str, bytes] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="watcher", protocol=mqtt.MQTTv5)
    client.on_message = lambda _c, _u, message: seen.__setitem__(message.topic, message.payload)
    client.connect(*broker.address)
    client.subscribe(topics.status_topic("test-street", SAM[0]), qos=1)
    client.loop_start()
    try:
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.loop_stop()
        client.disconnect()
    assert seen == {topics.status_topic("test-street", SAM[0]): topics.OFFLINE}


def test_the_demo_runs_the_whole_exchange_on_a_hardened_private_broker(
    voicehello: Callable[..., Any],
) -> None:
    """``voicehello demo``: the first thing a new user runs. Exit 0, and every step happened."""
    result = voicehello("demo", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "private Mosquitto" in out
    assert "TLS" in out
    assert "says to its user: Ask your neighbors to borrow a ladder?" in out
    assert "announces: Maya at number 12 asks to borrow a ladder" in out
    assert "announces: Sam next door can lend you a ladder" in out
    assert "demo done" in out
