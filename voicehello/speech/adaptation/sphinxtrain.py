"""Debian's SphinxTrain tools run on the bundled PocketSphinx model.

The chain is the one CMU Sphinx documents for adapting an acoustic model: ``sphinx_fe``
turns audio into cepstra, ``bw`` collects statistics against the prompts' words,
``mllr_solve`` turns them into an MLLR transform, ``mllr_transform`` applies it to the means
and ``map_adapt`` moves each Gaussian mean towards the speaker (MAP). Everything they read and
write lives in one private working directory (see :mod:`voicehello.speech.adaptation.enroll`).

The bundled model ships ``sendump`` (quantized mixture weights) and a binary ``mdef``; ``bw``
needs ``mixture_weights`` and a text ``mdef``: both are rebuilt here (the mixture weights
from ``sendump``, as SphinxTrain's own ``cmusphinx/sendump.py`` does).
"""

from __future__ import annotations

import logging
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voicehello.errors import AdaptationError

log = logging.getLogger(__name__)

SPHINXTRAIN_DIR = Path("/usr/lib/sphinxtrain")
"""Where Debian's ``sphinxtrain`` package puts ``bw``, ``mllr_solve`` and the others."""
DEBIAN_PACKAGES = "sphinxtrain sphinxbase-utils pocketsphinx"
"""The Debian packages holding the tools (``sphinx_fe``; ``pocketsphinx_mdef_convert``)."""
TOOL_TIMEOUT_S = 600.0
"""No tool runs longer than this (a 20-prompt enrollment takes seconds)."""
FRONT_END = ("-remove_noise", "no", "-remove_silence", "no", "-dither", "no")
"""``sphinx_fe`` options that make its cepstra those the recognizer computes (its defaults
remove silence frames and noise; the recognizer does neither)."""
S3_MAGIC = 0x11223344
"""Byte-order marker of SphinxTrain's binary parameter files."""


@dataclass(frozen=True)
class Toolchain:
    """Paths of the SphinxTrain programs."""

    sphinx_fe: Path
    """Cepstra from audio."""
    mdef_convert: Path
    """``pocketsphinx_mdef_convert``: the binary model definition as text."""
    bw: Path
    """Baum-Welch statistics."""
    mllr_solve: Path
    """An MLLR transform from the statistics."""
    mllr_transform: Path
    """Means with an MLLR transform applied."""
    map_adapt: Path
    """MAP re-estimation of the means."""

    @classmethod
    def find(cls) -> Toolchain:
        """The installed tools; :class:`AdaptationError` naming the packages when one is missing."""
        found: dict[str, Path] = {}
        names = {
            "sphinx_fe": "sphinx_fe",
            "mdef_convert": "pocketsphinx_mdef_convert",
            "bw": "bw",
            "mllr_solve": "mllr_solve",
            "mllr_transform": "mllr_transform",
            "map_adapt": "map_adapt",
        }
        for field_name, program in names.items():
            path = SPHINXTRAIN_DIR / program
            located = str(path) if path.is_file() else shutil.which(program)
            if located is None:
                raise AdaptationError(
                    f"{program} is not installed; speaker adaptation needs Debian's {DEBIAN_PACKAGES} "
                    f"(apt install {DEBIAN_PACKAGES})"
                )
            found[field_name] = Path(located)
        return cls(**found)


@dataclass(frozen=True)
class BaseModel:
    """The speaker-independent acoustic model and its dictionary."""

    hmm: Path
    """The model directory (``means``, ``variances``, ``sendump``, ``mdef`` ...)."""
    dictionary: Path
    """The pronunciation dictionary."""

    def file(self, name: str) -> Path:
        """One of the model's files."""
        return self.hmm / name


def run_tool(program: Path, args: list[str], doing: str) -> None:
    """Run one tool; its failure becomes one line naming what it was doing and its last words."""
    try:
        result = subprocess.run(
            [str(program), *args],
            check=False,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=TOOL_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AdaptationError(f"{program.name} could not run while {doing}: {exc}") from exc
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if "ERROR" in line or "FATAL" in line]
        last = (lines or result.stderr.strip().splitlines() or ["no output"])[-1].strip()
        raise AdaptationError(f"{program.name} failed while {doing}: {last}")
    log.debug("%s done (%s)", program.name, doing)


def quantized_mixture_weights(sendump: bytes) -> np.ndarray:
    """Mixture weights ``[senone][stream][density]`` decoded from a ``sendump`` file.

    Layout (PocketSphinx ``ptm_mgau.c``): length-prefixed header strings ending in an empty one,
    the number of densities and of senones, then for each stream and density one byte per
    senone, ``-log(weight)`` in units of ``log(1.0001) << mixw_shift``.
    """
    try:
        offset = 0

        def number() -> int:
            nonlocal offset
            (value,) = struct.unpack_from("<I", sendump, offset)
            offset += 4
            return int(value)

        title = number()
        offset += title
        header: dict[str, int] = {}
        while length := number():
            words = sendump[offset : offset + length - 1].decode("ascii", "replace").split()
            offset += length
            if len(words) == 2 and words[1].isdigit():
                header[words[0]] = int(words[1])
        if header.get("cluster_count", 0) != 0:
            raise AdaptationError("this sendump file is cluster-compressed; only plain sendump is supported")
        densities, senones = number(), number()
        streams = header.get("feature_count", 1)
        shift = header.get("mixw_shift", 10)
        codes = np.frombuffer(sendump, dtype=np.uint8, count=streams * densities * senones, offset=offset)
    except (struct.error, ValueError) as exc:
        raise AdaptationError(f"the model's sendump file cannot be read: {exc}") from exc
    logs = -codes.reshape(streams, densities, senones).astype(np.float64) * float(1 << shift) * np.log(1.0001)
    weights = np.exp(logs).transpose(2, 0, 1)
    weights /= weights.sum(axis=2, keepdims=True)
    result: np.ndarray = weights.astype(np.float32)
    return result


def write_s3_array(path: Path, array: np.ndarray) -> None:
    """A 3-d float array in SphinxTrain's binary parameter format (no checksum)."""
    head = b"s3\nversion 1.0\n"
    pad = (4 - (len(head) + len(b"endhdr\n")) % 4) % 4
    body = struct.pack("<i", S3_MAGIC) + struct.pack("<4I", *array.shape, array.size)
    path.write_bytes(head + b" " * pad + b"endhdr\n" + body + array.astype("<f4").tobytes())


@dataclass(frozen=True)
class TrainingModel:
    """The model files ``bw`` reads, made in the working directory."""

    mdef: Path
    """The model definition as text."""
    mixture_weights: Path
    """Mixture weights rebuilt from ``sendump``."""


def training_model(tools: Toolchain, base: BaseModel, work: Path) -> TrainingModel:
    """Make the text ``mdef`` and the ``mixture_weights`` that ``bw`` needs."""
    mdef = work / "mdef.txt"
    run_tool(tools.mdef_convert, ["-text", str(base.file("mdef")), str(mdef)], "reading the model definition")
    mixw = work / "mixture_weights"
    write_s3_array(mixw, quantized_mixture_weights(base.file("sendump").read_bytes()))
    return TrainingModel(mdef=mdef, mixture_weights=mixw)


def cepstra(tools: Toolchain, base: BaseModel, work: Path, ids: list[str]) -> None:
    """``<id>.raw`` (16 kHz int16 PCM) -> ``<id>.mfc`` with the model's front end."""
    control = work / "features.ctl"
    control.write_text("".join(f"{name}\n" for name in ids), encoding="utf-8")
    args = ["-argfile", str(base.file("feat.params")), "-samprate", "16000", "-c", str(control)]
    args += ["-di", str(work), "-do", str(work), "-ei", "raw", "-eo", "mfc", "-raw", "yes"]
    run_tool(tools.sphinx_fe, [*args, "-input_endian", "little", *FRONT_END], "computing features")


@dataclass(frozen=True)
class Corpus:
    """What ``bw`` aligns: the utterances' ids and their words."""

    control: Path
    """One utterance id per line."""
    transcripts: Path
    """``<s> words </s> (id)`` per line."""


def corpus(work: Path, texts: dict[str, str]) -> Corpus:
    """Write the control and transcript files for ``texts`` (id -> words)."""
    control = work / "adapt.ctl"
    control.write_text("".join(f"{name}\n" for name in texts), encoding="utf-8")
    transcripts = work / "adapt.transcription"
    transcripts.write_text(
        "".join(f"<s> {words} </s> ({name})\n" for name, words in texts.items()), encoding="utf-8"
    )
    return Corpus(control=control, transcripts=transcripts)


def statistics(
    tools: Toolchain,
    base: BaseModel,
    model: TrainingModel,
    data: Corpus,
    accumulated: Path,
    *,
    means: Path | None = None,
    mllr: Path | None = None,
) -> None:
    """Run ``bw`` over the corpus into ``accumulated`` (optionally with other means or an MLLR
    transform applied while aligning)."""
    accumulated.mkdir(mode=0o700)
    args = ["-moddeffn", str(model.mdef), "-ts2cbfn", ".ptm.", "-meanfn", str(means or base.file("means"))]
    args += ["-varfn", str(base.file("variances")), "-mixwfn", str(model.mixture_weights)]
    args += ["-tmatfn", str(base.file("transition_matrices")), "-dictfn", str(base.dictionary)]
    args += ["-fdictfn", str(base.file("noisedict")), "-feat", "1s_c_d_dd", "-svspec", "0-12/13-25/26-38"]
    args += ["-cmn", "batch", "-agc", "none", "-varnorm", "no", "-timing", "no"]
    args += [
        "-ctlfn",
        str(data.control),
        "-lsnfn",
        str(data.transcripts),
        "-cepdir",
        str(data.control.parent),
    ]
    args += ["-accumdir", str(accumulated)]
    if mllr is not None:
        args += ["-mllrmat", str(mllr)]
    run_tool(tools.bw, args, "aligning the prompts")


def solve_mllr(tools: Toolchain, base: BaseModel, accumulated: Path, out: Path) -> None:
    """One global MLLR transform of the means from ``bw``'s statistics."""
    args = ["-meanfn", str(base.file("means")), "-varfn", str(base.file("variances"))]
    run_tool(tools.mllr_solve, [*args, "-outmllrfn", str(out), "-accumdir", str(accumulated)], "solving MLLR")


def transform_means(tools: Toolchain, base: BaseModel, mllr: Path, out: Path) -> None:
    """The model's means with ``mllr`` applied."""
    args = ["-inmeanfn", str(base.file("means")), "-outmeanfn", str(out), "-mllrmat", str(mllr)]
    run_tool(tools.mllr_transform, args, "applying MLLR")


def map_means(
    tools: Toolchain, base: BaseModel, model: TrainingModel, *, prior: Path, accumulated: Path, out: Path
) -> None:
    """MAP re-estimation of the means ``prior`` from ``bw``'s statistics."""
    args = ["-moddeffn", str(model.mdef), "-ts2cbfn", ".ptm.", "-meanfn", str(prior)]
    args += ["-varfn", str(base.file("variances")), "-mixwfn", str(model.mixture_weights)]
    args += ["-tmatfn", str(base.file("transition_matrices")), "-accumdir", str(accumulated)]
    run_tool(tools.map_adapt, [*args, "-mapmeanfn", str(out)], "MAP re-estimation")
