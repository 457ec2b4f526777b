"""The ``voicehello`` command line.

Every user-caused problem ends as one line on stderr and a non-zero exit code:
1 for a failed job (bad file, missing model, unknown device), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicehello import __version__, cli_broker, cli_enroll, cli_pods
from voicehello.config import Settings, load_settings
from voicehello.errors import BusError, ConfigError, VoicehelloError

if TYPE_CHECKING:
    from voicehello.app import Device
    from voicehello.bus.local import SayRequest, SayServer
    from voicehello.bus.messages import Message
    from voicehello.privacy.membership import Membership
    from voicehello.privacy.pods import Pod

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _fail(message: str) -> None:
    print(f"voicehello: {message}", file=sys.stderr, flush=True)


def _emit(record: dict[str, Any]) -> None:
    print(json.dumps(record, ensure_ascii=False), flush=True)


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    if getattr(args, "engine", None):
        from dataclasses import replace

        settings = replace(settings, speech=replace(settings.speech, engine=args.engine))
    return settings


def cmd_transcribe(args: argparse.Namespace) -> int:
    """Transcribe WAV files; one line per file, errors on stderr, the batch goes on."""
    from voicehello.app import Understander

    understander = Understander(_settings(args))
    failed = 0
    for name in args.files:
        try:
            heard = understander.hear_file(Path(name))
        except VoicehelloError as exc:
            failed += 1
            _fail(str(exc))
            if args.json:
                _emit({"file": name, "error": str(exc), "intent": None, "engine": understander.engine})
            continue
        if args.json:
            _emit({"file": name, **heard.to_dict()})
        else:
            parse = heard.parse
            print(f"{name}: {heard.transcript.text!r} -> {parse.describe()}")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_parse(args: argparse.Namespace) -> int:
    """Parse typed text into an intent, as if it had been spoken."""
    from voicehello.intents.catalog import load_catalog
    from voicehello.intents.parser import IntentParser

    settings = _settings(args)
    parser = IntentParser(load_catalog(settings.intents.catalog), threshold=settings.intents.threshold)
    result = parser.parse(" ".join(args.text))
    explained = result.explanation if args.explain else None
    if args.json:
        _emit(
            {
                "text": result.text,
                "intent": result.intent,
                "slots": result.slots,
                "confidence": result.confidence,
                **({"explanation": explained.to_dict()} if explained is not None else {}),
            }
        )
    else:
        print(result.describe())
        for line in explained.lines() if explained is not None else []:
            print(f"  {line}")
    return EXIT_OK if result.intent else EXIT_FAILED


def cmd_listen(args: argparse.Namespace) -> int:
    """Listen on the microphone (or a WAV file) and print each intent as it is heard."""
    from voicehello.app import Understander, WakeGate
    from voicehello.audio.sources import MicrophoneSource, WavFileSource

    settings = _settings(args)
    understander = Understander(settings)
    gate = WakeGate(required=settings.intents.require_wake and not args.no_wake)
    source: Any
    if args.file:
        source = WavFileSource(Path(args.file), block_ms=settings.audio.block_ms, realtime=False)
    else:
        device = args.device if args.device is not None else settings.audio.input_device
        source = MicrophoneSource(device=device, block_ms=settings.audio.block_ms).open()
    _stop_on_signals(source.request_stop)
    print(f'listening with {understander.engine}; say "hey neighbor ..." (Ctrl+C to stop)', file=sys.stderr)
    try:
        for heard in understander.listen(source):
            if not gate.admit(heard, heard.speech_end_s or 0.0):
                log.info("ignored speech without a wake phrase")
                continue
            if args.json:
                _emit(heard.to_dict())
            else:
                parse = heard.parse
                print(parse.describe(), flush=True)
    finally:
        source.close()
    return EXIT_OK


def _stop_on_signals(stop: Callable[[], None]) -> None:
    def handler(signum: int, _frame: object) -> None:
        log.info("stopping on signal %d", signum)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def cmd_devices(args: argparse.Namespace) -> int:
    """List audio input devices."""
    from voicehello.audio.sources import list_input_devices

    devices = list_input_devices()
    for device in devices:
        if args.json:
            _emit(device.__dict__)
            continue
        mark = "*" if device.is_default else " "
        print(
            f"{mark} {device.index:3d}  {device.name}  ({device.channels} ch, {device.default_samplerate:.0f} Hz)"
        )
    if not devices:
        _fail("no audio input devices found")
        return EXIT_FAILED
    return EXIT_OK


def cmd_models_list(args: argparse.Namespace) -> int:
    """List known and installed Vosk models."""
    from voicehello.speech import models

    settings = _settings(args)
    installed = {model.path.name for model in models.list_installed(settings.speech.models_dir)}
    for name, known in models.KNOWN_MODELS.items():
        mark = "installed" if name in installed else "available"
        print(f"{name:40s} {mark:10s} {known.description}")
    for name in sorted(installed - set(models.KNOWN_MODELS)):
        print(f"{name:40s} installed")
    return EXIT_OK


def cmd_models_download(args: argparse.Namespace) -> int:
    """Download, verify and install a Vosk model."""
    from voicehello.speech import models

    settings = _settings(args)
    target = models.download_model(
        args.model,
        settings.speech.models_dir,
        args.sha256,
        progress=not args.quiet,
        allow_unverified=args.insecure_no_verify,
    )
    print(f"installed {target}")
    return EXIT_OK


def cmd_catalog(args: argparse.Namespace) -> int:
    """Check the intent catalog and print what is generated from it."""
    from voicehello.intents.catalog import load_catalog

    catalog = load_catalog(_settings(args).intents.catalog)
    if args.train:
        from voicehello.intents.nlu.cache import load_or_train, model_dir

        load_or_train(catalog, retrain=True)
        print(f"trained the intent model into {model_dir(catalog)}")
        return EXIT_OK
    if args.jsgf:
        print(catalog.jsgf(), end="")
    elif args.vosk:
        print(json.dumps(catalog.sentences(), indent=0))
    else:
        for intent in catalog.intents.values():
            patterns = sum(1 for _ in intent.patterns())
            slots = ", ".join(f"{slot}<-{name}" for slot, name in intent.slots.items()) or "-"
            print(
                f"{intent.name:16s} {len(intent.sentences):3d} templates {patterns:5d} sentences  slots: {slots}"
            )
        for slot_list in catalog.lists.values():
            size = "built-in" if slot_list.kind == "time" else f"{len(slot_list.values)} values"
            print(f"list {slot_list.name:11s} {size}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Two kitchens on a private broker: a spoken request, read back, sent, announced, answered."""
    from voicehello.demo import run_demo

    return run_demo(_settings(args))


def _require_broker(settings: Settings) -> None:
    if not settings.bus.host:
        raise ConfigError(
            "no broker configured: set [bus] host in the config file (`voicehello demo` runs without one)"
        )


def _print_line(line: str) -> None:
    print(line, flush=True)


def _pods_line(device: Device) -> str:
    """``kitchen: in pods street (speaks here), block-party (until 21:30); ...``: where it listens."""
    from voicehello.privacy.pods import clock_time

    membership = device.bus.membership
    default = membership.default()

    def about(pod: Pod) -> str:
        if pod.id == default.id:
            return f"{pod.name} (speaks here)"
        return f"{pod.name} ({'no end' if pod.expires is None else 'until ' + clock_time(pod.expires)})"

    pods = ", ".join(about(pod) for pod in membership.pods)
    return f"{device.settings.device.id}: in pods {pods}; what is said there is sealed end to end"


def _say_server(device: Device) -> SayServer:
    """The control socket ``voicehello say`` hands this device's messages to (not yet listening),
    so that the device keeps one broker connection."""
    from voicehello.bus.local import SayServer, socket_path

    def handle(request: SayRequest) -> str:
        return device.send_typed(request.message, pod=request.pod, timeout_s=request.timeout_s)

    return SayServer(socket_path(device.settings.privacy.keys_dir), handle)


def cmd_run(args: argparse.Namespace) -> int:
    """The device daemon: listen, read back, publish, announce, take replies."""
    from voicehello.app import Device, Understander
    from voicehello.audio.sources import MicrophoneSource

    settings = _settings(args)
    _require_broker(settings)
    stop = threading.Event()
    if args.no_mic:
        device = Device(settings, report=_print_line)
        control = _say_server(device)
        _stop_on_signals(stop.set)
        try:
            control.start()  # before the broker: a second daemon of this device stops here
            device.start()
            print(
                f"{settings.device.id}: announcing only (no microphone); Ctrl+C to stop",
                file=sys.stderr,
                flush=True,
            )
            print(_pods_line(device), file=sys.stderr, flush=True)
            while not stop.wait(0.5):
                device.conversation.tick()
        finally:
            control.stop()
            device.stop()
        return EXIT_OK
    device = Device(settings, understander=Understander(settings), report=_print_line)
    control = _say_server(device)
    input_device = args.device if args.device is not None else settings.audio.input_device
    source = MicrophoneSource(device=input_device, block_ms=settings.audio.block_ms).open()
    _stop_on_signals(source.request_stop)
    try:
        control.start()  # before the broker: a second daemon of this device stops here
        device.start()
        print(
            f'{settings.device.id}: listening; say "hey neighbor ..." (Ctrl+C to stop)',
            file=sys.stderr,
            flush=True,
        )
        print(_pods_line(device), file=sys.stderr, flush=True)
        for _ in device.listen(source):
            pass
    finally:
        source.close()
        control.stop()
        device.stop()
    return EXIT_OK


def cmd_say(args: argparse.Namespace) -> int:
    """Send a typed request exactly as if it had been spoken."""
    from voicehello.bus.messages import Sender, use_intent_kinds
    from voicehello.conversation import Conversation, Publish, Say
    from voicehello.intents.catalog import load_catalog
    from voicehello.intents.parser import IntentParser
    from voicehello.privacy.membership import Membership

    settings = _settings(args)
    _require_broker(settings)
    membership = Membership.from_settings(settings)
    pod = membership.resolve(args.pod) if args.pod else membership.default()
    catalog = load_catalog(settings.intents.catalog)
    use_intent_kinds(catalog.kinds)
    parser = IntentParser(catalog, threshold=settings.intents.threshold)
    conversation = Conversation(
        settings.conversation, Sender(settings.device.id, settings.device.name), catalog
    )
    text = " ".join(args.text)
    parse = parser.parse(text)
    if parse.intent is None:
        raise VoicehelloError(
            f"not understood as a request: {text!r} (see config/intents.yaml for what can be said)"
        )
    if catalog.intents[parse.intent].is_answer:
        raise VoicehelloError(
            f"{text!r} is an answer; answers are spoken to the device right after an announcement"
        )
    actions = conversation.heard(parse.intent, dict(parse.slots), text, confirmed=args.yes)
    if conversation.pending is not None:
        for action in actions:
            if isinstance(action, Say):
                print(f"{action.text} [yes/no] ", end="", flush=True)
        answer = sys.stdin.readline().strip()
        answer_parse = parser.parse(answer) if answer else None
        intent = answer_parse.intent if answer_parse is not None else None
        answers = intent is not None and catalog.intents[intent].on_readback is not None
        actions = conversation.heard(intent, {}, answer) if answers else conversation.decline()
    messages = [action.message for action in actions if isinstance(action, Publish)]
    if not messages:
        print("Okay, not sent.")
        return EXIT_OK
    if not _handed_to_daemon(settings, messages, pod, args.timeout):
        _say_directly(settings, membership, messages, pod, args.timeout)
    for message in messages:
        print(
            f"sent {message.intent} {json.dumps(message.slots)} to pod {pod.name} (id {message.id}, valid until {time.strftime('%H:%M', time.localtime(message.expires))})"
        )
    return EXIT_OK


def _handed_to_daemon(settings: Settings, messages: list[Message], pod: Pod, timeout_s: float) -> bool:
    """Hand ``messages`` to this device's running daemon over its control socket, which publishes
    them on its own broker connection (one connection per device account); False when no daemon
    runs. Raises :class:`BusError` when the daemon did not get them to the broker."""
    from voicehello.bus.local import MAX_WAIT_S, SayRequest, hand_over, socket_path

    path = socket_path(settings.privacy.keys_dir)
    for message in messages:
        answer = hand_over(path, SayRequest(message, pod=pod.id, timeout_s=min(timeout_s, MAX_WAIT_S)))
        if answer is None:
            return False
        if not answer.ok:
            raise BusError(answer.error or "the running daemon did not send the message")
    log.info("handed to the running daemon over %s (no broker connection of its own)", path)
    return True


def _say_directly(
    settings: Settings, membership: Membership, messages: list[Message], pod: Pod, timeout_s: float
) -> None:
    """Publish ``messages`` on a connection of ``say``'s own (no daemon runs for this device)."""
    from voicehello.bus.mqtt import BusClient

    log.info("no daemon runs for this device: connecting to the broker %s", settings.bus.host)
    bus = BusClient(settings.bus, settings.device, lambda _message: None, membership=membership, listen=False)
    bus.start()
    try:
        for message in messages:
            bus.publish(message, pod=pod.id)
        if not bus.flush(timeout_s):
            raise BusError(
                f"broker {settings.bus.host}:{settings.bus.port} did not take the message within {timeout_s:g} s; nothing was sent"
            )
        for message in messages:
            reason = bus.refused(message.id)
            if reason is not None:
                raise BusError(
                    f"the broker refused the message ({reason}): is {settings.device.id!r} the user name "
                    f"it knows this device by? nothing was sent"
                )
    finally:
        bus.stop()


def _add_device_commands(sub: Any, common: argparse.ArgumentParser, engine: argparse.ArgumentParser) -> None:
    """``demo``, ``run`` and ``say``: the commands that talk to the neighbors."""
    p = sub.add_parser(
        "demo",
        parents=[common, engine],
        help="two kitchens on a private broker: request, announcement, reply",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "run", parents=[common, engine], help="the device daemon: listen, publish, announce, reply"
    )
    p.add_argument("--device", help="input device name (substring) or index; see `voicehello devices`")
    p.add_argument("--no-mic", action="store_true", help="only announce what neighbors say (no microphone)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("say", parents=[common], help="send a typed request as if it had been spoken")
    p.add_argument("--yes", action="store_true", help="send without the read-back question")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the broker (default 10)")
    p.add_argument("--pod", help="the pod to tell (name or id; default: [bus] pod, or the only one)")
    p.add_argument("text", nargs="+")
    p.set_defaults(func=cmd_say)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="voicehello", description="An offline voice assistant for neighbors."
    )
    parser.add_argument("--version", action="version", version=f"voicehello {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="settings file (default: config/voicehello.toml)")
    engine = argparse.ArgumentParser(add_help=False)
    engine.add_argument("--engine", choices=["auto", "vosk", "pocketsphinx"], help="override speech.engine")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _add_device_commands(sub, common, engine)
    cli_broker.register(sub, common)
    cli_pods.register(sub, common)
    cli_enroll.register(sub, common)

    p = sub.add_parser("transcribe", parents=[common, engine], help="turn WAV files into intents")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("files", nargs="+", metavar="FILE.wav")
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser("listen", parents=[common, engine], help="listen on the microphone and print intents")
    p.add_argument("--device", help="input device name (substring) or index; see `voicehello devices`")
    p.add_argument("--file", help="listen to a WAV file instead of the microphone")
    p.add_argument("--no-wake", action="store_true", help="act on speech without a wake phrase")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_listen)

    p = sub.add_parser("parse", parents=[common], help="parse typed text into an intent")
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.add_argument(
        "--explain", action="store_true", help="also show intent scores, slot spans and template or model"
    )
    p.add_argument("text", nargs="+")
    p.set_defaults(func=cmd_parse)

    p = sub.add_parser("devices", help="list audio input devices")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser(
        "catalog", parents=[common], help="check the intent catalog and show what it generates"
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--jsgf", action="store_true", help="print the PocketSphinx grammar")
    group.add_argument("--vosk", action="store_true", help="print the Vosk phrase list")
    group.add_argument(
        "--train", action="store_true", help="train the intent model now (it is cached by the catalog's hash)"
    )
    p.set_defaults(func=cmd_catalog)

    models = sub.add_parser("models", help="manage Vosk models").add_subparsers(
        dest="models_command", metavar="ACTION", required=True
    )
    p = models.add_parser("list", parents=[common], help="list known and installed models")
    p.set_defaults(func=cmd_models_list)
    p = models.add_parser("download", parents=[common], help="download, verify and install a model")
    p.add_argument(
        "model", nargs="?", default="vosk-model-small-en-us-0.15", help="model name, URL or local zip"
    )
    p.add_argument("--sha256", help="expected SHA-256 of the archive")
    p.add_argument("--insecure-no-verify", action="store_true", help="install without a checksum to check")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_models_download)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except VoicehelloError as exc:
        _fail(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
