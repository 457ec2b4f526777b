"""The benchmark's table, the machine it ran on, and the README section it refreshes."""

from __future__ import annotations

import math
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    metric: str
    result: str
    target: str = "—"
    status: str = ""
    """``pass``, ``short`` or empty when there is no target."""


def check(value: float, limit: float, *, at_least: bool) -> str:
    """``pass`` when ``value`` meets the limit, ``short`` when not (or when it is NaN)."""
    if math.isnan(value):  # nothing was measured
        return "short"
    ok = value >= limit if at_least else value <= limit
    return "pass" if ok else "short"


def markdown_table(rows: list[Row]) -> str:
    """The rows as a GitHub markdown table."""
    lines = ["| Metric | Result | Target | Status |", "|---|---|---|---|"]
    lines += [f"| {row.metric} | {row.result} | {row.target} | {row.status} |" for row in rows]
    return "\n".join(lines)


def text_table(rows: list[Row]) -> str:
    """The rows aligned for a terminal."""
    header = Row("Metric", "Result", "Target", "Status")
    widths = [
        max(len(getattr(row, name)) for row in [header, *rows]) for name in ("metric", "result", "target")
    ]

    def line(row: Row) -> str:
        cells = f"{row.metric:<{widths[0]}}  {row.result:>{widths[1]}}  {row.target:<{widths[2]}}"
        return f"{cells}  {row.status}".rstrip()

    rule = "-" * (sum(widths) + 12)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str | int]:
    """CPU, cores, OS and Python of this machine."""
    debian = Path("/etc/debian_version")
    system = f"Debian {debian.read_text().strip()}" if debian.exists() else platform.platform()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "arch": platform.machine(),
        "os": system,
        "python": platform.python_version(),
    }


def update_readme(readme: Path, section: str, markers: tuple[str, str] = (README_START, README_END)) -> str:
    """Replace the text between the bench markers of ``readme`` with ``section``.

    A missing README is created holding just the markers and the section. Nothing outside
    the markers is touched. Returns a one-line account of what happened.
    """
    begin_mark, end_mark = markers
    if not readme.exists():
        readme.write_text(f"{begin_mark}\n{end_mark}\n", encoding="utf-8")
    text = readme.read_text(encoding="utf-8")
    start = text.find(begin_mark)
    end = text.find(end_mark, start + len(begin_mark)) if start >= 0 else -1
    if start < 0 or end < 0:
        return f"{readme} has no {begin_mark} ... {end_mark} markers; left it unchanged"
    updated = text[: start + len(begin_mark)] + "\n" + section.strip("\n") + "\n" + text[end:]
    if updated == text:
        return f"{readme} already up to date"
    handle, temp = tempfile.mkstemp(dir=readme.parent, prefix=".README.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(updated)
        os.chmod(temp, readme.stat().st_mode & 0o777)
        os.replace(temp, readme)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return f"updated the benchmark section of {readme}"
