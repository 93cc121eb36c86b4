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

import ctypes
import multiprocessing
import os
import secrets
import signal
import sys
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from sqlalchemy.engine import make_url

from hub.settings import Settings

#: The app factory a worker process imports.
WORKER_APP = "hub.gateway:worker_app"


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


def serve(settings: Settings, build_app: Callable[[], FastAPI], **options: Any) -> None:
    """Run uvicorn with the app ``build_app`` makes here, or with worker processes that build
    their own (then this process builds none: every worker start-up counts after a crash)."""
    import uvicorn

    count = workers(settings)
    common: dict[str, Any] = {
        "host": settings.http_host,
        "port": settings.http_port,
        "log_level": "warning",
        **options,
    }
    if count == 1:
        uvicorn.run(build_app(), **common)
        return
    os.environ.update(worker_environment(settings))
    uvicorn.run(WORKER_APP, factory=True, workers=count, **common)


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
