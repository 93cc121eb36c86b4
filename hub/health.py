"""Health: ``/health`` (database and Kafka), ``/health/ready`` (can accept referrals) and
``/health/live`` (the process serves HTTP) for load balancers and orchestrators."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

router = APIRouter(tags=["operations"])

KAFKA_CHECK_CACHE_SECONDS = 2.0


class KafkaCheck:
    """Caches the broker probe briefly, so that frequent health polls don't load Kafka."""

    def __init__(self, probe: Callable[[], bool]) -> None:
        self._probe = probe
        self._at = 0.0
        self._ok = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._at > KAFKA_CHECK_CACHE_SECONDS:
            self._ok = self._probe()
            self._at = now
        return self._ok


def database_ok(factory: sessionmaker[Session]) -> bool:
    """True when a trivial query succeeds."""
    try:
        with factory() as session:
            session.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


@router.get(
    "/health",
    summary="Liveness and dependencies",
    responses={503: {"description": "A dependency is down; `checks` names it"}},
)
def health(request: Request) -> JSONResponse:
    """200 when database and Kafka answer; 503 naming the failing check otherwise."""
    checks = {
        "database": "ok" if database_ok(request.app.state.session_factory) else "down",
        "kafka": "ok" if request.app.state.kafka_check() else "down",
    }
    healthy = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", "checks": checks},
        status_code=200 if healthy else 503,
    )


@router.get(
    "/health/ready",
    summary="Ready to accept referrals",
    responses={503: {"description": "The database is down"}},
)
def ready(request: Request) -> JSONResponse:
    """200 when the database answers: intake needs only the outbox, not Kafka (design §13)."""
    ok = database_ok(request.app.state.session_factory)
    return JSONResponse(
        {"status": "ok" if ok else "down", "checks": {"database": "ok" if ok else "down"}},
        status_code=200 if ok else 503,
    )


@router.get("/health/live", summary="The process serves HTTP")
def live() -> dict[str, str]:
    """Always 200 while the process answers; restarting it cures no outage of a dependency."""
    return {"status": "ok"}
