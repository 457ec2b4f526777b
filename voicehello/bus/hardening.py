"""A hardened Mosquitto for the street: TLS, one password per device, topic ACLs.

:func:`init_broker` writes everything a broker needs into one directory (mode 0700):

* ``ca.crt``: a local CA (EC P-256, 10 years) that devices trust (``bus.ca_file``); its private
  key ``ca.key`` is kept *outside* the broker's directory, in ``<dir>-ca/`` (mode 0700, never
  given to the broker's user): the broker never needs it, and nothing after ``init`` does;
* ``server.crt``/``server.key``: the broker's certificate, signed by that CA, valid for every
  host name and address given plus ``localhost`` and ``127.0.0.1``;
* ``passwd``: Mosquitto's password file (PBKDF2-SHA512 hashes in ``mosquitto_passwd``'s form);
* ``acl``: each device writes only under its own id and only in the pods it was granted
  (``voicehello/v1/<pod>/<device>/{msg,key,status}``), and reads only those pods (or every pod,
  for an ``all`` grant, which still writes nowhere but its granted pods); ``devices.json`` keeps
  the grants the ACL is made from;
* ``mosquitto.conf``: one TLS listener per host given (bound to it), no anonymous clients, the
  client id replaced by the user name (no device can take over another's session), bounded
  packets, queues and in-flight windows, persistence in the directory saved after every change.

When run as root, the directory and everything in it belong to the ``mosquitto`` user, which the
broker runs as (``user mosquitto``); otherwise to the current user. :func:`add_device`,
:func:`grant` and :func:`revoke` change the password file and the ACL (keeping that owner), then
make a running broker reload them (SIGHUP).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import logging
import os
import pwd
import secrets
import signal
import socket
import stat
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from voicehello.bus import mqtt
from voicehello.bus.topics import ROOT
from voicehello.config import DEVICE_ID
from voicehello.errors import VoicehelloError
from voicehello.privacy.keys import write_private

log = logging.getLogger(__name__)

CA_CERT, CA_KEY = "ca.crt", "ca.key"
SERVER_CERT, SERVER_KEY = "server.crt", "server.key"
PASSWORD_FILE = "passwd"
ACL_FILE = "acl"
DEVICES_FILE = "devices.json"
CONF_FILE = "mosquitto.conf"
PID_FILE = "mosquitto.pid"
LOG_FILE = "mosquitto.log"
DB_FILE = "mosquitto.db"
DEFAULT_PORT = 8883
CA_DIR_SUFFIX = "-ca"
"""The CA's private key lives in ``<broker dir>-ca/`` unless another directory is given."""
BROKER_USER = "mosquitto"
"""The user the broker runs as when ``broker init`` runs as root (Debian's package makes it)."""
DEFAULT_LISTEN = "127.0.0.1"
"""Where the broker listens when no host is given (the certificate then names only this machine)."""
MAX_PACKET_BYTES = mqtt.MAX_PACKET_BYTES
"""The largest MQTT packet the broker takes (bigger: the client is disconnected): the client's own."""
MAX_QUEUED_MESSAGES = 1000
"""Messages the broker holds for one device beyond those in flight (an hour offline on a busy street)."""
MAX_QUEUED_BYTES = 1024 * 1024
"""Payload bytes the broker holds for one device beyond those in flight: about 1,000 everyday
sealed requests (under 1 KiB each), or 16 of the largest packets a client accepts."""
MAX_INFLIGHT_MESSAGES = mqtt.WINDOW
"""Unacknowledged messages sent to one device at a time: the client's own window."""
DEVICE_TOPICS = ("msg", "key", "status")
"""The topics under ``voicehello/v1/<pod>/<device>/`` a device may publish to (see bus/topics.py)."""
ALL_PODS = "all"
"""A grant of every pod's topics (their payloads stay sealed: the device still needs the pod keys)."""
VALIDITY = datetime.timedelta(days=3650)
ALWAYS_NAMES = ("localhost", "127.0.0.1")
PBKDF2_ITERATIONS = 101
"""What ``mosquitto_passwd`` uses by default (the passwords are random 144-bit tokens)."""
SALT_BYTES = 12
MARKER_FILES = (CONF_FILE, CA_CERT, PASSWORD_FILE, ACL_FILE)
"""Any of these means the directory already holds a broker."""


class HardeningError(VoicehelloError):
    """The hardened broker's files cannot be made or changed."""


@dataclass(frozen=True)
class BrokerFiles:
    """Where :func:`init_broker` wrote a broker."""

    directory: Path
    ca_dir: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    password_file: Path
    acl_file: Path
    conf: Path
    port: int
    hostnames: tuple[str, ...]

    @classmethod
    def of(
        cls,
        directory: Path,
        port: int = DEFAULT_PORT,
        hostnames: Iterable[str] = (),
        ca_dir: Path | None = None,
    ) -> BrokerFiles:
        """The file layout of the broker in ``directory`` (CA key in ``ca_dir``, by default
        :func:`default_ca_dir`)."""
        ca_dir = ca_dir if ca_dir is not None else default_ca_dir(directory)
        return cls(
            directory=directory,
            ca_dir=ca_dir,
            ca_cert=directory / CA_CERT,
            ca_key=ca_dir / CA_KEY,
            server_cert=directory / SERVER_CERT,
            server_key=directory / SERVER_KEY,
            password_file=directory / PASSWORD_FILE,
            acl_file=directory / ACL_FILE,
            conf=directory / CONF_FILE,
            port=port,
            hostnames=tuple(hostnames),
        )


@dataclass(frozen=True)
class DeviceCredentials:
    """What a device needs to log in (the password is shown once and never stored in clear)."""

    name: str
    password: str
    pods: tuple[str, ...]


# --------------------------------------------------------------------------- certificates


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _san(names: Iterable[str]) -> x509.SubjectAlternativeName:
    """DNS names and IP addresses, deduplicated, in order."""
    entries: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def make_ca(now: datetime.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA key and certificate (EC P-256, valid 10 years)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "voicehello street CA")])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_server_cert(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, names: list[str], now: datetime.datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A server key and certificate for ``names`` (DNS names or IP addresses), signed by the CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


# --------------------------------------------------------------------------- config


def persistence_and_logging(directory: Path) -> list[str]:
    """Config lines every voicehello Mosquitto shares: sessions and their queued messages kept in
    ``directory`` across restarts (each still bound by its expiry), and a log. How often the
    database is saved and how much is queued differ: see :func:`street_limits`."""
    return [
        "persistence true",
        f"persistence_location {directory}/",
        f"persistence_file {DB_FILE}",
        "persistent_client_expiration 1h",
        "retain_available true",
        f"log_dest file {directory / LOG_FILE}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        "log_timestamp true",
    ]


def street_limits() -> list[str]:
    """What one device (or one device's credentials) may cost the hardened broker, and how little
    a crash may lose. Every option checked against Mosquitto 2.0.11's ``mosquitto.conf(5)``."""
    return [
        # the whole MQTT packet, as the client announces for itself (bigger: disconnected)
        f"max_packet_size {MAX_PACKET_BYTES}",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
        "queue_qos0_messages false",
        # a retained message is served only while its publisher may still publish there
        "check_retain_source true",
        # save after every change (at most once per pass of the broker's event loop), so a
        # kill -9 loses only what arrived in that pass; an idle broker writes nothing
        "autosave_on_changes true",
        "autosave_interval 1",
    ]


def tls_listener(port: int, host: str | None, directory: Path) -> list[str]:
    """One TLS listener on ``host`` (``None``: every address), with the broker's certificate, whose
    clients' ids are replaced by their user names (a listener option in Mosquitto 2.0: before any
    ``listener`` line it would configure, and open, the default listener on port 1883)."""
    return [
        f"listener {port}" + (f" {host}" if host else ""),
        # one session per device, and nobody else's: client id = user name
        "use_username_as_clientid true",
        f"cafile {directory / CA_CERT}",
        f"certfile {directory / SERVER_CERT}",
        f"keyfile {directory / SERVER_KEY}",
        "tls_version tlsv1.2",
    ]


def render_conf(
    directory: Path,
    port: int,
    *,
    hosts: Sequence[str | None] = (DEFAULT_LISTEN,),
    user: str | None = None,
    pid_file: Path | None = None,
) -> str:
    """The ``mosquitto.conf`` of the hardened broker in ``directory``: a TLS listener bound to each
    of ``hosts`` (``None``: all addresses), run as ``user`` (default: :func:`broker_user`)."""
    lines = [
        "# Written by `voicehello broker init`.",
        f"user {user or broker_user(directory)}",
        f"pid_file {pid_file or directory / PID_FILE}",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {directory / PASSWORD_FILE}",
        f"acl_file {directory / ACL_FILE}",
        *street_limits(),
        *(line for host in hosts for line in tls_listener(port, host, directory)),
        *persistence_and_logging(directory),
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ConfSummary:
    """What a written ``mosquitto.conf`` says about where and as whom the broker runs."""

    port: int
    listen: tuple[str, ...]
    """The listeners' bind addresses or names (``all addresses`` for a listener without one)."""
    user: str


def read_conf(conf: Path) -> ConfSummary:
    """The port (of the first listener), listeners and user of ``conf`` (defaults where unreadable)."""
    try:
        lines = [line.split() for line in conf.read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        log.warning("cannot read %s: %s", conf, exc.strerror or exc)
        lines = []
    listeners = [
        parts for parts in lines if len(parts) >= 2 and parts[0] == "listener" and parts[1].isdigit()
    ]
    users = [parts[1] for parts in lines if len(parts) == 2 and parts[0] == "user"]
    return ConfSummary(
        port=int(listeners[0][1]) if listeners else DEFAULT_PORT,
        listen=tuple(parts[2] if len(parts) > 2 else "all addresses" for parts in listeners),
        user=users[0] if users else BROKER_USER,
    )


def render_acl(devices: Mapping[str, Iterable[str]]) -> str:
    """The ACL: a device reads the pods it was granted (``all``: every pod) and writes only under
    its own id, only the three topics devices publish, and only in pods granted by id."""
    lines = [
        "# Written by voicehello; rewritten by `voicehello broker add-device/grant/revoke`.",
        "# A device publishes only under its own id (its user name, which is also its client id),",
        "# only what devices publish, and only in the pods it was granted by id (never a made-up one).",
    ]
    for name in sorted(devices):
        pods = sorted(set(devices[name]))
        lines += ["", f"user {name}"]
        lines += [f"topic read {ROOT}/{_acl_level(pod)}/#" for pod in pods]
        lines += [
            f"topic write {ROOT}/{pod}/{name}/{kind}"
            for pod in pods
            if pod != ALL_PODS
            for kind in DEVICE_TOPICS
        ]
    return "\n".join(lines) + "\n"


def _acl_level(pod: str) -> str:
    """The topic level granted for ``pod``: its id, or ``+`` for :data:`ALL_PODS`."""
    return "+" if pod == ALL_PODS else pod


def _check_name(what: str, value: str) -> None:
    if not DEVICE_ID.fullmatch(value):
        raise HardeningError(f"{what} {value!r} must be 1-32 lower-case letters, digits or '-'")


# --------------------------------------------------------------------------- who owns what


def default_ca_dir(directory: Path) -> Path:
    """Where the CA's private key is kept for the broker in ``directory``: ``<directory>-ca``."""
    return directory.with_name(directory.name + CA_DIR_SUFFIX)


def _user_named(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _reachable_by(path: Path, account: pwd.struct_passwd) -> bool:
    """Whether ``account`` may enter every directory above ``path`` (by the permission bits)."""
    for parent in path.absolute().parents:
        info = parent.stat()
        if info.st_uid == account.pw_uid:
            bit = stat.S_IXUSR
        elif info.st_gid == account.pw_gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return False
    return True


def broker_user(directory: Path) -> str:
    """The user the broker in ``directory`` runs as: :data:`BROKER_USER` when this process is root,
    that user exists and can reach ``directory``; otherwise the current user (one log line says
    why, when root)."""
    current = pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() != 0:
        return current
    account = _user_named(BROKER_USER)
    if account is None:
        log.warning("no %s user on this machine; the broker will run as %s", BROKER_USER, current)
        return current
    if not _reachable_by(directory, account):
        log.warning(
            "%s cannot reach %s (a directory above it is closed to it); the broker will run as %s",
            BROKER_USER,
            directory,
            current,
        )
        return current
    return BROKER_USER


def owner_of(directory: Path) -> str:
    """The name of the user who owns ``directory`` (the broker's user, after :func:`init_broker`)."""
    uid = directory.stat().st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def hand_over(directory: Path, *paths: Path) -> None:
    """Give ``paths`` to the owner of the broker's ``directory`` (when root and it is another user),
    so the broker can read what this process just wrote."""
    if os.geteuid() != 0:
        return
    info = directory.stat()
    for path in paths:
        if path.exists() and (path.stat().st_uid, path.stat().st_gid) != (info.st_uid, info.st_gid):
            os.chown(path, info.st_uid, info.st_gid, follow_symlinks=False)


def _own_directory(directory: Path, user: str) -> None:
    """Make ``user`` own ``directory`` and its files (when root)."""
    account = _user_named(user)
    if os.geteuid() != 0 or account is None:
        return
    os.chown(directory, account.pw_uid, account.pw_gid)
    hand_over(directory, *directory.iterdir())


# --------------------------------------------------------------------------- listeners


def _addresses(host: str, port: int) -> set[str] | None:
    """The addresses ``host`` resolves to now (``None`` when it does not resolve here)."""
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except (OSError, UnicodeError):
        return None


def listen_hosts(names: Sequence[str], port: int) -> list[str]:
    """The hosts to bind one listener each to: the names given, minus any that resolves to an
    address an earlier one already binds (Mosquitto would fail with "Address already in use");
    :data:`DEFAULT_LISTEN` when none is given. A name that does not resolve now is kept, with a
    warning: Mosquitto resolves it when it starts and fails if it still cannot."""
    if not names:
        return [DEFAULT_LISTEN]
    kept: list[str] = []
    bound: set[str] = set()
    for name in dict.fromkeys(names):
        addresses = _addresses(name, port)
        if addresses is None:
            log.warning("%s does not resolve on this machine; mosquitto will not start until it does", name)
        elif addresses & bound:
            log.info("%s resolves to an address already listened on; no second listener", name)
            continue
        else:
            bound |= addresses
        kept.append(name)
    return kept


def init_broker(
    directory: Path,
    hostnames: list[str],
    port: int = DEFAULT_PORT,
    *,
    force: bool = False,
    ca_dir: Path | None = None,
    user: str | None = None,
) -> BrokerFiles:
    """Create a CA (its key in ``ca_dir``), a server certificate, an empty password file, an ACL
    and ``mosquitto.conf`` run as ``user`` (default :func:`broker_user`).

    Raises :class:`HardeningError` when ``directory`` already holds a broker (unless ``force``).
    """
    directory = Path(directory).absolute()
    if not 0 < port < 65536:
        raise HardeningError(f"port {port} is not a TCP port")
    names = [name.strip() for name in hostnames if name.strip()]
    if any(" " in name or "/" in name for name in names):
        raise HardeningError("host names must not contain spaces or '/'")
    files = BrokerFiles.of(directory, port, dict.fromkeys([*names, *ALWAYS_NAMES]), ca_dir)
    if files.ca_dir.absolute() == directory:
        raise HardeningError("the CA's directory must not be the broker's directory")
    existing = [name for name in MARKER_FILES if (directory / name).exists()]
    existing += [str(files.ca_key)] if files.ca_key.exists() else []
    if existing and not force:
        raise HardeningError(f"{directory} already holds a broker ({existing[0]}); use --force to replace it")
    try:
        for made in (directory, files.ca_dir):
            made.mkdir(parents=True, exist_ok=True)
            os.chmod(made, 0o700)
        (directory / CA_KEY).unlink(missing_ok=True)  # left there by an older `broker init`
        now = datetime.datetime.now(datetime.UTC)
        ca_key, ca_cert = make_ca(now)
        server_key, server_cert = make_server_cert(ca_key, ca_cert, list(files.hostnames), now)
        write_private(files.ca_key, _key_pem(ca_key))
        write_private(files.server_key, _key_pem(server_key))
        files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        files.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
        write_private(files.password_file, b"")
        _save_devices(directory, {})
        run_as = user or broker_user(directory)
        conf = render_conf(directory, port, hosts=listen_hosts(names, port), user=run_as)
        write_private(files.conf, conf.encode())
        _own_directory(directory, run_as)
    except OSError as exc:
        raise HardeningError(f"cannot write the broker into {directory}: {exc.strerror or exc}") from exc
    log.info("hardened broker written to %s for %s, run as %s", directory, ", ".join(files.hostnames), run_as)
    return files


# --------------------------------------------------------------------------- devices


def _require_broker(directory: Path) -> None:
    for name in (PASSWORD_FILE, ACL_FILE, CA_CERT):
        if not (directory / name).is_file():
            raise HardeningError(
                f"{directory} holds no broker (no {name}); run `voicehello broker init` first"
            )


def load_devices(directory: Path) -> dict[str, list[str]]:
    """Every device of the broker in ``directory`` with the pods it may read."""
    _require_broker(directory)
    path = directory / DEVICES_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, ValueError) as exc:
        raise HardeningError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or not all(
        isinstance(pods, list) and all(isinstance(pod, str) for pod in pods) for pods in data.values()
    ):
        raise HardeningError(f"{path} is not a map of device names to lists of pods")
    return {str(name): list(pods) for name, pods in data.items()}


def _save_devices(directory: Path, devices: Mapping[str, list[str]]) -> None:
    """Write ``devices.json`` and the ACL made from it."""
    try:
        write_private(
            directory / DEVICES_FILE, (json.dumps(devices, indent=2, sort_keys=True) + "\n").encode()
        )
        write_private(directory / ACL_FILE, render_acl(devices).encode())
        hand_over(directory, directory / DEVICES_FILE, directory / ACL_FILE)
    except OSError as exc:
        raise HardeningError(f"cannot write the ACL in {directory}: {exc.strerror or exc}") from exc


def password_hash(password: str, salt: bytes | None = None) -> str:
    """The password file's hash of ``password``, in the form ``mosquitto_passwd`` writes:
    ``$7$<iterations>$<salt>$<PBKDF2-HMAC-SHA512>`` (base64). Computed here, so the password
    never appears on a command line (where ``ps`` would show it)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    encode = base64.b64encode
    return f"$7${PBKDF2_ITERATIONS}${encode(salt).decode()}${encode(digest).decode()}"


def _set_password(directory: Path, name: str, password: str | None) -> None:
    """Replace ``name``'s line in the password file (``None``: remove it)."""
    path = directory / PASSWORD_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if line.strip() and line.split(":", 1)[0] != name]
        if password is not None:
            kept.append(f"{name}:{password_hash(password)}")
        write_private(path, ("\n".join(kept) + "\n").encode() if kept else b"")
        hand_over(directory, path)
    except OSError as exc:
        raise HardeningError(f"cannot update the password file {path}: {exc.strerror or exc}") from exc


def add_device(directory: Path, name: str, pods: list[str]) -> DeviceCredentials:
    """Give device ``name`` a fresh random password and read access to ``pods`` (pod ids, or
    :data:`ALL_PODS`; none is allowed: grant them later); reload the broker."""
    directory = Path(directory).absolute()
    _check_name("device name", name)
    for pod in pods:
        _check_name("pod", pod)
    devices = load_devices(directory)
    if name in devices:
        raise HardeningError(f"device {name!r} already exists; `voicehello broker revoke {name}` it first")
    password = secrets.token_urlsafe(18)
    _set_password(directory, name, password)
    devices[name] = list(dict.fromkeys(pods))
    _save_devices(directory, devices)
    reload_broker(directory)
    log.info("device %s added with pods %s", name, ", ".join(devices[name]) or "(none yet)")
    return DeviceCredentials(name=name, password=password, pods=tuple(devices[name]))


def grant(directory: Path, name: str, pod: str) -> None:
    """Let device ``name`` read ``pod`` as well; reload the broker."""
    directory = Path(directory).absolute()
    _check_name("pod", pod)
    devices = load_devices(directory)
    if name not in devices:
        raise HardeningError(f"unknown device {name!r}; add it with `voicehello broker add-device`")
    devices[name] = list(dict.fromkeys([*devices[name], pod]))
    _save_devices(directory, devices)
    reload_broker(directory)


def revoke(directory: Path, name: str) -> None:
    """Delete device ``name``'s password and grants; reload the broker."""
    directory = Path(directory).absolute()
    devices = load_devices(directory)
    if name not in devices:
        raise HardeningError(f"unknown device {name!r}")
    _set_password(directory, name, None)
    del devices[name]
    _save_devices(directory, devices)
    reload_broker(directory)


# --------------------------------------------------------------------------- reload


def _is_mosquitto(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "mosquitto"
    except OSError:
        return False


def _pid_from_file(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def reload_broker(directory: Path) -> bool:
    """Send SIGHUP to the mosquitto of ``directory`` (found by its pid file); True if one was told."""
    pid = _pid_from_file(Path(directory) / PID_FILE)
    if pid is None or not _is_mosquitto(pid):
        log.info("no running mosquitto for %s; the changes apply at its next start", directory)
        return False
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        log.warning("could not tell mosquitto (pid %d) to reload: %s", pid, exc)
        return False
    log.info("told mosquitto (pid %d) to reload its password file and ACL", pid)
    return True


# --------------------------------------------------------------------------- devices' settings


def _toml_string(value: str) -> str:
    """A TOML basic string (JSON string escaping is valid TOML)."""
    return json.dumps(value, ensure_ascii=False)


def config_snippet(creds: DeviceCredentials, host: str, port: int, ca_path: Path | str) -> str:
    """The ``[device]`` and ``[bus]`` tables a device pastes into ``config/voicehello.toml``."""
    text = "\n".join(
        [
            "[device]",
            f"id = {_toml_string(creds.name)}",
            "",
            "[bus]",
            f"host = {_toml_string(host)}",
            f"port = {port}",
            "tls = true",
            f"ca_file = {_toml_string(str(ca_path))}",
            f"username = {_toml_string(creds.name)}",
            f"password = {_toml_string(creds.password)}",
        ]
    )
    tomllib.loads(text)  # never hand out a snippet that does not parse
    return text + "\n"
