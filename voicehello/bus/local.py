"""The device's local control socket: ``voicehello say`` hands a confirmed message to the running
daemon (``voicehello run``), which publishes it on its own broker connection.

Why: the broker binds a device's client id to its user name, so each device account has one
connection. A second connection by ``say`` would kick the daemon off the broker, and its clean
start would throw away the daemon's persistent session (and what was queued in it).

Where: ``<keys_dir>/daemon.sock`` (:func:`socket_path`), a Unix domain socket of mode 0600 in the
owner-only key directory. ``run`` makes it (:class:`SayServer`) and removes it when it stops. A
socket file left by a daemon that was killed refuses connections: ``say`` then connects to the
broker itself (one log line), and the next ``run`` replaces it (one log line).

Protocol: per connection, one request line and one answer line (UTF-8 JSON), then the daemon
closes the connection::

    {"v": 1, "message": {...the message's JSON...}, "pod": "street", "timeout": 10}
    {"ok": true, "id": "..."}        or        {"ok": false, "error": "..."}

Bad input (not JSON, a line over 64 KiB, another version, an invalid message, another device's
message, a client that sends nothing, another user) is one log line on the daemon's side; it
goes on serving. Only the daemon's user (or root) may connect (``SO_PEERCRED``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicehello.bus.messages import Message
from voicehello.errors import BusError, MessageError, VoicehelloError

log = logging.getLogger(__name__)

VERSION = 1
"""The protocol's version (``v`` of a request)."""
SOCKET_NAME = "daemon.sock"
"""The socket's file name in the device's key directory."""
MAX_LINE_BYTES = 64 * 1024
"""Longest request or answer line (the bus's packet limit); a longer one is refused."""
READ_TIMEOUT_S = 5.0
"""How long the daemon waits for a client's whole request line."""
MAX_WAIT_S = 120.0
"""Longest wait for the broker a request may ask for (``say --timeout`` is capped to this)."""
ANSWER_GRACE_S = 5.0
"""How much longer than its request's ``timeout`` ``say`` waits for the daemon's answer."""
CONNECT_TIMEOUT_S = 5.0
"""How long ``say`` waits to connect to the socket."""
MAX_CLIENTS = 4
"""Requests served at once; more get a "busy" answer at once."""
ACCEPT_POLL_S = 0.5
"""How often the accepting thread checks that it must stop."""
MAX_ERROR_CHARS = 500
"""Longest error text in an answer."""
_SUN_PATH_MAX = 108
"""Bytes in ``sockaddr_un.sun_path`` on Linux, the final NUL included."""


def socket_path(keys_dir: Path) -> Path:
    """Where the daemon of the device whose keys are in ``keys_dir`` listens."""
    return Path(keys_dir) / SOCKET_NAME


# --------------------------------------------------------------------------- the messages


@dataclass(frozen=True)
class SayRequest:
    """What ``say`` asks the running daemon: publish this confirmed message and wait for the broker."""

    message: Message
    """The confirmed message; it must be from the daemon's own device."""
    pod: str | None = None
    """Name or id of the pod to say it in; ``None``: the pod of the message it answers, else the default."""
    timeout_s: float = 10.0
    """Seconds the daemon waits for the broker to take it (``say --timeout``), at most :data:`MAX_WAIT_S`."""
    v: int = VERSION
    """Protocol version."""

    def to_line(self) -> bytes:
        """The request as one JSON line (newline included)."""
        data = {"v": self.v, "message": self.message.to_dict(), "pod": self.pod, "timeout": self.timeout_s}
        return _line(data)

    @classmethod
    def from_line(cls, line: bytes) -> SayRequest:
        """Read and check a request line (raises :class:`MessageError` for anything wrong)."""
        data = _object(line, "request")
        if data.get("v") != VERSION:
            raise MessageError(f"request version {_short(data.get('v'))} is not {VERSION}")
        pod, timeout = data.get("pod"), data.get("timeout")
        if pod is not None and not (isinstance(pod, str) and 0 < len(pod) <= 64):
            raise MessageError("request pod must be a pod name or id, or null")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise MessageError("request timeout must be a number of seconds")
        if not 0 < timeout <= MAX_WAIT_S:
            raise MessageError(f"request timeout must be more than 0 and at most {MAX_WAIT_S:g} s")
        if "message" not in data:
            raise MessageError("request has no message")
        message = Message.from_dict(data["message"])  # the schema and the slot rule
        return cls(message=message, pod=pod, timeout_s=float(timeout))


@dataclass(frozen=True)
class SayAnswer:
    """The daemon's answer: the message was taken by the broker, or why not."""

    ok: bool
    """True once the broker acknowledged the message."""
    id: str | None = None
    """The message's id (when ``ok``)."""
    error: str | None = None
    """One line for the user, printed by ``say`` after ``voicehello:`` (when not ``ok``)."""

    def to_line(self) -> bytes:
        """The answer as one JSON line (newline included)."""
        if self.ok:
            return _line({"ok": True, "id": self.id})
        return _line({"ok": False, "error": (self.error or "failed")[:MAX_ERROR_CHARS]})

    @classmethod
    def from_line(cls, line: bytes) -> SayAnswer:
        """Read and check an answer line (raises :class:`MessageError` for anything wrong)."""
        data = _object(line, "answer")
        ok = data.get("ok")
        if ok is True and isinstance(data.get("id"), str):
            return cls(ok=True, id=data["id"])
        if ok is False and isinstance(data.get("error"), str):
            return cls(ok=False, error=" ".join(data["error"].split())[:MAX_ERROR_CHARS])
        raise MessageError("answer is neither {ok: true, id} nor {ok: false, error}")


def _line(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def _object(line: bytes, what: str) -> dict[str, Any]:
    if len(line) > MAX_LINE_BYTES:
        raise MessageError(f"{what} of {len(line)} bytes is over {MAX_LINE_BYTES}")
    try:
        data = json.loads(line.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MessageError(f"{what} is not UTF-8 JSON ({type(exc).__name__})") from exc
    if not isinstance(data, dict):
        raise MessageError(f"{what} is not a JSON object")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 20 else text[:19] + "…"


def read_line(conn: socket.socket, timeout_s: float, limit: int = MAX_LINE_BYTES) -> bytes:
    """One line from ``conn`` (without its newline), read within ``timeout_s`` in all (a client
    that trickles bytes does not get longer); raises :class:`BusError` when the line is over
    ``limit`` bytes, the time is up, or the other side closes first."""
    deadline = time.monotonic() + timeout_s
    buffer = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BusError(f"no complete line within {timeout_s:g} s")
        conn.settimeout(left)
        try:
            chunk = conn.recv(min(65536, limit + 1 - len(buffer)))
        except TimeoutError as exc:
            raise BusError(f"no complete line within {timeout_s:g} s") from exc
        if not chunk:
            raise BusError("the other side closed the connection before a complete line")
        end = chunk.find(b"\n")
        buffer += chunk if end < 0 else chunk[:end]
        if len(buffer) > limit:
            raise BusError(f"a line over {limit} bytes")
        if end >= 0:
            return bytes(buffer)


@contextmanager
def _address(path: Path) -> Iterator[str]:
    """``path`` as ``bind``/``connect`` take it: itself, or, when longer than ``sun_path`` holds,
    reached through an open descriptor of its directory (``/proc/self/fd/N/daemon.sock``)."""
    if len(os.fsencode(path)) < _SUN_PATH_MAX:
        yield str(path)
        return
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{directory}/{path.name}"
    finally:
        os.close(directory)


# --------------------------------------------------------------------------- say's side


def hand_over(path: Path, request: SayRequest) -> SayAnswer | None:
    """Ask the daemon listening at ``path`` to publish ``request``'s message; its answer, or
    ``None`` when no daemon listens there (no socket, or one left by a daemon that is gone:
    logged). Raises :class:`BusError` when a daemon took the connection but gave no answer (it
    may still send the message)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(CONNECT_TIMEOUT_S)
        try:
            with _address(path) as address:
                conn.connect(address)
        except FileNotFoundError:
            log.info("no daemon runs for this device (no %s)", path)
            return None
        except ConnectionRefusedError:
            log.warning("%s was left by a daemon that is gone; ignoring it", path)
            return None
        except OSError as exc:
            raise BusError(f"cannot reach the running daemon at {path}: {exc}") from exc
        wait_s = request.timeout_s + ANSWER_GRACE_S
        try:
            conn.sendall(request.to_line())
        except OSError as exc:  # a daemon that refuses at once (busy) may close first: read why
            log.info("the daemon closed the connection before taking the whole request: %s", exc)
        try:
            line = read_line(conn, wait_s)
        except (OSError, BusError) as exc:
            raise BusError(
                f"the running daemon (`voicehello run`) did not answer within {wait_s:g} s ({exc}); "
                "it may still send the message"
            ) from exc
    try:
        return SayAnswer.from_line(line)
    except MessageError as exc:
        raise BusError(f"the running daemon's answer makes no sense: {exc}") from exc


# --------------------------------------------------------------------------- the daemon's side

Handler = Callable[[SayRequest], str]
"""Publishes a request's message and waits for the broker; returns the message id, raises
:class:`~voicehello.errors.VoicehelloError` (its text is the answer's error)."""


def _peer_uid(conn: socket.socket) -> int:
    """The user id of the process on the other end of a Unix socket (Linux ``SO_PEERCRED``)."""
    ucred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", ucred)
    return int(uid)


def _alive(path: Path) -> bool:
    """True when a process accepts connections on ``path``; False for a socket nobody listens on."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(CONNECT_TIMEOUT_S)
        try:
            with _address(path) as address:
                probe.connect(address)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError as exc:
            raise BusError(f"cannot check the control socket {path}: {exc}") from exc
    return True


class SayServer:
    """The daemon's end of the control socket: hands each request to ``handle`` on a thread of
    its own (at most :data:`MAX_CLIENTS` at once) and answers with what it returned or raised."""

    def __init__(self, path: Path, handle: Handler, *, read_timeout_s: float = READ_TIMEOUT_S) -> None:
        self.path = Path(path)
        self._handle = handle
        self._read_timeout_s = read_timeout_s
        self._listener: socket.socket | None = None
        self._inode: int | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)

    def start(self) -> None:
        """Listen on :attr:`path` (mode 0600): a socket left by a daemon that is gone is replaced
        (one log line); raises :class:`BusError` when another daemon listens there."""
        self._clear_stale()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        fresh = self.path.with_name(f".{SOCKET_NAME}.{os.getpid()}")
        try:
            if os.path.lexists(fresh):  # from a daemon of the same pid, before a reboot
                fresh.unlink()
            with _address(fresh) as address:
                listener.bind(address)
            os.chmod(fresh, 0o600)  # before it has its name: nobody else can have connected
            listener.listen(MAX_CLIENTS * 2)
            os.replace(fresh, self.path)
            self._inode = os.lstat(self.path).st_ino
        except OSError as exc:
            listener.close()
            fresh.unlink(missing_ok=True)
            raise BusError(f"cannot make the control socket {self.path}: {exc}") from exc
        listener.settimeout(ACCEPT_POLL_S)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, name="say-server", daemon=True)
        self._thread.start()
        log.info("`voicehello say` hands messages to this daemon over %s", self.path)

    def stop(self) -> None:
        """Stop accepting and remove the socket file (if it is still this server's)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=ACCEPT_POLL_S * 4)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        try:
            if self._inode is not None and os.lstat(self.path).st_ino == self._inode:
                self.path.unlink()
        except FileNotFoundError:
            log.info("the control socket %s was already gone", self.path)
        self._inode = None

    def _clear_stale(self) -> None:
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise BusError(f"{self.path} is in the way of the control socket: it is not a socket")
        if _alive(self.path):
            raise BusError(f"another `voicehello run` is already running for this device ({self.path})")
        log.warning("replacing the control socket %s left by a daemon that is gone", self.path)
        self.path.unlink(missing_ok=True)

    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stopping.is_set():
                    return
                log.warning("control socket: cannot accept a connection: %s", exc)
                self._stopping.wait(ACCEPT_POLL_S)
                continue
            if not self._slots.acquire(blocking=False):
                log.warning("control socket: %d requests already being served; one refused", MAX_CLIENTS)
                self._send(conn, SayAnswer(ok=False, error="the daemon is busy; try again"))
                continue
            threading.Thread(target=self._serve, args=(conn,), name="say-request", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            answer = self._answer(conn)
        except Exception:  # a bug must not take the daemon down: logged, and the client told
            log.exception("control socket: error while handling a request")
            answer = SayAnswer(ok=False, error="the daemon failed to handle the request (see its log)")
        finally:
            self._slots.release()
        self._send(conn, answer)

    def _answer(self, conn: socket.socket) -> SayAnswer:
        uid = _peer_uid(conn)
        if uid not in (os.geteuid(), 0):
            log.warning("control socket: a process of user id %d was refused", uid)
            return SayAnswer(ok=False, error="only the daemon's own user may hand it messages")
        try:
            request = SayRequest.from_line(read_line(conn, self._read_timeout_s))
        except (BusError, MessageError) as exc:
            log.warning("control socket: request ignored: %s", exc)
            return SayAnswer(ok=False, error=f"bad request: {exc}")
        try:
            message_id = self._handle(request)
        except VoicehelloError as exc:
            log.warning("control socket: message %s not sent: %s", request.message.id[:8], exc)
            return SayAnswer(ok=False, error=str(exc))
        return SayAnswer(ok=True, id=message_id)

    @staticmethod
    def _send(conn: socket.socket, answer: SayAnswer) -> None:
        with conn:
            try:
                conn.settimeout(CONNECT_TIMEOUT_S)
                conn.sendall(answer.to_line())
            except OSError as exc:
                log.info("control socket: the client left before its answer: %s", exc)
