"""Vosk models on disk: what a model directory looks like, finding one, and downloading one.

Nothing here runs at recognition time and nothing downloads on its own: :func:`download_model`
is only called by ``voicehello models download``. Every download is checked against a SHA-256
digest before it is unpacked (see ``models/README.md`` for where the pinned digests come from).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Literal

from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

from voicehello.errors import ModelDownloadError, ModelError

logger = logging.getLogger(__name__)

HOW_TO_GET_ONE = (
    "run `voicehello models download` on a machine with internet access, or set speech.vosk_model"
)
"""The advice every missing-model error ends with."""

CHUNK_BYTES = 1 << 16
"""Read size while streaming a download."""

MAX_EXTRACTED_BYTES = 8 << 30
"""Largest total uncompressed size accepted from an archive (the biggest Vosk models are ~4 GB)."""

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class KnownModel:
    """A model ``voicehello models download NAME`` knows by name."""

    name: str
    """Directory name inside the archive, and the name to download it by."""
    url: str
    """Where Alpha Cephei publishes the zip archive."""
    sha256: str | None
    """SHA-256 of the zip; ``None`` when no trustworthy value is known (then ``--sha256`` is required)."""
    size: int | None
    """Archive size in bytes, when known (checked after download)."""
    description: str
    """One line for ``voicehello models list``."""


KNOWN_MODELS: dict[str, KnownModel] = {
    "vosk-model-small-en-us-0.15": KnownModel(
        name="vosk-model-small-en-us-0.15",
        url="https://alphacephei.com/vosk/models/vosk-model-small-en-us-0.15.zip",
        # Alpha Cephei publishes no digests. This value is the Git LFS object id of the
        # unmodified zip in the rhasspy/vosk-models mirror (size 41205931), and several
        # unrelated projects pin the same digest and size for the upstream URL.
        sha256="30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498",
        size=41_205_931,
        description="small US English model (40 MB, runtime grammars; the default for a Raspberry Pi)",
    ),
    "vosk-model-en-us-0.22-lgraph": KnownModel(
        name="vosk-model-en-us-0.22-lgraph",
        url="https://alphacephei.com/vosk/models/vosk-model-en-us-0.22-lgraph.zip",
        sha256=None,  # no trustworthy published digest found: downloading needs --sha256
        size=None,
        description="larger US English model (~130 MB, runtime grammars, more accurate, slower)",
    ),
}

DEFAULT_MODEL = "vosk-model-small-en-us-0.15"
"""What ``voicehello models download`` fetches when no name is given."""


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class ModelLayout:
    """Where the files of one Vosk model directory are (the two layouts libvosk reads)."""

    root: Path
    """The model directory."""
    version: Literal["v1", "v2"]
    """``v2``: ``am/``, ``conf/``, ``graph/``; ``v1``: the older flat layout."""

    @property
    def graph_dir(self) -> Path:
        """Directory holding the decoding graph and the word list."""
        return self.root / "graph" if self.version == "v2" else self.root

    @property
    def words_file(self) -> Path | None:
        """The vocabulary (``words.txt``), if the model ships one (small models do not)."""
        path = self.graph_dir / "words.txt"
        return path if path.is_file() else None

    @property
    def static_graph(self) -> bool:
        """True when the model decodes with a precompiled ``HCLG.fst`` (large server models)."""
        return (self.graph_dir / "HCLG.fst").is_file()

    @property
    def runtime_grammar(self) -> bool:
        """True when libvosk can build a grammar graph at run time (``HCLr.fst`` + ``Gr.fst``)."""
        return not self.static_graph and (self.graph_dir / "HCLr.fst").is_file()


def _detect_version(path: Path) -> Literal["v1", "v2"] | None:
    """The layout libvosk would pick for ``path`` (same test as its ``Model`` constructor)."""
    if (path / "am" / "final.mdl").is_file() and (path / "conf" / "model.conf").is_file():
        return "v2"
    if (path / "final.mdl").is_file() and (path / "mfcc.conf").is_file():
        return "v1"
    return None


def _missing_parts(path: Path, version: Literal["v1", "v2"]) -> list[str]:
    """Files libvosk needs that are absent, relative to the model directory."""
    conf, graph = ("conf/", "graph/") if version == "v2" else ("", "")
    missing: list[str] = []
    if not any((path / f"{conf}{name}").is_file() for name in ("mfcc.conf", "fbank.conf")):
        missing.append(f"{conf}mfcc.conf")
    if not (path / f"{graph}HCLG.fst").is_file():
        missing += [
            f"{graph}{name}"
            for name in ("HCLr.fst", "Gr.fst", "disambig_tid.int")
            if not (path / f"{graph}{name}").is_file()
        ]
    return missing


def model_layout(path: Path) -> ModelLayout | None:
    """The layout of the complete Vosk model at ``path``, or ``None`` if it is not one."""
    version = _detect_version(path) if path.is_dir() else None
    if version is None or _missing_parts(path, version):
        return None
    return ModelLayout(root=path, version=version)


def is_vosk_model(path: Path) -> bool:
    """True if ``path`` is a complete Vosk model directory (either layout)."""
    return model_layout(path) is not None


def check_model(path: Path) -> ModelLayout:
    """The layout of the model at ``path``; :class:`ModelError` with a one-line fix otherwise."""
    layout = model_layout(path)
    if layout is not None:
        return layout
    version = _detect_version(path) if path.is_dir() else None
    if version is not None:
        missing = ", ".join(_missing_parts(path, version))
        raise ModelError(f"incomplete Vosk model at {path} (missing {missing}); {HOW_TO_GET_ONE}")
    nested = find_vosk_model(path) if path.is_dir() else None
    hint = f" (there is one at {nested}: point speech.vosk_model there)" if nested else ""
    raise ModelError(f"no Vosk model at {path}{hint}; {HOW_TO_GET_ONE}")


def _candidates(models_dir: Path) -> list[Path]:
    """Visible subdirectories of ``models_dir`` in name order (temp dirs start with a dot)."""
    try:
        children = sorted(models_dir.iterdir())
    except OSError:
        return []
    return [child for child in children if child.is_dir() and not child.name.startswith(".")]


def find_vosk_model(models_dir: Path) -> Path | None:
    """The first model under ``models_dir`` in name order (``models_dir`` itself if it is one)."""
    if is_vosk_model(models_dir):
        return models_dir
    return next((child for child in _candidates(models_dir) if is_vosk_model(child)), None)


@dataclass(frozen=True)
class InstalledModel:
    """A model directory found under ``models_dir``."""

    name: str
    """Directory name, e.g. ``vosk-model-small-en-us-0.15``."""
    path: Path
    """The model directory."""
    runtime_grammar: bool
    """True when the model accepts the intent catalog as a grammar."""
    size_bytes: int
    """Disk space the directory uses (file sizes summed)."""


def _tree_size(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def list_installed(models_dir: Path) -> list[InstalledModel]:
    """Every complete Vosk model directly under ``models_dir``, in name order."""
    installed: list[InstalledModel] = []
    for child in _candidates(models_dir):
        layout = model_layout(child)
        if layout is not None:
            installed.append(InstalledModel(child.name, child, layout.runtime_grammar, _tree_size(child)))
    return installed


# --------------------------------------------------------------------------- download


@dataclass(frozen=True)
class _Source:
    url: str
    known: KnownModel | None
    archive_stem: str


def _known_by_file_name(url: str) -> KnownModel | None:
    stem = PurePosixPath(urllib.parse.urlparse(url).path).name.removesuffix(".zip")
    return KNOWN_MODELS.get(stem)


def _resolve_source(name_or_url: str) -> _Source:
    """Turn a known model name, an http(s)/file URL or a local zip path into a download source."""
    if name_or_url in KNOWN_MODELS:
        known = KNOWN_MODELS[name_or_url]
        return _Source(known.url, known, known.name)
    scheme = urllib.parse.urlparse(name_or_url).scheme
    if scheme in ("http", "https", "file"):
        url = name_or_url
    elif Path(name_or_url).is_file():
        url = Path(name_or_url).resolve().as_uri()
    else:
        names = ", ".join(KNOWN_MODELS)
        raise ModelDownloadError(f"unknown model {name_or_url!r}: give one of {names}, a URL or a zip file")
    stem = PurePosixPath(urllib.parse.urlparse(url).path).name.removesuffix(".zip") or "vosk-model"
    return _Source(url, _known_by_file_name(url), stem)


def _expected_digest(source: _Source, sha256: str | None, allow_unverified: bool) -> str | None:
    """The digest to check: the caller's, else the catalog's; refuses unverified unless allowed."""
    if sha256 is not None:
        digest = sha256.strip().lower()
        if not _SHA256_RE.match(digest):
            raise ModelDownloadError(f"--sha256 must be 64 hex digits, not {sha256!r}")
        pinned = source.known.sha256 if source.known else None
        if pinned is not None and pinned != digest:
            logger.warning("--sha256 differs from the digest pinned for %s; using the one given", source.url)
        return digest
    if source.known is not None and source.known.sha256 is not None:
        return source.known.sha256
    if allow_unverified:
        logger.warning("installing %s without checksum verification", source.url)
        return None
    raise ModelDownloadError(
        f"no trusted SHA-256 is known for {source.url}; pass --sha256 with the digest from a source "
        "you trust, or --insecure-no-verify to install it unverified"
    )


def _describe_network_error(url: str, exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"download of {url} failed: HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot download {url}: {exc.reason}"
    if isinstance(exc, TimeoutError):
        return f"download of {url} timed out"
    return f"download of {url} failed: {exc}"


def _stream(response: IO[bytes], out: IO[bytes], bar: tqdm) -> tuple[int, str]:
    """Copy ``response`` to ``out``; return (bytes, sha256 hex digest)."""
    digest = hashlib.sha256()
    count = 0
    while chunk := response.read(CHUNK_BYTES):
        out.write(chunk)
        digest.update(chunk)
        count += len(chunk)
        bar.update(len(chunk))
    return count, digest.hexdigest()


def fetch(url: str, dest: Path, *, expected_size: int | None, progress: bool, timeout: float) -> str:
    """Stream ``url`` into ``dest`` with a progress bar; return the file's SHA-256 hex digest."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, dest.open("wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else expected_size
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=PurePosixPath(urllib.parse.urlparse(url).path).name or url,
                disable=not progress,
            ) as bar:
                count, digest = _stream(response, out, bar)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise ModelDownloadError(_describe_network_error(url, exc)) from exc
    if length and length.isdigit() and count != int(length):
        raise ModelDownloadError(f"download of {url} was cut short ({count} of {length} bytes)")
    if expected_size is not None and count != expected_size:
        raise ModelDownloadError(f"download of {url} has {count} bytes, expected {expected_size}")
    return digest


def _check_member(name: str) -> None:
    """Refuse archive members that would land outside the extraction directory."""
    posix = name.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix) or ".." in parts:
        raise ModelDownloadError(f"refusing archive member {name!r}: it points outside the model directory")


def safe_extract(archive: Path, dest: Path) -> None:
    """Unzip ``archive`` into ``dest`` after checking every member's path and the total size."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for member in members:
                _check_member(member.filename)
            if sum(member.file_size for member in members) > MAX_EXTRACTED_BYTES:
                raise ModelDownloadError(f"refusing {archive.name}: it unpacks to more than 8 GiB")
            zf.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise ModelDownloadError(f"downloaded file is not a zip archive: {exc}") from exc
    except OSError as exc:
        raise ModelDownloadError(f"cannot unpack {archive.name}: {exc}") from exc


def _model_in(extracted: Path, archive_stem: str) -> tuple[Path, str]:
    """The model directory inside an unpacked archive and the name to install it under."""
    if is_vosk_model(extracted):
        return extracted, archive_stem
    found = find_vosk_model(extracted)
    if found is None:
        raise ModelDownloadError("the archive holds no Vosk model (no am/final.mdl with its graph)")
    return found, found.name


@contextmanager
def _scratch(models_dir: Path) -> Iterator[tuple[Path, Path]]:
    """A temp file and a temp directory inside ``models_dir``, removed afterwards whatever happens."""
    fd, name = tempfile.mkstemp(prefix=".download-", suffix=".zip.part", dir=models_dir)
    os.close(fd)
    archive = Path(name)
    extract_dir = Path(tempfile.mkdtemp(prefix=".extract-", dir=models_dir))
    try:
        yield archive, extract_dir
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(extract_dir, ignore_errors=True)


def download_model(
    name_or_url: str,
    models_dir: Path,
    sha256: str | None,
    progress: bool = True,
    *,
    allow_unverified: bool = False,
    timeout: float = 30.0,
) -> Path:
    """Download, verify and unpack a Vosk model into ``models_dir``; return the model directory.

    ``name_or_url`` is a name from :data:`KNOWN_MODELS`, an http(s) or file URL, or a local zip.
    The archive's SHA-256 must match ``sha256`` (or the catalog's pinned digest); without either,
    the download is refused unless ``allow_unverified``. Scratch files live in ``models_dir`` and
    are removed on every path; the model appears under its final name only when complete.
    """
    source = _resolve_source(name_or_url)
    expected = _expected_digest(source, sha256, allow_unverified)
    if source.known is not None and is_vosk_model(models_dir / source.known.name):
        logger.info("%s is already installed in %s", source.known.name, models_dir)
        return models_dir / source.known.name
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelDownloadError(f"cannot create models directory {models_dir}: {exc}") from exc
    with _scratch(models_dir) as (archive, extract_dir):
        size = source.known.size if source.known is not None else None
        digest = fetch(source.url, archive, expected_size=size, progress=progress, timeout=timeout)
        if expected is not None and digest != expected:
            raise ModelDownloadError(f"checksum mismatch for {source.url}: got {digest}, expected {expected}")
        if expected is None:
            logger.warning("unverified archive %s has SHA-256 %s", source.url, digest)
        safe_extract(archive, extract_dir)
        model_dir, name = _model_in(extract_dir, source.archive_stem)
        target = models_dir / name
        if target.exists():
            raise ModelDownloadError(f"{target} already exists; remove it to install this model again")
        try:
            model_dir.rename(target)
        except OSError as exc:
            raise ModelDownloadError(f"cannot move the model into {target}: {exc}") from exc
    logger.info("installed %s", target)
    return target
