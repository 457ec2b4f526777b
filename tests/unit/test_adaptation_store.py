"""The adaptation file: checked before PocketSphinx sees it, loaded when usable, saved owner-only.

Real files throughout: the bundled model's own means (a valid means file), damaged copies of
it, MLLR transforms written as ``mllr_solve`` writes them, and real PocketSphinx decoders.
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from typing import Any

import pytest

from voicehello.errors import AdaptationError
from voicehello.speech.adaptation.store import (
    adaptation_option,
    check_adaptation,
    save_adaptation,
)
from voicehello.speech.lm import build_arpa
from voicehello.speech.pocketsphinx import PocketSphinxRecognizer, model_root
from voicehello.speech.recognizer import recognize

HMM = model_root() / "en-us" / "en-us"
SENTENCES = ["can i borrow a ladder", "hey neighbor can i borrow a drill"]


def identity_mllr(streams: int = 3, length: int = 13) -> str:
    """A global MLLR transform that changes nothing (``mllr_solve``'s text layout)."""
    lines = ["1", str(streams)]
    for _ in range(streams):
        lines.append(str(length))
        for row in range(length):
            lines.append(" ".join("1.0" if column == row else "0.0" for column in range(length)))
        lines.append(" ".join(["0.0"] * length))
        lines.append(" ".join(["1.0"] * length))
    return "\n".join(lines) + "\n"


def test_the_models_own_means_and_an_identity_transform_pass() -> None:
    assert check_adaptation((HMM / "means").read_bytes(), HMM) == "mean"
    assert check_adaptation(identity_mllr().encode(), HMM) == "mllr"


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda data: data[:5000] + bytes([data[5000] ^ 1]) + data[5001:], "checksum"),
        (lambda data: data[:-400], "bytes"),
        (lambda data: b"s3\nversion 1.0\n", "s3"),
    ],
    ids=["one-bit-flipped", "truncated", "header-only"],
)
def test_damaged_means_are_refused(damage: object, reason: str) -> None:
    data = (HMM / "means").read_bytes()
    with pytest.raises(AdaptationError, match=reason):
        check_adaptation(damage(data), HMM)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (identity_mllr(streams=1), "stream"),
        (identity_mllr(length=12), "stream lengths"),
        (identity_mllr()[:400], "stream lengths|wrong size"),
        (identity_mllr().replace("0.0", "nan", 1), "out of range"),
        ("hello world", "two counts"),
    ],
    ids=["one-stream", "wrong-length", "cut-short", "nan", "prose"],
)
def test_malformed_transforms_are_refused(text: str, reason: str) -> None:
    with pytest.raises(AdaptationError, match=reason):
        check_adaptation(text.encode(), HMM)


def test_binary_garbage_is_refused() -> None:
    with pytest.raises(AdaptationError, match="not text"):
        check_adaptation(bytes(range(256)) * 4, HMM)


def test_no_file_means_no_option(tmp_path: Path) -> None:
    assert adaptation_option(None, HMM) == {}
    assert adaptation_option(tmp_path / "absent", HMM) == {}


def test_corrupt_adaptation_is_one_log_line_and_decoding_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, espeak: Any
) -> None:
    """A damaged file at ``speech.adaptation``: the recognizer logs one line and decodes
    without it (before the check, PocketSphinx refused to start: ModelError)."""
    corrupt = tmp_path / "adaptation"
    corrupt.write_text("1\n3\n13\n0.5 0.25\n", encoding="utf-8")
    words = {word for sentence in SENTENCES for word in sentence.split()}
    with caplog.at_level(logging.INFO, logger="voicehello.speech.adaptation.store"):
        recognizer = PocketSphinxRecognizer(words, arpa=build_arpa(SENTENCES), adaptation=corrupt)
    lines = [record for record in caplog.records if record.name == "voicehello.speech.adaptation.store"]
    assert len(lines) == 1, [record.getMessage() for record in lines]
    assert lines[0].levelno == logging.WARNING
    assert str(corrupt) in lines[0].getMessage()
    assert "decoding without it" in lines[0].getMessage()
    pcm = espeak.pcm("can i borrow a ladder")
    assert recognize(recognizer, pcm).text == "can i borrow a ladder"


def test_a_valid_transform_is_loaded_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "adaptation"
    path.write_text(identity_mllr(), encoding="utf-8")
    words = {word for sentence in SENTENCES for word in sentence.split()}
    with caplog.at_level(logging.INFO, logger="voicehello.speech.adaptation.store"):
        PocketSphinxRecognizer(words, arpa=build_arpa(SENTENCES), adaptation=path)
    assert any(
        "speaker adaptation loaded" in record.getMessage() and "MLLR" in record.getMessage()
        for record in caplog.records
    ), caplog.text


def test_saved_owner_only_and_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "keys" / "adaptation" / "pocketsphinx-en-us"
    save_adaptation(b"first", target)
    save_adaptation(identity_mllr().encode(), target)
    assert target.read_text(encoding="utf-8") == identity_mllr()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in target.parent.iterdir()) == ["pocketsphinx-en-us"]
