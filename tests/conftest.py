"""Fixtures shared by every test directory.

* ``espeak``: speech synthesized by espeak-ng at test time (WAV files, or 16 kHz PCM in memory);
* ``testdata`` and ``human_recordings``: real human speech from Debian's pocketsphinx-testdata;
* ``understander``: the speech -> intent pipeline built once from the default settings;
* ``cli_config``/``cli_env``/``voicehello``: the installed ``voicehello`` console script run as a
  subprocess with a settings file of its own (an empty ``models_dir``, so ``auto`` is PocketSphinx
  whatever is installed under ``models/``);
* ``spawn_voicehello``: the same, left running, with its stdout and stderr read line by line.

External tools that are missing make the tests fail (never skip): CI installs them.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import pytest

from voicehello.app import Understander
from voicehello.config import DEFAULT_CATALOG_FILE, Settings
from voicehello.intents.catalog import Catalog, load_catalog
from voicehello.intents.nlu.cache import CACHE_ENV
from voicehello.intents.parser import IntentParser

TESTDATA = Path("/usr/share/pocketsphinx/test/data")
"""Debian's pocketsphinx-testdata: recordings of real people (``apt install pocketsphinx-testdata``)."""

GOFORWARD_RAW = "goforward.raw"
"""A man saying "go forward ten meters": headerless 16 kHz mono signed 16-bit little-endian PCM."""

LIBRIVOX_CLIPS = tuple(
    f"librivox/sense_and_sensibility_01_austen_64kb-{n}.wav" for n in ("0870", "0880", "0890", "0920", "0930")
)
"""A woman reading *Sense and Sensibility* (LibriVox): long, fluent, out-of-domain speech."""

CARDS_CLIPS = tuple(f"cards/{n:03d}.wav" for n in range(1, 6))
"""People naming playing cards ("five of clubs ...")."""

SAMPLE_RATE = 16_000


def _require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found; install it with `apt install {package}`", pytrace=False)
    return path


# --------------------------------------------------------------------------- speech


@dataclass
class Espeak:
    """Synthesizes sentences with espeak-ng into ``directory`` (cached by text, voice and speed)."""

    directory: Path

    def __call__(self, text: str, voice: str = "en-us", speed: int = 175) -> Path:
        """A WAV file (espeak-ng's native 22.05 kHz mono 16-bit) of ``text``."""
        espeak = _require_tool("espeak-ng", "espeak-ng")
        slug = "".join(c if c.isalnum() else "_" for c in f"{voice}-{speed}-{text}")[:120]
        path = self.directory / f"{slug}.wav"
        if not path.exists():
            subprocess.run(
                [espeak, "-v", voice, "-s", str(speed), "-w", str(path), text],
                check=True,
                capture_output=True,
                timeout=30,
            )
        return path

    def pcm(self, text: str, voice: str = "en-us", speed: int = 175) -> bytes:
        """``text`` as 16 kHz mono int16 PCM, converted by sox (not by voicehello)."""
        sox = _require_tool("sox", "sox")
        wav = self(text, voice, speed)
        command = [sox, str(wav), "-t", "raw", "-r", str(SAMPLE_RATE), "-e", "signed", "-b", "16"]
        return subprocess.run(
            [*command, "-c", "1", "-L", "-"], check=True, capture_output=True, timeout=30
        ).stdout

    def sequence(self, parts: Sequence[tuple[str, str]], gap_s: float = 1.2, name: str = "sequence") -> Path:
        """One WAV of several sentences ``(text, voice)`` with ``gap_s`` of silence around each."""
        frames: list[bytes] = []
        params = None
        for text, voice in parts:
            with wave.open(str(self(text, voice)), "rb") as part:
                params = part.getparams()
                silence = bytes(round(gap_s * part.getframerate()) * part.getsampwidth())
                frames += [silence, part.readframes(part.getnframes())]
        assert params is not None, "no parts"
        path = self.directory / f"{name}.wav"
        with wave.open(str(path), "wb") as out:
            out.setparams(params)
            out.writeframes(b"".join([*frames, silence]))
        return path


@pytest.fixture(scope="session")
def espeak(tmp_path_factory: pytest.TempPathFactory) -> Espeak:
    """``espeak(text, voice="en-us", speed=175) -> Path``: a WAV of ``text`` spoken by espeak-ng.

    Also ``espeak.pcm(...)`` (16 kHz PCM bytes) and ``espeak.sequence([(text, voice), ...])``.
    """
    _require_tool("espeak-ng", "espeak-ng")
    return Espeak(tmp_path_factory.mktemp("espeak"))


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The pocketsphinx-testdata directory (fails when the package is not installed)."""
    if not (TESTDATA / GOFORWARD_RAW).is_file():
        pytest.fail(
            f"{TESTDATA} not found; install it with `apt install pocketsphinx-testdata`", pytrace=False
        )
    return TESTDATA


@pytest.fixture(scope="session")
def goforward_wav(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """goforward.raw ("go forward ten meters") given a WAV header, in memory, by the wave module."""
    path = tmp_path_factory.mktemp("human") / "goforward.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((testdata / GOFORWARD_RAW).read_bytes())
    return path


@pytest.fixture(scope="session")
def human_recordings(testdata: Path, goforward_wav: Path) -> dict[str, Path]:
    """Every real human recording used as out-of-domain speech, by short name."""
    recordings = {"goforward.wav": goforward_wav}
    for name in (*LIBRIVOX_CLIPS, *CARDS_CLIPS):
        path = testdata / name
        if not path.is_file():
            pytest.fail(f"{path} is missing from pocketsphinx-testdata", pytrace=False)
        recordings[name] = path
    return recordings


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The intent model's cache (``VOICEHELLO_CACHE_DIR``) in a temporary folder for the whole
    session, never the user's ~/.cache: trained once, then shared by every test and every
    voicehello subprocess (they inherit ``os.environ``)."""
    directory = tmp_path_factory.mktemp("model-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(directory))
        yield directory


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The real catalog, config/intents.yaml."""
    return load_catalog(DEFAULT_CATALOG_FILE)


@pytest.fixture(scope="session")
def parser(catalog: Catalog) -> IntentParser:
    """A parser over the real catalog with the default threshold."""
    return IntentParser(catalog)


@pytest.fixture(scope="session")
def understander() -> Understander:
    """The pipeline from the default settings, with the engine pinned to PocketSphinx (what
    ``auto`` picks when no Vosk model is installed), so results do not depend on ``models/``."""
    settings = Settings()
    return Understander(replace(settings, speech=replace(settings.speech, engine="pocketsphinx")))


# --------------------------------------------------------------------------- the console script


@pytest.fixture(scope="session")
def voicehello_script() -> Path:
    """The installed ``voicehello`` console script (next to the interpreter running the tests)."""
    candidate = Path(sys.executable).with_name("voicehello")
    found = candidate if candidate.is_file() else Path(shutil.which("voicehello") or "")
    if not found.is_file():
        pytest.fail("the voicehello console script is not installed; run `pip install -e .`", pytrace=False)
    return found


@pytest.fixture(scope="session")
def cli_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A settings file whose ``models_dir`` is an empty directory (next to it, ``models/``)."""
    directory = tmp_path_factory.mktemp("cli-config")
    (directory / "models").mkdir()
    config = directory / "voicehello.toml"
    config.write_text('[speech]\nmodels_dir = "models"\n', encoding="utf-8")
    return config


@pytest.fixture(scope="session")
def cli_env(cli_config: Path) -> dict[str, str]:
    """Variables set on top of ``os.environ`` for every voicehello run: ``VOICEHELLO_CONFIG`` =
    ``cli_config``, no bytecode writing (so that only voicehello's own writes happen), and
    faulthandler on (a hung process prints its stacks when sent SIGABRT)."""
    return {"VOICEHELLO_CONFIG": str(cli_config), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONFAULTHANDLER": "1"}


Run = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def voicehello(voicehello_script: Path, cli_env: dict[str, str]) -> Run:
    """``voicehello(*args, env=None, cwd=None, timeout=120)``: run the console script to completion.

    Reads ``os.environ`` at call time (so the PulseAudio variables of the ``pulse`` fixture
    reach it), with ``VOICEHELLO_CONFIG`` pointing at ``cli_config`` unless ``env`` overrides it.
    """

    def run(
        *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        environment = {**os.environ, **cli_env, **(env or {})}
        return subprocess.run(
            [str(voicehello_script), *map(str, args)],
            env=environment,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


class Spawned:
    """A running process whose stdout and stderr lines are collected by two reader threads."""

    def __init__(self, command: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> None:
        self.command = list(command)
        self.process = subprocess.Popen(
            self.command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._queues: dict[str, queue.Queue[str | None]] = {"stdout": queue.Queue(), "stderr": queue.Queue()}
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines, self._queues[name]), daemon=True)
            for name, stream, lines in (
                ("stdout", self.process.stdout, self.stdout),
                ("stderr", self.process.stderr, self.stderr),
            )
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: IO[str] | None, lines: list[str], events: queue.Queue[str | None]) -> None:
        assert stream is not None
        for line in stream:
            lines.append(line.rstrip("\n"))
            events.put(line.rstrip("\n"))
        events.put(None)  # end of stream

    def wait_for(self, stream: str, predicate: Callable[[str], bool], timeout: float) -> str | None:
        """The next line on ``stream`` (``stdout`` or ``stderr``) that ``predicate`` accepts, or
        ``None`` after ``timeout`` seconds or when the stream ends. Each line is offered once;
        all lines stay in :attr:`stdout` and :attr:`stderr`."""
        events = self._queues[stream]
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = events.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:  # the process closed the stream (it has exited)
                events.put(None)
                return None
            if predicate(line):
                return line
        return None

    def transcript(self) -> str:
        """Everything printed so far, for assertion messages."""
        return "stdout:\n" + "\n".join(self.stdout) + "\nstderr:\n" + "\n".join(self.stderr)

    def terminate(self, timeout: float = 10.0) -> int:
        """Send SIGTERM and wait for the exit code (and for the readers to finish).

        A process still running after ``timeout`` is sent SIGABRT, which makes Python's
        faulthandler (``PYTHONFAULTHANDLER=1``, set by ``cli_env``) print every thread's stack
        on stderr; the test then fails with those stacks."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)
            try:
                self.process.wait(timeout=5)
            finally:
                self.kill()
            pytest.fail(f"{self.command} did not stop {timeout:g} s after SIGTERM:\n{self.transcript()}")
        self._close()
        return code

    def kill(self) -> None:
        """Make sure the process is gone and its pipes closed (test teardown)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._close()

    def _close(self) -> None:
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def spawn_voicehello(voicehello_script: Path, cli_env: dict[str, str]) -> Iterator[Callable[..., Spawned]]:
    """``spawn_voicehello(*args, env=None, command=None)``: start voicehello (or ``command``) in the
    background; every process started is killed at teardown."""
    started: list[Spawned] = []

    def spawn(
        *args: str | Path,
        env: dict[str, str] | None = None,
        command: Sequence[str] | None = None,
        cwd: Path | None = None,
    ) -> Spawned:
        environment = {**os.environ, **cli_env, **(env or {})}
        argv = [*(command or [str(voicehello_script)]), *map(str, args)]
        spawned = Spawned(argv, environment, cwd)
        started.append(spawned)
        return spawned

    yield spawn
    for spawned in started:
        spawned.kill()
