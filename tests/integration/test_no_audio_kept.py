"""voicehello keeps no audio: not on disk, not in its logs, not in its output.

The pipeline runs in a child process under a Python audit hook (:func:`audit_driver`,
``sys.addaudithook``) that records every file opened for writing, every rename, copy, link,
mkdir or remove, and every socket call, and writes them to a report when the process exits.
Python-level writes are all seen there; writes from C libraries (PocketSphinx, PortAudio) are
not, so the temp dir, HOME, the working directory, the input's directory and the config
directory are also compared before and after (names, sizes, modification times, and the
directories' own mtimes, which move when a file is created and deleted again).

The daemon is in a real pod: besides the language model's temp file it may write its key
directory (under the config directory: the pod's roster, as keys are pinned), and nothing else;
what it says on the bus is sealed, so the test opens the envelopes with the pod key to check the
plaintext, and checks that the wire carries none of the words spoken.
"""

from __future__ import annotations

import base64
import inspect
import json
import os
import re
import stat
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from nacl.secret import SecretBox
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pods import Circle
from pulse import PORTAUDIO_DEVICE, PulseServer

from voicehello.announce.rates import RATES_FILE
from voicehello.bus import topics
from voicehello.bus.broker import EmbeddedBroker
from voicehello.bus.messages import Message, Sender, new_message
from voicehello.bus.seen import SEEN_LOG
from voicehello.intents.catalog import Catalog
from voicehello.intents.parser import IntentParser
from voicehello.privacy.keys import SIGNATURE_BYTES, DeviceKeys
from voicehello.privacy.pods import Pod
from voicehello.speech.adaptation.prompts import enrollment_prompts

pytestmark = pytest.mark.integration

REQUEST = "hey neighbor, can someone help me move a couch"
LONGEST_JSON_STRING = 2_000
"""No JSON field may be longer than this (a second of audio as base64 is ~43,000 chars)."""
MAX_LOG_BYTES = 20_000
"""``-vv`` logs for one short utterance stay well below this."""
SPOKEN_WORDS = ("neighbor", "borrow", "ladder", "please", "send", "lend")
"""Words said in the daemon exchange that must never be readable on the wire (words of four
letters or more: a shorter one could turn up by chance in base64 ciphertext)."""


def audit_driver() -> None:  # noqa: PLR0915 - one self-contained script for `python -c`
    """Run ``voicehello`` (``sys.argv[1:]``) under an audit hook; write the report at exit.

    Its source is passed to ``python -c``: everything it needs is imported inside.
    """
    import atexit
    import json
    import os
    import sys
    import tempfile

    report_path = os.environ["VOICEHELLO_AUDIT_REPORT"]
    # tempfile.gettempdir() probes the temp dir by writing and removing a scratch file the first
    # time it runs; that is the standard library's doing, so it happens before auditing starts.
    tempfile.gettempdir()

    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    changes = {
        "os.rename": 0,  # os.rename and os.replace
        "os.link": 0,
        "os.symlink": 1,
        "os.truncate": 0,
        "os.mkdir": 0,
        "os.mkfifo": 0,
        "os.mknod": 0,
        "os.chmod": 0,
        "os.chown": 0,
        "os.utime": 0,
        "shutil.copyfile": 1,
        "shutil.copymode": 1,
        "shutil.copystat": 1,
        "shutil.copytree": 1,
        "shutil.make_archive": 0,
        "shutil.unpack_archive": 1,
        "tempfile.mkdtemp": 0,
    }
    """Events that change the file system -> index of the path argument they change."""
    report: dict[str, list[Any]] = {"written": [], "read": [], "removed": [], "changed": [], "network": []}
    state = {"active": True, "busy": False}

    def resolve(path: object) -> str:
        if isinstance(path, int):
            try:
                return os.readlink(f"/proc/self/fd/{path}")
            except OSError:
                return f"fd {path}"
        try:
            return os.path.abspath(os.fsdecode(path))  # type: ignore[arg-type]
        except TypeError:
            return repr(path)

    def head(path: str) -> str:
        """The first bytes of a file about to be removed, as text (or a marker)."""
        try:
            with open(path, "rb") as handle:
                return handle.read(64).decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return f"<unreadable: {exc!r}>"

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if not state["active"] or state["busy"]:
            return
        state["busy"] = True
        try:
            if event == "open":
                path, mode, flags = args
                if isinstance(mode, str):
                    writing = any(c in mode for c in "wax+")
                else:
                    writing = bool(flags & write_flags)
                report["written" if writing else "read"].append(resolve(path))
            elif event == "tempfile.mkstemp":
                report["written"].append(resolve(args[0]))
            elif event in ("os.remove", "os.rmdir", "shutil.rmtree"):
                path = resolve(args[0])
                report["removed"].append([path, head(path) if os.path.isfile(path) else ""])
            elif event in changes:
                report["changed"].append([event, resolve(args[changes[event]]), repr(args)[:300]])
            elif event.startswith("socket."):
                report["network"].append([event, repr(args)[:300]])
        finally:
            state["busy"] = False

    def write_report() -> None:  # registered first, so it runs after every other atexit handler
        state["active"] = False
        with open(report_path, "w", encoding="utf-8") as out:
            json.dump(report, out)

    atexit.register(write_report)
    sys.addaudithook(hook)

    from voicehello.cli import main

    sys.exit(main(sys.argv[1:]))


DRIVER = (
    "from __future__ import annotations\n\n"
    + textwrap.dedent(inspect.getsource(audit_driver))
    + "\n\naudit_driver()\n"
)


@dataclass
class Sandbox:
    """Empty directories the child process runs with, and what they held before."""

    root: Path

    def __post_init__(self) -> None:
        for directory in self.watched:
            directory.mkdir(parents=True)
        self.before = self.snapshot()

    @property
    def tmp(self) -> Path:
        """``TMPDIR``."""
        return self.root / "tmp"

    @property
    def home(self) -> Path:
        """``HOME``."""
        return self.root / "home"

    @property
    def cwd(self) -> Path:
        """The working directory."""
        return self.root / "cwd"

    @property
    def inputs(self) -> Path:
        """Where the WAV files the child reads are."""
        return self.root / "in"

    @property
    def config(self) -> Path:
        """Where the daemon's config file and its key directory are."""
        return self.root / "config"

    @property
    def watched(self) -> tuple[Path, ...]:
        return (self.tmp, self.home, self.cwd, self.inputs, self.config)

    @property
    def report_path(self) -> Path:
        return self.root / "audit.json"

    def env(self) -> dict[str, str]:
        """Variables for the child: the sandbox, the driver's report file, no bytecode writing."""
        return {
            "TMPDIR": str(self.tmp),
            "HOME": str(self.home),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "VOICEHELLO_AUDIT_REPORT": str(self.report_path),
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """Every path under the watched directories (and the directories themselves):
        ``(size, mtime_ns)``."""
        state: dict[str, tuple[int, int]] = {}
        for directory in self.watched:
            for path in [directory, *sorted(directory.rglob("*"))]:
                info = path.lstat()
                state[str(path)] = (info.st_size if path.is_file() else 0, info.st_mtime_ns)
        return state

    def report(self) -> dict[str, list[Any]]:
        assert self.report_path.is_file(), "the audit driver wrote no report"
        report: dict[str, list[Any]] = json.loads(self.report_path.read_text(encoding="utf-8"))
        return report


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    """Empty TMPDIR, HOME, working and input directories for one audited run."""
    return Sandbox(tmp_path / "sandbox")


def copy_input(sandbox: Sandbox, wav: Path) -> Path:
    """``wav`` copied into the sandbox's input directory, before its snapshot is taken again."""
    target = sandbox.inputs / "request.wav"
    target.write_bytes(wav.read_bytes())
    sandbox.before = sandbox.snapshot()
    return target


def assert_only_the_language_model_was_written(
    sandbox: Sandbox, report: dict[str, list[Any]], keys_dir: Path | None = None
) -> None:
    """The ARPA text file of PocketSphinx's language model is the one file voicehello writes:
    in the temp dir, named voicehello-*.arpa, holding ARPA text, and removed again. With a
    ``keys_dir``, the pod roster there may be rewritten too (:func:`assert_only_rosters_written`)."""
    arpa = re.compile(re.escape(str(sandbox.tmp)) + r"/voicehello-[^/]+\.arpa")
    # sounddevice opens /dev/null for writing to silence PortAudio's start-up chatter: it keeps nothing
    written = set(report["written"]) - {os.devnull}
    changed = report["changed"]
    if keys_dir is not None:
        report, changed = without_control_socket(keys_dir, report)
        written -= assert_only_rosters_written(keys_dir, written, changed)
        changed = [change for change in changed if not inside(change[1], keys_dir)]
    assert written, "the audit hook saw no writes at all: PocketSphinx's language model file is expected"
    strays = sorted(path for path in written if not arpa.fullmatch(path))
    assert not strays, f"files opened for writing besides the language model: {strays}"
    assert len(written) == 1, written
    (model,) = written
    removed = {path: head for path, head in report["removed"]}
    assert model in removed, f"{model} was not removed"
    assert removed[model].startswith("\\data\\\nngram 1="), f"not an ARPA text file: {removed[model]!r}"
    assert not Path(model).exists()
    assert set(removed) == {model}, f"other removals: {sorted(set(removed) - {model})}"
    assert changed == [], changed


def without_control_socket(
    keys_dir: Path, report: dict[str, list[Any]]
) -> tuple[dict[str, list[Any]], list[Any]]:
    """``report`` and its file changes without the daemon's control socket (``voicehello say``
    hands messages to it): bound as ``keys_dir/.daemon.sock.<pid>``, made 0600, renamed over
    ``keys_dir/daemon.sock`` and removed when the daemon stops, each exactly once."""
    fresh = re.compile(re.escape(str(keys_dir / ".daemon.sock.")) + r"\d+")
    final = str(keys_dir / "daemon.sock")
    ours = [change for change in report["changed"] if fresh.fullmatch(change[1])]
    assert [event for event, _, _ in ours] == ["os.chmod", "os.rename"], ours
    assert ", 384, " in ours[0][2], f"the control socket was not made 0600: {ours[0]}"
    assert repr(final) in ours[1][2], ours[1]
    assert [path for path, _ in report["removed"]].count(final) == 1, report["removed"]
    removed = [entry for entry in report["removed"] if entry[0] != final]
    return {**report, "removed": removed}, [change for change in report["changed"] if change not in ours]


def inside(path: str | Path, directory: Path) -> bool:
    """True for ``directory`` itself and anything under it."""
    return Path(path) == directory or Path(path).is_relative_to(directory)


def assert_only_rosters_written(keys_dir: Path, written: set[str], changed: list[Any]) -> set[str]:
    """What was written in ``keys_dir``: only pod files rewritten as keys are pinned (each
    written as ``pods/.<pod id>.json.<pid>[.<thread>].tmp``, then renamed over ``pods/<pod id>.json``),
    the ids of the messages received (``.seen.json.<pid>.<thread>.tmp`` renamed over ``seen.json``,
    and ``seen.log`` appended to), the rate-limit windows (``.rates.json.<pid>.<thread>.tmp`` renamed
    over ``rates.json``) and the directories made private (``mkdir`` of ones that exist). Returns
    those written paths."""
    pods = keys_dir / "pods"
    temp = re.compile(
        f"(?:{re.escape(str(pods))}/\\.(?P<pod>[0-9a-f]{{16}})\\.json|{re.escape(str(keys_dir))}/\\.(?P<own>seen|rates)\\.json)"
        r"(?:\.\d+)+\.tmp"
    )
    appended = {str(keys_dir / SEEN_LOG)}
    ours = {path for path in written if inside(path, keys_dir)}
    assert ours, f"no pod roster was written in {keys_dir} (the daemon pins its own key there)"
    strays = sorted(path for path in ours - appended if not temp.fullmatch(path))
    assert not strays, f"files written in the key directory besides pod rosters, seen ids and rates: {strays}"
    renamed = {path for event, path, _ in changed if event == "os.rename" and inside(path, keys_dir)}
    assert renamed == ours - appended, f"files written but not renamed into place: {sorted(ours - renamed)}"
    for event, path, args in changed:
        if not inside(path, keys_dir):
            continue
        if event == "os.rename":
            match = temp.fullmatch(path)
            assert match is not None, path
            target = (
                keys_dir / f"{match.group('own')}.json"
                if match.group("pod") is None
                else pods / f"{match.group('pod')}.json"
            )
            assert repr(str(target)) in args, args
        else:
            allowed = {("os.mkdir", str(keys_dir)), ("os.mkdir", str(pods)), ("os.truncate", *appended)}
            assert (event, path) in allowed, (event, args)  # the log emptied once compacted
    return ours


def assert_seen_ids_only(path: Path) -> None:
    """The replay-protection file holds message ids and expiry times, nothing said."""
    data = json.loads(path.read_text(encoding="utf-8"))
    assert set(data) == {"v", "seen"}, data
    assert data["seen"], "the daemon received messages but saved no ids"
    for message_id, expires in data["seen"].items():
        assert re.fullmatch(r"[0-9a-f]{32}", message_id), message_id
        assert isinstance(expires, float), expires


def assert_rate_windows_only(path: Path) -> None:
    """The rate-limit file holds device ids and announcement times, nothing said."""
    data = json.loads(path.read_text(encoding="utf-8"))
    assert set(data) == {"v", "windows"}, data
    for device, times in data["windows"].items():
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,31}", device), device
        assert all(isinstance(t, float) for t in times), times


def assert_nothing_left_behind(sandbox: Sandbox, keys_dir: Path | None = None) -> None:
    """No file new, gone or modified in the sandbox, but for the temp dir's own mtime (the
    language model file came and went) and, with ``keys_dir``, its pod files being rewritten."""
    after = sandbox.snapshot()
    if keys_dir is not None:
        assert_seen_ids_only(keys_dir / "seen.json")
        assert (keys_dir / SEEN_LOG).read_bytes() == b"", "stopped: the log is compacted into seen.json"
        for path in (keys_dir / "seen.json", keys_dir / SEEN_LOG, keys_dir / RATES_FILE):
            after.pop(str(path), None)
        if (keys_dir / RATES_FILE).exists():
            assert_rate_windows_only(keys_dir / RATES_FILE)
    new = sorted(set(after) - set(sandbox.before))
    gone = sorted(set(sandbox.before) - set(after))
    assert not new, f"new files: {new}"
    assert not gone, f"files disappeared: {gone}"
    # A file created and deleted again moves its directory's mtime: only the temp dir may move
    # (the language model file); nothing under HOME, the working directory, the inputs or the config.
    rewritable = (
        set()
        if keys_dir is None
        else {str(keys_dir), str(keys_dir / "pods"), *map(str, keys_dir.glob("pods/*.json"))}
    )
    changed = sorted(
        path
        for path in after
        if after[path] != sandbox.before[path] and path != str(sandbox.tmp) and path not in rewritable
    )
    assert not changed, f"modified: {changed}"


BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{120,}={0,2}")
HEX_RUN = re.compile(r"(?:[0-9a-fA-F]{2}[ :]?){60,}")
BYTES_REPR = re.compile(r"(?:\\x[0-9a-fA-F]{2}){4,}")


def assert_no_audio_in_text(text: str, what: str) -> None:
    """No base64, hex dumps or ``bytes`` reprs, nothing unprintable."""
    for pattern in (BASE64_RUN, HEX_RUN, BYTES_REPR):
        match = pattern.search(text)
        assert match is None, f"{what} holds something like encoded audio: {match.group(0)[:80]!r}..."
    unprintable = {c for c in text if not c.isprintable() and c not in "\n\t"}
    assert not unprintable, f"{what} holds unprintable characters: {sorted(unprintable)!r}"


def assert_no_audio_in_json(stdout: str) -> list[dict[str, Any]]:
    """Every line is a flat JSON object of scalars (and the ``slots`` map of strings) with no
    long strings: there is no field that could carry samples."""
    records = [json.loads(line) for line in stdout.splitlines()]
    assert records, "no JSON output"
    for record in records:
        assert isinstance(record, dict)
        for key, value in record.items():
            if isinstance(value, dict):
                assert all(isinstance(v, str) for v in value.values()), (key, value)
                values = [*value.keys(), *value.values()]
            else:
                assert value is None or isinstance(value, str | int | float | bool), (key, type(value))
                values = [value]
            for item in values:
                if isinstance(item, str):
                    assert len(item) <= LONGEST_JSON_STRING, f"{key} is {len(item)} characters long"
                    assert_no_audio_in_text(item, f"JSON field {key}")
    return records


def assert_logs_are_clean(stderr: str) -> None:
    assert len(stderr.encode()) <= MAX_LOG_BYTES, f"{len(stderr.encode())} bytes of logs"
    assert_no_audio_in_text(stderr, "stderr")
    assert "Traceback" not in stderr, stderr


@pytest.fixture
def run_audited(cli_env: dict[str, str], sandbox: Sandbox, parser: IntentParser) -> Callable[..., Any]:
    """Run ``python -c DRIVER <args>`` (voicehello under the audit hook) in the sandbox.

    ``parser`` has trained the intent model into the session's cache first (as `voicehello
    catalog --train` does on a device), so the audited run only loads it and this test passes
    alone too: the model is made from the catalog, never from what anyone said."""

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", DRIVER, *map(str, args)],
            env={**os.environ, **cli_env, **sandbox.env()},
            cwd=sandbox.cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


def test_the_audit_hook_sees_writes_and_network(run_audited: Callable[..., Any], sandbox: Sandbox) -> None:
    """The harness itself works: ``models download`` (which does write: a scratch file in the
    models directory, which it creates, and connects to a server) shows up in the report."""
    models = sandbox.cwd / "models"
    config = sandbox.inputs / "voicehello.toml"
    config.write_text(f'[speech]\nmodels_dir = "{models}"\n', encoding="utf-8")
    url = "http://127.0.0.1:9/vosk-model-test.zip"  # the discard port: nothing listens
    result = run_audited("models", "download", url, "--config", config, "--sha256", "0" * 64, "--quiet")
    assert result.returncode == 1
    report = sandbox.report()
    assert any(path.startswith(f"{models}/.download-") for path in report["written"]), report["written"]
    assert any(event == "os.mkdir" for event, *_ in report["changed"]), report["changed"]
    assert any(event == "socket.connect" for event, _ in report["network"]), report["network"]


def test_transcribe_keeps_no_audio(run_audited: Callable[..., Any], sandbox: Sandbox, espeak: Any) -> None:
    wav = copy_input(sandbox, espeak(REQUEST))
    result = run_audited("-vv", "transcribe", "--json", wav)
    assert result.returncode == 0, result.stderr
    records = assert_no_audio_in_json(result.stdout)
    assert [r["intent"] for r in records] == ["ask_help"]
    assert "DEBUG" in result.stderr, "-vv should log at debug level"
    assert_logs_are_clean(result.stderr)
    report = sandbox.report()
    assert str(wav) in report["read"], "the hook did not see the WAV being read"
    assert_only_the_language_model_was_written(sandbox, report)
    assert report["network"] == [], report["network"]
    assert_nothing_left_behind(sandbox)


def test_listen_to_a_file_keeps_no_audio(
    run_audited: Callable[..., Any], sandbox: Sandbox, espeak: Any
) -> None:
    wav = copy_input(
        sandbox, espeak.sequence([(REQUEST, "en-us"), ("yes I can lend it", "en-us+f2")], name="two-requests")
    )
    result = run_audited("-vv", "listen", "--file", wav, "--no-wake", "--json")
    assert result.returncode == 0, result.stderr
    records = assert_no_audio_in_json(result.stdout)
    assert [r["intent"] for r in records] == ["ask_help", "reply_yes"]
    assert_logs_are_clean(result.stderr)
    report = sandbox.report()
    assert str(wav) in report["read"]
    assert_only_the_language_model_was_written(sandbox, report)
    assert report["network"] == [], report["network"]
    assert_nothing_left_behind(sandbox)


def test_listen_on_the_microphone_keeps_no_audio(
    spawn_voicehello: Callable[..., Any], sandbox: Sandbox, pulse: PulseServer, espeak: Any
) -> None:
    listening_child = spawn_voicehello(
        *("-vv", "listen", "--json", "--device", PORTAUDIO_DEVICE),
        command=[sys.executable, "-c", DRIVER],
        env=sandbox.env(),
        cwd=sandbox.cwd,
    )
    listening = listening_child.wait_for("stderr", lambda line: line.startswith("listening with "), 30)
    assert listening is not None, listening_child.transcript()
    pulse.play(espeak(REQUEST))
    line = listening_child.wait_for("stdout", lambda _: True, 20)
    assert line is not None, listening_child.transcript()
    assert listening_child.terminate() == 0, listening_child.transcript()
    records = assert_no_audio_in_json("\n".join(listening_child.stdout))
    assert [r["intent"] for r in records] == ["ask_help"]
    assert_logs_are_clean("\n".join(listening_child.stderr))
    report = sandbox.report()
    assert_only_the_language_model_was_written(sandbox, report)
    assert report["network"] == [], report["network"]
    assert_nothing_left_behind(sandbox)


def test_enroll_keeps_only_the_adaptation(
    run_audited: Callable[..., Any], sandbox: Sandbox, espeak: Any, catalog: Catalog
) -> None:
    """``voicehello enroll`` under the audit hook: the readings' audio and features are written
    only inside its private working directory (made by ``mkdtemp``, so 0700), which is removed
    with everything in it; the one file left is the adaptation, written owner-only under a
    temporary name and renamed into place."""
    prompts = enrollment_prompts(catalog, 8)
    wav = copy_input(sandbox, espeak.sequence([(p.text, "en-gb+m3") for p in prompts], name="enroll-8"))
    adaptation = sandbox.config / "keys" / "adaptation" / "pocketsphinx-en-us"
    config = sandbox.config / "voicehello.toml"
    config.write_text(f'[speech]\nengine = "pocketsphinx"\nadaptation = "{adaptation}"\n', encoding="utf-8")
    sandbox.before = sandbox.snapshot()
    result = run_audited("-vv", "enroll", "--file", wav, "--prompts", "8", "--config", config)
    assert result.returncode == 0, result.stderr
    assert_no_audio_in_text(result.stdout, "stdout")
    assert_logs_are_clean(result.stderr)
    report = sandbox.report()
    made = [path for event, path, _ in report["changed"] if event == "tempfile.mkdtemp"]
    workdirs = [Path(path) for path in made if Path(path).name.startswith("voicehello-enroll-")]
    assert len(workdirs) == 1, report["changed"]
    (workdir,) = workdirs
    assert not workdir.exists(), f"{workdir} was left behind"
    assert str(workdir) in {path for path, _ in report["removed"]}, "the working directory was not removed"
    pending = adaptation.parent / f".{adaptation.name}."
    strays = sorted(
        path
        for path in set(report["written"]) - {os.devnull}
        if not inside(path, workdir)
        and not path.startswith(str(pending))
        and not (
            inside(path, sandbox.tmp)
            and Path(path).relative_to(sandbox.tmp).parts[0].startswith("voicehello-")
        )
    )
    assert not strays, f"written outside the working directory: {strays}"
    assert any(inside(path, workdir) for path in report["written"]), "no audio went to the working directory?"
    renamed = [path for event, path, _ in report["changed"] if event == "os.rename"]
    assert len(renamed) == 1, renamed
    assert renamed[0].startswith(str(pending)), renamed
    assert stat.S_IMODE(adaptation.stat().st_mode) == 0o600
    after = sandbox.snapshot()
    new = sorted(set(after) - set(sandbox.before))
    assert new == sorted(map(str, (adaptation.parent.parent, adaptation.parent, adaptation))), new
    assert not set(sandbox.before) - set(after)
    moved = sorted(p for p in after if p in sandbox.before and after[p] != sandbox.before[p])
    assert set(moved) <= {str(sandbox.tmp), str(sandbox.config)}, moved


def test_a_spoken_exchange_through_the_daemon_keeps_no_audio(
    spawn_voicehello: Callable[..., Any],
    sandbox: Sandbox,
    pulse: PulseServer,
    espeak: Any,
    mosquitto: EmbeddedBroker,
    tmp_path: Path,
    parser: IntentParser,  # the intent model trained into the session's cache beforehand
) -> None:
    """``voicehello run`` under the audit hook, in a pod: a request is spoken, read back,
    confirmed by voice and sent; a neighbor's reply comes back and is announced. Nothing but
    the language model file and the pod roster in the key directory is written, the only
    connection is to the broker, what went over the bus is sealed (no word spoken readable on
    the wire), and inside the seal it is the confirmed words and nothing else."""
    host, port = mosquitto.address
    circle = Circle(tmp_path / "pods", host=host, port=port)
    keys_dir = sandbox.config / "keys"
    DeviceKeys.load_or_create(keys_dir)  # as `voicehello pod join` does
    circle.join(keys_dir)
    sam = circle.membership("sam-4", "Sam")
    pod = circle.pod
    config = sandbox.config / "voicehello.toml"
    config.write_text(
        f'[device]\nid = "maya-12"\nname = "Maya at number 12"\n'
        f'[bus]\nhost = "{host}"\nport = {port}\npod = "{circle.name}"\n'
        f'[audio]\ninput_device = "{PORTAUDIO_DEVICE}"\n[announce]\noutput = "print"\n'
        f'[privacy]\nkeys_dir = "{keys_dir}"\n',
        encoding="utf-8",
    )
    sandbox.before = sandbox.snapshot()  # the config file and the joined pod are ours, not the daemon's
    bus = BusWatcher(mosquitto, f"{topics.ROOT}/{pod.id}/#")
    try:
        bus.publish(topics.key_topic(pod.id, "sam-4"), sam.key_announcement(pod), retain=True)
        daemon = spawn_voicehello(
            "-vv",
            "run",
            "--config",
            config,
            command=[sys.executable, "-c", DRIVER],
            env=sandbox.env(),
            cwd=sandbox.cwd,
        )
        ready = daemon.wait_for("stderr", lambda line: "connected to the broker" in line, 40)
        assert ready is not None, daemon.transcript()
        pulse.play(espeak("hey neighbor, can I borrow a ladder please"))
        assert daemon.wait_for("stdout", lambda line: "Ask your neighbors" in line, 30), daemon.transcript()
        pulse.play(espeak("yes, send it"))
        sent_line = daemon.wait_for("stdout", lambda line: line.startswith("sent: borrow_item"), 30)
        assert sent_line is not None, daemon.transcript()
        request = bus.wait_for_intent(
            "borrow_item", lambda device, payload: circle.open(payload, keys_dir, topic_device=device)
        )
        reply = new_message(
            Sender("sam-4", "Sam"), "reply_yes", {}, "yes i can lend it", in_reply_to=request.id
        )
        bus.publish(topics.message_topic(pod.id, "sam-4"), sam.seal(reply, pod))
        assert daemon.wait_for("stdout", lambda line: "Sam can lend you a ladder" in line, 30), (
            daemon.transcript()
        )
        assert daemon.terminate() == 0, daemon.transcript()
    finally:
        bus.close()
    heard = [line for line in daemon.stdout if line.startswith("heard: ")]
    said = [line for line in heard if "borrow_item" in line]
    assert len(said) == 1, heard
    confirmed = said[0].split("'")[1]  # heard: 'hey neighbor can i borrow a ladder please' -> ...
    assert_bus_carried_only_sealed_confirmed_words(bus.messages, circle, keys_dir, confirmed)
    assert_logs_are_clean("\n".join(daemon.stderr))
    report = sandbox.report()
    assert_only_the_language_model_was_written(sandbox, report, keys_dir)
    connects = [args for event, args in report["network"] if event == "socket.connect"]
    to_broker = [args for args in connects if f"('{host}', {port})" in args]
    assert to_broker, f"the audit hook saw no connection to the broker: {connects}"
    # paho builds its wake-up socket pair by binding 127.0.0.1:0 and connecting to itself
    self_pairs = [
        args for event, args in report["network"] if event == "socket.bind" and "('127.0.0.1', 0)" in args
    ]
    others = [args for args in connects if args not in to_broker]
    assert all("('127.0.0.1', " in args for args in others), others
    assert len(others) <= len(self_pairs), f"connections beyond the broker: {others}"
    assert_nothing_left_behind(sandbox, keys_dir)


MESSAGE_FIELDS = {"v", "id", "ts", "expires", "from", "kind", "intent", "slots", "text", "in_reply_to"}
KEY_FIELDS = {"v", "device", "name", "key", "ts"}


def unsealed(pod: Pod, payload: bytes) -> bytes:
    """The signed data inside an envelope: decrypted with the pod key, the signature cut off."""
    envelope = json.loads(payload)
    assert set(envelope) == {"v", "pod", "box"}, f"not an envelope: {sorted(envelope)}"
    assert envelope["pod"] == pod.id
    signed = SecretBox(pod.key).decrypt(base64.b64decode(envelope["box"]))
    return bytes(signed)[SIGNATURE_BYTES:]


def assert_bus_carried_only_sealed_confirmed_words(
    messages: list[tuple[str, bytes]], circle: Circle, keys_dir: Path, confirmed: str
) -> None:
    """On the wire: presence, or envelopes in which no spoken word can be read. Inside them:
    key announcements, and messages that open (signature and all) whose only words are the
    confirmed text (from the daemon) or the neighbor's reply."""
    maya_said = []
    pod = circle.pod
    for topic, payload in messages:
        assert len(payload) < 4096, f"{len(payload)} bytes on {topic}"
        if topic.endswith("/status"):
            assert payload in (topics.ONLINE, topics.OFFLINE)
            continue
        readable = [word for word in SPOKEN_WORDS if word.encode() in payload]
        assert not readable, f"the wire payload on {topic} carries {readable}: {payload[:200]!r}"
        inner = unsealed(pod, payload)
        text = inner.decode("utf-8")
        assert_no_audio_in_text(text, f"the sealed payload on {topic}")
        data = json.loads(text)
        if topic.endswith("/key"):
            assert set(data) == KEY_FIELDS, sorted(data)
            continue
        parts = topics.parse_topic(topic)
        assert parts is not None, topic
        message = circle.open(payload, keys_dir, topic_device=parts.device)  # signed by its sender
        assert message.to_dict() == data
        if parts.device == "maya-12":
            assert set(data) == MESSAGE_FIELDS, sorted(data)
            assert data["text"] in confirmed, (data["text"], confirmed)
            assert data["text"] == "can i borrow a ladder please"
            maya_said.append(data)
    assert [data["intent"] for data in maya_said] == ["borrow_item"], maya_said


class BusWatcher:
    """A raw MQTT client that records every payload on a topic filter and can publish."""

    def __init__(self, broker: EmbeddedBroker, topic_filter: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"watcher-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
        )
        self.client.on_message = lambda _c, _u, message: self.messages.append(
            (message.topic, bytes(message.payload))
        )
        self.client.connect(*broker.address)
        self.client.subscribe(topic_filter, qos=1)
        self.client.loop_start()

    def wait_for_intent(
        self, intent: str, open_message: Callable[[str, bytes], Message], timeout_s: float = 20.0
    ) -> Message:
        """The first ``intent`` message seen. The topic does not name the intent: each message is
        opened with ``open_message(device in its topic, sealed payload)`` to find it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for topic, payload in list(self.messages):
                parts = topics.parse_topic(topic)
                if parts is None or parts.kind != "msg":
                    continue
                message = open_message(parts.device, payload)
                if message.intent == intent:
                    return message
            time.sleep(0.05)
        raise AssertionError(f"no {intent} on the bus: {[topic for topic, _ in self.messages]}")

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.MessageExpiryInterval = 600
        self.client.publish(topic, payload, qos=1, retain=retain, properties=properties).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
