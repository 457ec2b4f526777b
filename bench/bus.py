"""voicehello bus benchmark: latency, fan-out and a burst, on a real Mosquitto over loopback.

Usage (from the checkout)::

    .venv/bin/python bench/bus.py               # full run, refreshes README.md
    .venv/bin/python bench/bus.py --quick --no-readme

What it measures, all in this one process against a private Mosquitto (``EmbeddedBroker``):

1. publish -> received: one message at a time from one device to another (QoS 1);
2. publish -> TTS start: a neighbor's device (``app.Device`` with its ``Announcer``) receives a
   message, phrases it and hands it to the text-to-speech engine ("handed": synthesis not
   included), then the first audio block goes out ("audio": synthesis of the whole sentence
   included). The speaker is a PulseAudio null sink of a private PulseAudio daemon;
3. fan-out: one request to 50 listening devices (50 MQTT connections);
4. a burst of 1,000 messages from one neighbor to a device: every message reaches the device
   (QoS 1, nothing lost), the per-neighbor rate limit holds, and a message from another
   neighbor sent in the middle of the burst is still announced promptly;
5. the same burst (without the other neighbors) through a broker made by ``broker init``: TLS,
   an account and an ACL per device, bounded queues, the database saved after every change;
6. the privacy envelope alone: sealing (sign + encrypt) and opening (decrypt + verify + schema
   check) one message, in microseconds;
7. what surviving a crash costs: a received id fsync'd to ``seen.log`` (every message), a
   message held for quiet hours written sealed and deleted again, the rate-limit windows
   written (every announcement).

Every message travels sealed for a pod (the devices' keys and pods are made in a temp dir,
each measurement in a pod of its own), so 1-5 include the envelope's cost.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
for extra in (PROJECT_DIR, PROJECT_DIR / "tests" / "integration"):
    if str(extra) not in sys.path:  # `python bench/bus.py` puts only bench/ on the path
        sys.path.insert(0, str(extra))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import deque  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402

from pods import Circle  # type: ignore[import-not-found]  # noqa: E402  # tests/integration/pods.py

from bench import report  # noqa: E402
from bench.measure import median, percentile  # noqa: E402
from bench.report import Row  # noqa: E402
from voicehello.announce.rates import RateWindows  # noqa: E402
from voicehello.announce.speaker import AnnounceEvent  # noqa: E402
from voicehello.app import Device  # noqa: E402
from voicehello.bus.broker import EmbeddedBroker  # noqa: E402
from voicehello.bus.messages import Message, Sender, new_message  # noqa: E402
from voicehello.bus.mqtt import BusClient  # noqa: E402
from voicehello.bus.seen import SeenIds  # noqa: E402
from voicehello.config import (  # noqa: E402
    AnnounceSettings,
    BusSettings,
    DeviceSettings,
    PrivacySettings,
    Settings,
)
from voicehello.privacy.held import HeldMessages, Sealed  # noqa: E402

README = PROJECT_DIR / "README.md"
MARKERS = ("<!-- bench-bus:start -->", "<!-- bench-bus:end -->")
MAYA = Sender("bench-maya", "Maya at number 12")
OTHERS = tuple(Sender(f"bench-other-{number}", f"Neighbor {number}") for number in range(1, 6))
"""Neighbors who each say one thing in the middle of the burst (one each: the rate limit is per neighbor)."""
WAIT_S = 30.0


@dataclass
class Results:
    """Everything measured, in milliseconds unless named otherwise."""

    received_ms: list[float] = field(default_factory=list)
    seal_us: list[float] = field(default_factory=list)
    open_us: list[float] = field(default_factory=list)
    seen_us: list[float] = field(default_factory=list)
    """A received id appended to seen.log and fsync'd."""
    held_us: list[float] = field(default_factory=list)
    """A held message's sealed form written to disk and deleted again."""
    rates_us: list[float] = field(default_factory=list)
    """The rate-limit windows written to disk."""
    handed_ms: list[float] = field(default_factory=list)
    audio_ms: list[float] = field(default_factory=list)
    fanout_ms: list[float] = field(default_factory=list)
    """Per receiver and request: publish -> received."""
    fanout_last_ms: list[float] = field(default_factory=list)
    """Per request: publish -> received by the last of the receivers."""
    fanout_listeners: int = 0
    fanout_expected: int = 0
    fanout_delivered: int = 0
    burst_sent: int = 0
    burst_delivered: int = 0
    burst_announced: int = 0
    burst_rate_limited: int = 0
    burst_s: float = 0.0
    burst_other_ms: list[float] = field(default_factory=list)
    """Messages from other neighbors during the burst: publish -> handed to the voice (or printed)."""
    rate_limit: str = ""
    hardened_sent: int = 0
    hardened_delivered: int = 0
    hardened_s: float = 0.0
    """A burst through a broker made by ``broker init`` (TLS, ACL, saved after every change)."""


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{median(values):.1f} / {percentile(values, 0.95):.1f}"


class Waiter:
    """Collects (id -> perf_counter time) of events and wakes whoever waits for one."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.changed = threading.Condition()

    def note(self, key: str) -> None:
        with self.changed:
            self.times.setdefault(key, time.perf_counter())
            self.changed.notify_all()

    def wait(self, key: str, timeout_s: float = WAIT_S) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: key in self.times, timeout_s):
                raise TimeoutError(f"{key} did not arrive within {timeout_s:g} s")
            return self.times[key]

    def count(self, prefix: str) -> int:
        with self.changed:
            return sum(1 for key in self.times if key.startswith(prefix))


def in_pod(bus: BusSettings, circle: Circle) -> BusSettings:
    """``bus`` speaking in ``circle``'s pod by default."""
    return replace(bus, pod=circle.name)


def client(
    bus: BusSettings,
    circle: Circle,
    device_id: str,
    on_message: Callable[[Message], None],
    *,
    listen: bool = True,
) -> BusClient:
    bus_client = BusClient(
        in_pod(bus, circle),
        DeviceSettings(id=device_id, name=device_id),
        on_message,
        membership=circle.membership(device_id),
        listen=listen,
    )
    bus_client.start()
    if not bus_client.wait_connected(WAIT_S):
        raise RuntimeError(f"{device_id} could not connect")
    return bus_client


def measure_envelope(circle: Circle, rounds: int, results: Results) -> None:
    """Seal and open one message at a time, without the broker."""
    maya, sam = circle.membership(MAYA.device), circle.membership("bench-sam")
    sam.learn(maya.key_announcement(maya.default()), sam.default(), MAYA.device)
    pod, seen = sam.default(), SeenIds()
    for _ in range(rounds):
        message = new_message(MAYA, "borrow_item", {"item": "ladder"}, "can i borrow a ladder")
        started = time.perf_counter()
        payload = maya.seal(message, pod)
        sealed = time.perf_counter()
        sam.open(payload, pod, MAYA.device, seen)
        opened = time.perf_counter()
        results.seal_us.append((sealed - started) * 1e6)
        results.open_us.append((opened - sealed) * 1e6)


def measure_durable(directory: Path, rounds: int, results: Results) -> None:
    """The disk writes that keep ids, held messages and rate windows across a crash."""
    seen, held, rates = SeenIds(), HeldMessages(directory), RateWindows(directory)
    seen.keep_in(directory, time.time())
    windows = {device.device: deque([time.time()] * 4) for device in OTHERS}
    sealed = Sealed("0" * 32, time.time() + 600, "0" * 16, MAYA.device, b"x" * 700)
    for _ in range(rounds):
        message_id = uuid.uuid4().hex
        started = time.perf_counter()
        seen.first(message_id, time.time() + 600, time.time())
        remembered = time.perf_counter()
        held.note(replace(sealed, message_id=message_id))
        held.keep(message_id)
        held.forget(message_id)
        forgotten = time.perf_counter()
        rates.save(windows, time.time(), 3600.0)
        saved = time.perf_counter()
        results.seen_us.append((remembered - started) * 1e6)
        results.held_us.append((forgotten - remembered) * 1e6)
        results.rates_us.append((saved - forgotten) * 1e6)
    seen.close(time.time())


def measure_received(bus: BusSettings, circle: Circle, rounds: int, results: Results) -> None:
    arrived = Waiter()
    receiver = client(bus, circle, "bench-sam", lambda message: arrived.note(message.id))
    sender = client(bus, circle, MAYA.device, lambda _m: None, listen=False)
    try:
        for index in range(rounds + 10):
            message = new_message(MAYA, "borrow_item", {"item": "ladder"}, "can i borrow a ladder")
            started = time.perf_counter()
            sender.publish(message)
            took = (arrived.wait(message.id) - started) * 1000
            if index >= 10:  # the first few warm up the connections
                results.received_ms.append(took)
    finally:
        sender.stop()
        receiver.stop()


def device_settings(
    bus: BusSettings, circle: Circle, announce: AnnounceSettings, device_id: str = "bench-sam"
) -> Settings:
    return Settings(
        device=DeviceSettings(id=device_id, name="Sam"),
        bus=in_pod(bus, circle),
        announce=announce,
        privacy=PrivacySettings(keys_dir=circle.keys_dir(device_id)),
    )


def measure_tts_start(bus: BusSettings, circle: Circle, rounds: int, results: Results) -> None:
    handed, audio, finished = Waiter(), Waiter(), Waiter()

    def on_event(event: AnnounceEvent) -> None:
        target = {"handed": handed, "started": audio, "finished": finished}.get(event.kind)
        if target is not None and event.message_id:
            target.note(event.message_id)

    announce = AnnounceSettings(output="speaker", output_device="pulse", rate_limit=10_000, prefix="chime")
    device = Device(device_settings(bus, circle, announce), on_announce=on_event)
    device.start()
    sender = client(bus, circle, MAYA.device, lambda _m: None, listen=False)
    try:
        if not device.bus.wait_connected(WAIT_S):
            raise RuntimeError("the announcing device could not connect")
        for index in range(rounds + 2):
            message = new_message(MAYA, "say_hello", {}, "say hello")
            started = time.perf_counter()
            sender.publish(message)
            handed_at = handed.wait(message.id)
            audio_at = audio.wait(message.id)
            finished.wait(message.id)
            if index >= 2:  # the first starts the engine
                results.handed_ms.append((handed_at - started) * 1000)
                results.audio_ms.append((audio_at - started) * 1000)
    finally:
        sender.stop()
        device.stop()


def measure_fanout(bus: BusSettings, circle: Circle, listeners: int, requests: int, results: Results) -> None:
    arrived = Waiter()

    def arrival(number: int) -> Callable[[Message], None]:
        return lambda message: arrived.note(f"{message.id}/{number}")

    receivers = [client(bus, circle, f"bench-n{number:02d}", arrival(number)) for number in range(listeners)]
    sender = client(bus, circle, MAYA.device, lambda _m: None, listen=False)
    try:
        for _ in range(requests):
            message = new_message(MAYA, "borrow_item", {"item": "ladder"}, "can i borrow a ladder")
            started = time.perf_counter()
            sender.publish(message)
            times = []
            for number in range(listeners):
                with contextlib.suppress(TimeoutError):
                    times.append((arrived.wait(f"{message.id}/{number}", 10.0) - started) * 1000)
            results.fanout_ms.extend(times)
            if len(times) == listeners:
                results.fanout_last_ms.append(max(times))
        results.fanout_listeners = listeners
        results.fanout_expected = listeners * requests
        results.fanout_delivered = arrived.count("")
    finally:
        sender.stop()
        for receiver in receivers:
            receiver.stop()


def measure_hardened_burst(home: Path, circle: Circle, size: int, results: Results) -> None:
    """``size`` messages from one neighbor to another through a broker made by ``broker init``:
    TLS, a password and an ACL per device, bounded queues, the database saved after every
    change (what the crash-safe broker costs a flood)."""
    sam_id = "bench-sam"
    arrived = Waiter()
    with EmbeddedBroker.hardened(home, (sam_id, MAYA.device), [circle.pod.id]) as broker:
        sam = client(broker.bus_settings(sam_id), circle, sam_id, lambda message: arrived.note(message.id))
        maya_bus = replace(broker.bus_settings(MAYA.device), outbox_limit=2 * size)
        maya = client(maya_bus, circle, MAYA.device, lambda _m: None, listen=False)
        try:
            burst = [
                new_message(MAYA, "borrow_item", {"item": "ladder"}, "can i borrow a ladder")
                for _ in range(size)
            ]
            started = time.perf_counter()
            for message in burst:
                maya.publish(message)
            with contextlib.suppress(TimeoutError):
                arrived.wait(burst[-1].id, 120.0)
            results.hardened_s = time.perf_counter() - started
            results.hardened_sent = size
            results.hardened_delivered = sum(1 for message in burst if message.id in arrived.times)
        finally:
            maya.stop()
            sam.stop()


def measure_burst(bus: BusSettings, circle: Circle, size: int, results: Results) -> None:
    announced, limited, received = Waiter(), Waiter(), Waiter()

    def on_event(event: AnnounceEvent) -> None:
        if event.kind in ("printed", "handed") and event.message_id:
            announced.note(event.message_id)
        elif event.kind == "dropped" and "rate" in event.reason:
            limited.note(event.message_id)

    announce = AnnounceSettings(output="print")
    results.rate_limit = f"{announce.rate_limit} per {announce.rate_window_s:g} s per neighbor"
    settings = device_settings(bus, circle, announce, "bench-sam")
    device = Device(settings, on_announce=on_event)
    original = device._on_bus_message  # count every delivery, then let the device handle it

    def counting(message: Message) -> None:
        received.note(message.id)
        original(message)

    device.bus = BusClient(
        settings.bus, settings.device, counting, membership=circle.membership(settings.device.id)
    )
    device.start()
    # the flooding neighbor's outbox must hold the whole burst (the default holds 500)
    maya = client(replace(bus, outbox_limit=2 * size), circle, MAYA.device, lambda _m: None, listen=False)
    others = [client(bus, circle, other.device, lambda _m: None, listen=False) for other in OTHERS]
    try:
        if not device.bus.wait_connected(WAIT_S):
            raise RuntimeError("the receiving device could not connect")
        burst = [
            new_message(MAYA, "borrow_item", {"item": "ladder"}, "can i borrow a ladder") for _ in range(size)
        ]
        spoken = {size * (n + 1) // (len(OTHERS) + 1): n for n in range(len(OTHERS))}  # spread over the burst
        said: list[tuple[Message, float]] = []
        started = time.perf_counter()
        for index, message in enumerate(burst):
            maya.publish(message)
            if index in spoken:
                number = spoken[index]
                other = new_message(OTHERS[number], "say_hello", {}, "say hello")
                said.append((other, time.perf_counter()))
                others[number].publish(other)
        results.burst_other_ms = [(announced.wait(other.id) - at) * 1000 for other, at in said]
        received.wait(burst[-1].id)
        deadline = time.monotonic() + WAIT_S
        while received.count("") < size + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        results.burst_s = time.perf_counter() - started
        device.announcer.wait_idle(WAIT_S)
        ids = {message.id for message in burst}
        results.burst_sent = size
        results.burst_delivered = sum(1 for key in received.times if key in ids)
        results.burst_announced = sum(1 for key in announced.times if key in ids)
        results.burst_rate_limited = sum(1 for key in limited.times if key in ids)
    finally:
        maya.stop()
        for neighbor in others:
            neighbor.stop()
        device.stop()


@contextlib.contextmanager
def private_pulseaudio(workdir: Path) -> Iterator[None]:
    """The tests' private PulseAudio daemon (null sinks), so TTS has a speaker to play into."""
    from pulse import PulseServer  # type: ignore[import-not-found]  # tests/integration/pulse.py

    server = PulseServer(workdir)
    server.start()
    # an idle null sink renders in 2 s chunks; a low-latency reader keeps it real-time
    listener = subprocess.Popen(
        ["parec", "--device=vh_speaker.monitor", "--latency-msec=20", "--raw"],
        env=server.tool_env(),
        stdout=subprocess.DEVNULL,
    )
    saved = dict(os.environ)
    os.environ.update(server.client_env())
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        listener.terminate()
        listener.wait(timeout=10)
        server.stop()


def rows(results: Results) -> list[Row]:
    handed = median(results.handed_ms) if results.handed_ms else float("nan")
    lost = results.fanout_expected - results.fanout_delivered
    burst_lost = results.burst_sent - results.burst_delivered
    return [
        Row("seal one message (sign + encrypt), median / p95", f"{percentiles(results.seal_us)} µs"),
        Row(
            "open one message (decrypt + verify + check), median / p95", f"{percentiles(results.open_us)} µs"
        ),
        Row(
            "received id fsync'd to seen.log (every message), median / p95",
            f"{percentiles(results.seen_us)} µs",
        ),
        Row(
            "message held for quiet hours: written sealed + deleted, median / p95",
            f"{percentiles(results.held_us)} µs",
        ),
        Row(
            "rate-limit windows written (every announcement), median / p95",
            f"{percentiles(results.rates_us)} µs",
        ),
        Row("publish → received, median / p95", f"{percentiles(results.received_ms)} ms"),
        Row(
            "publish → TTS start (handed to the engine), median / p95",
            f"{percentiles(results.handed_ms)} ms",
            "median ≤ 50 ms",
            report.check(handed, 50.0, at_least=False),
        ),
        Row(
            "publish → first audio out (synthesis included), median / p95",
            f"{percentiles(results.audio_ms)} ms",
        ),
        Row(
            f"fan-out to {results.fanout_listeners} devices: each device, median / p95",
            f"{percentiles(results.fanout_ms)} ms",
        ),
        Row("fan-out: last device reached, median / p95", f"{percentiles(results.fanout_last_ms)} ms"),
        Row(
            "fan-out: delivered",
            f"{results.fanout_delivered}/{results.fanout_expected}",
            "nothing lost",
            "pass" if lost == 0 and results.fanout_expected else "short",
        ),
        Row(
            f"burst of {results.burst_sent}: delivered to the device",
            f"{results.burst_delivered}/{results.burst_sent} in {results.burst_s:.2f} s",
            "nothing lost",
            "pass" if burst_lost == 0 and results.burst_sent else "short",
        ),
        Row(
            "burst: announced / stopped by the rate limit",
            f"{results.burst_announced} / {results.burst_rate_limited} ({results.rate_limit})",
        ),
        Row(
            f"burst: {len(results.burst_other_ms)} other neighbors' messages, publish → announced, median / max",
            f"{median(results.burst_other_ms):.1f} / {max(results.burst_other_ms):.1f} ms"
            if results.burst_other_ms
            else "n/a",
        ),
        Row(
            f"burst of {results.hardened_sent} through a `broker init` broker (TLS, saved after every change)",
            f"{results.hardened_delivered}/{results.hardened_sent} in {results.hardened_s:.2f} s",
            "nothing lost",
            "pass"
            if results.hardened_sent and results.hardened_delivered == results.hardened_sent
            else "short",
        ),
    ]


def machine_line() -> str:
    facts = report.machine()
    commit = subprocess.run(
        ["git", "-C", str(PROJECT_DIR), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (
        f"{facts['cpu']}, {facts['cores']} cores, {facts['os']}, Python {facts['python']}, "
        f"Mosquitto over loopback, commit {commit or 'unknown'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    args = parser.parse_args(argv)
    rounds, tts_rounds, requests, burst = (30, 3, 3, 200) if args.quick else (300, 20, 20, 1000)
    results = Results()
    with (
        tempfile.TemporaryDirectory(prefix="voicehello-bench-bus-") as workdir,
        EmbeddedBroker(Path(workdir) / "broker") as broker,
    ):
        host, port = broker.address
        bus = BusSettings(host=host, port=port)
        pods = Path(workdir) / "pods"
        print(f"broker on {host}:{port}", flush=True)
        measure_envelope(Circle(pods / "envelope", "bench-envelope"), 10 * rounds, results)
        print(
            f"seal / open: {median(results.seal_us):.0f} / {median(results.open_us):.0f} µs (median)",
            flush=True,
        )
        (Path(workdir) / "durable").mkdir()
        measure_durable(Path(workdir) / "durable", rounds, results)
        print(
            f"seen id / held message / rate windows on disk: {median(results.seen_us):.0f} / "
            f"{median(results.held_us):.0f} / {median(results.rates_us):.0f} µs (median)",
            flush=True,
        )
        measure_received(bus, Circle(pods / "received", "bench"), rounds, results)
        print(f"publish -> received: {percentiles(results.received_ms)} ms (median / p95)", flush=True)
        (Path(workdir) / "pulse").mkdir()
        with private_pulseaudio(Path(workdir) / "pulse"):
            measure_tts_start(bus, Circle(pods / "tts", "bench-tts"), tts_rounds, results)
        print(f"publish -> TTS start: {percentiles(results.handed_ms)} ms", flush=True)
        measure_fanout(bus, Circle(pods / "fanout", "bench-fanout"), 50, requests, results)
        print(f"fan-out: {results.fanout_delivered}/{results.fanout_expected} delivered", flush=True)
        with contextlib.redirect_stdout(io.StringIO()):  # the rate-limited burst's printed announcements
            measure_burst(bus, Circle(pods / "burst", "bench-burst"), burst, results)
        home = Path(workdir) / "hardened"
        home.mkdir(mode=0o711)  # reachable by the mosquitto user the broker runs as under root
        os.chmod(workdir, 0o711)
        measure_hardened_burst(home / "broker", Circle(pods / "hardened", "bench-hardened"), burst, results)
        print(f"hardened burst: {results.hardened_delivered}/{results.hardened_sent} delivered", flush=True)
    table = rows(results)
    print()
    print(report.text_table(table))
    where = machine_line()
    print(f"\n{where}")
    if not args.no_readme:
        section = f"Measured by `bench/bus.py` on {where}.\n\n{report.markdown_table(table)}"
        print(report.update_readme(README, section, MARKERS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
