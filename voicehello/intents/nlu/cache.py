"""Where the trained model is kept, and when it is trained again.

The model lives under the user's cache directory (``$VOICEHELLO_CACHE_DIR``, else
``$XDG_CACHE_HOME/voicehello``, else ``~/.cache/voicehello``), in a folder named by a hash of
the catalog, the training files and the model format. A changed catalog therefore gets a new
model; a folder that cannot be read is trained again with one log line. Only what is generated
from the catalog and the shipped data is stored: nothing anyone said.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

from voicehello.errors import CatalogError
from voicehello.intents.catalog import Catalog
from voicehello.intents.nlu.data import data_fingerprint
from voicehello.intents.nlu.model import FORMAT_VERSION, NluModel, train

log = logging.getLogger(__name__)

CACHE_ENV = "VOICEHELLO_CACHE_DIR"
"""Overrides the cache directory (tests point it at a temporary folder)."""

_loaded: dict[str, NluModel] = {}
_lock = threading.Lock()


def cache_root() -> Path:
    """The voicehello cache directory."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "voicehello"


def catalog_hash(catalog: Catalog) -> str:
    """A hash of everything in the catalog that training reads."""
    content = {
        "wake": list(catalog.wake_phrases),
        "intents": {
            name: {"slots": intent.slots, "sentences": list(intent.sentences)}
            for name, intent in catalog.intents.items()
        },
        "lists": {name: {"kind": lst.kind, "phrases": lst.phrases} for name, lst in catalog.lists.items()},
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def model_key(catalog: Catalog) -> str:
    """The cache key: catalog, training files and model format."""
    digest = hashlib.sha256(f"{FORMAT_VERSION}:{catalog_hash(catalog)}:{data_fingerprint()}".encode())
    return digest.hexdigest()[:20]


def model_dir(catalog: Catalog, root: Path | None = None) -> Path:
    """The folder of this catalog's model."""
    return (root or cache_root()) / "nlu" / model_key(catalog)


def load_or_train(catalog: Catalog, *, retrain: bool = False, root: Path | None = None) -> NluModel:
    """The catalog's model: from memory, from the cache, or trained now (and cached)."""
    key = model_key(catalog)
    with _lock:
        if not retrain and key in _loaded and _loaded[key].catalog == catalog:
            return _loaded[key]
        directory = model_dir(catalog, root)
        model = None
        if directory.exists() and not retrain:
            try:
                model = NluModel.load(catalog, directory, key)
            except CatalogError as exc:
                log.warning("retraining the intent model: %s", exc)
        if model is None:
            model = _train_into(catalog, directory, key)
        _loaded[key] = model
        return model


def _train_into(catalog: Catalog, directory: Path, key: str) -> NluModel:
    """Train in a temporary folder beside ``directory``, then move it into place."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".training-", dir=directory.parent))
    try:
        train(catalog, scratch, key)
        if directory.exists():
            shutil.rmtree(directory)
        try:
            os.replace(scratch, directory)
        except OSError:
            log.info("another process cached the intent model at the same time; using it")
        _prune(directory)
        return NluModel.load(catalog, directory, key)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)


def _prune(keep: Path) -> None:
    """Remove models of older catalogs (only folders this module names)."""
    for other in keep.parent.iterdir():
        if (
            other != keep
            and other.is_dir()
            and len(other.name) == len(keep.name)
            and not other.name.startswith(".")
        ):
            shutil.rmtree(other, ignore_errors=True)
