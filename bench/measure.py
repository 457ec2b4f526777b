"""Running audio through :meth:`Understander.listen` as a live stream, with timings.

Blocks are fed as fast as the recognizer takes them (not paced at real time); audio time
comes from counting blocks, wall time from :func:`time.perf_counter`. For each utterance the
endpointer closes, two latencies are kept apart:

* ``processing_s``: wall time from handing ``listen`` the block that closed the utterance to
  the :class:`Heard` result (VAD of that block + decode + parse);
* ``wait_s``: audio time from the end of the speech (``Utterance.end_s``) to the end of that
  block, i.e. the endpointer's silence wait, which a live stream spends in real time.

On a real-time stream, end of speech -> intent = ``wait_s + processing_s``.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from voicehello.app import Heard, Understander, WakeGate
from voicehello.audio.sources import frames
from voicehello.speech.recognizer import SAMPLE_RATE, SAMPLE_WIDTH


@dataclass(frozen=True)
class HeardRecord:
    """One utterance the endpointer cut out of a clip, and what was understood."""

    text: str
    """The transcript."""
    intent: str | None
    """The intent, or None when rejected."""
    slots: dict[str, str]
    """Slot values of the intent."""
    confidence: float
    """The parser's confidence."""
    woke: bool
    """Whether the transcript started with a wake phrase."""
    decode_s: float
    """Wall time of decode + parse."""
    audio_s: float
    """Seconds of audio decoded."""
    speech_end_s: float | None
    """Audio time where the speech ended."""
    closed_at_s: float
    """Audio time at the end of the block after which the utterance was closed."""
    processing_s: float
    """Wall time from feeding the closing block to the result."""
    flushed: bool
    """True when the stream ended before the endpointer closed the utterance."""
    admitted: bool
    """Whether live listening with ``require_wake`` acts on it (:class:`WakeGate`)."""

    @classmethod
    def of(  # noqa: PLR0917 (the timing fields, each named at the call)
        cls,
        heard: Heard,
        speech_end_s: float | None,
        closed_at_s: float,
        processing_s: float,
        flushed: bool,
        admitted: bool,
    ) -> HeardRecord:
        """The record of ``heard``, with the timing its caller measured."""
        return cls(
            text=heard.transcript.text,
            intent=heard.parse.intent,
            slots=dict(heard.parse.slots),
            confidence=heard.parse.confidence,
            woke=heard.parse.woke,
            decode_s=heard.decode_s,
            audio_s=heard.transcript.audio_seconds,
            speech_end_s=speech_end_s,
            closed_at_s=closed_at_s,
            processing_s=processing_s,
            flushed=flushed,
            admitted=admitted,
        )

    @property
    def wait_s(self) -> float | None:
        """Endpointing silence wait (audio time), None for a flushed utterance."""
        if self.flushed or self.speech_end_s is None:
            return None
        return self.closed_at_s - self.speech_end_s

    @property
    def rtf(self) -> float | None:
        """Real-time factor of this decode."""
        return self.decode_s / self.audio_s if self.audio_s > 0 else None


@dataclass
class _Feed:
    """Hands blocks to ``listen`` and remembers when and which block went last."""

    pcm: bytes
    block_ms: int
    fed: int = 0
    fed_at: float = 0.0
    done: bool = False

    def blocks(self) -> Iterator[bytes]:
        for block in frames(self.pcm, self.block_ms):
            self.fed += 1
            self.fed_at = time.perf_counter()
            yield block
        self.done = True


def run_stream(understander: Understander, pcm: bytes, block_ms: int) -> list[HeardRecord]:
    """Feed ``pcm`` block by block through ``listen``; return every utterance understood.

    Each stream gets a fresh :class:`WakeGate` (``require_wake``), as ``voicehello listen`` uses.
    """
    feed = _Feed(pcm, block_ms)
    gate = WakeGate(required=True)
    records: list[HeardRecord] = []
    for heard in understander.listen(feed.blocks()):
        now = time.perf_counter()
        admitted = gate.admit(heard, heard.speech_end_s or 0.0)
        records.append(
            HeardRecord.of(
                heard,
                speech_end_s=heard.speech_end_s,
                closed_at_s=feed.fed * block_ms / 1000,
                processing_s=now - feed.fed_at,
                flushed=feed.done,
                admitted=admitted,
            )
        )
    return records


def audio_seconds(pcm: bytes) -> float:
    """Length of 16 kHz mono int16 PCM in seconds."""
    return len(pcm) / (SAMPLE_RATE * SAMPLE_WIDTH)


@dataclass(frozen=True)
class Outcome:
    """One test sentence in one condition, scored."""

    prompt_id: str
    condition: str
    expected_text: str
    expected_intent: str | None
    expected_slots: dict[str, str]
    heard: list[HeardRecord] = field(default_factory=list)
    accepted_slots: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Every accepted value per slot (natural-phrasing set); empty: ``expected_slots`` exactly."""
    typed_intent: str | None = None
    """What the parser makes of the sentence's own text (natural-phrasing set)."""
    typed_slots: dict[str, str] = field(default_factory=dict)

    @property
    def acted(self) -> list[HeardRecord]:
        """Utterances that produced an intent."""
        return [record for record in self.heard if record.intent is not None]

    def _slots_right(self, slots: dict[str, str]) -> bool:
        if not self.accepted_slots:
            return slots == self.expected_slots
        return set(slots) == set(self.accepted_slots) and all(
            value in self.accepted_slots[name] for name, value in slots.items()
        )

    @property
    def correct(self) -> bool:
        """Strict: exactly one intent came out, and it and every slot are right."""
        acted = self.acted
        return (
            len(acted) == 1 and acted[0].intent == self.expected_intent and self._slots_right(acted[0].slots)
        )

    @property
    def wrong_intent(self) -> bool:
        """An intent came out, and not the expected one (worse than a rejection)."""
        return any(record.intent != self.expected_intent for record in self.acted)

    @property
    def as_typed(self) -> bool:
        """Exactly one intent came out and it (with its slots) is what the typed text gives."""
        acted = self.acted
        if self.typed_intent is None:
            return not acted
        return len(acted) == 1 and acted[0].intent == self.typed_intent and acted[0].slots == self.typed_slots

    @property
    def typed_correct(self) -> bool:
        """The parser alone, on the sentence's text, gets intent and slots right."""
        return self.typed_intent == self.expected_intent and self._slots_right(self.typed_slots)

    @property
    def intent_correct(self) -> bool:
        """Exactly one intent came out and it is the right one (slots not checked)."""
        acted = self.acted
        return len(acted) == 1 and acted[0].intent == self.expected_intent

    @property
    def got_text(self) -> str:
        """What was heard, utterances separated by `` | ``."""
        return " | ".join(record.text for record in self.heard) if self.heard else "(no speech found)"


def percentile(values: Sequence[float], share: float) -> float:
    """The ``share`` (0..1) quantile, linearly interpolated; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    """Median; NaN for no values."""
    return statistics.median(values) if values else float("nan")


def peak_rss_kb() -> int:
    """Peak resident set size of this process so far (``ru_maxrss``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def current_rss_kb() -> int | None:
    """Current resident set size (``VmRSS``), KiB; None where /proc is unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None
