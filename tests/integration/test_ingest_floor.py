"""The ingest benchmark's floor (tests/benchmarks/floor_app.py) writes what the hub writes.

The floor measures what a referral's durable work costs without the hub's plumbing; the
comparison means something only while it writes the same rows into the same tables. When the
hub's hot path writes a row more or less, this test says so.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from hub.db import Base
from tests.benchmarks import floor_app
from tests.benchmarks.bench_ingest import body
from tests.conftest import PG_URL, _pg_schema
from tests.hubtest import api_client, make_hub

pytestmark = pytest.mark.skipif(PG_URL is None, reason="the floor speaks PostgreSQL only")


@pytest.fixture
def pg_url() -> Iterator[str]:
    assert PG_URL
    yield from _pg_schema(PG_URL)


def _rows(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in Base.metadata.tables.items()
        }


def _added(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


def test_the_floor_writes_the_rows_the_hub_writes_for_a_referral(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, partners = make_hub(pg_url, tmp_path)
    try:
        with api_client(hub) as client:
            headers = partners.headers(client, "ude")
            for n in range(2):  # the first warms the token, its partner and the performer
                before = _rows(hub.engine)
                r = client.post(
                    "/v1/referrals",
                    json=body(n, "hub"),
                    headers={**headers, "Idempotency-Key": f"hub-{n}"},
                )
                assert r.status_code == 202, r.text
            by_hub = _added(before, _rows(hub.engine))
            client.app.state.token_validator.close()  # type: ignore[attr-defined]

        token = secrets.token_urlsafe(16)
        floor_app.accept(token, "ude")
        monkeypatch.setenv("BENCH_DATABASE", pg_url.replace("+psycopg", ""))
        with TestClient(floor_app.app) as floor:
            before = _rows(hub.engine)
            r = floor.post(
                "/v1/referrals",
                json=body(0, "floor"),
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "floor-0"},
            )
            assert r.status_code == 202, r.text
            refused = floor.post(
                "/v1/referrals",
                json=body(1, "floor"),
                headers={"Authorization": "Bearer nothing", "Idempotency-Key": "floor-1"},
            )
            assert refused.status_code == 401
            unborn = body(2, "floor")  # valid, but not the rows the floor writes: refused
            unborn["person"] = {k: v for k, v in unborn["person"].items() if k != "birth_date"}
            r = floor.post(
                "/v1/referrals",
                json=unborn,
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "floor-2"},
            )
            assert r.status_code == 422
            assert "birth date" in r.json()["detail"]
        by_floor = _added(before, _rows(hub.engine))
    finally:
        hub.engine.dispose()

    assert by_hub == by_floor
    assert sum(by_floor.values()) == 14, by_floor
