"""voicehello typed benchmark: text -> intent on the natural-phrasing sets (no speech involved).

Usage (from the checkout)::

    .venv/bin/python bench/nlu.py                      # dev split (the one to tune on)
    .venv/bin/python bench/nlu.py --split test         # the numbers to report; never tune on them
    .venv/bin/python bench/nlu.py --split both --errors
    .venv/bin/python bench/nlu.py --json > nlu.json

It loads the catalog and builds ``IntentParser(catalog, threshold=...)`` (timed: for a model-based
parser this includes loading or training its model), parses every sentence of
tests/data/nlu/in_domain.tsv and off_topic.tsv of the chosen split, and prints:

* strict accuracy: intent right and every slot right (values compared lower-cased with whitespace
  collapsed; a line may accept alternatives, see the file header); intent accuracy; wrong intent
  (accepted as another intent); rejected; the same per intent, and strict accuracy separately for
  utterances whose slot values are all listed in the catalog ("known") or not ("open");
* off-topic accepted (any intent returned), overall and per category;
* load time, memory the parser adds (resident set size), parse latency p50/p95.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
if str(PROJECT_DIR) not in sys.path:  # `python bench/nlu.py` puts only bench/ on the path
    sys.path.insert(0, str(PROJECT_DIR))

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

from bench.measure import current_rss_kb, percentile  # noqa: E402
from voicehello.config import DEFAULT_CATALOG_FILE, IntentSettings  # noqa: E402
from voicehello.errors import VoicehelloError  # noqa: E402
from voicehello.intents.catalog import Catalog, load_catalog  # noqa: E402
from voicehello.intents.parser import IntentParser, ParseResult  # noqa: E402
from voicehello.intents.testset import (  # noqa: E402
    IN_DOMAIN_FILE,
    OFF_TOPIC_FILE,
    OffTopic,
    Request,
    load_off_topic,
    load_requests,
    slots_match,
)

TIME_LIST = "time"


@dataclass
class Tally:
    """Counts for one group of in-domain utterances."""

    n: int = 0
    strict: int = 0
    intent_right: int = 0
    wrong_intent: int = 0
    rejected: int = 0

    def add(self, request: Request, result: ParseResult) -> None:
        """Count one parse."""
        self.n += 1
        if result.intent is None:
            self.rejected += 1
        elif result.intent != request.intent:
            self.wrong_intent += 1
        else:
            self.intent_right += 1
            self.strict += slots_match(request, result.slots)

    def rates(self) -> dict[str, float]:
        """The counts as shares of ``n`` (NaN when empty)."""
        share = _share(self.n)
        return {
            "strict": share(self.strict),
            "intent": share(self.intent_right),
            "wrong_intent": share(self.wrong_intent),
            "rejected": share(self.rejected),
        }


@dataclass
class Report:
    """Everything one run measured."""

    split: str
    threshold: float
    catalog: str
    load_s: float
    rss_added_kb: int | None
    in_domain: Tally = field(default_factory=Tally)
    per_intent: dict[str, Tally] = field(default_factory=dict)
    by_values: dict[str, Tally] = field(default_factory=dict)
    off_topic_n: int = 0
    off_topic_accepted: int = 0
    off_topic_per_category: dict[str, list[int]] = field(default_factory=dict)
    """category -> [n, accepted]"""
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The numbers, JSON-ready."""
        return {
            "split": self.split,
            "threshold": self.threshold,
            "catalog": self.catalog,
            "in_domain": {"n": self.in_domain.n, **self.in_domain.rates()},
            "off_topic": {
                "n": self.off_topic_n,
                "accepted": _share(self.off_topic_n)(self.off_topic_accepted),
            },
            "per_intent": {name: {"n": t.n, **t.rates()} for name, t in sorted(self.per_intent.items())},
            "by_slot_values": {name: {"n": t.n, **t.rates()} for name, t in sorted(self.by_values.items())},
            "off_topic_per_category": {
                name: {"n": n, "accepted": _share(n)(accepted)}
                for name, (n, accepted) in sorted(self.off_topic_per_category.items())
            },
            "load_s": self.load_s,
            "rss_added_kb": self.rss_added_kb,
            "parse_ms": {
                "p50": percentile(self.latencies_ms, 0.50),
                "p95": percentile(self.latencies_ms, 0.95),
            },
            "counts": asdict(self.in_domain),
            "errors": self.errors,
        }


def _share(total: int) -> Callable[[int], float]:
    return lambda count: count / total if total else float("nan")


def value_kind(catalog: Catalog, request: Request) -> str:
    """``none`` (no slots), ``known`` (every non-time value is a listed canonical) or ``open``."""
    names = [name for name in request.slots if catalog.intents[request.intent].slots.get(name) != TIME_LIST]
    if not names:
        return "none"
    known = all(request.slots[name][0] in catalog.slot_list(request.intent, name).values for name in names)
    return "known" if known else "open"


def _timed(parser: IntentParser, text: str, latencies: list[float]) -> ParseResult:
    start = time.perf_counter()
    result = parser.parse(text)
    latencies.append((time.perf_counter() - start) * 1000.0)
    return result


def run(
    catalog_path: Path,
    threshold: float,
    requests: Sequence[Request],
    off_topic: Sequence[OffTopic],
    split: str,
) -> Report:
    """Build the parser (timed) and parse every sentence."""
    rss_before = current_rss_kb()
    start = time.perf_counter()
    catalog = load_catalog(catalog_path)
    parser = IntentParser(catalog, threshold=threshold)
    load_s = time.perf_counter() - start
    rss_after = current_rss_kb()
    added = rss_after - rss_before if rss_before is not None and rss_after is not None else None
    report = Report(split, threshold, str(catalog_path), load_s, added)
    for request in requests:
        result = _timed(parser, request.text, report.latencies_ms)
        report.in_domain.add(request, result)
        report.per_intent.setdefault(request.intent, Tally()).add(request, result)
        report.by_values.setdefault(value_kind(catalog, request), Tally()).add(request, result)
        if result.intent != request.intent or not slots_match(request, result.slots):
            report.errors.append(_error(IN_DOMAIN_FILE, request.line, request.text, request, result))
    for sentence in off_topic:
        result = _timed(parser, sentence.text, report.latencies_ms)
        counts = report.off_topic_per_category.setdefault(sentence.category, [0, 0])
        counts[0] += 1
        report.off_topic_n += 1
        if result.intent is not None:
            counts[1] += 1
            report.off_topic_accepted += 1
            report.errors.append(_error(OFF_TOPIC_FILE, sentence.line, sentence.text, None, result))
    return report


def _error(path: Path, line: int, text: str, request: Request | None, result: ParseResult) -> dict[str, Any]:
    return {
        "where": f"{path.name}:{line}",
        "text": text,
        "expected": None if request is None else {"intent": request.intent, "slots": request.expected()},
        "got": {
            "intent": result.intent,
            "slots": dict(result.slots),
            "confidence": round(result.confidence, 3),
        },
    }


def _pct(value: float) -> str:
    return "   n/a" if math.isnan(value) else f"{100 * value:5.1f}%"


def format_report(report: Report, errors: bool) -> str:
    """The report as a table for people."""
    summary = report.summary()
    ind, off = summary["in_domain"], summary["off_topic"]
    lines = [
        f"typed NLU benchmark, split={report.split}, threshold={report.threshold}, catalog={report.catalog}",
        f"load {report.load_s:.2f} s, memory added {report.rss_added_kb} KiB, "
        f"parse p50 {summary['parse_ms']['p50']:.2f} ms, p95 {summary['parse_ms']['p95']:.2f} ms",
        "",
        f"in-domain  n={ind['n']}  strict {_pct(ind['strict'])}  intent {_pct(ind['intent'])}  "
        f"wrong intent {_pct(ind['wrong_intent'])}  rejected {_pct(ind['rejected'])}",
        f"off-topic  n={off['n']}  accepted {_pct(off['accepted'])}",
        "",
        f"{'intent':<16}{'n':>5}{'strict':>9}{'intent':>9}{'wrong':>9}{'rejected':>10}",
    ]
    groups = [*summary["per_intent"].items(), ("", None), *summary["by_slot_values"].items()]
    for name, row in groups:
        if row is None:
            lines.append(f"{'slot values:':<16}")
            continue
        lines.append(
            f"{name:<16}{row['n']:>5}{_pct(row['strict']):>9}{_pct(row['intent']):>9}"
            f"{_pct(row['wrong_intent']):>9}{_pct(row['rejected']):>10}"
        )
    lines += ["", f"{'off-topic':<16}{'n':>5}{'accepted':>10}"]
    lines += [
        f"{name:<16}{row['n']:>5}{_pct(row['accepted']):>10}"
        for name, row in summary["off_topic_per_category"].items()
    ]
    if errors:
        lines += ["", f"failures ({len(report.errors)}):"]
        for error in report.errors:
            expected = error["expected"] or {"intent": None, "slots": {}}
            got = error["got"]
            lines.append(
                f"  {error['where']}: {error['text']!r}\n"
                f"      want {expected['intent']} {expected['slots']}  got {got['intent']} {got['slots']} ({got['confidence']})"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; one ``voicehello: ...`` line and exit 1 on bad input."""
    parser = argparse.ArgumentParser(description="typed NLU benchmark on tests/data/nlu")
    parser.add_argument("--split", choices=("dev", "test", "both"), default="dev")
    parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG_FILE)
    parser.add_argument("--threshold", type=float, default=IntentSettings().threshold)
    parser.add_argument("--in-domain", type=Path, default=IN_DOMAIN_FILE)
    parser.add_argument("--off-topic", type=Path, default=OFF_TOPIC_FILE)
    parser.add_argument("--errors", action="store_true", help="list every failure")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    split = None if args.split == "both" else args.split
    try:
        requests = load_requests(args.in_domain, split)
        off_topic = load_off_topic(args.off_topic, split)
        report = run(args.catalog, args.threshold, requests, off_topic, args.split)
    except VoicehelloError as error:
        print(f"voicehello: {error}", file=sys.stderr)
        return 1
    if args.json:
        summary = report.summary()
        if not args.errors:
            summary.pop("errors")
        print(json.dumps(summary, indent=2))
    else:
        print(format_report(report, args.errors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
