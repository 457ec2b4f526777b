"""Make voicehello/intents/data/negatives.txt: everyday sentences that are not requests to the
street, the "none" class the intent model trains on (issue 10, point 4).

Source: Debian's ``fortunes`` and ``fortunes-min`` packages (BSD fortune cookie files, freely
redistributable; see /usr/share/doc/fortunes/copyright). Only this script needs them, the device
does not: the extracted file is shipped in the package. To remake it::

    apt-get install fortunes fortunes-min
    .venv/bin/python scripts/make_negatives.py

Each cookie is split into sentences, attributions dropped, cleaned to lower-case words, kept when it
has 4-20 words, deduplicated, and dropped when it is a sentence of the test set
(tests/data/nlu/*.tsv) or looks like a reply an intent owns ("yes ...", "never mind" ...). The
output is sorted, so the same packages give the same file.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORTUNE_DIR = Path("/usr/share/games/fortunes")
FILES = (
    "fortunes", "literature", "riddles", "food", "kids", "people", "pets", "platitudes", "wisdom",
    "work", "education", "miscellaneous", "humorists", "love", "science", "sports",
)  # fmt: skip
"""Cookie files used: the everyday and proverb-like ones, no computing jargon or verse."""
OUTPUT = ROOT / "voicehello" / "intents" / "data" / "negatives.txt"
TEST_SETS = (
    ROOT / "tests" / "data" / "nlu" / "in_domain.tsv",
    ROOT / "tests" / "data" / "nlu" / "off_topic.tsv",
)
MIN_WORDS, MAX_WORDS = 4, 20
REPLY_STARTS = frozenset(
    {"yes", "yeah", "yep", "yup", "no", "nope", "nah", "ok", "okay", "sure", "hello", "hi", "hey",
     "howdy", "cancel", "sorry", "absolutely", "definitely", "aye"}
)  # fmt: skip
"""First words of replies and greetings: a cookie starting so is not a safe "none" example."""
REPLY_PHRASES = ("never mind", "count me in", "i'm in", "i'll be there", "i'll come", "forget it")
HEADER = """\
# Everyday sentences that are NOT requests to the street: the "none" class of the intent model.
# Source: Debian's fortunes and fortunes-min packages (BSD fortune cookie files: {files}),
# freely redistributable under the BSD licence of fortune-mod (Copyright (c) 1991 The Regents of
# the University of California; see /usr/share/doc/fortunes/copyright). Split into sentences,
# cleaned to lower-case words, {low}-{high} words, deduplicated, test-set sentences removed.
# Made by scripts/make_negatives.py; do not edit by hand. Training data only: never evaluate on it.
"""

_ATTRIBUTION = re.compile(r"^\s*(--|-- |\u2014)")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n\s*\n")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
_HAS_JUNK = re.compile(r"[0-9@#$%^&*_=+<>{}\[\]|\\/~`]")


def cookies(text: str) -> Iterator[str]:
    """The cookies of one fortune file (separated by lines holding only ``%``)."""
    for cookie in re.split(r"^%\s*$", text, flags=re.MULTILINE):
        lines = [line for line in cookie.splitlines() if not _ATTRIBUTION.match(line)]
        body = "\n".join(lines).strip()
        if body:
            yield body


def sentences(cookie: str) -> Iterator[str]:
    """Raw sentences of a cookie (dialogue-ish lines like ``Q:`` are dropped with their sentence)."""
    for raw in _SENTENCE_END.split(cookie):
        raw = " ".join(raw.split())
        if raw:
            yield raw


def clean(sentence: str) -> str | None:
    """``sentence`` as lower-case words, or None when it is not a plain everyday sentence."""
    if _HAS_JUNK.search(sentence):
        return None
    lowered = sentence.lower().replace("\u2019", "'")
    words = _WORD.findall(lowered)
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return None
    letters = sum(len(word) for word in words)
    if letters < 0.6 * len(re.sub(r"\s", "", lowered)):
        return None  # mostly punctuation, quotes or symbols
    text = " ".join(words)
    if words[0] in REPLY_STARTS or any(phrase in text for phrase in REPLY_PHRASES):
        return None
    return text


def test_sentences(paths: Iterable[Path]) -> set[str]:
    """The texts of the natural-phrasing test set (last column of each TSV)."""
    found: set[str] = set()
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line and not line.startswith("#") and not line.startswith("split\t"):
                found.add(line.rsplit("\t", 1)[-1].strip())
    return found


def extract(fortune_dir: Path, files: Iterable[str], excluded: set[str]) -> list[str]:
    """Cleaned, deduplicated, sorted sentences of ``files``, minus ``excluded``."""
    kept: set[str] = set()
    for name in files:
        text = (fortune_dir / name).read_text(encoding="utf-8", errors="replace")
        for cookie in cookies(text):
            for sentence in sentences(cookie):
                cleaned = clean(sentence)
                if cleaned is not None and cleaned not in excluded:
                    kept.add(cleaned)
    return sorted(kept)


def main(argv: list[str] | None = None) -> int:
    """Write the negatives file; one ``voicehello: ...`` line and exit 1 when fortunes are missing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fortunes", type=Path, default=FORTUNE_DIR, help="fortune files directory")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    missing = [name for name in FILES if not (args.fortunes / name).is_file()]
    if missing:
        print(
            f"voicehello: fortune files missing in {args.fortunes}: {', '.join(missing)} "
            "(apt-get install fortunes fortunes-min)",
            file=sys.stderr,
        )
        return 1
    lines = extract(args.fortunes, FILES, test_sentences(TEST_SETS))
    header = HEADER.format(files=", ".join(FILES), low=MIN_WORDS, high=MAX_WORDS)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(header + "".join(f"{line}\n" for line in lines), encoding="utf-8")
    print(f"{len(lines)} sentences -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
