"""The adaptation file: checked before PocketSphinx sees it, loaded, and saved owner-only.

An adaptation is one file, in one of two forms, told apart by its first bytes:

* an MLLR transform (text, what ``mllr_solve`` writes): the decoder's ``mllr`` option;
* adapted means (SphinxTrain's binary ``s3`` format, MLLR then MAP): the decoder's ``mean``
  option, replacing the model's means.

PocketSphinx ends the whole process on some malformed parameter files (a bad checksum, a
stream of the wrong size), so a file is checked here first: a file that fails the check, or
that PocketSphinx still refuses, is one log line and the recognizer decodes without it.
"""

from __future__ import annotations

import logging
import math
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from voicehello.errors import AdaptationError

log = logging.getLogger(__name__)

MEANS_PREFIX = b"s3\n"
"""How a binary means file starts (an MLLR transform is text and starts with a digit)."""
MAX_FILE_BYTES = 8 * 1024 * 1024
"""An adaptation file larger than this is not one."""

Kind = Literal["mllr", "mean"]


def kind_of(data: bytes) -> Kind:
    """``mean`` for adapted means, ``mllr`` for a transform (by the file's first bytes)."""
    return "mean" if data.startswith(MEANS_PREFIX) else "mllr"


def s3_header_end(data: bytes) -> int:
    """Offset of the first byte after ``endhdr\\n`` and the byte-order word."""
    end = data.find(b"endhdr\n", 0, 4096)
    if not data.startswith(MEANS_PREFIX) or end < 0:
        raise AdaptationError("not a SphinxTrain parameter file (no s3 header)")
    start = end + len("endhdr\n")
    if len(data) < start + 4 or struct.unpack_from("<i", data, start)[0] != 0x11223344:
        raise AdaptationError("not a little-endian SphinxTrain parameter file")
    return start + 4


def s3_checksum(words: np.ndarray) -> int:
    """SphinxTrain's running checksum (``bio.c``) over every word after the byte-order marker:
    rotate left by 20 bits, add the next word."""
    total = 0
    for word in words.tolist():
        total = (((total << 20) | (total >> 12)) + word) & 0xFFFFFFFF
    return total


def stream_lengths(model_means: bytes) -> list[int]:
    """The length of each feature stream, from the model's means file header."""
    start = s3_header_end(model_means)
    _codebooks, streams, _densities = struct.unpack_from("<3I", model_means, start)
    return list(struct.unpack_from(f"<{streams}I", model_means, start + 12))


def check_means(data: bytes, model_means: bytes) -> None:
    """Adapted means must have the model's exact layout, a valid checksum and finite values."""
    start = s3_header_end(data)
    reference_start = s3_header_end(model_means)
    if len(data) != len(model_means):
        raise AdaptationError(
            f"adapted means of {len(data)} bytes; this model's means have {len(model_means)}"
        )
    streams = len(stream_lengths(model_means))
    layout = 12 + 4 * streams + 4  # codebooks, streams, densities, each stream's length, value count
    if data[start : start + layout] != model_means[reference_start : reference_start + layout]:
        raise AdaptationError("adapted means made for another model (their dimensions differ)")
    body_start = start + layout
    values = np.frombuffer(data, dtype="<f4", count=(len(data) - body_start - 4) // 4, offset=body_start)
    if not bool(np.all(np.isfinite(values))) or float(np.max(np.abs(values))) > 1e4:
        raise AdaptationError("adapted means hold values out of range")
    has_checksum = b"chksum0 yes" in data[:start]
    if has_checksum:
        (stored,) = struct.unpack_from("<I", data, len(data) - 4)
        words = np.frombuffer(data, dtype="<u4", count=(len(data) - start - 4) // 4, offset=start)
        if s3_checksum(words) != stored:
            raise AdaptationError("adapted means fail their checksum (the file is damaged)")


def check_mllr(text: str, lengths: list[int]) -> None:
    """An MLLR transform: one class, a ``veclen x veclen`` matrix, a bias and a variance scale
    per stream of the model, and finite numbers only."""
    tokens = text.split()
    try:
        classes, streams = int(tokens[0]), int(tokens[1])
        values = [float(token) for token in tokens[2:]]
    except (IndexError, ValueError) as exc:
        raise AdaptationError("not an MLLR transform (it does not start with two counts)") from exc
    if classes != 1 or streams != len(lengths):
        raise AdaptationError(
            f"an MLLR transform of {classes} class(es) and {streams} stream(s) does not fit this model"
        )
    position = 0
    for length in lengths:
        if position >= len(values) or values[position] != length:
            raise AdaptationError("an MLLR transform whose stream lengths do not fit this model")
        position += 1 + length * length + 2 * length
    if position != len(values):
        raise AdaptationError("an MLLR transform of the wrong size (the file is damaged)")
    if not all(math.isfinite(value) and abs(value) < 1e4 for value in values):
        raise AdaptationError("an MLLR transform with values out of range")


def check_adaptation(data: bytes, hmm: Path) -> Kind:
    """Check an adaptation file's bytes against the model in ``hmm``; return its kind."""
    if len(data) > MAX_FILE_BYTES or not data:
        raise AdaptationError("not an adaptation file (empty or too large)")
    model_means = (hmm / "means").read_bytes()
    kind = kind_of(data)
    if kind == "mean":
        check_means(data, model_means)
    else:
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError as exc:
            raise AdaptationError("not an MLLR transform (not text)") from exc
        check_mllr(text, stream_lengths(model_means))
    return kind


def adaptation_option(path: Path | None, hmm: Path) -> dict[str, object]:
    """The decoder option that loads the adaptation at ``path`` (``{}`` when there is none, or
    when it cannot be used: then one log line says why)."""
    if path is None or not path.exists():
        return {}
    try:
        data = path.read_bytes()
        kind = check_adaptation(data, hmm)
    except (OSError, AdaptationError) as exc:
        log.warning("speaker adaptation %s not used: %s; decoding without it", path, exc)
        return {}
    return {kind: str(path)}


def load_adapted(make: Callable[[dict[str, object]], Any], path: Path | None, hmm: Path) -> Any:
    """``make(extra_options)`` with the adaptation at ``path`` when it is usable, else without."""
    option = adaptation_option(path, hmm)
    if not option:
        return make({})
    try:
        decoder = make(option)
    except (RuntimeError, ValueError) as exc:
        log.warning(
            "speaker adaptation %s not used: PocketSphinx refused it (%s); decoding without it", path, exc
        )
        return make({})
    log.info(
        "speaker adaptation loaded from %s (%s)",
        path,
        "MLLR transform" if "mllr" in option else "adapted means",
    )
    return decoder


def save_adaptation(data: bytes, path: Path) -> None:
    """Write ``data`` to ``path`` owner-only and atomically (a temporary name in the same
    directory, fsync'd, then renamed over the old file): an interrupted save keeps the old one."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise AdaptationError(f"cannot save the adaptation to {path}: {exc}") from exc
