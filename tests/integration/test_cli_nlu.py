"""`voicehello parse --explain` and `voicehello catalog --train`, run as the console script."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

Run = Callable[..., "subprocess.CompletedProcess[str]"]


def test_parse_explain_shows_scores_spans_and_the_model(voicehello: Run) -> None:
    result = voicehello("parse", "--explain", "does anybody have a pasta maker i could use")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("borrow_item item='pasta maker'")
    assert "  source: model" in lines
    assert any(line.startswith("  scores: borrow_item ") for line in lines)
    assert "  slot item: 'pasta maker' -> 'pasta maker' (open)" in lines


def test_parse_explain_names_the_exact_template(voicehello: Run) -> None:
    result = voicehello("parse", "--explain", "--json", "could someone lend me a ladder")
    assert result.returncode == 0, result.stderr
    said = json.loads(result.stdout)
    assert said["intent"] == "borrow_item"
    assert said["explanation"]["source"] == "template"
    assert said["explanation"]["spans"] == [
        {"slot": "item", "words": "ladder", "value": "ladder", "how": "known"}
    ]


def test_parse_explain_says_why_it_rejected(voicehello: Run) -> None:
    result = voicehello("parse", "--explain", "i borrowed the ladder yesterday")
    assert result.returncode == 1
    assert "  rejected: not a request (none is most likely)" in result.stdout.splitlines()


def test_catalog_train_writes_into_the_cache_dir(voicehello: Run, model_cache: Path) -> None:
    result = voicehello("catalog", "--train")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"trained the intent model into {model_cache}/nlu/")
    folder = Path(result.stdout.strip().rsplit(" ", 1)[1])
    assert (folder / "meta.json").is_file()
