"""Settings: frozen dataclasses loaded from ``config/voicehello.toml``.

Every field has a documented default, so an empty file (or no file) is a valid
configuration. Relative paths in the file are resolved against the file's directory.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from voicehello.errors import ConfigError

PROJECT_DIR = Path(__file__).resolve().parent.parent
"""The checkout voicehello runs from (holds ``config/`` and ``models/``)."""

DEFAULT_CONFIG_FILE = PROJECT_DIR / "config" / "voicehello.toml"
DEFAULT_CATALOG_FILE = PROJECT_DIR / "config" / "intents.yaml"
DEFAULT_MODELS_DIR = PROJECT_DIR / "models"

Engine = Literal["auto", "vosk", "pocketsphinx"]


@dataclass(frozen=True)
class DeviceSettings:
    """Who this device is on the street."""

    id: str = "kitchen"
    """Device id, unique on the broker (letters, digits, ``-``)."""
    name: str = "a neighbor"
    """Display name neighbors hear, e.g. "Maya at number 12"."""


@dataclass(frozen=True)
class AudioSettings:
    """Microphone and endpointing."""

    input_device: str | None = None
    """Input device name (substring) or index; ``None`` means the system default."""
    block_ms: int = 30
    """Audio block length in milliseconds (10, 20 or 30 for the VAD)."""
    vad_aggressiveness: int = 2
    """WebRTC VAD aggressiveness, 0 (least) to 3 (most eager to call audio non-speech)."""
    start_speech_ms: int = 90
    """Speech needed before an utterance starts."""
    end_silence_ms: int = 450
    """Silence that ends an utterance (end-of-speech endpointing)."""
    pre_roll_ms: int = 300
    """Audio kept from before speech started, so first syllables are not cut."""
    max_utterance_s: float = 10.0
    """Longest utterance; longer speech is cut here."""


@dataclass(frozen=True)
class SpeechSettings:
    """Which speech engine to use and where its model is."""

    engine: Engine = "auto"
    """``auto``: Vosk when a Vosk model is installed, else PocketSphinx."""
    vosk_model: Path | None = None
    """Vosk model directory; ``None`` means the first model found under ``models/``."""
    pocketsphinx_search: Literal["lm", "grammar"] = "lm"
    """PocketSphinx: ``lm`` (a trigram model of the catalog) or ``grammar`` (its exact sentences)."""
    vosk_full_lm_fallback: bool = False
    """Vosk: when the grammar decode hears only ``[unk]``, decode again with the full model."""
    models_dir: Path = DEFAULT_MODELS_DIR
    """Where ``voicehello models download`` puts models and where ``auto`` looks."""


@dataclass(frozen=True)
class IntentSettings:
    """The intent catalog and how strict parsing is."""

    catalog: Path = DEFAULT_CATALOG_FILE
    """The intent catalog (YAML)."""
    threshold: float = 0.80
    """Minimum intent confidence; anything below is rejected (no intent)."""
    require_wake: bool = True
    """Live listening acts only on utterances that start with a wake phrase."""


@dataclass(frozen=True)
class Settings:
    """All voicehello settings."""

    device: DeviceSettings = field(default_factory=DeviceSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    speech: SpeechSettings = field(default_factory=SpeechSettings)
    intents: IntentSettings = field(default_factory=IntentSettings)


T = TypeVar("T")


def _section(cls: type[T], raw: Any, base_dir: Path, name: str) -> T:
    """Build one settings dataclass from a TOML table, checking names and types."""
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table")
    default = cls()
    known = {f.name: f for f in fields(cast(Any, cls))}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"unknown setting {name}.{key}")
        current = getattr(default, key)
        if isinstance(current, Path) or key in {"vosk_model"}:
            value = _path(value, base_dir, f"{name}.{key}")
        elif key == "input_device":
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise ConfigError(f"{name}.{key} must be a device name or index")
            value = str(value)
        elif isinstance(current, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{name}.{key} must be true or false")
        elif isinstance(current, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name}.{key} must be a number")
            if isinstance(current, int) and not float(value).is_integer():
                raise ConfigError(f"{name}.{key} must be a whole number")
            value = type(current)(value)
        elif isinstance(current, str) and not isinstance(value, str):
            raise ConfigError(f"{name}.{key} must be a string")
        values[key] = value
    return replace(cast(Any, default), **values)  # type: ignore[no-any-return]


def _path(value: Any, base_dir: Path, key: str) -> Path:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a path string")
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else (base_dir / path).resolve()


def _validate(settings: Settings) -> Settings:
    if settings.speech.engine not in ("auto", "vosk", "pocketsphinx"):
        raise ConfigError(f"speech.engine must be auto, vosk or pocketsphinx, not {settings.speech.engine!r}")
    if settings.speech.pocketsphinx_search not in ("lm", "grammar"):
        raise ConfigError("speech.pocketsphinx_search must be lm or grammar")
    if settings.audio.block_ms not in (10, 20, 30):
        raise ConfigError("audio.block_ms must be 10, 20 or 30")
    if not 0 <= settings.audio.vad_aggressiveness <= 3:
        raise ConfigError("audio.vad_aggressiveness must be 0..3")
    if not 0.0 < settings.intents.threshold <= 1.0:
        raise ConfigError("intents.threshold must be in (0, 1]")
    return settings


SECTIONS: dict[str, type] = {
    "device": DeviceSettings,
    "audio": AudioSettings,
    "speech": SpeechSettings,
    "intents": IntentSettings,
}


def load_settings(path: Path | None = None) -> Settings:
    """Load settings from ``path``, ``$VOICEHELLO_CONFIG`` or the checkout's default file.

    An explicitly named file must exist; the default file is optional.
    """
    explicit = path or (
        Path(os.environ["VOICEHELLO_CONFIG"]) if os.environ.get("VOICEHELLO_CONFIG") else None
    )
    config_file = explicit or DEFAULT_CONFIG_FILE
    if not config_file.exists():
        if explicit is not None:
            raise ConfigError(f"config file not found: {config_file}")
        return Settings()
    try:
        raw = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {config_file}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from exc
    base_dir = config_file.resolve().parent
    parts: dict[str, Any] = {}
    for name, table in raw.items():
        if name not in SECTIONS:
            raise ConfigError(f"unknown section [{name}] in {config_file}")
        parts[name] = _section(SECTIONS[name], table, base_dir, name)
    return _validate(Settings(**parts))
