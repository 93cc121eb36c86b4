"""Whom the gateway's server takes a client to be, and how long it waits for one.

Over real loopback HTTP, through the server ``hub gateway`` and ``hub up`` run: a client's
``X-Forwarded-For`` counts only from proxies the operator named (else any local process
could step around the per-address limit on failed token requests), and a connection that
sends its headers slowly is closed after ``HUB_HTTP_HEADER_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from hub import gateway
from hub.app import create_app
from hub.kafka.embedded import free_port
from hub.settings import Settings
from tests.hubtest import make_hub

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

FORM = {"grant_type": "client_credentials"}
WRONG = ("no-such-client", "guess")


class Serving:
    """An app behind the gateway's uvicorn server, in a thread, on a port of its own."""

    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.settings = settings
        self.server = gateway.server(app, settings)
        self.url = f"http://{settings.http_host}:{settings.http_port}"
        listening = gateway.listen(settings)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [listening]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.server.started

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def connect(self) -> socket.socket:
        return socket.create_connection((self.settings.http_host, self.settings.http_port), 10)


@pytest.fixture
def hub_served(database_url: str, tmp_path: Path) -> Iterator[Any]:
    """Start the hub's gateway with some settings (once per test); stopped at the end."""
    made: list[tuple[Any, Serving]] = []

    def start(**overrides: Any) -> Serving:
        hub, _ = make_hub(database_url, tmp_path, http_port=free_port(), **overrides)
        made.append((hub, Serving(create_app(hub, kafka_check=lambda: True), hub.settings)))
        return made[-1][1]

    yield start
    for hub, serving in made:
        serving.stop()
        hub.engine.dispose()


def token_status(serving: Serving, forwarded_for: str) -> int:
    answer = httpx.post(
        f"{serving.url}/oauth/token",
        data=FORM,
        auth=WRONG,
        headers={"X-Forwarded-For": forwarded_for},
        timeout=10,
    )
    return answer.status_code


def test_a_local_caller_cannot_pose_as_other_addresses(hub_served: Any) -> None:
    serving = hub_served(rate_limit_auth_failures_per_minute=2)

    statuses = [token_status(serving, f"203.0.113.{n}") for n in range(1, 4)]

    assert statuses == [401, 401, 429], "every failure counts against 127.0.0.1"


def test_forwarded_addresses_count_from_a_named_proxy(hub_served: Any) -> None:
    serving = hub_served(rate_limit_auth_failures_per_minute=2, forwarded_allow_ips="127.0.0.1")

    statuses = [token_status(serving, "203.0.113.1") for _ in range(3)]

    assert statuses == [401, 401, 429]
    assert token_status(serving, "203.0.113.2") == 401, "another client behind the proxy"


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[Serving]:
    app = FastAPI()

    @app.get("/")
    async def answer() -> dict[str, str]:
        return {"ok": "yes"}

    settings = Settings(data_dir=tmp_path, http_port=free_port(), http_header_timeout_seconds=1)
    serving = Serving(app, settings)
    yield serving
    serving.stop()


def closed_after(sock: socket.socket, trickle: bytes, every: float) -> float:
    """Seconds until the server closes ``sock`` while a byte of ``trickle`` is sent per
    ``every`` seconds; the bytes are never complete headers."""
    started = time.monotonic()
    sock.settimeout(every)
    for byte in trickle:
        try:
            sock.sendall(bytes([byte]))
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:  # reset: closed too
            return time.monotonic() - started
    raise AssertionError("still open after the whole trickle")


def test_a_slow_client_is_disconnected_and_others_are_served(plain: Serving) -> None:
    slow = plain.connect()
    trickle = b"GET / HTTP/1.1\r\nHost: hub\r\nX-Padding: " + b"a" * 200

    took = closed_after(slow, trickle, every=0.1)

    assert 0.9 <= took < 3.0, took
    assert httpx.get(f"{plain.url}/", timeout=5).json() == {"ok": "yes"}


def test_a_silent_connection_is_closed_too(plain: Serving) -> None:
    silent = plain.connect()
    silent.settimeout(5)
    started = time.monotonic()

    assert silent.recv(4096) == b""
    assert 0.9 <= time.monotonic() - started < 3.0


def test_the_next_request_on_a_kept_connection_has_the_same_limit(plain: Serving) -> None:
    with plain.connect() as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: hub\r\n\r\n")
        conn.settimeout(5)
        assert conn.recv(4096).startswith(b"HTTP/1.1 200")
        # uvicorn's keep-alive timer (5 s) stops at the first byte of the next request.
        took = closed_after(conn, b"GET / HTTP/1.1\r\nHost: hub\r\nX-Padding: " + b"a" * 200, 0.1)
    assert 0.9 <= took < 3.0, took
