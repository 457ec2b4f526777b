"""Settings: frozen dataclasses loaded from ``config/voicehello.toml``.

Every field has a documented default, so an empty file (or no file) is a valid
configuration. Relative paths in the file are resolved against the file's directory.
"""

from __future__ import annotations

import os
import re
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
DEFAULT_KEYS_DIR = Path(os.path.expanduser("~/.config/voicehello"))
DEFAULT_ADAPTATION_FILE = DEFAULT_KEYS_DIR / "adaptation" / "pocketsphinx-en-us"

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
    noise_margin_db: float = 6.0
    """A frame must be this much louder than the noise floor to count as speech."""
    noise_smooth_ms: int = 300
    """The noise floor follows frame levels averaged over this long (so it tracks the mean of
    fluctuating noise such as background talk, not its quietest 30 ms)."""
    noise_quantile: float = 0.2
    """The noise floor is this quantile of the last 5 s of those levels (0 = the lowest)."""
    speaker_relative_db: float = 15.0
    """Frames more than this below the speaker's running peak level are background (a TV, a radio,
    someone across the room): they neither hold an utterance open nor are decoded into it. 0 = off."""
    speaker_decay_db_s: float = 3.0
    """How fast the speaker's peak level is forgotten, in dB per second of audio."""
    trailing_keep_ms: int = 300
    """Audio kept after the speaker's last speech frame; the rest of the closing silence is dropped."""
    denoise: Literal["off", "spectral", "speex", "rnnoise"] = "off"
    """Noise suppression before recognition (see ``voicehello/audio/denoise.py``)."""


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
    adaptation: Path | None = DEFAULT_ADAPTATION_FILE
    """This device's speaker adaptation for PocketSphinx, made by ``voicehello enroll`` (an MLLR
    transform or adapted means, owner-only), loaded by the recognizer when the file exists;
    ``None``: never adapt."""
    streaming: bool = True
    """PocketSphinx: decode while the person speaks (else the whole utterance once it ended)."""
    early_end_ms: int = 0
    """End an utterance after this much silence, instead of ``audio.end_silence_ms``, when what
    was heard so far is already a complete request (streaming only; 0 = always wait). Off by
    default: at 150 ms it split 11 of 330 clean test utterances of the benchmark at a pause
    inside the request ("…fix my clogged" | "sink"), because with open slots a prefix of a
    request is often a complete request too."""
    min_acoustic_confidence: float = 0.3
    """Reject a request whose words the recognizer itself was unsure of: the transcript's
    acoustic confidence (PocketSphinx: the mean lattice posterior of its words) below this
    makes it "not caught", whatever the parser's confidence; a woken one is answered "Sorry, I
    didn't catch that". Chosen on the dev split's 10 and 5 dB conditions (0 = off)."""


@dataclass(frozen=True)
class IntentSettings:
    """The intent catalog and how strict parsing is."""

    catalog: Path = DEFAULT_CATALOG_FILE
    """The intent catalog (YAML)."""
    threshold: float = 0.97
    """Minimum intent confidence; anything below is rejected (no intent). Chosen on the dev split
    of tests/data/nlu as the lowest value with wrong intent <= 0.5% and off-topic accepted <= 1%."""
    require_wake: bool = True
    """Live listening acts only on utterances that start with a wake phrase."""


@dataclass(frozen=True)
class BusSettings:
    """The local MQTT broker the neighbors' devices share."""

    host: str = ""
    """Broker host name or address; empty means no broker is configured (``demo`` starts its own)."""
    port: int = 1883
    """Broker port (8883 is usual with TLS)."""
    pod: str = "street"
    """The pod (name or id) this device speaks in by default; when it is in no pod of that name,
    its only pod (see ``voicehello pod list``). It listens to every pod it is in."""
    username: str = ""
    """Broker user name; empty means connect without credentials."""
    password: str = ""
    """Broker password."""
    tls: bool = False
    """Connect with TLS and verify the broker's certificate."""
    ca_file: Path | None = None
    """CA certificate that signed the broker's certificate; ``None`` means the system's CAs."""
    keepalive_s: int = 30
    """MQTT keep-alive; a dead connection is noticed within about 1.5 times this."""
    session_expiry_s: int = 3600
    """How long the broker keeps this device's subscriptions and missed messages while it is away."""
    reconnect_min_s: float = 0.5
    """First reconnect delay; it doubles after each failed attempt ..."""
    reconnect_max_s: float = 30.0
    """... up to this."""
    outbox_limit: int = 500
    """Most unsent messages held while the broker is unreachable (the oldest go first)."""


@dataclass(frozen=True)
class AnnounceSettings:
    """How neighbors' messages are spoken in this kitchen."""

    output: Literal["speaker", "print", "both"] = "speaker"
    """``speaker`` speaks through pyttsx3; ``print`` only prints; ``both`` does both."""
    output_device: str | None = None
    """Output device name (substring) or index; ``None`` means the system default."""
    voice: str = "en-us"
    """pyttsx3 voice id or language (espeak-ng voices: ``en-us``, ``en-gb``, ...)."""
    rate_wpm: int = 160
    """Speaking rate in words per minute."""
    volume: float = 1.0
    """Speaking volume, 0.0 to 1.0."""
    prefix: Literal["chime", "spoken", "none"] = "chime"
    """What comes before each announcement: a short chime, the spoken word "neighbor", or nothing."""
    quiet_hours: str = ""
    """Local time range with no announcements, e.g. ``22:00-07:00``; empty means none."""
    quiet_mode: Literal["queue", "drop"] = "queue"
    """During quiet hours: ``queue`` (spoken afterwards, if still valid) or ``drop``."""
    mute: tuple[str, ...] = ()
    """Device ids whose messages are never spoken here."""
    rate_limit: int = 4
    """Most announcements from one neighbor per ``rate_window_s`` (more are dropped, with a log line)."""
    rate_window_s: float = 60.0
    """The rate-limit window."""
    max_chars: int = 160
    """Longest announcement; longer ones are cut at a word boundary."""
    tts_timeout_s: float = 20.0
    """A TTS engine silent this long on one announcement is considered hung and restarted."""


@dataclass(frozen=True)
class ConversationSettings:
    """Read-back before sending, and the window for answering a neighbor."""

    confirm: bool = True
    """Read a request back and send it only on "yes"/"send"."""
    confirm_window_s: float = 8.0
    """How long to wait for "yes" or "no" after the read-back; silence cancels."""
    reply_window_s: float = 30.0
    """After an announcement, how long "yes I can lend it" counts as a reply to it."""


@dataclass(frozen=True)
class PrivacySettings:
    """Keys, pods and how strictly neighbors' messages are checked."""

    keys_dir: Path = DEFAULT_KEYS_DIR
    """This device's signing key and its pods (owner-only permissions): the only place voicehello writes."""
    timestamp_window_s: float = 300.0
    """A message dated further than this ahead of this device's clock is refused (older ones are
    accepted until they expire: replays are caught by id)."""


@dataclass(frozen=True)
class Settings:
    """All voicehello settings."""

    device: DeviceSettings = field(default_factory=DeviceSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    speech: SpeechSettings = field(default_factory=SpeechSettings)
    intents: IntentSettings = field(default_factory=IntentSettings)
    bus: BusSettings = field(default_factory=BusSettings)
    announce: AnnounceSettings = field(default_factory=AnnounceSettings)
    conversation: ConversationSettings = field(default_factory=ConversationSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)


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
        if isinstance(current, Path) or key in {"vosk_model", "ca_file"}:
            value = _path(value, base_dir, f"{name}.{key}")
        elif isinstance(current, tuple):
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise ConfigError(f"{name}.{key} must be a list of strings")
            value = tuple(value)
        elif key in {"input_device", "output_device"}:
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
    if settings.audio.denoise not in ("off", "spectral", "speex", "rnnoise"):
        raise ConfigError("audio.denoise must be off, spectral, speex or rnnoise")
    if not 0.0 <= settings.audio.noise_quantile < 1.0 or settings.audio.trailing_keep_ms < 0:
        raise ConfigError("audio.noise_quantile must be in [0, 1) and audio.trailing_keep_ms >= 0")
    if not 0.0 < settings.intents.threshold <= 1.0:
        raise ConfigError("intents.threshold must be in (0, 1]")
    if not 0.0 <= settings.speech.min_acoustic_confidence < 1.0:
        raise ConfigError("speech.min_acoustic_confidence must be in [0, 1)")
    _validate_network(settings)
    return settings


DEVICE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
"""Device ids and pod names: lower-case letters, digits and ``-``, at most 32 characters."""
QUIET_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


def _validate_network(settings: Settings) -> None:
    """Checks for the bus, announcement and conversation sections."""
    if not DEVICE_ID.match(settings.device.id):
        raise ConfigError("device.id must be 1-32 lower-case letters, digits or '-'")
    if not settings.device.name.strip() or len(settings.device.name) > 60:
        raise ConfigError("device.name must be 1-60 characters")
    if not DEVICE_ID.match(settings.bus.pod):
        raise ConfigError("bus.pod must be 1-32 lower-case letters, digits or '-'")
    if not 0 < settings.bus.port < 65536:
        raise ConfigError("bus.port must be 1..65535")
    if settings.bus.keepalive_s < 5 or settings.bus.reconnect_min_s <= 0:
        raise ConfigError("bus.keepalive_s must be at least 5 and bus.reconnect_min_s above 0")
    if settings.bus.reconnect_max_s < settings.bus.reconnect_min_s or settings.bus.outbox_limit < 1:
        raise ConfigError("bus.reconnect_max_s must be >= reconnect_min_s, bus.outbox_limit >= 1")
    announce = settings.announce
    if announce.output not in ("speaker", "print", "both"):
        raise ConfigError("announce.output must be speaker, print or both")
    if announce.prefix not in ("chime", "spoken", "none"):
        raise ConfigError("announce.prefix must be chime, spoken or none")
    if announce.quiet_mode not in ("queue", "drop"):
        raise ConfigError("announce.quiet_mode must be queue or drop")
    if announce.quiet_hours and not QUIET_HOURS.match(announce.quiet_hours):
        raise ConfigError("announce.quiet_hours must look like 22:00-07:00")
    if not 0.0 <= announce.volume <= 1.0 or not 80 <= announce.rate_wpm <= 450:
        raise ConfigError("announce.volume must be 0..1 and announce.rate_wpm 80..450")
    if announce.rate_limit < 1 or announce.rate_window_s <= 0 or announce.max_chars < 20:
        raise ConfigError("announce.rate_limit >= 1, rate_window_s > 0 and max_chars >= 20")
    if announce.tts_timeout_s <= 0:
        raise ConfigError("announce.tts_timeout_s must be above 0")
    talk = settings.conversation
    if talk.confirm_window_s <= 0 or talk.reply_window_s <= 0:
        raise ConfigError("conversation windows must be above 0 seconds")
    if not 5 <= settings.privacy.timestamp_window_s <= 3600:
        raise ConfigError("privacy.timestamp_window_s must be 5..3600")


SECTIONS: dict[str, type] = {
    "device": DeviceSettings,
    "audio": AudioSettings,
    "speech": SpeechSettings,
    "intents": IntentSettings,
    "bus": BusSettings,
    "announce": AnnounceSettings,
    "conversation": ConversationSettings,
    "privacy": PrivacySettings,
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
