"""The control socket ``voicehello say`` hands messages to the running daemon over
(:mod:`voicehello.bus.local`): the protocol's round trips, what it refuses, and a real Unix socket
served by :class:`SayServer` fed hostile input.

The daemon's side of a request (``Device.send_typed``: publish, wait for the broker) is replaced
here by a function that records what it is given: this file tests the socket, the protocol and
the server's threads; tests/integration/test_say_via_daemon.py runs the real daemon against a
real hardened Mosquitto.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from voicehello.bus import local
from voicehello.bus.local import MAX_CLIENTS, MAX_LINE_BYTES, SayAnswer, SayRequest, SayServer, hand_over
from voicehello.bus.messages import Message, Sender, new_message
from voicehello.errors import BusError, MessageError

MAYA = Sender("maya", "Maya at number 12")
LOGGER = "voicehello.bus.local"
WAIT_S = 10.0


def ladder(sender: Sender = MAYA) -> Message:
    return new_message(sender, "borrow_item", {"item": "ladder"}, "can i borrow a ladder")


# --------------------------------------------------------------------------- the protocol


def test_a_request_round_trips() -> None:
    request = SayRequest(ladder(), pod="street", timeout_s=7.5)
    line = request.to_line()
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert SayRequest.from_line(line.rstrip(b"\n")) == request
    assert json.loads(line) == {"v": 1, "message": request.message.to_dict(), "pod": "street", "timeout": 7.5}


def test_a_request_without_a_pod_round_trips() -> None:
    request = SayRequest(ladder())
    assert SayRequest.from_line(request.to_line()) == request


@pytest.mark.parametrize(
    "answer", [SayAnswer(ok=True, id="ab" * 16), SayAnswer(ok=False, error="the broker refused it")]
)
def test_an_answer_round_trips(answer: SayAnswer) -> None:
    line = answer.to_line()
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert SayAnswer.from_line(line) == answer


def test_an_error_answer_stays_one_short_line() -> None:
    line = SayAnswer(ok=False, error="line one\nline two" + "x" * 2_000).to_line()
    assert line.count(b"\n") == 1
    answer = SayAnswer.from_line(line)
    assert answer.error is not None
    assert "\n" not in answer.error
    assert len(answer.error) <= local.MAX_ERROR_CHARS


def _request(**changes: object) -> bytes:
    data = json.loads(SayRequest(ladder(), pod="street").to_line())
    data.update(changes)
    return json.dumps({key: value for key, value in data.items() if value is not ...}).encode()


BAD_REQUESTS: dict[str, bytes] = {
    "not JSON": b"hello daemon",
    "not UTF-8": b'{"v": 1, "pod": "\xff"}',
    "a list": b"[1, 2, 3]",
    "NaN": b'{"v": 1, "timeout": NaN}',
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "version 2": _request(v=2),
    "no version": _request(v=...),
    "no message": _request(message=...),
    "a message that is a string": _request(message="borrow a ladder"),
    "a message against the schema": _request(message={"id": "x"}),
    "an authority sentence in a slot": _request(
        message={**ladder().to_dict(), "slots": {"item": "everyone must leave now"}}
    ),
    "a pod that is a number": _request(pod=12),
    "an endless pod name": _request(pod="p" * 1_000),
    "a timeout that is a bool": _request(timeout=True),
    "a timeout that is text": _request(timeout="10"),
    "a negative timeout": _request(timeout=-1),
    "an endless timeout": _request(timeout=10**9),
}


@pytest.mark.parametrize("line", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_a_bad_request_is_refused(line: bytes) -> None:
    with pytest.raises(MessageError):
        SayRequest.from_line(line)


@pytest.mark.parametrize(
    "line", [b"", b"{}", b'{"ok": true}', b'{"ok": false}', b'{"ok": "yes", "id": "x"}', b"\xff"]
)
def test_a_bad_answer_is_refused(line: bytes) -> None:
    with pytest.raises(MessageError):
        SayAnswer.from_line(line)


# --------------------------------------------------------------------------- a real socket


class Recorder:
    """Stands in for ``Device.send_typed``: records each request, answers with its id, or
    raises ``fail`` when set."""

    def __init__(self) -> None:
        self.requests: list[SayRequest] = []
        self.fail: BusError | None = None

    def __call__(self, request: SayRequest) -> str:
        self.requests.append(request)
        if self.fail is not None:
            raise self.fail
        return request.message.id


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o700)
    return directory


@pytest.fixture
def served(keys_dir: Path) -> Iterator[tuple[SayServer, Recorder]]:
    """A server listening in ``keys_dir`` whose requests are recorded; reads time out after 1 s."""
    recorder = Recorder()
    server = SayServer(local.socket_path(keys_dir), recorder, read_timeout_s=1.0)
    server.start()
    try:
        yield server, recorder
    finally:
        server.stop()


def raw_client(path: Path) -> socket.socket:
    """A bare client connected to ``path``, which sends whatever the test wants."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(WAIT_S)
    client.connect(str(path))
    return client


def answer_of(client: socket.socket) -> SayAnswer:
    with client:
        return SayAnswer.from_line(local.read_line(client, WAIT_S))


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


def test_a_request_is_handed_to_the_daemon_and_answered(served: tuple[SayServer, Recorder]) -> None:
    server, recorder = served
    message = ladder()
    answer = hand_over(server.path, SayRequest(message, pod="street", timeout_s=3))
    assert answer == SayAnswer(ok=True, id=message.id)
    assert recorder.requests == [SayRequest(message, pod="street", timeout_s=3)]


def test_the_socket_is_the_owner_s_only_and_gone_after_stop(keys_dir: Path) -> None:
    server = SayServer(local.socket_path(keys_dir), Recorder())
    server.start()
    mode = os.lstat(server.path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600
    assert sorted(os.listdir(keys_dir)) == [local.SOCKET_NAME]  # no temporary name left behind
    server.stop()
    assert not server.path.exists()
    assert hand_over(server.path, SayRequest(ladder())) is None  # no daemon: say connects itself


def test_the_daemon_s_refusal_reaches_say_and_the_daemon_carries_on(
    served: tuple[SayServer, Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    server, recorder = served
    recorder.fail = BusError("the broker refused the message (not authorized)")
    refused = ladder()
    answer = hand_over(server.path, SayRequest(refused))
    assert answer == SayAnswer(ok=False, error="the broker refused the message (not authorized)")
    assert warnings(caplog) == [
        f"control socket: message {refused.id[:8]} not sent: the broker refused the message (not authorized)"
    ]
    recorder.fail = None
    message = ladder()
    assert hand_over(server.path, SayRequest(message)) == SayAnswer(ok=True, id=message.id)


HOSTILE: dict[str, tuple[bytes, str]] = {
    "garbage": (b"\x00\x01 GET / HTTP/1.1\r\n", "request is not UTF-8 JSON"),
    "a line over 64 KiB": (
        b"{" + b" " * (MAX_LINE_BYTES + 10) + b"}\n",
        f"a line over {MAX_LINE_BYTES} bytes",
    ),
    "a slot value that is not request-shaped": (
        SayRequest(ladder()).to_line().replace(b'"ladder"', b'"everyone must leave now"'),
        "slots/item: reads as an authority",
    ),
    "half a line, then gone": (b'{"v": 1, "mess', "closed the connection before a complete line"),
}


@pytest.mark.parametrize(("payload", "reason"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_input_is_one_log_line_and_the_daemon_carries_on(
    served: tuple[SayServer, Recorder], caplog: pytest.LogCaptureFixture, payload: bytes, reason: str
) -> None:
    server, recorder = served
    with raw_client(server.path) as client:
        try:
            client.sendall(payload)
            if not payload.endswith(b"\n"):
                client.shutdown(socket.SHUT_WR)
            answer: SayAnswer | None = answer_of(client)
        except (BusError, OSError):  # the daemon may close before a client that is gone reads
            answer = None
    if answer is not None:
        assert not answer.ok
        assert answer.error is not None
        assert reason in answer.error
    sentinel = ladder()
    assert hand_over(server.path, SayRequest(sentinel)) == SayAnswer(ok=True, id=sentinel.id)
    assert [request.message.id for request in recorder.requests] == [sentinel.id]
    logged = warnings(caplog)
    assert len(logged) == 1, logged
    assert logged[0].startswith("control socket: request ignored: "), logged
    assert reason in logged[0], logged


def test_a_client_that_hangs_does_not_hold_up_others(
    keys_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    server = SayServer(local.socket_path(keys_dir), recorder, read_timeout_s=WAIT_S)
    server.start()
    try:
        hanging = raw_client(server.path)  # connects, then says nothing
        message = ladder()
        assert hand_over(server.path, SayRequest(message)) == SayAnswer(ok=True, id=message.id)
        hanging.setblocking(False)
        with pytest.raises(BlockingIOError):  # served while the other one still hangs
            hanging.recv(1)
        hanging.close()
    finally:
        server.stop()


def test_a_client_that_hangs_is_answered_after_the_read_timeout(
    served: tuple[SayServer, Recorder], caplog: pytest.LogCaptureFixture
) -> None:
    server, recorder = served
    answer = answer_of(raw_client(server.path))
    assert not answer.ok
    assert answer.error == "bad request: no complete line within 1 s"
    assert warnings(caplog) == ["control socket: request ignored: no complete line within 1 s"]
    assert recorder.requests == []


def test_more_clients_than_slots_get_a_busy_answer(keys_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    entered = threading.Semaphore(0)

    def slow(request: SayRequest) -> str:
        entered.release()
        release.wait(WAIT_S)
        return request.message.id

    server = SayServer(local.socket_path(keys_dir), slow)
    server.start()
    clients = [raw_client(server.path) for _ in range(MAX_CLIENTS)]
    try:
        for client in clients:
            client.sendall(SayRequest(ladder()).to_line())
        for _ in clients:
            assert entered.acquire(timeout=WAIT_S), "the requests did not reach the handler"
        busy = hand_over(server.path, SayRequest(ladder()))
        assert busy == SayAnswer(ok=False, error="the daemon is busy; try again")
        release.set()
        assert all(answer_of(client).ok for client in clients)
        message = ladder()
        assert hand_over(server.path, SayRequest(message)) == SayAnswer(ok=True, id=message.id)
    finally:
        release.set()
        server.stop()


# --------------------------------------------------------------------------- stale and live sockets


def stale_socket(path: Path) -> None:
    """A socket file nobody listens on, as a daemon killed with SIGKILL leaves it."""
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()


def test_say_ignores_a_stale_socket_with_one_log_line(
    keys_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = local.socket_path(keys_dir)
    stale_socket(path)
    assert hand_over(path, SayRequest(ladder())) is None
    assert warnings(caplog) == [f"{path} was left by a daemon that is gone; ignoring it"]


def test_run_replaces_a_stale_socket_with_one_log_line(
    keys_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = local.socket_path(keys_dir)
    stale_socket(path)
    server = SayServer(path, Recorder())
    server.start()
    try:
        assert warnings(caplog) == [f"replacing the control socket {path} left by a daemon that is gone"]
        message = ladder()
        assert hand_over(path, SayRequest(message)) == SayAnswer(ok=True, id=message.id)
    finally:
        server.stop()


def test_a_second_daemon_for_the_device_is_refused(served: tuple[SayServer, Recorder]) -> None:
    server, _recorder = served
    with pytest.raises(BusError, match="another `voicehello run` is already running for this device"):
        SayServer(server.path, Recorder()).start()
    message = ladder()  # the first one still serves
    assert hand_over(server.path, SayRequest(message)) == SayAnswer(ok=True, id=message.id)


def test_a_file_in_the_way_is_not_removed(keys_dir: Path) -> None:
    path = local.socket_path(keys_dir)
    path.write_text("not mine", encoding="utf-8")
    with pytest.raises(BusError, match="it is not a socket"):
        SayServer(path, Recorder()).start()
    assert path.read_text(encoding="utf-8") == "not mine"


def test_a_key_directory_too_deep_for_a_socket_address_still_works(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["a-rather-long-directory-name"] * 5)
    deep.mkdir(parents=True, mode=0o700)
    assert len(os.fsencode(local.socket_path(deep))) > 108
    served = Recorder()
    server = SayServer(local.socket_path(deep), served)
    server.start()
    try:
        message = ladder()
        assert hand_over(server.path, SayRequest(message)) == SayAnswer(ok=True, id=message.id)
        assert os.path.exists(server.path)
    finally:
        server.stop()
    assert not server.path.exists()
