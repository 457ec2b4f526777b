"""Settings: defaults, the shipped file, and bad files written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicehello import config
from voicehello.config import (
    DEFAULT_CATALOG_FILE,
    DEFAULT_CONFIG_FILE,
    DEFAULT_MODELS_DIR,
    AudioSettings,
    IntentSettings,
    Settings,
    SpeechSettings,
    load_settings,
)
from voicehello.errors import ConfigError


@pytest.fixture(autouse=True)
def _no_config_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOICEHELLO_CONFIG", raising=False)


def write(tmp_path: Path, text: str, name: str = "voicehello.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path | None, *fragments: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ----------------------------------------------------------------------------- defaults


def test_defaults_without_any_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "DEFAULT_CONFIG_FILE", tmp_path / "absent.toml")
    settings = load_settings()
    assert settings == Settings()
    assert settings.speech.engine == "auto"
    assert settings.audio.block_ms == 30
    assert settings.intents.threshold == 0.97
    assert settings.intents.catalog == DEFAULT_CATALOG_FILE
    assert settings.speech.models_dir == DEFAULT_MODELS_DIR


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "")) == Settings()


def test_empty_sections_give_defaults(tmp_path: Path) -> None:
    text = "[device]\n[audio]\n[speech]\n[intents]\n"
    assert load_settings(write(tmp_path, text)) == Settings()


def test_shipped_file_holds_the_defaults() -> None:
    # config/voicehello.toml says "Every value shown is the default".
    assert DEFAULT_CONFIG_FILE.is_file()
    assert load_settings(DEFAULT_CONFIG_FILE) == Settings()


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().audio.block_ms = 20  # type: ignore[misc]


def test_values_are_read(tmp_path: Path) -> None:
    text = """
[device]
id = "kitchen-12"
name = "Maya at number 12"
[audio]
input_device = 3
block_ms = 20
vad_aggressiveness = 3
max_utterance_s = 8
[speech]
engine = "pocketsphinx"
pocketsphinx_search = "grammar"
vosk_full_lm_fallback = true
[intents]
threshold = 1
require_wake = false
"""
    settings = load_settings(write(tmp_path, text))
    assert settings.device.id == "kitchen-12"
    assert settings.device.name == "Maya at number 12"
    assert settings.audio == AudioSettings(
        input_device="3", block_ms=20, vad_aggressiveness=3, max_utterance_s=8.0
    )
    assert isinstance(settings.audio.max_utterance_s, float)
    assert settings.speech.engine == "pocketsphinx"
    assert settings.speech.pocketsphinx_search == "grammar"
    assert settings.speech.vosk_full_lm_fallback is True
    assert settings.intents == IntentSettings(threshold=1.0, require_wake=False)


# ----------------------------------------------------------------------------- paths


def test_relative_paths_resolve_against_the_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    text = """
[speech]
vosk_model = "../models/vosk-small"
models_dir = "models"
[intents]
catalog = "intents.yaml"
"""
    path = write(tmp_path, text, "etc/voicehello/voicehello.toml")
    settings = load_settings(path)
    base = (tmp_path / "etc" / "voicehello").resolve()
    assert settings.speech.vosk_model == (base.parent / "models" / "vosk-small").resolve()
    assert settings.speech.models_dir == base / "models"
    assert settings.intents.catalog == base / "intents.yaml"


def test_absolute_and_home_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    absolute = tmp_path / "catalogs" / "mine.yaml"
    text = f'[intents]\ncatalog = "{absolute.as_posix()}"\n[speech]\nmodels_dir = "~/models"\n'
    settings = load_settings(write(tmp_path, text, "conf/voicehello.toml"))
    assert settings.intents.catalog == absolute
    assert settings.speech.models_dir == tmp_path / "home" / "models"


# ----------------------------------------------------------------------------- which file


def test_explicit_missing_file(tmp_path: Path) -> None:
    config_error(tmp_path / "missing.toml", "not found", "missing.toml")


def test_environment_variable_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[device]\nid = "from-env"\n')
    monkeypatch.setenv("VOICEHELLO_CONFIG", str(path))
    assert load_settings().device.id == "from-env"


def test_environment_variable_to_a_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEHELLO_CONFIG", str(tmp_path / "gone.toml"))
    config_error(None, "not found", "gone.toml")


def test_explicit_path_wins_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEHELLO_CONFIG", str(write(tmp_path, '[device]\nid = "env"\n', "env.toml")))
    assert load_settings(write(tmp_path, '[device]\nid = "arg"\n', "arg.toml")).device.id == "arg"


def test_empty_environment_variable_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "DEFAULT_CONFIG_FILE", tmp_path / "absent.toml")
    monkeypatch.setenv("VOICEHELLO_CONFIG", "")
    assert load_settings() == Settings()


# ----------------------------------------------------------------------------- bad files


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[audio\nblock_ms = 30\n")
    config_error(path, "not valid TOML", str(path))


def test_duplicate_key_is_invalid_toml(tmp_path: Path) -> None:
    config_error(write(tmp_path, "[audio]\nblock_ms = 30\nblock_ms = 20\n"), "not valid TOML")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "voicehello.toml"
    path.write_bytes(b'[device]\nname = "caf\xe9"\n')
    config_error(path, "cannot read")


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    config_error(tmp_path, "cannot read")


@pytest.mark.parametrize("text", ["[network]\nport = 1\n", "threshold = 0.5\n", "[Audio]\nblock_ms = 30\n"])
def test_unknown_section(tmp_path: Path, text: str) -> None:
    config_error(write(tmp_path, text), "unknown section")


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("[audio]\nblocksize = 30\n", "audio.blocksize"),
        ("[speech]\nmodel = 'x'\n", "speech.model"),
        ("[intents]\nthreshhold = 0.5\n", "intents.threshhold"),
        ("[device]\n[device.extra]\nx = 1\n", "device.extra"),
    ],
)
def test_unknown_key(tmp_path: Path, text: str, name: str) -> None:
    config_error(write(tmp_path, text), "unknown setting", name)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("device = 5\n", "[device] must be a table"),
        ("[device]\nid = 12\n", "device.id must be a string"),
        ("[device]\nname = true\n", "device.name must be a string"),
        ("[audio]\nblock_ms = '30'\n", "audio.block_ms must be a number"),
        ("[audio]\nblock_ms = true\n", "audio.block_ms must be a number"),
        ("[audio]\nmax_utterance_s = [10]\n", "audio.max_utterance_s must be a number"),
        ("[audio]\ninput_device = true\n", "audio.input_device must be a device name or index"),
        ("[audio]\ninput_device = [1]\n", "audio.input_device must be a device name or index"),
        ("[speech]\nengine = 1\n", "speech.engine must be a string"),
        ("[speech]\nvosk_full_lm_fallback = 'no'\n", "speech.vosk_full_lm_fallback must be true or false"),
        ("[speech]\nmodels_dir = 5\n", "speech.models_dir must be a path string"),
        ("[speech]\nvosk_model = false\n", "speech.vosk_model must be a path string"),
        ("[intents]\nrequire_wake = 1\n", "intents.require_wake must be true or false"),
        ("[intents]\nthreshold = '0.8'\n", "intents.threshold must be a number"),
        ("[intents]\ncatalog = ['a.yaml']\n", "intents.catalog must be a path string"),
    ],
)
def test_wrong_types(tmp_path: Path, text: str, fragment: str) -> None:
    config_error(write(tmp_path, text), fragment)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[speech]\nengine = 'whisper'\n", "'whisper'"),
        ("[speech]\nengine = 'Vosk'\n", "speech.engine must be auto, vosk or pocketsphinx"),
        ("[speech]\nengine = ''\n", "speech.engine"),
        ("[speech]\npocketsphinx_search = 'keyword'\n", "speech.pocketsphinx_search"),
        ("[audio]\nblock_ms = 25\n", "audio.block_ms must be 10, 20 or 30"),
        ("[audio]\nvad_aggressiveness = 4\n", "audio.vad_aggressiveness"),
        ("[audio]\nvad_aggressiveness = -1\n", "audio.vad_aggressiveness"),
        ("[intents]\nthreshold = 0\n", "intents.threshold"),
        ("[intents]\nthreshold = 1.5\n", "intents.threshold"),
    ],
)
def test_bad_values(tmp_path: Path, text: str, fragment: str) -> None:
    config_error(write(tmp_path, text), fragment)


@pytest.mark.parametrize("engine", ["auto", "vosk", "pocketsphinx"])
def test_every_engine_value_is_accepted(tmp_path: Path, engine: str) -> None:
    assert load_settings(write(tmp_path, f"[speech]\nengine = '{engine}'\n")).speech == SpeechSettings(
        engine=engine  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "text",
    [
        "[audio]\nblock_ms = 30.9\n",
        "[audio]\nend_silence_ms = 450.5\n",
        "[audio]\nvad_aggressiveness = 2.7\n",
    ],
)
def test_integer_setting_rejects_a_fraction(tmp_path: Path, text: str) -> None:
    config_error(write(tmp_path, text), "must be")


def test_network_sections_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[device]\nid = "kitchen-12"\nname = "Maya at number 12"\n'
        '[bus]\nhost = "broker.lan"\nport = 8883\npod = "block-party"\ntls = true\nca_file = "ca.crt"\n'
        '[announce]\noutput = "both"\nmute = ["garage-7", "shed"]\nquiet_hours = "22:00-07:00"\n'
        'quiet_mode = "drop"\nrate_limit = 2\noutput_device = 3\n'
        "[conversation]\nconfirm = false\nreply_window_s = 12\n",
    )
    settings = load_settings(path)
    assert (settings.bus.host, settings.bus.port, settings.bus.pod, settings.bus.tls) == (
        "broker.lan",
        8883,
        "block-party",
        True,
    )
    assert settings.bus.ca_file == tmp_path / "ca.crt"
    assert settings.announce.mute == ("garage-7", "shed")
    assert (settings.announce.output, settings.announce.quiet_mode, settings.announce.rate_limit) == (
        "both",
        "drop",
        2,
    )
    assert settings.announce.output_device == "3"
    assert settings.conversation.confirm is False
    assert settings.conversation.reply_window_s == 12.0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[device]\nid = "Kitchen 12"\n', "device.id"),
        ('[device]\nname = ""\n', "device.name"),
        ('[bus]\npod = "a/b"\n', "bus.pod"),
        ("[bus]\nport = 70000\n", "bus.port"),
        ("[bus]\nkeepalive_s = 1\n", "bus.keepalive_s"),
        ("[bus]\nreconnect_min_s = 5.0\nreconnect_max_s = 1.0\n", "reconnect_max_s"),
        ('[announce]\noutput = "radio"\n', "announce.output"),
        ('[announce]\nprefix = "drum"\n', "announce.prefix"),
        ('[announce]\nquiet_hours = "10pm-7am"\n', "announce.quiet_hours"),
        ('[announce]\nquiet_mode = "later"\n', "announce.quiet_mode"),
        ('[announce]\nmute = "garage-7"\n', "announce.mute"),
        ("[announce]\nmute = [1, 2]\n", "announce.mute"),
        ("[announce]\nrate_limit = 0\n", "rate_limit"),
        ("[announce]\nvolume = 2.0\n", "announce.volume"),
        ("[conversation]\nconfirm_window_s = 0\n", "conversation windows"),
        ('[conversation]\nconfirm = "yes"\n', "conversation.confirm"),
    ],
)
def test_bad_network_settings(tmp_path: Path, text: str, fragment: str) -> None:
    config_error(write(tmp_path, text), fragment)
