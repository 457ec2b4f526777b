"""A private Mosquitto broker for the demo and the tests.

:class:`EmbeddedBroker` writes its own ``mosquitto.conf`` in a work directory and runs
``mosquitto -c mosquitto.conf`` as a child process on a loopback port. Persistence is on
(in the work directory), so subscriber sessions and the messages queued for them survive a
graceful :meth:`~EmbeddedBroker.stop` and :meth:`~EmbeddedBroker.restart`. Anonymous
clients are allowed, unless the broker is made with :meth:`EmbeddedBroker.hardened`: then it
runs from a :mod:`voicehello.bus.hardening` directory (TLS, passwords, ACL).
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType

from voicehello.bus import hardening
from voicehello.config import BusSettings
from voicehello.errors import BusError
from voicehello.privacy.keys import write_private

log = logging.getLogger(__name__)

FALLBACK_BINARY = Path("/usr/sbin/mosquitto")
CONF_NAME = "mosquitto.conf"
HARDENED_CONF_NAME = "embedded.conf"
"""The config of a hardened embedded broker (``mosquitto.conf`` is left as ``broker init`` wrote it)."""
LOG_NAME = hardening.LOG_FILE
STDERR_NAME = "mosquitto.stderr"
DB_NAME = hardening.DB_FILE
PLAIN_LIMITS = (
    "autosave_interval 30",
    "max_queued_messages 10000",
    "max_queued_bytes 0",
    "max_inflight_messages 20",
)
"""The anonymous broker's room for bursts (the benchmark floods it); the hardened one bounds what a
device may queue and saves after every change (:func:`~voicehello.bus.hardening.street_limits`)."""
START_ATTEMPTS = 3
"""Tries with a fresh free port when the one picked was taken meanwhile."""


def find_mosquitto() -> Path:
    """The ``mosquitto`` binary (raises :class:`BusError` when it is not installed)."""
    found = shutil.which("mosquitto")
    if found:
        return Path(found)
    if FALLBACK_BINARY.is_file() and os.access(FALLBACK_BINARY, os.X_OK):
        return FALLBACK_BINARY
    raise BusError("mosquitto not found; install it with: apt-get install mosquitto")


def free_port(host: str) -> int:
    """A TCP port nothing listens on right now (raises :class:`BusError` for a host not on this machine)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            return int(sock.getsockname()[1])
    except OSError as exc:
        raise BusError(f"cannot listen on {host}: {exc.strerror or exc}") from exc


def render_config(workdir: Path, host: str, port: int) -> str:
    """The ``mosquitto.conf`` of an embedded broker."""
    lines = [
        "# Written by voicehello's EmbeddedBroker; rewritten at every start.",
        f"listener {port} {host}",
        "allow_anonymous true",
        f"user {pwd.getpwuid(os.getuid()).pw_name}",
        *hardening.persistence_and_logging(workdir),
        *PLAIN_LIMITS,
    ]
    return "\n".join(lines) + "\n"


def _check_port_free(host: str, port: int) -> None:
    """Raise :class:`BusError` unless ``host:port`` can be listened on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine, a listener is not
            sock.bind((host, port))
    except OSError as exc:
        raise BusError(f"cannot start mosquitto on {host}:{port}: {exc.strerror or exc}") from exc


def _accepts(host: str, port: int) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """A Mosquitto child process with its own config, database and log in ``workdir``."""

    def __init__(
        self, workdir: Path, port: int | None = None, host: str = "127.0.0.1", *, tls_dir: Path | None = None
    ) -> None:
        self.workdir = Path(workdir)
        self.host = host
        self._port = port
        self._process: subprocess.Popen[bytes] | None = None
        self.tls_dir = Path(tls_dir).absolute() if tls_dir is not None else None
        """A :func:`~voicehello.bus.hardening.init_broker` directory: run hardened from it."""
        self.credentials: dict[str, hardening.DeviceCredentials] = {}
        """Devices added by :meth:`hardened`, by name."""

    @classmethod
    def hardened(
        cls,
        workdir: Path,
        devices: Iterable[str] = (),
        pods: Sequence[str] = (),
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
    ) -> EmbeddedBroker:
        """A TLS broker with passwords and ACLs in ``workdir`` (made by ``init_broker`` if needed).

        Each of ``devices`` not yet known is added with read access to ``pods`` (pod ids); the passwords
        of the ones added are in :attr:`credentials`. Clients need :attr:`ca_file`.
        """
        directory = Path(workdir).absolute()
        if not (directory / hardening.CONF_FILE).exists():
            hardening.init_broker(directory, [host])
        broker = cls(directory, port, host, tls_dir=directory)
        known = hardening.load_devices(directory)
        for name in devices:
            if name not in known:
                broker.credentials[name] = hardening.add_device(directory, name, list(pods))
        return broker

    # -- state ------------------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` clients connect to (the port is known once started)."""
        if self._port is None:
            raise BusError("the embedded broker has not been started yet")
        return self.host, self._port

    @property
    def running(self) -> bool:
        """True while the mosquitto process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The mosquitto process id while it runs."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate clients must trust (hardened brokers only)."""
        return self.tls_dir / hardening.CA_CERT if self.tls_dir is not None else None

    def bus_settings(self, device: str, pod: str = BusSettings.pod, **overrides: object) -> BusSettings:
        """Settings for ``device`` (added by :meth:`hardened`) to connect to this running broker."""
        host, port = self.address
        settings = BusSettings(host=host, port=port, pod=pod)
        if self.tls_dir is not None:
            creds = self.credentials.get(device)
            if creds is None:
                raise BusError(f"no credentials for device {device!r} on this broker")
            settings = replace(
                settings, tls=True, ca_file=self.ca_file, username=creds.name, password=creds.password
            )
        return replace(settings, **overrides)  # type: ignore[arg-type]

    @property
    def log_file(self) -> Path:
        """Mosquitto's log."""
        return self.workdir / LOG_NAME

    @property
    def db_file(self) -> Path:
        """Mosquitto's persistence database."""
        return self.workdir / DB_NAME

    # -- life cycle -------------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> None:
        """Write the config, start mosquitto and wait until it accepts connections."""
        if self.running:
            return
        binary = find_mosquitto()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._port is not None:  # a port chosen by the caller, or the one of the first start
            self._launch(binary, self._port, timeout_s)
            return
        for attempt in range(1, START_ATTEMPTS + 1):
            port = free_port(self.host)
            try:
                self._launch(binary, port, timeout_s)
            except BusError:
                if attempt == START_ATTEMPTS:
                    raise
                log.info("mosquitto could not start on port %d; trying another port", port)
            else:
                self._port = port
                return

    def restart(self, timeout_s: float = 10.0) -> None:
        """Stop (if running) and start again on the same port."""
        self.stop()
        self.start(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Graceful stop (SIGTERM): mosquitto saves its database, then exits."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("mosquitto did not stop within %g s of SIGTERM; killing it", timeout_s)
                process.kill()
                process.wait(timeout=timeout_s)
        self._process = None

    def kill(self) -> None:
        """Abrupt stop (SIGKILL): whatever mosquitto had not saved is lost."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        self._process = None

    def save(self, timeout_s: float = 10.0) -> None:
        """Make mosquitto write its persistence database now (SIGUSR1) and wait until it has."""
        process = self._process
        if process is None or process.poll() is not None:
            raise BusError("the embedded broker is not running")
        before = self._db_stamp()
        process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout_s
        while self._db_stamp() == before:
            if time.monotonic() > deadline:
                raise BusError(f"mosquitto did not write {self.db_file} within {timeout_s:g} s")
            time.sleep(0.02)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- helpers ----------------------------------------------------------------------------
    def _launch(self, binary: Path, port: int, timeout_s: float) -> None:
        """Start one mosquitto process on ``port``; raise :class:`BusError` if it fails."""
        _check_port_free(self.host, port)  # mosquitto would quietly share a port that is taken
        conf = self._write_config(port)
        stderr = (self.workdir / STDERR_NAME).open("wb")
        try:
            self._process = subprocess.Popen(
                [str(binary), "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        except OSError as exc:
            raise BusError(f"cannot run {binary}: {exc.strerror or exc}") from exc
        finally:
            stderr.close()
        if not self._wait_ready(port, timeout_s):
            self.kill()
            raise BusError(f"mosquitto failed to start on {self.host}:{port}: {self._last_log_line()}")
        log.info("mosquitto running on %s:%d (pid %d)", self.host, port, self._process.pid)

    def _write_config(self, port: int) -> Path:
        """Write the config for a start on ``port``; its path."""
        if self.tls_dir is None:
            conf = self.workdir / CONF_NAME
            conf.write_text(render_config(self.workdir, self.host, port), encoding="utf-8")
            return conf
        conf = self.workdir / HARDENED_CONF_NAME
        user = hardening.owner_of(self.tls_dir)  # whom `broker init` gave the directory to
        text = hardening.render_conf(self.tls_dir, port, hosts=[self.host], user=user)
        if self.workdir != self.tls_dir:  # database and log stay in the work directory
            text = text.replace(
                f"persistence_location {self.tls_dir}/", f"persistence_location {self.workdir}/"
            )
            text = text.replace(f"log_dest file {self.tls_dir}/", f"log_dest file {self.workdir}/")
            hardening.hand_over(self.tls_dir, self.workdir)
        write_private(conf, text.encode())
        hardening.hand_over(self.tls_dir, conf)  # the broker re-reads it on SIGHUP, as its user
        return conf

    def _wait_ready(self, port: int, timeout_s: float) -> bool:
        """Poll until the port accepts connections; False if mosquitto exits or time runs out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                return False
            if _accepts(self.host, port):
                return True
            time.sleep(0.02)
        return False

    def _last_log_line(self) -> str:
        for path in (self.workdir / STDERR_NAME, self.log_file):
            try:
                lines = [
                    line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()
                ]
            except OSError:
                continue
            if lines:
                return lines[-1][:200]
        return "no log output"

    def _db_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.db_file.stat()
        except OSError:
            return None
        return stat.st_ino, stat.st_mtime_ns
