"""The spoken test material: sentences built from the catalog, off-topic talk, real recordings.

Everything is deterministic: the same catalog, split and voices give the same sentences,
voices, speeds and lead-ins on every run. Speech is synthesized with espeak-ng and converted
to 16 kHz mono int16 by sox, through pipes: no audio file is ever written.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from voicehello.audio.sources import read_wav
from voicehello.intents import templates
from voicehello.intents.catalog import SLOT, Catalog
from voicehello.intents.parser import IntentParser

BENCH_DIR = Path(__file__).resolve().parent
OFFTOPIC_FILE = BENCH_DIR / "offtopic.txt"
NATURAL_DIR = BENCH_DIR.parent / "tests" / "data" / "nlu"
"""The hand-written natural-phrasing set: ``in_domain.tsv`` and ``off_topic.tsv`` (dev/test split)."""
TESTDATA_DIR = Path("/usr/share/pocketsphinx/test/data")
"""Debian's pocketsphinx-testdata: real human recordings."""

VOICES = ("en-us", "en-gb+m3", "en-us+f2", "en-gb-x-rp+f4", "en-us+m7")
"""espeak-ng voices and variants the test sentences are spoken in (round robin)."""
SPEED_RANGE = (140, 185)
"""espeak-ng speaking rates (words per minute), drawn per sentence."""
LEAD_RANGE_S = (0.3, 0.5)
"""Silence (or noise) before the speech starts, drawn per sentence."""
TAIL_S = 1.0
"""Silence (or noise) after the speech: room for the endpointer's end-of-speech wait."""
PER_INTENT = 30
"""Sentences per intent in a full split (11 intents x 30 = 330 utterances)."""
WAKE_SHARE = 0.5
"""Share of test sentences that start with the wake phrase."""
WAKE_PHRASE = "hey neighbor"
WAKE_PHRASES = (
    "hey neighbor",
    "hi neighbor",
    "hello neighbor",
    "hey neighbour",
    "ok neighbor",
    "okay neighbor",
)
"""Openings that count as a wake phrase in the natural-phrasing set (for the wake count only)."""
SPLIT_SEEDS = {"dev": "voicehello-bench-dev-v1", "test": "voicehello-bench-test-v1"}
"""Random seeds of the splits: tune on ``dev``, report on ``test``."""

SOX_TO_PCM16 = ["-t", "raw", "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", "-L", "-"]


class BenchError(Exception):
    """A problem that stops the benchmark (missing tool, broken catalog), one line."""


@dataclass(frozen=True)
class Prompt:
    """One test sentence: what is said, how, and the intent it must give."""

    id: str
    """Stable id, e.g. ``test-0042``."""
    text: str
    """The words spoken (wake phrase included when there is one)."""
    voice: str
    """espeak-ng voice, e.g. ``en-gb+m3``."""
    speed: int
    """espeak-ng speaking rate in words per minute."""
    lead_s: float
    """Silence or noise before the speech, seconds."""
    intent: str | None
    """Expected intent (None for off-topic speech)."""
    slots: dict[str, str] = field(default_factory=dict)
    """Expected slot values (canonical)."""
    wake: bool = False
    """Whether the text starts with the wake phrase."""
    pattern: str = ""
    """The catalog pattern the sentence was filled from (empty for off-topic speech)."""
    accepted: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Natural-phrasing set: every accepted value of each expected slot (``slots`` holds the
    preferred one); empty for catalog sentences, whose slots must match exactly."""


@dataclass(frozen=True)
class Recording:
    """A real human recording (off-topic for voicehello)."""

    id: str
    """File name relative to the test data directory."""
    pcm: bytes
    """16 kHz mono int16 PCM."""

    @property
    def seconds(self) -> float:
        """Length in seconds."""
        return len(self.pcm) / 32000


def check_tools() -> None:
    """Raise :class:`BenchError` when espeak-ng or sox is missing."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed (Debian: apt install {tool})")


def _pattern(tree: templates.Seq, rng: random.Random) -> str:
    """One random expansion of a template tree, slots left as ``{slot}``."""
    tokens = templates.sample(tree, rng)
    return " ".join(SLOT % token.name if isinstance(token, templates.Slot) else token for token in tokens)


def build_prompts(catalog: Catalog, parser: IntentParser, split: str, count: int) -> tuple[list[Prompt], int]:
    """``count`` test sentences, balanced over the intents (round robin, so any prefix is too).

    For each sentence: the intent is next in turn, a template of it is chosen at random,
    expanded at random and filled with :meth:`Catalog.fill`; about half get the wake phrase.
    The expected intent and slots are what the parser makes of that exact text; picks the
    parser does not give the intended intent are skipped (their number is returned).
    """
    rng = random.Random(SPLIT_SEEDS[split])
    wake: str | None = None
    if WAKE_PHRASE in catalog.wake_phrases:
        wake = WAKE_PHRASE
    elif catalog.wake_phrases:
        wake = catalog.wake_phrases[0]
    intents = sorted(catalog.intents)
    prompts: list[Prompt] = []
    seen: set[str] = set()
    skipped = 0
    while len(prompts) < count:
        intent = intents[len(prompts) % len(intents)]
        for _ in range(200):
            pattern = _pattern(rng.choice(catalog.intents[intent].trees), rng)
            text = catalog.fill(intent, pattern, rng)
            woke = rng.random() < WAKE_SHARE
            if woke and wake is not None:
                text = f"{wake} {text}"
            if text in seen:
                continue
            expected = parser.parse(text)
            if expected.intent != intent:
                skipped += 1
                continue
            break
        else:
            raise BenchError(f"could not build a sentence the parser reads as {intent!r}; check the catalog")
        seen.add(text)
        index = len(prompts)
        prompts.append(
            Prompt(
                id=f"{split}-{index:04d}",
                text=text,
                voice=VOICES[index % len(VOICES)],
                speed=rng.randint(*SPEED_RANGE),
                lead_s=round(rng.uniform(*LEAD_RANGE_S), 2),
                intent=intent,
                slots=dict(expected.slots),
                wake=expected.woke,
                pattern=pattern,
            )
        )
    return prompts, skipped


def load_offtopic(split: str, path: Path = OFFTOPIC_FILE) -> list[Prompt]:
    """The off-topic sentences, each in one voice (round robin) at a seeded speed."""
    rng = random.Random(SPLIT_SEEDS[split] + "-offtopic")
    lines = path.read_text(encoding="utf-8").splitlines()
    sentences = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [
        Prompt(
            id=f"offtopic-{index:03d}",
            text=text,
            voice=VOICES[index % len(VOICES)],
            speed=rng.randint(*SPEED_RANGE),
            lead_s=round(rng.uniform(*LEAD_RANGE_S), 2),
            intent=None,
        )
        for index, text in enumerate(sentences)
    ]


def _tsv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a natural-phrasing TSV file (``#`` comments, then a header line)."""
    try:
        lines = [
            line
            for line in path.read_text(encoding="utf-8").splitlines()
            if line and not line.startswith("#")
        ]
    except OSError as exc:
        raise BenchError(f"cannot read the natural-phrasing set {path}: {exc}") from exc
    if not lines:
        raise BenchError(f"{path} has no header line")
    header = lines[0].split("\t")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != len(header):
            raise BenchError(f"{path}: row {number} has {len(fields)} fields, expected {len(header)}")
        rows.append(dict(zip(header, fields, strict=True)))
    return rows


def parse_slots(text: str) -> dict[str, tuple[str, ...]]:
    """``item=pasta maker; time=sunday at 2:00`` (``-`` for none; ``a|b`` alternatives)."""
    if text.strip() in ("", "-"):
        return {}
    slots: dict[str, tuple[str, ...]] = {}
    for pair in text.split(";"):
        name, sep, values = pair.partition("=")
        if not sep:
            raise BenchError(f"bad slot {pair!r} in the natural-phrasing set (expected name=value)")
        slots[name.strip()] = tuple(value.strip() for value in values.split("|"))
    return slots


def load_natural(split: str, directory: Path = NATURAL_DIR) -> tuple[list[Prompt], list[Prompt]]:
    """The natural-phrasing set's ``split``: in-domain requests and off-topic sentences, each
    spoken in one voice (round robin) at a seeded speed, as :func:`load_offtopic` does."""
    rng = random.Random(SPLIT_SEEDS[split] + "-natural")
    requests: list[Prompt] = []
    for row in _tsv_rows(directory / "in_domain.tsv"):
        if row["split"] != split:
            continue
        accepted = parse_slots(row["slots"])
        index = len(requests)
        requests.append(
            Prompt(
                id=f"natural-{split}-{index:04d}",
                text=row["text"],
                voice=VOICES[index % len(VOICES)],
                speed=rng.randint(*SPEED_RANGE),
                lead_s=round(rng.uniform(*LEAD_RANGE_S), 2),
                intent=row["intent"],
                slots={name: values[0] for name, values in accepted.items()},
                wake=any(row["text"].startswith(f"{w} ") for w in WAKE_PHRASES),
                accepted=accepted,
            )
        )
    offtopic: list[Prompt] = []
    for row in _tsv_rows(directory / "off_topic.tsv"):
        if row["split"] != split:
            continue
        index = len(offtopic)
        offtopic.append(
            Prompt(
                id=f"natural-offtopic-{split}-{index:03d}",
                text=row["text"],
                voice=VOICES[index % len(VOICES)],
                speed=rng.randint(*SPEED_RANGE),
                lead_s=round(rng.uniform(*LEAD_RANGE_S), 2),
                intent=None,
            )
        )
    return requests, offtopic


def load_recordings(data_dir: Path = TESTDATA_DIR) -> list[Recording]:
    """Real human speech from pocketsphinx-testdata (LibriVox, go forward, numbers, cards)."""
    recordings: list[Recording] = []
    for path in sorted((data_dir / "librivox").glob("*.wav")) + sorted((data_dir / "cards").glob("*.wav")):
        recordings.append(Recording(id=str(path.relative_to(data_dir)), pcm=read_wav(path)))
    for name in ("goforward.raw", "numbers.raw", "something.raw"):
        raw = (data_dir / name).read_bytes()
        recordings.append(Recording(id=name, pcm=raw[: len(raw) - len(raw) % 2]))
    return recordings


def babble_sources(data_dir: Path = TESTDATA_DIR) -> list[bytes]:
    """The LibriVox recordings, used as a radio talking in the background."""
    paths = sorted((data_dir / "librivox").glob("*.wav"))
    if not paths:
        raise BenchError(
            f"no LibriVox recordings under {data_dir} (Debian: apt install pocketsphinx-testdata)"
        )
    return [read_wav(path) for path in paths]


def synthesize(text: str, voice: str, speed: int) -> bytes:
    """Speak ``text`` with espeak-ng; return 16 kHz mono int16 PCM (kept in memory)."""
    try:
        wav = subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text], capture_output=True, check=True
        ).stdout
        pcm = subprocess.run(
            ["sox", "-t", "wav", "-", *SOX_TO_PCM16], input=wav, capture_output=True, check=True
        ).stdout
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace").strip().splitlines()
        raise BenchError(f"{exc.cmd[0]} failed for {text!r}: {detail[-1] if detail else exc}") from exc
    if not pcm:
        raise BenchError(f"espeak-ng produced no audio for {text!r} (voice {voice})")
    return pcm
