"""The gateway's server on a stop signal: every request already sent is answered.

uvicorn stops listening and closes every connection without a request in progress as soon
as it notices the signal. While its event loop was busy (answering a burst of POSTs, here a
request that holds the loop), a request could have arrived on a connection it had accepted
but not read yet, or on one the kernel had queued but it had not accepted yet: uvicorn
counted the first as idle and closed it, and the kernel reset the second when the listening
socket closed. Either way the client got a reset instead of an answer.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from hub import gateway
from hub.kafka.embedded import free_port
from hub.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

HOLD_SECONDS = 1.0


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/hold")
    async def hold() -> dict[str, str]:
        time.sleep(HOLD_SECONDS)  # holds the event loop, as a burst of requests does
        return {"held": "yes"}

    @app.get("/")
    async def answer() -> dict[str, str]:
        return {"ok": "yes"}

    return app


class Serving:
    """A gateway server in a thread, on a socket of its own."""

    def __init__(self, tmp_path: Path) -> None:
        self.settings = Settings(data_dir=tmp_path, http_port=free_port())
        self.server = gateway.server(_app(), self.settings)
        self.address = (self.settings.http_host, self.settings.http_port)
        listening = gateway.listen(self.settings)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [listening]}, daemon=True
        )

    def connect(self) -> socket.socket:
        return socket.create_connection(self.address, timeout=10)


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[Serving]:
    s = Serving(tmp_path)
    s.thread.start()
    deadline = time.monotonic() + 10
    while not s.server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert s.server.started
    yield s
    s.server.should_exit = True
    s.thread.join(timeout=10)


def _request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: hub\r\n\r\n".encode()


def _status(sock: socket.socket) -> int | str:
    """The response's status code, or how the connection ended without one."""
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return "closed without an answer"
            data += chunk
    except ConnectionResetError:
        return "reset"
    finally:
        sock.close()
    return int(data.split()[1])


def _hold(serving: Serving) -> socket.socket:
    """A request that holds the server's event loop; returns once it holds it."""
    holding = serving.connect()
    holding.sendall(_request("/hold"))
    time.sleep(HOLD_SECONDS / 3)
    return holding


def test_a_request_the_server_had_not_read_when_it_began_to_stop_is_answered(
    serving: Serving,
) -> None:
    client = serving.connect()
    time.sleep(0.3)  # accepted, nothing sent yet
    serving.server.should_exit = True
    time.sleep(0.25)  # the server is stopping (it looks every 0.1 s)
    client.sendall(_request("/"))
    assert _status(client) == 200
    serving.thread.join(timeout=gateway.DRAIN_SECONDS + 2)
    assert not serving.thread.is_alive()


def test_requests_on_connections_not_accepted_yet_are_answered_after_a_stop(
    serving: Serving,
) -> None:
    holding = _hold(serving)
    queued = [serving.connect() for _ in range(5)]  # the kernel completes the handshake
    for sock in queued:
        sock.sendall(_request("/"))
    serving.server.should_exit = True
    assert [_status(s) for s in [holding, *queued]] == [200] * 6
    serving.thread.join(timeout=gateway.DRAIN_SECONDS + 2)
    assert not serving.thread.is_alive()


def test_a_connection_opened_but_never_used_is_closed_after_a_stop(serving: Serving) -> None:
    idle = serving.connect()
    time.sleep(0.3)
    started = time.monotonic()
    serving.server.should_exit = True
    serving.thread.join(timeout=gateway.DRAIN_SECONDS + 2)
    assert not serving.thread.is_alive()
    assert time.monotonic() - started < gateway.UNREAD_REQUEST_SECONDS + 1
    assert idle.recv(1) == b""  # closed, not left open
    with pytest.raises(ConnectionRefusedError):
        serving.connect()
