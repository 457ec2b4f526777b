"""A private PulseAudio daemon with null sinks as virtual microphone and speaker, for tests.

The daemon runs in the foreground as a child of the test process, with its runtime, config
and cookie files in a temporary directory and a unix socket there; it never touches the
user's own PulseAudio. Clients in the test process reach it through ``PULSE_SERVER``; PortAudio
reaches it through ALSA's pulse plugin (``libasound2-plugins``), as the device named ``pulse``.

* ``vh_mic`` is a null sink used as a virtual microphone: play into it (``paplay
  --device=vh_mic``) and record from its monitor ``vh_mic.monitor``, the default source.
* ``vh_speaker`` is a null sink used as a virtual speaker (the default sink); record what was
  played with :meth:`PulseServer.record` from ``vh_speaker.monitor``.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

MIC_SINK = "vh_mic"
"""Null sink whose monitor is the virtual microphone."""
MIC_SOURCE = f"{MIC_SINK}.monitor"
SPEAKER_SINK = "vh_speaker"
"""Null sink used as the virtual speaker."""
SPEAKER_SOURCE = f"{SPEAKER_SINK}.monitor"
PORTAUDIO_DEVICE = "pulse"
"""PortAudio (ALSA) device name that records from PulseAudio's default source."""

REQUIRED_TOOLS = ("pulseaudio", "pactl", "paplay", "parec")


class PulseError(RuntimeError):
    """The test PulseAudio daemon could not be started or driven."""


def missing_tools() -> list[str]:
    """Command-line tools the fixture needs but cannot find on PATH."""
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


class PulseServer:
    """One private ``pulseaudio`` daemon; :meth:`start` it, then :meth:`stop` it."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.runtime_dir = base_dir / "runtime"
        self.home_dir = base_dir / "home"
        self.socket = self.runtime_dir / "native"
        self.cookie = base_dir / "cookie"
        self.log_file = base_dir / "pulseaudio.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._keeper: subprocess.Popen[bytes] | None = None
        self._drain: threading.Thread | None = None

    @property
    def server(self) -> str:
        """The ``PULSE_SERVER`` string of this daemon."""
        return f"unix:{self.socket}"

    def client_env(self) -> dict[str, str]:
        """Variables that point libpulse clients in this process at the daemon."""
        return {
            "PULSE_SERVER": self.server,
            "PULSE_SOURCE": MIC_SOURCE,
            "PULSE_SINK": SPEAKER_SINK,
            "PULSE_COOKIE": str(self.cookie),
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
        }

    def tool_env(self) -> dict[str, str]:
        """Environment for the daemon and the pa* tools: everything in the temp dir."""
        return {
            **os.environ,
            **self.client_env(),
            "HOME": str(self.home_dir),
            "XDG_CONFIG_HOME": str(self.home_dir / ".config"),
        }

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the daemon, wait until it answers, and create the null sinks."""
        missing = missing_tools()
        if missing:
            raise PulseError(
                f"PulseAudio tools not found: {', '.join(missing)}; "
                "install them with `apt install pulseaudio pulseaudio-utils libasound2-plugins`"
            )
        for directory in (self.runtime_dir, self.home_dir):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o700)
        script = self.base_dir / "default.pa"
        script.write_text(
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.socket}\n"
            f"load-module module-null-sink sink_name={MIC_SINK}"
            f" sink_properties=device.description=voicehello-virtual-mic\n"
            f"load-module module-null-sink sink_name={SPEAKER_SINK}"
            f" sink_properties=device.description=voicehello-virtual-speaker\n"
            f"set-default-source {MIC_SOURCE}\n"
            f"set-default-sink {SPEAKER_SINK}\n",
            encoding="utf-8",
        )
        command = [
            "pulseaudio",
            "-n",  # no default.pa: only the modules of our script
            f"--file={script}",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--disable-shm=yes",
            "--use-pid-file=no",
            "--realtime=no",
            "--high-priority=no",
            "--log-target=stderr",
            "--log-level=notice",
        ]
        with self.log_file.open("wb") as log:
            self._process = subprocess.Popen(
                command, env=self.tool_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_ready(timeout_s)
        self._start_keeper(timeout_s)

    def _start_keeper(self, timeout_s: float) -> None:
        """Keep a low-latency listener on the virtual mic for the whole session.

        An idle null sink renders audio in 2 s blocks, so a new recording stream may get its
        first audio only up to 2 s late (and lose it). A listener asking for 20 ms latency
        keeps the sink rendering in small blocks, like a real microphone. Its audio is read
        and discarded in memory.
        """
        self._keeper = subprocess.Popen(
            ["parec", f"--device={MIC_SOURCE}", "--latency-msec=20", "--raw", "--rate=16000", "--channels=1"],
            env=self.tool_env(),
            stdout=subprocess.PIPE,
        )
        stdout = self._keeper.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], timeout_s)
        if not ready:
            self.stop()
            raise PulseError(f"the virtual microphone delivered no audio within {timeout_s:g} s")
        self._drain = threading.Thread(target=_discard, args=(stdout,), name="pulse-keeper", daemon=True)
        self._drain.start()

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise PulseError(f"pulseaudio exited with {self._process.returncode}:\n{self.log()}")
            if self.socket.exists() and self.pactl("info", check=False).returncode == 0:
                return
            time.sleep(0.05)
        self.stop()
        raise PulseError(f"pulseaudio did not answer within {timeout_s:g} s:\n{self.log()}")

    def log(self) -> str:
        """The daemon's log so far."""
        return self.log_file.read_text(encoding="utf-8", errors="replace") if self.log_file.exists() else ""

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``pactl`` against this daemon."""
        result = subprocess.run(
            ["pactl", *args], env=self.tool_env(), capture_output=True, text=True, timeout=10, check=False
        )
        if check and result.returncode != 0:
            raise PulseError(f"pactl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def sources(self) -> list[str]:
        """Names of the daemon's sources."""
        lines = self.pactl("list", "short", "sources").stdout.splitlines()
        return [line.split("\t")[1] for line in lines if "\t" in line]

    def play(self, wav: Path, sink: str = MIC_SINK) -> None:
        """Play a WAV file into ``sink`` and wait until it has been played."""
        subprocess.run(["paplay", f"--device={sink}", str(wav)], env=self.tool_env(), check=True, timeout=60)

    def play_async(self, wav: Path, sink: str = MIC_SINK) -> subprocess.Popen[bytes]:
        """Start playing a WAV file into ``sink``; returns the ``paplay`` process."""
        return subprocess.Popen(["paplay", f"--device={sink}", str(wav)], env=self.tool_env())

    @contextmanager
    def record(self, source: str = SPEAKER_SOURCE) -> Iterator[Path]:
        """Record ``source`` (16 kHz mono WAV in the temp dir) while the block runs.

        For tests of what voicehello *plays*; the recording is a test artefact in the temp dir.
        """
        target = self.base_dir / f"recording-{time.monotonic_ns()}.wav"
        process = subprocess.Popen(
            [
                "parec",
                f"--device={source}",
                "--file-format=wav",
                "--rate=16000",
                "--channels=1",
                "--format=s16le",
                str(target),
            ],
            env=self.tool_env(),
        )
        try:
            yield target
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=10)

    def stop(self) -> None:
        """Stop the listener and the daemon (SIGTERM, then SIGKILL after 5 s)."""
        keeper, self._keeper = self._keeper, None
        drain, self._drain = self._drain, None
        if keeper is not None:
            _terminate(keeper)
            if drain is not None:
                drain.join(timeout=5)
            if keeper.stdout is not None:
                keeper.stdout.close()
        process, self._process = self._process, None
        if process is not None:
            _terminate(process)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 5 s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _discard(stream: IO[bytes]) -> None:
    """Read and drop everything from ``stream`` until it ends."""
    chunk = b"start"
    while chunk:
        chunk = os.read(stream.fileno(), 65536)
