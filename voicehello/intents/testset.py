"""The natural-phrasing sets under tests/data/nlu: hand-written requests with expected slots
(``in_domain.tsv``) and everyday talk that is no request (``off_topic.tsv``), each line fixed to
the ``dev`` or ``test`` split.

Tune and calibrate on ``dev`` only; ``test`` is for reporting. The file headers give the format
and the slot value conventions. Read by ``bench/nlu.py``, tests/unit/test_nlu_data.py and any
calibration run from a checkout (the sets are not part of the installed package).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from voicehello.errors import VoicehelloError
from voicehello.intents.catalog import SLOT, Catalog
from voicehello.intents.parser import normalize

DATA_DIR = Path(__file__).resolve().parent.parent.parent / "tests" / "data" / "nlu"
"""Where the sets live in a checkout."""
IN_DOMAIN_FILE = DATA_DIR / "in_domain.tsv"
OFF_TOPIC_FILE = DATA_DIR / "off_topic.tsv"
SPLITS = ("dev", "test")
IN_DOMAIN_COLUMNS = ("split", "intent", "slots", "text")
OFF_TOPIC_COLUMNS = ("split", "category", "text")
NO_SLOTS = "-"


@dataclass(frozen=True)
class Request:
    """One in-domain utterance and what it should parse to."""

    split: str
    intent: str
    slots: Mapping[str, tuple[str, ...]]
    """Slot name -> accepted values, the preferred one first."""
    text: str
    line: int
    """Line number in its file (1-based), for error messages."""

    def expected(self) -> dict[str, str]:
        """Slot name -> the preferred value."""
        return {name: values[0] for name, values in self.slots.items()}


@dataclass(frozen=True)
class OffTopic:
    """One sentence that is not a request: it must be rejected."""

    split: str
    category: str
    text: str
    line: int


def same_value(expected: str, got: str) -> bool:
    """Whether two slot values are equal after lower-casing and collapsing whitespace."""
    return " ".join(expected.lower().split()) == " ".join(got.lower().split())


def slots_match(request: Request, got: Mapping[str, str]) -> bool:
    """Whether ``got`` has exactly the expected slots, each with an accepted value."""
    if set(got) != set(request.slots):
        return False
    return all(any(same_value(value, got[name]) for value in request.slots[name]) for name in request.slots)


def _rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, list[str]]]:
    """The data rows of a TSV set (comments skipped, header checked) with their line numbers."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise VoicehelloError(f"cannot read {path}: {error.strerror}") from error
    rows: list[tuple[int, list[str]]] = []
    header_seen = False
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if not header_seen:
            if tuple(fields) != columns:
                raise VoicehelloError(f"{path}:{number}: header must be {' <TAB> '.join(columns)}")
            header_seen = True
            continue
        if len(fields) != len(columns) or not all(field.strip() for field in fields):
            raise VoicehelloError(f"{path}:{number}: needs {len(columns)} non-empty tab-separated columns")
        if fields[0] not in SPLITS:
            raise VoicehelloError(f"{path}:{number}: split must be dev or test, not {fields[0]!r}")
        rows.append((number, fields))
    if not header_seen:
        raise VoicehelloError(f"{path}: no header line")
    return rows


def parse_slots(field: str, where: str) -> dict[str, tuple[str, ...]]:
    """``event=picnic by the river|picnic; time=sunday`` -> {"event": (...), "time": (...)}."""
    if field == NO_SLOTS:
        return {}
    slots: dict[str, tuple[str, ...]] = {}
    for pair in field.split(";"):
        name, equals, values = pair.strip().partition("=")
        alternatives = tuple(value.strip() for value in values.split("|"))
        if not equals or not name or not all(alternatives) or name in slots:
            raise VoicehelloError(f"{where}: bad slots {field!r} (want name=value[|alt]; name=value or -)")
        slots[name] = alternatives
    return slots


def load_requests(path: Path = IN_DOMAIN_FILE, split: str | None = None) -> list[Request]:
    """The in-domain set, or only its ``split``."""
    requests = [
        Request(fields[0], fields[1], parse_slots(fields[2], f"{path}:{number}"), fields[3], number)
        for number, fields in _rows(path, IN_DOMAIN_COLUMNS)
    ]
    return [request for request in requests if split is None or request.split == split]


def load_off_topic(path: Path = OFF_TOPIC_FILE, split: str | None = None) -> list[OffTopic]:
    """The off-topic set, or only its ``split``."""
    sentences = [
        OffTopic(fields[0], fields[1], fields[2], number) for number, fields in _rows(path, OFF_TOPIC_COLUMNS)
    ]
    return [sentence for sentence in sentences if split is None or sentence.split == split]


class TemplateIndex:
    """Which intents' catalog templates produce a sentence word for word (slots filled with a
    listed phrase or a time phrase, after an optional wake phrase): the sentences of the test
    split must not be such exact expansions, so that the test measures generalization."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._patterns = {name: frozenset(intent.patterns()) for name, intent in catalog.intents.items()}

    def intents_of(self, text: str) -> frozenset[str]:
        """The intents with a template that expands to exactly ``text`` (normalized)."""
        words = normalize(text).split()
        variants = [words]
        for wake in self.catalog.wake_phrases:
            wake_words = wake.split()
            if words[: len(wake_words)] == wake_words:
                variants.append(words[len(wake_words) :])
        return frozenset(
            name for name in self._patterns for variant in variants if self._expands(name, variant)
        )

    def _expands(self, intent: str, words: list[str]) -> bool:
        """Whether some template of ``intent`` expands to ``words``."""
        patterns = self._patterns[intent]
        if " ".join(words) in patterns:
            return True
        slots = list(self.catalog.intents[intent].slots)
        choices = [[None, *self._spans(intent, slot, words)] for slot in slots]
        for assignment in itertools.product(*choices):
            taken = sorted(
                (span, slot) for slot, span in zip(slots, assignment, strict=True) if span is not None
            )
            if not taken or any(a[1] > b[0] for (a, _), (b, _) in itertools.pairwise(taken)):
                continue
            out: list[str] = []
            position = 0
            for (start, end), slot in taken:
                out += [*words[position:start], SLOT % slot]
                position = end
            if " ".join(out + words[position:]) in patterns:
                return True
        return False

    def _spans(self, intent: str, slot: str, words: list[str]) -> list[tuple[int, int]]:
        """Word spans ``(start, end)`` that the slot's list accepts exactly."""
        slot_list = self.catalog.slot_list(intent, slot)
        longest = slot_list.longest_phrase
        return [
            (start, end)
            for start in range(len(words))
            for end in range(start + 1, min(len(words), start + longest) + 1)
            if slot_list.canonical(" ".join(words[start:end])) is not None
        ]
