"""``voicehello broker init / add-device / grant / revoke``: the hardened Mosquitto."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from cryptography import x509

from voicehello.bus import hardening

log = logging.getLogger(__name__)


def cmd_init(args: argparse.Namespace) -> int:
    """Write a CA, a server certificate, a password file, an ACL and ``mosquitto.conf``."""
    files = hardening.init_broker(
        args.dir, list(args.host or []), args.port, force=args.force, ca_dir=args.ca_dir
    )
    settings = hardening.read_conf(files.conf)
    print(f"wrote a hardened broker to {files.directory}:")
    print(f"  CA certificate (give it to every device): {files.ca_cert}")
    print(f"  CA private key (kept apart; the broker never reads it): {files.ca_key}")
    print(f"  server certificate for {', '.join(files.hostnames)}: {files.server_cert}")
    print(f"  password file, ACL: {files.password_file}, {files.acl_file}")
    print(f"  config: {files.conf}")
    print(f"  TLS on port {files.port}, listening on {', '.join(settings.listen)}; runs as {settings.user}")
    print("add devices with: voicehello broker add-device NAME --dir " + str(files.directory))
    print(f"start it with: mosquitto -c {files.conf}")
    return 0


def cmd_add_device(args: argparse.Namespace) -> int:
    """Add a device; print its credentials and the settings it needs."""
    directory = Path(args.dir).absolute()
    pods = [hardening.ALL_PODS] if args.all_pods else list(args.pod or [])
    creds = hardening.add_device(directory, args.name, pods)
    host = args.host or _first_hostname(directory)
    port = args.port or _configured_port(directory)
    if not creds.pods:
        print(
            f"device {creds.name} may read no pod yet: voicehello broker grant {creds.name} POD_ID --dir {directory}"
        )
    else:
        speaks = [pod for pod in creds.pods if pod != hardening.ALL_PODS]
        if hardening.ALL_PODS in creds.pods:
            print(
                f"device {creds.name} may read every pod's topics (what is said stays sealed for non-members)"
            )
        if speaks:
            print(f"device {creds.name} may read and speak in pods: {', '.join(speaks)}")
        else:
            print(
                f"it speaks only in pods granted by id: voicehello broker grant {creds.name} POD_ID --dir {directory}"
            )
    print(f"username: {creds.name}")
    print(f"password: {creds.password}")
    print(f"copy {directory / hardening.CA_CERT} to the device and paste into its config/voicehello.toml:")
    print()
    print(hardening.config_snippet(creds, host, port, directory / hardening.CA_CERT), end="")
    return 0


def cmd_grant(args: argparse.Namespace) -> int:
    """Let a device read one more pod."""
    hardening.grant(Path(args.dir), args.name, args.pod)
    if args.pod == hardening.ALL_PODS:
        print(f"device {args.name} may now read every pod (and still speak only in pods granted by id)")
    else:
        print(f"device {args.name} may now read and speak in pod {args.pod}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """Remove a device's password and grants."""
    hardening.revoke(Path(args.dir), args.name)
    print(f"device {args.name} revoked")
    return 0


def _first_hostname(directory: Path) -> str:
    """The first name on the server certificate (the one given first to ``broker init``)."""
    try:
        text = (directory / hardening.SERVER_CERT).read_bytes()
        names = x509.load_pem_x509_certificate(text).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        first = names.value[0]
        return str(first.value)
    except (OSError, ValueError, IndexError, x509.ExtensionNotFound):
        return "localhost"


def _configured_port(directory: Path) -> int:
    """The listener port of ``mosquitto.conf``."""
    return hardening.read_conf(directory / hardening.CONF_FILE).port


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``broker init/add-device/grant/revoke`` to the ``voicehello`` parser."""
    broker = sub.add_parser("broker", help="set up a hardened Mosquitto (TLS, passwords, ACLs)")
    actions = broker.add_subparsers(dest="broker_command", metavar="ACTION", required=True)

    p = actions.add_parser("init", parents=[common], help="write a CA, certificates and mosquitto.conf")
    p.add_argument("dir", type=Path, metavar="DIR", help="directory for the broker's files")
    p.add_argument(
        "--host",
        action="append",
        metavar="NAME",
        help="host name or address devices use, and the broker listens on (repeatable; default: "
        "listen on 127.0.0.1 only; localhost and 127.0.0.1 are always on the certificate)",
    )
    p.add_argument("--port", type=int, default=hardening.DEFAULT_PORT, help="TLS port (default 8883)")
    p.add_argument("--force", action="store_true", help="replace a broker already in DIR")
    p.add_argument(
        "--ca-dir",
        type=Path,
        metavar="CA_DIR",
        help="where to keep the CA's private key, apart from the broker (default: DIR-ca)",
    )
    p.set_defaults(func=cmd_init)

    p = actions.add_parser("add-device", parents=[common], help="give a device a password and pods")
    p.add_argument("name", metavar="NAME", help="device id (its user name on the broker)")
    p.add_argument("--dir", type=Path, required=True, help="the broker's directory")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--pod",
        action="append",
        metavar="POD_ID",
        help="id of a pod it may read and speak in (repeatable; see `pod list`)",
    )
    which.add_argument(
        "--all-pods",
        action="store_true",
        help="it may read every pod's topics (contents stay sealed); it speaks only in pods granted by id",
    )
    p.add_argument(
        "--host", metavar="H", help="broker host for the snippet (default: first certificate name)"
    )
    p.add_argument("--port", type=int, help="broker port for the snippet (default: from mosquitto.conf)")
    p.set_defaults(func=cmd_add_device)

    p = actions.add_parser("grant", parents=[common], help="let a device read and speak in one more pod")
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "pod", metavar="POD_ID", help=f"pod id (see `voicehello pod list`), or {hardening.ALL_PODS!r}"
    )
    p.add_argument("--dir", type=Path, required=True, help="the broker's directory")
    p.set_defaults(func=cmd_grant)

    p = actions.add_parser("revoke", parents=[common], help="remove a device's password and grants")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--dir", type=Path, required=True, help="the broker's directory")
    p.set_defaults(func=cmd_revoke)
