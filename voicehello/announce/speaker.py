"""The voice: neighbors' messages spoken (or printed) off the network thread.

:class:`Announcer` owns one thread. :meth:`Announcer.submit` only puts the message on a queue;
the thread applies the :class:`~voicehello.announce.policy.AnnouncePolicy`, prints, and hands
the text to a text-to-speech child process, one announcement at a time.

The child process (``multiprocessing`` spawn context) runs pyttsx3 with voicehello's own
driver, ``pyttsx3.drivers.voicehello_espeak``: pyttsx3's espeak driver (synthesis through
espeak-ng's ``AUDIO_OUTPUT_RETRIEVAL`` callback; voice, rate and volume set through the pyttsx3
engine) whose audio is played from memory through ``sounddevice``. pyttsx3's own driver writes
every utterance to a temporary WAV file and runs ``aplay``; here no audio ever touches the disk.

Messages the policy holds for after the quiet hours are also kept on disk, sealed as they came
from the broker (:class:`~voicehello.privacy.held.HeldMessages`), until they are spoken,
printed or dropped, so that a restart does not lose them.

A watchdog kills a child that makes no progress for ``tts_timeout_s`` (or dies), starts a fresh
one and goes on with the next announcement. Without a usable output device the announcer prints
instead, with one log line; it never raises into its caller.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import multiprocessing
import queue
import signal
import sys
import threading
import time
import types
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from voicehello.announce.policy import AnnouncePolicy, Decision
from voicehello.bus.messages import Message
from voicehello.cleaning import clean_text
from voicehello.config import AnnounceSettings
from voicehello.errors import SpeakerError
from voicehello.privacy.held import HeldMessages

log = logging.getLogger(__name__)

EventKind = Literal["queued", "dropped", "handed", "started", "finished", "restarted", "printed"]
"""``handed``: the text went to the text-to-speech engine (synthesis starts); ``started``: its
first audio block (the chime, when there is one) goes out."""

SAMPLE_RATE = 22_050
"""espeak-ng's output: 22.05 kHz mono int16."""
DRIVER_NAME = "voicehello_espeak"
"""The pyttsx3 driver name, registered as ``pyttsx3.drivers.voicehello_espeak`` in the child."""
MAX_INBOX = 1_000
"""Most submissions waiting for the announcer thread; more are dropped with a log line."""
MAX_BACKLOG = 1_000
"""Most announcements waiting to be spoken; more are dropped with a log line."""
MAX_CANCELLED = 1_000
"""Cancelled ids remembered, so a message cancelled before it arrives is never spoken."""
START_TIMEOUT_S = 15.0
"""A child that is not ready this long after it was started (or ``tts_timeout_s`` if longer) is hung."""
MAX_RESTARTS = 3
"""Consecutive engine restarts without one finished announcement before falling back to print."""
PROGRESS_EVERY_S = 0.25
"""How often the child reports progress while it plays."""
BLOCK_S = 0.1
"""Audio written to the output stream at a time."""
SPOKEN_PREFIX = "Neighbor."
"""Said first when ``prefix = "spoken"``."""
PRINT_TAG = "[announce]"
PROMPT_TAG = "[prompt]"


def _print_line(line: str) -> None:
    print(line, flush=True)


@dataclass(frozen=True)
class AnnounceEvent:
    """Something that happened to one announcement (``message_id`` is empty for prompts)."""

    kind: EventKind
    message_id: str
    text: str
    reason: str = ""
    t: float = 0.0
    """When it happened (the announcer's clock, Unix seconds)."""


@dataclass
class _Job:
    """One text to say: a neighbor's message, or a prompt of this device (``message`` None)."""

    number: int
    text: str
    message: Message | None = None
    printed: bool = False
    progress_at: float = field(default_factory=time.monotonic)

    @property
    def message_id(self) -> str:
        return self.message.id if self.message is not None else ""


# =============================================================================== the child


class NoOutputError(SpeakerError):
    """The audio output device cannot be found or opened."""


Int16Array = npt.NDArray[np.int16]


def chime(volume: float = 1.0, rate: int = SAMPLE_RATE) -> Int16Array:
    """A soft two-tone chime (E5 then C5, bell-like decay) and a short pause, synthesized in memory."""
    notes = ((659.25, 0.0), (523.25, 0.2))
    t = np.arange(int(rate * 0.75)) / rate
    tone = np.zeros_like(t)
    for freq, start in notes:
        local = np.maximum(t - start, 0.0)
        envelope = np.where(t >= start, np.exp(-local / 0.16) * np.minimum(local / 0.004, 1.0), 0.0)
        tone += envelope * (np.sin(2 * np.pi * freq * local) + 0.2 * np.sin(4 * np.pi * freq * local))
    tone *= 0.35 * max(0.0, min(volume, 1.0)) * 32767 / max(float(np.abs(tone).max()), 1e-9)
    pause = np.zeros(int(rate * 0.12))
    return np.concatenate([tone, pause]).astype(np.int16)


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:
        raise NoOutputError("the PortAudio library is missing (Debian: `apt install libportaudio2`)") from exc
    return sounddevice


def resolve_output_device(spec: str | None) -> int | None:
    """``output_device`` (an index or a case-insensitive name substring; an exact name wins)
    -> a PortAudio output device index; None or empty means the system default."""
    if spec is None or not str(spec).strip():
        return None
    sd = _sounddevice()
    wanted = str(spec).strip()
    try:
        devices = [d for d in sd.query_devices() if int(d["max_output_channels"]) > 0]
    except sd.PortAudioError as exc:
        raise NoOutputError(f"cannot list audio devices: {exc}") from exc
    if wanted.isdigit():
        if any(int(d["index"]) == int(wanted) for d in devices):
            return int(wanted)
    else:
        matches = [d for d in devices if wanted.lower() in str(d["name"]).lower()]
        exact = [d for d in matches if str(d["name"]).lower() == wanted.lower()]
        if matches:
            return int((exact or matches)[0]["index"])
    names = ", ".join(f"{d['index']}: {d['name']}" for d in devices) or "none"
    raise NoOutputError(f"unknown audio output device '{wanted}' (outputs: {names})")


def match_voice(wanted: str, voices: list[tuple[str, str, list[str]]]) -> str | None:
    """The espeak voice id for ``wanted`` (an id like ``gmw/en-us``, its last part ``en-us``, a
    language like ``en-gb`` or a voice name), keeping a ``+variant`` (``en-us+f2``); None if unknown.

    ``voices`` are (id, name, languages) as pyttsx3 lists them."""
    base, plus, variant = wanted.strip().partition("+")
    key = base.strip().lower()
    rules: list[Callable[[str, str, list[str]], bool]] = [
        lambda vid, _name, _langs: vid.lower() == key,
        lambda vid, _name, _langs: vid.lower().rsplit("/", 1)[-1] == key,
        lambda _vid, _name, langs: key in (lang.lower() for lang in langs),
        lambda _vid, name, _langs: name.lower() == key,
    ]
    for rule in rules:
        for voice_id, name, languages in voices:
            if key and rule(voice_id, name, languages):
                return voice_id + plus + variant
    return None


def _driver_class() -> type:
    """pyttsx3's EspeakDriver, playing from memory (imported here: only the child loads espeak)."""
    from pyttsx3.drivers import _espeak
    from pyttsx3.drivers.espeak import EspeakDriver

    class MemoryEspeakDriver(EspeakDriver):  # type: ignore[misc]
        """Synthesis as pyttsx3 does it; every sample (the last callback's too) kept in memory and
        handed to ``player`` instead of a temporary WAV file and ``aplay``."""

        def __init__(self, proxy: Any, player: Callable[[bytes], None]) -> None:
            self._chunks: list[bytes] = []
            self._synthesized = threading.Event()
            self._player = player
            super().__init__(proxy)

        def stop(self) -> None:
            """Nothing to cancel: each utterance is synthesized and played before ``runAndWait``
            returns. (pyttsx3 calls this at the end of every run loop; espeak-ng's ``Cancel``
            would also discard rate and volume changes still queued in its command FIFO.)"""

        def _start_synthesis(self, text: str) -> None:
            self._proxy.setBusy(True)
            self._proxy.notify("started-utterance")
            self._chunks = []
            self._synthesized.clear()
            self._speaking = True
            completed = False
            try:
                _espeak.Synth(str(text).encode("utf-8"), flags=_espeak.ENDPAUSE | _espeak.CHARS_UTF8)
                self._synthesized.wait()  # the callbacks run on espeak-ng's own thread
                self._speaking = False
                self._player(b"".join(self._chunks))
                completed = True
            except Exception as exc:
                self._proxy.notify("error", exception=exc)
            finally:
                self._speaking = False
                self._text_to_say = None
                self._chunks = []
                self._proxy.notify("finished-utterance", completed=completed)
                self._proxy.setBusy(False)
                self.endLoop()

        def _onSynth(self, wav: Any, numsamples: int, events: Any) -> int:  # noqa: N802 - pyttsx3's name
            if not self._speaking:
                return 0
            if numsamples > 0:
                self._chunks.append(ctypes.string_at(wav, numsamples * ctypes.sizeof(ctypes.c_short)))
            index = 0
            while events[index].type != _espeak.EVENT_LIST_TERMINATED:
                if events[index].type == _espeak.EVENT_MSG_TERMINATED:
                    self._synthesized.set()
                index += 1
            return 0

    return MemoryEspeakDriver


def install_driver(player: Callable[[bytes], None]) -> None:
    """Register ``pyttsx3.drivers.voicehello_espeak``, whose driver plays through ``player``."""
    driver_class = _driver_class()
    module = types.ModuleType(f"pyttsx3.drivers.{DRIVER_NAME}")
    module.buildDriver = lambda proxy: driver_class(proxy, player)  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module


class _ChildVoice:
    """The child's side: a pyttsx3 engine and the output device; reports to the parent."""

    def __init__(self, conn: Connection, settings: AnnounceSettings) -> None:
        self.conn = conn
        self.settings = settings
        self.job = 0
        self.chime: Int16Array | None = None
        self.errors: list[BaseException] = []
        self.rate = SAMPLE_RATE
        self.device = resolve_output_device(settings.output_device)
        self.sd = _sounddevice()
        if self.device is None:
            try:
                self.sd.query_devices(kind="output")
            except self.sd.PortAudioError as exc:
                raise NoOutputError(f"no default audio output device ({exc})") from exc
        self.chime_audio = chime(settings.volume)
        install_driver(self.play)
        import pyttsx3

        self.engine: Any = pyttsx3.init(driverName=DRIVER_NAME)
        self.engine.connect("error", self._on_error)
        voices = [
            (str(v.id), str(v.name), [str(lang) for lang in v.languages])
            for v in self.engine.getProperty("voices")
        ]
        voice_id = match_voice(settings.voice, voices)
        if voice_id is None:
            self.send("warning", f"voice {settings.voice!r} not found; using the default voice")
        else:
            self.engine.setProperty("voice", voice_id)
        self.engine.setProperty("rate", settings.rate_wpm)
        self.engine.setProperty("volume", settings.volume)
        self.engine.runAndWait()  # nothing to say: applies the properties now
        if self.errors:
            self.send(
                "warning", f"voice {settings.voice!r} not set ({self.errors[0]}); using the default voice"
            )
            self.errors.clear()

    def send(self, *report: object) -> None:
        try:
            self.conn.send(report)
        except OSError:
            raise SystemExit(0) from None  # the parent is gone

    def _on_error(self, name: object = None, exception: BaseException | None = None, **_: object) -> None:
        self.errors.append(exception or SpeakerError("unknown text-to-speech error"))

    def say(self, job: int, text: str, with_chime: bool) -> None:
        """Speak one text; reports started/progress, then finished or error."""
        self.job, self.errors = job, []
        if not text.strip():  # pyttsx3 ignores empty text, and runAndWait would then never return
            self.send("finished", job)
            return
        self.chime = self.chime_audio if with_chime else None
        self.engine.say(text)
        self.engine.runAndWait()
        if not self.errors:
            self.send("finished", job)
            return
        error = self.errors[0]
        kind = "device" if isinstance(error, NoOutputError) else "tts"
        self.send("error", job, kind, f"{type(error).__name__}: {error}"[:300])

    def play(self, pcm: bytes) -> None:
        """Play the chime (maybe) and ``pcm`` (22.05 kHz int16) from memory, reporting progress."""
        speech = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype=np.int16)
        audio = np.concatenate([self.chime, speech]) if self.chime is not None else speech
        stream = self._open_stream()
        if self.rate != SAMPLE_RATE:
            from voicehello.audio.sources import resample

            resampled = resample(audio.astype(np.float64), SAMPLE_RATE, self.rate)
            audio = np.clip(resampled, -32768, 32767).astype(np.int16)
        block = int(self.rate * BLOCK_S)
        reported = time.monotonic()
        try:
            with stream:
                self.send("started", self.job)
                for start in range(0, len(audio), block):
                    stream.write(audio[start : start + block])
                    if time.monotonic() - reported >= PROGRESS_EVERY_S:
                        reported = time.monotonic()
                        self.send("progress", self.job)
        except self.sd.PortAudioError as exc:
            raise NoOutputError(f"audio output failed: {exc}") from exc

    def _open_stream(self) -> Any:
        """An output stream at 22.05 kHz, else at the device's default rate."""
        sd = self.sd
        try:
            return sd.OutputStream(samplerate=SAMPLE_RATE, channels=1, dtype="int16", device=self.device)
        except sd.PortAudioError as first:
            try:
                rate = int(sd.query_devices(self.device, "output")["default_samplerate"])
                stream = sd.OutputStream(samplerate=rate, channels=1, dtype="int16", device=self.device)
            except (sd.PortAudioError, ValueError) as exc:
                raise NoOutputError(f"cannot open the audio output: {first}") from exc
            self.rate = rate
            return stream


def _child_main(conn: Connection, settings: AnnounceSettings) -> None:
    """Entry point of the text-to-speech child process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's business
    try:
        voice = _ChildVoice(conn, settings)
    except NoOutputError as exc:
        conn.send(("fatal", "device", str(exc)))
        return
    except Exception as exc:
        conn.send(("fatal", "tts", f"{type(exc).__name__}: {exc}"[:300]))
        return
    voice.send("ready", voice.engine.getProperty("voice"))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        voice.say(*job)


# =============================================================================== the parent


class _Child:
    """One text-to-speech child process and the thread that forwards its reports."""

    def __init__(self, settings: AnnounceSettings, generation: int, post: Callable[[tuple[Any, ...]], None]):
        context = multiprocessing.get_context("spawn")
        self.conn, child_conn = context.Pipe()
        self.generation = generation
        self.ready = False
        self.started_at = time.monotonic()
        self.process = context.Process(
            target=_child_main, args=(child_conn, settings), name=f"voicehello-tts-{generation}", daemon=True
        )
        self.process.start()
        child_conn.close()
        self._post = post
        self._reader = threading.Thread(
            target=self._read, name=f"voicehello-tts-reader-{generation}", daemon=True
        )
        self._reader.start()

    def _read(self) -> None:
        try:
            while True:
                self._post(("child", self.generation, self.conn.recv()))
        except (EOFError, OSError):
            pass
        finally:
            self._post(("child", self.generation, ("exited",)))
            self.conn.close()

    def send(self, job: tuple[int, str, bool] | None) -> bool:
        """Hand a job to the child; False when it is gone."""
        try:
            self.conn.send(job)
        except (OSError, ValueError):
            return False
        return True

    def kill(self) -> None:
        """SIGKILL (works on a stopped process too) and reap."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)

    def close(self, timeout_s: float) -> None:
        """Ask the child to exit; kill it if it does not within ``timeout_s``."""
        self.send(None)
        self.process.join(timeout=timeout_s)
        self.kill()


_STOP = ("stop",)


class Announcer:
    """Speaks (or prints) neighbors' messages on its own thread; see the module docstring.

    Events go to ``on_event`` from the announcer's thread (a ``dropped`` for a submission refused
    because the inbox is full comes from the submitting thread).
    """

    def __init__(
        self,
        settings: AnnounceSettings,
        *,
        on_event: Callable[[AnnounceEvent], None] | None = None,
        clock: Callable[[], float] = time.time,
        policy: AnnouncePolicy | None = None,
        show: Callable[[str], None] | None = None,
        held: HeldMessages | None = None,
    ) -> None:
        self.settings = settings
        self.show = show or _print_line
        """Where printed announcements go (``output = "print"`` or ``"both"``); stdout by default."""
        self.on_event = on_event
        self.clock = clock
        self.policy = policy or AnnouncePolicy(settings, clock)
        self.held = held
        """Where messages held for quiet hours are kept sealed (``None``: in memory only)."""
        self._inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._changed = threading.Condition()
        self._backlog: deque[_Job] = deque()
        self._prompts: deque[_Job] = deque()
        self._queued_texts: dict[str, str] = {}
        self._cancelled: OrderedDict[str, None] = OrderedDict()
        self._current: _Job | None = None
        self._child: _Child | None = None
        self._generations = itertools.count(1)
        self._numbers = itertools.count(1)
        self._restarts = 0
        self._speak = settings.output in ("speaker", "both")
        self._print = settings.output in ("print", "both")
        self._thread: threading.Thread | None = None

    # -- public API ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the announcer thread (and the text-to-speech child, when speaking)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="voicehello-announcer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread and the child; announcements still waiting are not spoken."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._inbox.put(_STOP)
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning("the announcer did not stop within %g s", timeout_s)

    def submit(self, message: Message, text: str) -> None:
        """Queue ``message`` to be announced as ``text``; never blocks (thread-safe)."""
        if self._inbox.qsize() >= MAX_INBOX:
            log.warning("announcer inbox full (%d); message %s dropped", MAX_INBOX, message.id)
            self._emit("dropped", message.id, text, "announcer inbox full")
            return
        self._inbox.put(("submit", message, text))

    def prompt(self, text: str) -> None:
        """Say something to the user of this kitchen (a read-back, "Sent."): no policy, no
        prefix, ahead of neighbors' messages. Never blocks."""
        if self._inbox.qsize() >= MAX_INBOX:
            log.warning("announcer inbox full (%d); prompt dropped", MAX_INBOX)
            return
        self._inbox.put(("prompt", text))

    def cancel(self, message_id: str) -> None:
        """Drop ``message_id`` if it is still waiting to be announced (thread-safe)."""
        self._inbox.put(("cancel", message_id))

    @property
    def idle(self) -> bool:
        """True when nothing is waiting or being spoken (messages held for quiet hours aside)."""
        with self._changed:
            return self._idle()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until :attr:`idle`; False after ``timeout_s``."""
        with self._changed:
            return self._changed.wait_for(self._idle, timeout_s)

    @property
    def child_pid(self) -> int | None:
        """The process id of the text-to-speech child, if one runs."""
        with self._changed:
            return self._child.process.pid if self._child is not None else None

    @property
    def speaking_enabled(self) -> bool:
        """False once the announcer has fallen back to printing (or was never to speak)."""
        return self._speak

    # -- the thread ------------------------------------------------------------------------
    def _idle(self) -> bool:
        return (
            self._inbox.unfinished_tasks == 0
            and self._current is None
            and not self._backlog
            and not self._prompts
        )

    def _run(self) -> None:
        try:
            with self._changed:
                if self._speak:
                    self._spawn()
            while True:
                try:
                    item = self._inbox.get(timeout=self._wait_s())
                except queue.Empty:
                    item = None
                if item is _STOP:
                    self._inbox.task_done()
                    break
                with self._changed:
                    try:
                        if item is not None:
                            self._handle(item)
                        self._tick()
                    except Exception:
                        log.exception("announcer error (carrying on)")
                    finally:
                        if item is not None:
                            self._inbox.task_done()
                        self._changed.notify_all()
        finally:
            self._shutdown()

    def _wait_s(self) -> float | None:
        """How long the thread may sleep waiting for the inbox."""
        child = self._child
        if self._current is not None:
            left = self._current.progress_at + self.settings.tts_timeout_s - time.monotonic()
            return max(left, 0.01)
        if child is not None and not child.ready:
            return 0.25
        if self.policy.queued:
            return 1.0  # look again whether the quiet hours are over
        return None

    def _shutdown(self) -> None:
        with self._changed:
            child, self._child = self._child, None
            waiting = len(self._backlog) + len(self._prompts) + (self._current is not None)
            self._backlog.clear()
            self._prompts.clear()
            self._current = None
            self._changed.notify_all()
        if waiting:
            log.info("announcer stopped; %d announcement(s) not spoken", waiting)
        if child is not None:
            child.close(timeout_s=1.0)

    def _handle(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "submit":
            self._decide(item[1], item[2])
        elif kind == "prompt":
            self._prompts.append(_Job(next(self._numbers), clean_text(item[1], self.settings.max_chars)))
        elif kind == "cancel":
            self._cancel(item[1])
        elif kind == "child":
            self._child_report(item[1], item[2])

    def _decide(self, message: Message, text: str) -> None:
        text = clean_text(text, self.settings.max_chars)
        if message.id in self._cancelled:
            self._drop(message.id, text, "cancelled")
            return
        decision = self.policy.decide(message)
        self._act(message, text, decision)

    def _act(self, message: Message, text: str, decision: Decision) -> None:
        if decision.action == "drop":
            self._drop(message.id, text, decision.reason)
        elif decision.action == "queue":
            self._queued_texts[message.id] = text
            if self.held is not None:
                self.held.keep(message.id)
            log.info("message %s held: %s", message.id[:8], decision.reason)
            self._emit("queued", message.id, text, decision.reason)
        elif len(self._backlog) >= MAX_BACKLOG:
            self._drop(message.id, text, f"backlog full ({MAX_BACKLOG})")
        else:
            self._backlog.append(_Job(next(self._numbers), text, message))

    def _drop(self, message_id: str, text: str, reason: str) -> None:
        log.info("message %s not announced: %s", message_id[:8], reason)
        self._emit("dropped", message_id, text, reason)

    def _cancel(self, message_id: str) -> None:
        self._cancelled[message_id] = None
        while len(self._cancelled) > MAX_CANCELLED:
            self._cancelled.popitem(last=False)
        for job in [job for job in self._backlog if job.message_id == message_id]:
            self._backlog.remove(job)
            self._drop(message_id, job.text, "cancelled")
        if self.policy.cancel(message_id):
            self._drop(message_id, self._queued_texts.pop(message_id, ""), "cancelled")

    def _tick(self) -> None:
        self._watchdog()
        for message, decision in self.policy.release():
            self._act(message, self._queued_texts.pop(message.id, ""), decision)
        self._start_next()

    # -- speaking --------------------------------------------------------------------------
    def _start_next(self) -> None:
        while self._current is None and (self._prompts or self._backlog):
            if self._speak and (self._child is None or not self._child.ready):
                return  # wait for the engine
            job = self._prompts.popleft() if self._prompts else self._backlog.popleft()
            if not job.text:
                self._drop(job.message_id, job.text, "nothing to say")
                continue
            if job.message is not None and job.message.expired(self.clock()):
                self._drop(job.message_id, job.text, "expired while waiting")
                continue
            if self._print:
                self._print_job(job)
            if self._speak:
                self._send(job)

    def _print_job(self, job: _Job) -> None:
        if job.printed:
            return
        job.printed = True
        self.show(f"{PROMPT_TAG if job.message is None else PRINT_TAG} {job.text}")
        self._emit("printed", job.message_id, job.text)

    def _send(self, job: _Job) -> None:
        assert self._child is not None
        with_chime = job.message is not None and self.settings.prefix == "chime"
        spoken = (
            f"{SPOKEN_PREFIX} {job.text}"
            if job.message is not None and self.settings.prefix == "spoken"
            else job.text
        )
        job.progress_at = time.monotonic()
        self._current = job
        if not self._child.send((job.number, spoken, with_chime)):
            self._engine_failed("the text-to-speech engine is gone")
            return
        self._emit("handed", job.message_id, job.text)

    def _child_report(self, generation: int, report: tuple[Any, ...]) -> None:
        child = self._child
        if child is None or generation != child.generation:
            return  # from a child already replaced
        kind, job = report[0], self._current
        if kind == "ready":
            child.ready = True
            log.debug("text-to-speech engine ready (voice %s)", report[1])
        elif kind == "warning":
            log.warning("%s", report[1])
        elif kind == "fatal":
            self._fall_back(report[1], report[2])
        elif kind == "exited":
            self._engine_failed("the text-to-speech engine exited")
        elif job is None or report[1] != job.number:
            log.debug("stale report %r from the text-to-speech engine", report)
        elif kind == "progress":
            job.progress_at = time.monotonic()
        elif kind == "started":
            job.progress_at = time.monotonic()
            log.info("speaking: %s", job.text)
            self._emit("started", job.message_id, job.text)
        elif kind == "finished":
            self._current, self._restarts = None, 0
            log.info("finished speaking: %s", job.text)
            self._emit("finished", job.message_id, job.text)
        elif kind == "error":
            self._current = None
            if report[2] == "device":
                self._fall_back("device", report[3], job)
            else:
                log.warning("text-to-speech failed (%s); printed instead: %s", report[3], job.text)
                self._print_job(job)

    def _fall_back(self, why: str, detail: str, job: _Job | None = None) -> None:
        """Print from now on (no usable output device, or no working engine)."""
        what = "no usable audio output" if why == "device" else "text-to-speech unavailable"
        log.warning("%s (%s); printing announcements instead", what, detail)
        self._speak, self._print = False, True
        child, self._child = self._child, None
        if child is not None:
            child.kill()
        job, self._current = job or self._current, None
        if job is not None:
            self._print_job(job)

    def _watchdog(self) -> None:
        child, job = self._child, self._current
        if child is None:
            return
        now = time.monotonic()
        if job is not None and now - job.progress_at > self.settings.tts_timeout_s:
            self._engine_failed(f"no progress for {self.settings.tts_timeout_s:g} s")
        elif job is None and not child.ready:
            limit = max(self.settings.tts_timeout_s, START_TIMEOUT_S)
            if now - child.started_at > limit:
                self._engine_failed(f"not ready after {limit:g} s")

    def _engine_failed(self, why: str) -> None:
        """Kill the child, drop the job it was on, and start a fresh one (or fall back to print)."""
        job, self._current = self._current, None
        child, self._child = self._child, None
        if child is not None:
            child.kill()
        if job is not None:
            log.warning("text-to-speech engine hung or died (%s); dropped: %s", why, job.text)
            self._emit("dropped", job.message_id, job.text, f"text-to-speech engine failed: {why}")
        self._restarts += 1
        if self._restarts > MAX_RESTARTS:
            self._fall_back("tts", f"{self._restarts - 1} restarts in a row, last: {why}")
            return
        log.warning("restarting the text-to-speech engine (%s)", why)
        self._spawn()
        self._emit("restarted", job.message_id if job else "", job.text if job else "", why)

    def _spawn(self) -> None:
        try:
            self._child = _Child(self.settings, next(self._generations), self._inbox.put)
        except (OSError, RuntimeError) as exc:
            self._fall_back("tts", f"cannot start the text-to-speech process: {exc}")

    def _emit(self, kind: EventKind, message_id: str, text: str, reason: str = "") -> None:
        if self.held is not None and message_id and kind in ("printed", "finished", "dropped"):
            self.held.forget(message_id)  # done with: no longer held on disk
        if self.on_event is None:
            return
        try:
            self.on_event(AnnounceEvent(kind, message_id, text, reason, self.clock()))
        except Exception:
            log.exception("announce event handler failed on %s %s", kind, message_id[:8])
