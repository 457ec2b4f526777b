"""The live path: requests with a TV talker played into a virtual microphone, in real time.

``bench/run.py --live N`` starts the tests' private PulseAudio daemon (``bench/bus.py``'s
:func:`private_pulseaudio`: null sinks, a unix socket in a temporary directory), points PortAudio
at it, and plays one continuous stream into the virtual microphone ``vh_mic`` with ``pacat`` at
real-time speed: N test sentences, each in the benchmark's ``tv`` condition (a TV talker 10 dB
below the speaker plus kitchen noise at 10 dB, :mod:`bench.noise`) with its lead-in and a
:data:`TAIL_S` tail. voicehello's own :class:`MicrophoneSource` records the monitor of that sink
through PortAudio's ``pulse`` device and :meth:`Understander.listen` understands it, as
``voicehello listen`` does.

Time bases:

* *stream time*: samples of the microphone stream since it was opened. The played stream starts
  at the first non-zero sample (the null sink gives exact zeros before), so the end of each
  request's speech (the last 30 ms frame within :data:`noise.ACTIVE_RANGE_DB` of its loudest
  frame, in the clip that was played) is known in stream time.
* *wall time*: a block of the microphone is captured at ``anchor + its stream time``, where
  ``anchor`` is the smallest (pull time - stream time) over all blocks (a block can be pulled
  late, never early). End of speech -> intent = wall time of the result - wall time at which
  the end of speech was captured: the endpointer's wait, decoding, and any backlog.

Only the clip being built and PortAudio's bounded queue hold audio, in memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import dataset, noise
from bench.measure import HeardRecord, Outcome, median, percentile
from bench.report import Row
from voicehello.app import Understander, WakeGate
from voicehello.audio.sources import MicrophoneSource
from voicehello.speech.recognizer import SAMPLE_RATE

PORTAUDIO_DEVICE = "pulse"
"""PortAudio (ALSA) device that records from PulseAudio's default source (the virtual mic)."""
MIC_SINK = "vh_mic"
"""The null sink whose monitor is the virtual microphone (tests/integration/pulse.py)."""
TAIL_S = 2.5
"""Background after each request's speech (the next request's lead-in follows)."""
CLOSE_WITHIN_S = 1.0
"""An utterance "closes" when the endpointer ends it within this long after the end of speech."""
ONSET_TIMEOUT_S = 10.0
"""The played stream must reach the microphone within this long."""
CONDITION = noise.parse_condition("tv")


class LiveError(RuntimeError):
    """The live path could not be run (no PulseAudio, no audio from the virtual microphone)."""


@dataclass(frozen=True)
class Placed:
    """One request in the played stream (seconds from the stream's first sample)."""

    prompt: dataset.Prompt
    begin_s: float
    """Where its clip (lead-in, speech, tail) begins."""
    speech_end_s: float
    """Where its speech ends."""
    end_s: float
    """Where its clip ends."""


@dataclass
class LiveRequest:
    """What the live path made of one request."""

    placed: Placed
    outcome: Outcome
    latency_s: float | None = None
    """Wall time from the capture of the end of speech to the result of the utterance that holds
    it; None when no utterance ended near it."""
    closed_after_s: float | None = None
    """Stream time from the end of speech to the block that closed that utterance."""

    @property
    def closed(self) -> bool:
        """Closed by the endpointer within :data:`CLOSE_WITHIN_S` of the end of speech."""
        return self.closed_after_s is not None and self.closed_after_s <= CLOSE_WITHIN_S


@dataclass
class LiveRun:
    """Everything the live path measured."""

    requests: list[LiveRequest] = field(default_factory=list)
    dropped_blocks: int = 0
    played_s: float = 0.0


def speech_end_s(speech: bytes) -> float:
    """Where the speech of a synthesized sentence ends: the end of its last 30 ms frame within
    :data:`noise.ACTIVE_RANGE_DB` of its loudest frame."""
    signal = np.frombuffer(speech, dtype="<i2").astype(np.float64)
    usable = len(signal) - len(signal) % noise.FRAME
    powers = np.mean(np.square(signal[:usable].reshape(-1, noise.FRAME)), axis=1)
    active = np.flatnonzero(powers >= powers.max() * 10 ** (-noise.ACTIVE_RANGE_DB / 10))
    return float((active[-1] + 1) * noise.FRAME / SAMPLE_RATE)


def build_stream(
    prompts: list[dataset.Prompt], synthesize: Callable[[dataset.Prompt], bytes], tv: noise.TvTalk
) -> tuple[bytes, list[Placed]]:
    """The played stream: each prompt in the TV condition, one after another."""
    kitchen = noise.KitchenNoise(dataset.babble_sources())
    clips: list[bytes] = []
    placed: list[Placed] = []
    at_s = 0.0
    for prompt in prompts:
        speech = synthesize(prompt)
        clip = noise.make_clip(
            speech,
            lead_s=prompt.lead_s,
            tail_s=TAIL_S,
            snr_db=CONDITION.snr_db,
            noise=kitchen,
            seed=zlib.crc32(prompt.id.encode()),
            tv=tv,
            tv_db=CONDITION.tv_db,
        )
        length_s = len(clip) / (2 * SAMPLE_RATE)
        placed.append(Placed(prompt, at_s, at_s + prompt.lead_s + speech_end_s(speech), at_s + length_s))
        clips.append(clip)
        at_s += length_s
    return b"".join(clips), placed


class _Tap:
    """Passes microphone blocks on, noting when each was pulled and where the played stream
    begins (its first non-zero sample); stops ``after_s`` after that."""

    def __init__(self, mic: MicrophoneSource, block_ms: int, after_s: float) -> None:
        self._mic = mic
        self._block_s = block_ms / 1000
        self._after_s = after_s
        self.blocks_fed = 0
        self.anchor = float("inf")
        """Wall time (perf_counter) at which stream time 0 was captured."""
        self.onset_s: float | None = None
        """Stream time of the played stream's first sample."""
        self.dropped = 0
        """Blocks the microphone dropped because the consumer fell behind."""

    def blocks(self) -> Iterator[bytes]:
        """The microphone's blocks, up to ``after_s`` past the onset."""
        for block in self._mic:
            now = time.perf_counter()
            begin_s = self.blocks_fed * self._block_s
            self.anchor = min(self.anchor, now - begin_s - self._block_s)
            if self.onset_s is None:
                loud = np.flatnonzero(np.abs(np.frombuffer(block, dtype="<i2").astype(np.int32)) >= 2)
                if loud.size:
                    self.onset_s = begin_s + float(loud[0]) / SAMPLE_RATE
                elif begin_s > ONSET_TIMEOUT_S:
                    raise LiveError(f"the virtual microphone heard nothing in {ONSET_TIMEOUT_S:g} s")
            self.blocks_fed += 1
            yield block
            if self.onset_s is not None and begin_s >= self.onset_s + self._after_s:
                return

    @property
    def now_s(self) -> float:
        """Stream time at the end of the blocks fed so far."""
        return self.blocks_fed * self._block_s


def _reinit_portaudio() -> None:
    """PortAudio reads PULSE_SERVER when it initializes: start it afresh if it already ran."""
    module: Any = sys.modules.get("sounddevice")
    if module is not None:
        module._terminate()
        module._initialize()


def _play(stream: bytes) -> subprocess.Popen[bytes]:
    """Play 16 kHz mono int16 PCM into the virtual microphone in real time (``pacat``)."""
    player = subprocess.Popen(
        [
            "pacat",
            "--playback",
            f"--device={MIC_SINK}",
            "--rate=16000",
            "--channels=1",
            "--format=s16le",
            "--raw",
            "--latency-msec=30",
        ],
        stdin=subprocess.PIPE,
        env=dict(os.environ),
    )

    def feed() -> None:
        assert player.stdin is not None
        try:
            player.stdin.write(stream)
        finally:
            player.stdin.close()

    threading.Thread(target=feed, name="live-player", daemon=True).start()
    return player


def _listen(understander: Understander, stream: bytes, placed: list[Placed]) -> tuple[_Tap, list[Any]]:
    """Play the stream into the virtual microphone and understand what the microphone hears;
    returns the tap and (heard, wall time of the result, stream time when it closed) triples."""
    block_ms = understander.settings.audio.block_ms
    results: list[Any] = []
    with MicrophoneSource(PORTAUDIO_DEVICE, block_ms, timeout_s=ONSET_TIMEOUT_S) as mic:
        tap = _Tap(mic, block_ms, placed[-1].end_s + 0.5)
        player = _play(stream)
        try:
            for heard in understander.listen(tap.blocks()):
                results.append((heard, time.perf_counter(), tap.now_s))
        finally:
            player.wait(timeout=30)
        tap.dropped = mic.dropped_blocks
    return tap, results


def _score(placed: list[Placed], tap: _Tap, results: list[Any]) -> list[LiveRequest]:
    """Each result goes to the request whose clip holds its end of speech."""
    onset = tap.onset_s or 0.0
    gate = WakeGate(required=True)
    by_clip: dict[int, list[tuple[HeardRecord, float]]] = {i: [] for i in range(len(placed))}
    for heard, result_at, closed_at_s in results:
        end = heard.speech_end_s
        if end is None:
            continue
        index = next((i for i, p in enumerate(placed) if p.begin_s <= end - onset < p.end_s), None)
        if index is None:
            continue
        record = HeardRecord.of(
            heard,
            speech_end_s=end - onset,
            closed_at_s=closed_at_s - onset,
            processing_s=0.0,
            flushed=False,
            admitted=gate.admit(heard, end),
        )
        by_clip[index].append((record, result_at))
    requests: list[LiveRequest] = []
    for index, where in enumerate(placed):
        prompt = where.prompt
        outcome = Outcome(
            prompt_id=prompt.id,
            condition="live " + CONDITION.label,
            expected_text=prompt.text,
            expected_intent=prompt.intent,
            expected_slots=prompt.slots,
            heard=[record for record, _ in by_clip[index]],
        )
        request = LiveRequest(where, outcome)
        holding = [(r, at) for r, at in by_clip[index] if r.closed_at_s >= where.speech_end_s]
        if holding:
            record, result_at = holding[0]
            request.closed_after_s = record.closed_at_s - where.speech_end_s
            request.latency_s = result_at - (tap.anchor + onset + where.speech_end_s)
        requests.append(request)
    return requests


def measure(
    understander: Understander,
    prompts: list[dataset.Prompt],
    synthesize: Callable[[dataset.Prompt], bytes],
    tv: noise.TvTalk,
) -> LiveRun:
    """Play ``prompts`` with the TV talker into a private PulseAudio's virtual microphone and
    understand them through the microphone, live."""
    from bench.bus import private_pulseaudio

    if not prompts:
        raise LiveError("--live needs at least one test sentence")
    stream, placed = build_stream(prompts, synthesize, tv)
    with (
        tempfile.TemporaryDirectory(prefix="voicehello-live-") as workdir,
        private_pulseaudio(Path(workdir)),
    ):
        _reinit_portaudio()
        try:
            tap, results = _listen(understander, stream, placed)
        finally:
            _reinit_portaudio()
    run = LiveRun(requests=_score(placed, tap, results), played_s=len(stream) / (2 * SAMPLE_RATE))
    run.dropped_blocks = tap.dropped
    return run


def summarize(run: LiveRun) -> dict[str, Any]:
    """The live numbers, JSON-ready (milliseconds, rates)."""
    latencies = [r.latency_s for r in run.requests if r.latency_s is not None]
    total = len(run.requests)
    correct = sum(r.outcome.correct for r in run.requests)
    closed = sum(r.closed for r in run.requests)
    return {
        "requests": total,
        "condition": CONDITION.label,
        "played_s": round(run.played_s, 1),
        "dropped_blocks": run.dropped_blocks,
        "strict": {"hits": correct, "total": total, "rate": correct / total if total else float("nan")},
        "wrong_intent": sum(r.outcome.wrong_intent for r in run.requests),
        "closed_within_1s": {
            "hits": closed,
            "total": total,
            "rate": closed / total if total else float("nan"),
        },
        "latency_measured": len(latencies),
        "latency_median_ms": round(median(latencies) * 1000, 1),
        "latency_p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
        "latency_max_ms": round(max(latencies) * 1000, 1) if latencies else float("nan"),
        "closed_after_median_ms": round(
            median([r.closed_after_s for r in run.requests if r.closed_after_s is not None]) * 1000, 1
        ),
        "per_request": [
            {
                "id": r.placed.prompt.id,
                "expected": r.placed.prompt.text,
                "heard": [h.text for h in r.outcome.heard],
                "intents": [h.intent for h in r.outcome.heard],
                "heard_end_closed_s": [
                    (round(h.speech_end_s or 0.0, 2), round(h.closed_at_s, 2)) for h in r.outcome.heard
                ],
                "speech_end_s": round(r.placed.speech_end_s, 2),
                "correct": r.outcome.correct,
                "latency_ms": None if r.latency_s is None else round(r.latency_s * 1000, 1),
                "closed_after_ms": None if r.closed_after_s is None else round(r.closed_after_s * 1000, 1),
            }
            for r in run.requests
        ],
    }


def _pct(rate: dict[str, Any]) -> str:
    return f"{rate['rate']:.0%} ({rate['hits']}/{rate['total']})"


def rows(live: dict[str, Any], target_median_ms: float) -> list[Row]:
    """The live path's lines of the results table."""
    from bench import report

    where = f"live microphone, {live['condition']}, {live['requests']} requests"
    closed = live["closed_within_1s"]
    return [
        Row(f"Strict accuracy, {where}", _pct(live["strict"])),
        Row(
            f"End of speech → intent, {where}, median",
            f"{live['latency_median_ms']:.0f} ms",
            f"≤ {target_median_ms:.0f} ms",
            report.check(live["latency_median_ms"], target_median_ms, at_least=False),
        ),
        Row(f"End of speech → intent, {where}, p95", f"{live['latency_p95_ms']:.0f} ms"),
        Row(
            f"Closed by the endpointer within 1 s of the end of speech, {where}",
            _pct(closed),
            "≥ 95%",
            report.check(closed["rate"], 0.95, at_least=True),
        ),
    ]
