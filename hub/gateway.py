"""Serving the gateway app: one process, or several worker processes on one port.

A worker is a process of its own that builds its wiring from the environment, like any
other hub process. Whatever must agree between workers comes from the database (tokens'
signing keys, DPoP proof replay, staff sessions) or from the environment the parent hands
down: the broker's address and, when none is configured, one DPoP nonce key for all of
them, or a nonce issued by one worker would be refused by the next. Kept per worker, and
so per process: rate limits and quotas, the login and enumeration throttles, and caches.
Workers export metrics over OTLP only (``HUB_METRICS_PORT`` is one port, not one a worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import secrets
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess
from uvicorn.supervisors.multiprocess import Process

from hub.settings import Settings

log = logging.getLogger(__name__)

#: The app factory a worker process imports.
WORKER_APP = "hub.gateway:worker_app"
#: After a stop signal, requests in flight have this long to be answered (then cancelled).
DRAIN_SECONDS = 5.0
#: After a stop signal, a request already sent on an open connection has this long to be read.
UNREAD_REQUEST_SECONDS = 0.5
#: Seconds a connection has to send a request's headers, unless configured otherwise.
DEFAULT_HEADER_TIMEOUT = 10.0


def workers(settings: Settings) -> int:
    """How many worker processes serve HTTP: the setting, else one per core on PostgreSQL.

    SQLite admits one writer at a time, so more processes would only queue on its lock."""
    if settings.gateway_workers is not None:
        return settings.gateway_workers
    if make_url(settings.resolved_database_url).get_backend_name() == "sqlite":
        return 1
    return os.cpu_count() or 1


def worker_environment(settings: Settings) -> dict[str, str]:
    """What a worker must be told that the environment may not say yet."""
    env = {
        "HUB_DATABASE_URL": settings.resolved_database_url,
        "HUB_DATA_DIR": str(settings.data_dir),
        "HUB_DPOP_NONCE_SECRET": settings.dpop_nonce_secret or secrets.token_urlsafe(32),
        "HUB_GATEWAY_WORKERS": str(workers(settings)),
    }
    if settings.kafka_bootstrap_servers:
        env["HUB_KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
    return env


def listen(settings: Settings) -> socket.socket:
    """The gateway's listening socket, taken now: a port in use (OSError) shows before
    anything else starts, and it is held from this check until serving.

    With several workers it is the first of a group on the port (``SO_REUSEPORT``): each
    worker gets one of its own (:func:`serve`). The port is first taken without that option,
    so that another gateway already on it shows as a port in use rather than joining it, then
    at once again with it: only a process of the same user asking to share the port in that
    instant could join the group."""
    sock = _bound(settings, settings.http_port, reuse_port=False)
    if workers(settings) == 1:
        return sock
    port = sock.getsockname()[1]
    sock.close()
    return _bound(settings, port, reuse_port=True)


def _bound(settings: Settings, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.http_host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((settings.http_host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)  # worker processes serve on it
    return sock


class GatewayConfig(uvicorn.Config):
    """uvicorn's configuration plus how long a connection may take to send its headers."""

    def __init__(self, app: Any, *, header_timeout: float, **options: Any) -> None:
        super().__init__(app, **options)
        self.header_timeout = header_timeout


def server(app: FastAPI, settings: Settings, **options: Any) -> uvicorn.Server:
    """A uvicorn server for ``app`` that answers the requests in flight when told to stop."""
    return DrainingServer(GatewayConfig(app, **_config(settings, options)))


def serve(
    settings: Settings,
    build_app: Callable[[], FastAPI],
    *,
    sock: socket.socket | None = None,
    **options: Any,
) -> None:
    """Run uvicorn with the app ``build_app`` makes here, or with worker processes that build
    their own (then this process builds none: every worker start-up counts after a crash)."""
    sock = sock if sock is not None else listen(settings)
    count = workers(settings)
    if count == 1:
        single = server(build_app(), settings, **options)
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn raises it again after draining
            single.run(sockets=[sock])
        if not single.started:
            sys.exit(STARTUP_FAILURE)  # uvicorn has said why
        return
    os.environ.update(worker_environment(settings))
    config = GatewayConfig(WORKER_APP, factory=True, workers=count, **_config(settings, options))
    port = sock.getsockname()[1]
    sockets = [sock, *(_bound(settings, port, reuse_port=True) for _ in range(count - 1))]
    with contextlib.suppress(KeyboardInterrupt):
        SpreadWorkers(config, sockets).run()


class SpreadWorkers(Multiprocess):
    """uvicorn's worker supervisor, with a listening socket of its own for each worker.

    On one shared socket, whichever worker woke first accepted every connection waiting, so
    clients that open their keep-alive connections at once could all end up on one worker
    while the others idled. Sockets of one ``SO_REUSEPORT`` group are filled by the kernel by
    a hash of each connection. The parent keeps every socket open, so connections sent to a
    worker that died wait in its socket's queue for the worker started in its place.
    The number of workers is fixed: SIGTTIN and SIGTTOU are refused.
    """

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets)
        self.processes_num = len(sockets)

    def init_processes(self) -> None:
        for sock in self.sockets:
            process = Process(self.config, [sock])
            process.start()
            self.processes.append(process)

    def keep_subprocess_alive(self) -> None:
        """uvicorn's, with each worker started again on its own socket."""
        if self.should_exit.is_set():
            return
        for idx, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # hung
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                # It failed before serving: the app or the socket would fail the same again.
                log.error("gateway.worker_failed_to_start", extra={"pid": process.pid})
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            log.info("gateway.worker_died", extra={"pid": process.pid})
            process = Process(self.config, [self.sockets[idx]])
            process.start()
            self.processes[idx] = process

    def restart_all(self) -> None:
        """On SIGHUP: each worker replaced on its socket, the new one ready before the old ends."""
        for idx, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = Process(self.config, [self.sockets[idx]])
            new.start()
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                if not self.should_exit.is_set():
                    log.error("gateway.worker_not_ready", extra={"pid": new.pid, "kept": old.pid})
                return
            old.terminate()
            old.join()
            self.processes[idx] = new

    def handle_ttin(self) -> None:
        log.warning("gateway.workers_fixed", extra={"workers": self.processes_num})

    def handle_ttou(self) -> None:
        log.warning("gateway.workers_fixed", extra={"workers": self.processes_num})


def _config(settings: Settings, options: dict[str, Any]) -> dict[str, Any]:
    return {
        "host": settings.http_host,
        "port": settings.http_port,
        "log_level": "warning",
        "http": DrainingHttp,
        "timeout_graceful_shutdown": DRAIN_SECONDS,
        "header_timeout": settings.http_header_timeout_seconds,
        # uvicorn would believe X-Forwarded-For from 127.0.0.1 (or $FORWARDED_ALLOW_IPS):
        # any local process could then pose as any address to the per-address limits.
        "proxy_headers": settings.forwarded_allow_ips is not None,
        "forwarded_allow_ips": settings.forwarded_allow_ips or "",
        **options,
    }


class DrainingServer(uvicorn.Server):
    """uvicorn's server, except that connections waiting to be accepted when it stops
    listening are served, not reset by the kernel as the listening socket closes.

    They are taken off the socket and the socket is closed in one step, with no await in
    between that would let the event loop run while more arrive."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Take the waiting connections, stop listening, then drain as uvicorn does."""
        waiting = [conn for sock in sockets or [] for conn in _accept_waiting(sock)]
        for listener in self.servers:
            listener.close()
        loop = asyncio.get_running_loop()
        for conn in waiting:
            await loop.connect_accepted_socket(self._protocol, conn)
        await super().shutdown(sockets)

    def _protocol(self) -> asyncio.Protocol:
        return self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )


def _accept_waiting(sock: socket.socket) -> list[socket.socket]:
    """Every connection the kernel has queued on the listening ``sock``, without waiting."""
    taken: list[socket.socket] = []
    try:
        sock.setblocking(False)
    except OSError:  # closed already
        return taken
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:  # BlockingIOError: none left
            return taken
        taken.append(conn)


class DrainingHttp(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, except that a stop signal no longer drops requests sent,
    and a connection that is slow to send its headers is closed.

    On a stop signal uvicorn closes every connection that has no request in progress. A
    connection the event loop had accepted but whose request it had not read yet, because
    it was busy with others, counted as one without: it was closed with the request unread
    and the kernel answered the client with a reset (19 of a burst of 20 concurrent POSTs).
    Such a connection now gets a moment for its request to be read; that request is
    answered, then the connection is closed.

    uvicorn has no timeout for reading a request's headers (0.55): a client that opens
    connections and sends a header byte now and then would hold each one for ever, until
    the process runs out of them (slowloris). From the connection's start, and from the
    first byte of each further request on it, the headers must be complete within
    ``header_timeout``."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self._header_timeout = getattr(config, "header_timeout", DEFAULT_HEADER_TIMEOUT)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request's headers."""
        super().connection_made(transport)
        self._await_headers()

    def on_message_begin(self) -> None:
        """Start the clock for a further request's headers."""
        super().on_message_begin()
        self._await_headers()

    def on_headers_complete(self) -> None:
        """Stop the clock: the request is read as uvicorn reads it."""
        self._headers_arrived()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the clock with the connection."""
        self._headers_arrived()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self._header_timeout, self._too_slow)

    def _headers_arrived(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def shutdown(self) -> None:
        """Close the connection once its request, if one was sent, is answered."""
        if self.cycle is None:
            self.loop.call_later(UNREAD_REQUEST_SECONDS, self._shutdown_now)
            return
        super().shutdown()

    def _shutdown_now(self) -> None:
        if not self.transport.is_closing():
            super().shutdown()


def worker_app() -> FastAPI:
    """The gateway app of one worker process, wired from the environment."""
    from hub import logs, runtime, telemetry
    from hub.app import create_app
    from hub.bootstrap import bootstrap, kafka_probe

    _die_with_parent()
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    hub = bootstrap(settings)
    # One Prometheus port cannot be bound by every worker: workers export over OTLP only.
    telemetry.configure(settings.model_copy(update={"metrics_port": None}), service="gateway")
    runtime.tune_gc()
    probe = kafka_probe(hub) if settings.kafka_bootstrap_servers else (lambda: False)
    return create_app(hub, kafka_check=probe)


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """A worker ends when the process that started it ends, however that ends.

    Else a gateway killed with SIGKILL would leave its workers serving on the port, orphaned,
    and the gateway started in its place could not bind it."""
    started_by = multiprocessing.parent_process()
    if not sys.platform.startswith("linux") or started_by is None:
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != started_by.pid:  # it died before the line above took effect
        os._exit(1)
