"""``voicehello demo``: the first thing a new user runs.

Two devices, "kitchen" (Maya at number 12) and "next door" (Sam next door), on a private
Mosquitto started on a free loopback port (or, when a broker is configured, on that broker).
Each device has its own keys in the demo's temporary directory: the kitchen creates a pod
"demo" (lasting an hour) and next door joins it with the invite code, so every message on the
bus is sealed for the pod (end-to-end encrypted and signed). Synthesized speech (espeak-ng,
kept in memory) goes through the real pipeline of the first device: voice activity detection,
speech recognition, intent parsing, the read-back and "yes"; the request is published over
MQTT; the second device announces it (through its speaker, or printed where there is no audio
output) and answers by voice; the first device announces the answer. The speech is fed at the
pace a microphone delivers it, and every step is printed with the time since the speaker
stopped talking (which includes the end-of-speech silence the device waits for). Nothing is
left behind: the temporary directory (keys, pod, broker) is removed at the end.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from voicehello.announce.speaker import AnnounceEvent
from voicehello.app import ECHO_TAIL_S, Device, Understander
from voicehello.audio.sources import frames
from voicehello.bus.broker import EmbeddedBroker, free_port
from voicehello.config import Settings
from voicehello.errors import VoicehelloError
from voicehello.privacy.pods import Pod, PodStore
from voicehello.speech.recognizer import SAMPLE_RATE

KITCHEN = ("kitchen", "Maya at number 12")
NEXT_DOOR = ("next-door", "Sam next door")
REQUEST = ("en-us", "hey neighbor, can I borrow a ladder please")
CONFIRM = ("en-us", "yes")
ANSWER = ("en-us+f2", "yes, I can lend it")
STEP_TIMEOUT_S = 20.0
POD_NAME = "demo"
POD_HOURS = 1.0
"""The demo pod lasts an hour (its keys go with the temporary directory anyway)."""


def synthesize(text: str, voice: str = "en-us", speed: int = 160) -> bytes:
    """16 kHz mono int16 PCM of ``text`` spoken by espeak-ng (kept in memory)."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        raise VoicehelloError("the demo needs espeak-ng and sox (bash scripts/setup.sh installs them)")
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text], capture_output=True, check=True
    ).stdout
    to_raw = [
        "sox",
        "-t",
        "wav",
        "-",
        "-t",
        "raw",
        "-r",
        str(SAMPLE_RATE),
        "-c",
        "1",
        "-b",
        "16",
        "-e",
        "signed",
        "-",
    ]
    return subprocess.run(to_raw, input=wav, capture_output=True, check=True).stdout


def has_audio_output() -> bool:
    """True when PortAudio offers an output device to speak through."""
    try:
        import sounddevice as sd

        return any(device["max_output_channels"] > 0 for device in sd.query_devices())
    except Exception:  # no PortAudio at all means no audio output
        return False


class _Timeline:
    """Prints each step with the milliseconds since the last spoken line ended."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.mark = time.perf_counter()
        self.lock = threading.Lock()

    def reset(self) -> None:
        with self.lock:
            self.mark = time.perf_counter()

    def reporter(self, who: str) -> Callable[[str], None]:
        def report(line: str) -> None:
            with self.lock:
                elapsed = (time.perf_counter() - self.mark) * 1000
                self.out(f"  +{elapsed:6.0f} ms  [{who:9s}] {line}")

        return report


class _Spoken:
    """Waits for a device's announcer to start (or print) an announcement."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.texts: list[str] = []

    def __call__(self, event: AnnounceEvent) -> None:
        if event.kind in ("started", "printed") and event.message_id:
            self.texts.append(event.text)
            self.event.set()

    def wait(self, timeout_s: float) -> bool:
        done = self.event.wait(timeout_s)
        self.event.clear()
        return done


def _speak_into(device: Device, timeline: _Timeline, voice_line: tuple[str, str], block_ms: int) -> None:
    """Play one synthesized line into ``device`` as its microphone would, then a second of silence."""
    voice, text = voice_line
    pcm = _without_trailing_silence(synthesize(text, voice))
    # like a person, wait until the device has finished talking (it does not listen meanwhile)
    device.announcer.wait_idle(STEP_TIMEOUT_S)
    time.sleep(ECHO_TAIL_S)
    timeline.out(f"\n  (someone at the {device.settings.device.id} says {text!r})")

    def blocks() -> Iterator[bytes]:
        """Blocks at the pace a microphone delivers them."""
        began = time.perf_counter()
        block_s = block_ms / 1000
        speech = list(frames(bytes(int(SAMPLE_RATE * 0.3) * 2) + pcm, block_ms))
        silence = list(frames(bytes(SAMPLE_RATE * 2), block_ms))
        for index, block in enumerate(speech + silence):
            if index == len(speech):
                timeline.reset()  # the speech has ended: times below count from here
            time.sleep(max(0.0, began + index * block_s - time.perf_counter()))
            yield block

    for _ in device.listen(blocks()):
        pass


def _without_trailing_silence(pcm: bytes, floor: int = 200) -> bytes:
    """``pcm`` cut after its last sample louder than ``floor`` (espeak-ng pads with silence)."""
    samples = np.frombuffer(pcm, dtype=np.int16)
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > floor)
    return samples[: int(loud[-1]) + 1].tobytes() if loud.size else pcm


def _device(
    base: Settings,
    who: tuple[str, str],
    *,
    keys_dir: Path,
    output: str,
    understander: Understander,
    timeline: _Timeline,
    broker: EmbeddedBroker | None,
) -> tuple[Device, _Spoken]:
    device_id, name = who
    bus = broker.bus_settings(device_id, base.bus.pod) if broker is not None else base.bus
    settings = replace(
        base,
        device=replace(base.device, id=device_id, name=name),
        bus=bus,
        announce=replace(base.announce, output=output, quiet_hours="", mute=()),  # type: ignore[arg-type]
        privacy=replace(base.privacy, keys_dir=keys_dir),
    )
    spoken = _Spoken()
    report = timeline.reporter(device_id)

    def show(line: str) -> None:
        report(line.replace("[announce] ", "announces: ").replace("[prompt] ", "says to its user: "))

    device = Device(settings, understander=understander, report=report, on_announce=spoken, show=show)
    return device, spoken


def _make_pod(workdir: Path, host: str, port: int, tls: bool) -> Pod:
    """The kitchen creates the demo pod and next door joins it with the invite code."""
    kitchen = PodStore(_keys_dir(workdir, KITCHEN))
    pod = kitchen.create(POD_NAME, POD_HOURS, host, port, tls)
    PodStore(_keys_dir(workdir, NEXT_DOOR)).join(kitchen.invite(pod))
    return pod


def _keys_dir(workdir: Path, who: tuple[str, str]) -> Path:
    """A demo device's own key directory (its device key and its pods)."""
    return workdir / "keys" / who[0]


def run_demo(settings: Settings, out: Callable[[str], None] = print) -> int:
    """Run the two-kitchen demo; returns 0 when the request and the answer both got through."""
    output = "both" if has_audio_output() else "print"
    timeline = _Timeline(out)
    with tempfile.TemporaryDirectory(prefix="voicehello-demo-") as tempdir:
        workdir = Path(tempdir)
        workdir.chmod(0o711)  # the broker's own user (mosquitto, when root) must reach workdir/broker
        broker: EmbeddedBroker | None = None
        if settings.bus.host:
            pod = _make_pod(workdir, settings.bus.host, settings.bus.port, settings.bus.tls)
            bus = replace(settings.bus, pod=pod.name)
            out(f"voicehello demo: broker {bus.host}:{bus.port}")
        else:
            host = "127.0.0.1"
            port = free_port(host)  # picked first: the pod records its broker's address
            pod = _make_pod(workdir, host, port, tls=True)
            broker = EmbeddedBroker.hardened(
                workdir / "broker", devices=[KITCHEN[0], NEXT_DOOR[0]], pods=[pod.id], port=port, host=host
            )
            broker.start()
            bus = replace(settings.bus, host=host, port=port, pod=pod.name)
            out(
                f"voicehello demo: private Mosquitto on {host}:{port} (TLS with its own CA, a password per "
                "device, each device may publish only as itself)"
            )
        out(
            f"demo pod {pod.name!r} ({pod.id}) made by the kitchen and joined by next door with its invite "
            "code: their messages are end-to-end encrypted (the broker sees only ciphertext)"
        )
        base = replace(settings, bus=bus, conversation=replace(settings.conversation, confirm=True))
        try:
            return _run_devices(base, workdir, output, timeline, broker)
        finally:
            if broker is not None:
                broker.stop()


def _run_devices(
    base: Settings, workdir: Path, output: str, timeline: _Timeline, broker: EmbeddedBroker | None
) -> int:
    """Make both devices, play the exchange, stop them."""
    understander = Understander(base)
    timeline.out(
        f"speech engine {understander.engine}; announcements {'spoken and printed' if output == 'both' else 'printed (no audio output found)'}"
    )
    make = partial(_device, base, output=output, understander=understander, timeline=timeline, broker=broker)
    kitchen, kitchen_spoken = make(KITCHEN, keys_dir=_keys_dir(workdir, KITCHEN))
    next_door, next_door_spoken = make(NEXT_DOOR, keys_dir=_keys_dir(workdir, NEXT_DOOR))
    try:
        return _play(
            base,
            kitchen=kitchen,
            next_door=next_door,
            kitchen_spoken=kitchen_spoken,
            next_door_spoken=next_door_spoken,
            timeline=timeline,
        )
    finally:
        kitchen.stop()
        next_door.stop()


def _play(
    settings: Settings,
    *,
    kitchen: Device,
    next_door: Device,
    kitchen_spoken: _Spoken,
    next_door_spoken: _Spoken,
    timeline: _Timeline,
) -> int:
    block_ms = settings.audio.block_ms
    for device in (kitchen, next_door):
        device.start()
        if not device.bus.wait_connected(10.0):
            raise VoicehelloError(
                f"{device.settings.device.id} could not reach the broker {settings.bus.host}:{settings.bus.port}"
            )
    _speak_into(kitchen, timeline, REQUEST, block_ms)
    if kitchen.conversation.pending is None:
        timeline.out(
            "\nthe kitchen did not understand the request (speech recognition is not perfect); demo stopped"
        )
        return 1
    _speak_into(kitchen, timeline, CONFIRM, block_ms)
    if not next_door_spoken.wait(STEP_TIMEOUT_S):
        timeline.out("\nnext door never announced the request; demo failed")
        return 1
    next_door.announcer.wait_idle(STEP_TIMEOUT_S)
    _speak_into(next_door, timeline, ANSWER, block_ms)
    if not kitchen_spoken.wait(STEP_TIMEOUT_S):
        timeline.out("\nthe kitchen never heard the answer; demo failed")
        return 1
    kitchen.announcer.wait_idle(STEP_TIMEOUT_S)
    timeline.out(
        "\ndemo done: a request spoken in one kitchen was read back, sent, announced next door, and answered."
    )
    return 0
