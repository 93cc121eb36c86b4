"""What one referral costs the database, and that the gateway's caches never outlive a change.

Statements are counted with SQLAlchemy's ``before_cursor_execute`` on the hub's engine: every
statement sent to the database, reads and writes. SQLite's ``BEGIN IMMEDIATE`` is sent the
same way (hub.db) and is not counted; psycopg begins and commits without a statement.
"""

from __future__ import annotations

import copy
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, func, select, text

from hub.api import deps
from hub.audit.models import AuditRecord
from hub.auth.keys import SigningKeys, rotate
from hub.auth.tokens import build_token_validator
from hub.bootstrap import Hub
from hub.crypto.cipher import is_token
from hub.crypto.fields import open_event
from hub.db import unit_of_work
from hub.errors import Unauthenticated
from hub.outbox.models import OutboxEvent
from hub.partners.service import add_client, deactivate_partner, revoke_client
from hub.people.models import Person, PersonReference
from hub.people.service import known_references
from hub.referrals.models import Referral
from tests.conftest import PG_URL
from tests.hubtest import STUDENT_REFERRAL, Partners, api_client, make_hub

ISSUER = "http://hub.test"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[tuple[Hub, Partners, TestClient]]:
    hub, partners = make_hub(database_url, tmp_path, issuer=ISSUER)
    with api_client(hub) as client:
        yield hub, partners, client
    hub.engine.dispose()


def referral(reference: str) -> dict[str, Any]:
    body = copy.deepcopy(STUDENT_REFERRAL)
    body["person"]["partner_reference"] = reference
    return body


class Statements:
    """The statements the engine sends while the block runs (BEGIN left out)."""

    def __init__(self, hub: Hub) -> None:
        self.engine = hub.engine
        self.sent: list[str] = []

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith("BEGIN"):
            self.sent.append(" ".join(statement.split()))


def bearer(partners: Partners, client: TestClient, partner: str = "ude") -> dict[str, str]:
    headers = partners.headers(client, partner)
    # Warm-up: the token, its partner and client, the performer and the signing key are known.
    assert client.post("/v1/referrals", json=referral("WARM-1"), headers=headers).status_code == 202
    return headers


WRITTEN = [
    "audit_log",
    "person_keys",
    "people",
    "person_index",
    "referrals",
    "referral_status_history",
    "outbox",
]


def inserts_into(statement: str) -> list[str]:
    """The tables a statement inserts into, in order (one for each CTE of a combined one)."""
    return re.findall(r"INSERT INTO (\w+)", statement)


def test_a_referral_for_a_new_person_costs_at_most_eight_statements(world: Any) -> None:
    hub, partners, client = world
    headers = bearer(partners, client)
    with Statements(hub) as counted:
        r = client.post("/v1/referrals", json=referral("ES-NEW-1"), headers=headers)
    assert r.status_code == 202, r.text
    # A new person costs no look-up.
    assert not [s for s in counted.sent if s.startswith("SELECT")]
    if hub.engine.dialect.name == "postgresql":
        # Everything in one statement (hub.staged): the call's audit record, the partner's
        # reference (a plain insert: had another request introduced it, the statement would
        # fail and the request run again, claiming first), the person's key, the person, its
        # search entries (one multi-row insert), the referral, its history and its outbox
        # rows. The relay's wake-up is not in the transaction: a NOTIFY there would make
        # every commit wait for the others' (hub.outbox.notify).
        assert len(counted.sent) == 1, counted.sent
        assert inserts_into(counted.sent[0]) == [WRITTEN[0], "person_references", *WRITTEN[1:]]
    else:
        # First the reference is claimed: an insert that does nothing if the partner already
        # uses it. SQLite has no data-modifying CTEs: then one statement per table, in the
        # same order.
        assert inserts_into(counted.sent[0]) == ["person_references"]
        assert [table for s in counted.sent[1:] for table in inserts_into(s)] == WRITTEN
    assert not [s for s in counted.sent if "notify" in s.lower()]
    assert len(counted.sent) <= 8
    # The search index key came from memory after the first use.
    assert not [s for s in counted.sent if "blind_index_keys" in s]
    # The token, its client and its partner came from memory.
    assert not [s for s in counted.sent if "oauth_clients" in s or "FROM partners" in s]
    # No pool pre-ping ("SELECT 1" or ";").
    assert not [s for s in counted.sent if s.strip() in ("SELECT 1", ";", "")]


def test_a_referrals_payload_is_sealed_once_for_its_row_and_its_events(world: Any) -> None:
    hub, partners, client = world
    headers = bearer(partners, client)
    r = client.post("/v1/referrals", json=referral("ES-SEALED-1"), headers=headers)
    assert r.status_code == 202, r.text
    with unit_of_work(hub.session_factory) as session:
        row = session.get(Referral, r.json()["id"])
        assert row is not None
        values = session.scalars(
            select(OutboxEvent.value).where(OutboxEvent.key == row.person_id)
        ).all()
        # The row's payload, each outbox copy's, all the same tokens: sealed once.
        assert len(values) == 2
        for value in values:
            assert json.loads(value)["payload"] == row.payload
        assert all(is_token(token) for token in row.payload.values())
        opened = open_event(session, row.person_id, {"payload": row.payload})["payload"]
    assert opened == STUDENT_REFERRAL["payload"]


def test_a_write_in_the_steady_state_opens_no_session_before_its_transaction(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, partners, client = world
    headers = bearer(partners, client)
    made: list[object] = []
    real = deps.new_session

    def counted(state: Any) -> Any:
        made.append(state)
        return real(state)

    monkeypatch.setattr(deps, "new_session", counted)

    def calls() -> int:
        with hub.session_factory() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(AuditRecord)
                    .where(AuditRecord.action == "api.call", AuditRecord.actor == "ude")
                )
                or 0
            )

    before = calls()
    r = client.post("/v1/referrals", json=referral("ES-MEMORY-1"), headers=headers)
    assert r.status_code == 202, r.text
    # The token and the partner came from memory; the call's record went with the write.
    assert made == []
    assert calls() == before + 1
    # A token this gateway has not checked yet is read in a session of its own, first.
    client.app.state.token_validator.cache.clear()
    r = client.post("/v1/referrals", json=referral("ES-MEMORY-2"), headers=headers)
    assert r.status_code == 202, r.text
    assert len(made) == 1
    assert calls() == before + 2


def test_a_referral_for_a_known_person_reads_it_once(world: Any) -> None:
    hub, partners, client = world
    headers = bearer(partners, client)
    assert (
        client.post("/v1/referrals", json=referral("ES-OLD-1"), headers=headers).status_code == 202
    )
    with Statements(hub) as counted:
        r = client.post("/v1/referrals", json=referral("ES-OLD-1"), headers=headers)
    assert r.status_code == 202, r.text
    # The claim finds the reference taken; the person and its data key are read; nothing of
    # the person is written.
    assert inserts_into(counted.sent[0]) == ["person_references"]
    assert counted.sent[1].startswith("SELECT") and "person_references" in counted.sent[1]
    assert counted.sent[2].startswith("SELECT") and "FROM person_keys" in counted.sent[2]
    written = [table for s in counted.sent[3:] for table in inserts_into(s)]
    assert written == ["audit_log", "referrals", "referral_status_history", "outbox"]
    assert len(counted.sent) == (4 if hub.engine.dialect.name == "postgresql" else 7)


def test_a_reference_another_process_introduced_costs_one_failed_statement_and_nothing_else(
    world: Any,
) -> None:
    hub, partners, client = world
    headers = bearer(partners, client)
    first = client.post("/v1/referrals", json=referral("ES-ELSEWHERE-1"), headers=headers)
    assert first.status_code == 202, first.text

    def rows() -> tuple[int, int, int, int]:
        with unit_of_work(hub.session_factory) as session:
            return tuple(  # type: ignore[return-value]
                int(session.scalar(select(func.count()).select_from(model)) or 0)
                for model in (Referral, Person, PersonReference, AuditRecord)
            )

    # As if another gateway process had introduced the reference: this one has not seen it.
    with hub.session_factory() as session:
        known_references(session).clear()
    before = rows()
    with Statements(hub) as counted:
        r = client.post("/v1/referrals", json=referral("ES-ELSEWHERE-1"), headers=headers)
    assert r.status_code == 202, r.text
    assert r.json()["person_id"] == first.json()["person_id"]
    grown = [b - a for a, b in zip(before, rows(), strict=True)]
    if hub.engine.dialect.name == "postgresql":
        # The statement writing the reference with a new person failed on its unique key and
        # was rolled back; the request ran again, claimed first and read the person.
        failed, *again = counted.sent
        assert "person_references" in inserts_into(failed) and "people" in inserts_into(failed)
        assert inserts_into(again[0]) == ["person_references"]
        assert "ON CONFLICT DO NOTHING" in again[0]
        assert len(again) == 4, again
    # One referral, no person, no reference; the same audit records as a request for a
    # person this process knows (the referral's and the call's): none of the failed run's.
    assert grown[:3] == [1, 0, 0]
    known = rows()
    again = client.post("/v1/referrals", json=referral("ES-ELSEWHERE-1"), headers=headers)
    assert again.status_code == 202, again.text
    assert grown[3] == rows()[3] - known[3] > 0


def test_an_idempotency_key_costs_no_statement_more_on_postgresql_and_answers_repeats(
    world: Any,
) -> None:
    hub, partners, client = world
    headers = {**bearer(partners, client), "Idempotency-Key": "k-1"}
    with Statements(hub) as counted:
        first = client.post("/v1/referrals", json=referral("ES-NEW-2"), headers=headers)
    assert first.status_code == 202, first.text
    # No look-up before the work: one insert that does nothing if the key is taken. On
    # PostgreSQL it ends the statement that writes the referral; SQLite sends it after.
    keyed = [s for s in counted.sent if "idempotency_records" in s]
    assert len(keyed) == 1 and "ON CONFLICT DO NOTHING" in keyed[0]
    assert not keyed[0].startswith("SELECT")
    if hub.engine.dialect.name == "postgresql":
        assert len(counted.sent) == 1, counted.sent
        assert inserts_into(keyed[0]) == [
            WRITTEN[0],
            "person_references",
            *WRITTEN[1:],
            "idempotency_records",
        ]
    else:
        assert len(counted.sent) == 9, counted.sent
        assert inserts_into(keyed[0]) == ["idempotency_records"]
    again = client.post("/v1/referrals", json=referral("ES-NEW-2"), headers=headers)
    assert again.status_code == 202 and again.json() == first.json()
    # The retry reaching a gateway process that has not seen the reference: its statement
    # fails on the reference, the request runs again, finds the key used and answers the same.
    with hub.session_factory() as session:
        known_references(session).clear()
    with Statements(hub) as counted:
        elsewhere = client.post("/v1/referrals", json=referral("ES-NEW-2"), headers=headers)
    assert elsewhere.status_code == 202 and elsewhere.json() == first.json()
    if hub.engine.dialect.name == "postgresql":
        assert "people" in inserts_into(counted.sent[0])  # the statement that failed
    with hub.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Referral)) == 2  # warm-up + one
    other = client.post("/v1/referrals", json=referral("ES-NEW-3"), headers=headers)
    assert other.status_code == 409


def test_a_cached_token_is_never_accepted_after_its_exp(world: Any) -> None:
    hub, partners, client = world
    token = partners.token(client, "ude")
    now = [time.time()]
    validator = build_token_validator(
        settings=hub.settings.model_copy(update={"clock_skew_seconds": 0}),
        session_factory=hub.session_factory,
        signing_keys=SigningKeys(),
        clock=lambda: now[0],
    )
    principal = validator.validate(token)
    assert validator.cache is not None and validator.cache.token(token) == principal
    exp = time.time() + hub.settings.access_token_ttl_seconds + 1
    now[0] = exp
    assert validator.cache.token(token) is None
    with pytest.raises(Unauthenticated, match="expired"):
        validator.validate(token)
    validator.close()


def test_deactivating_a_partner_refuses_its_cached_token_at_once(world: Any) -> None:
    hub, partners, client = world
    headers = bearer(partners, client)
    assert client.get("/v1/referrals", headers=headers).status_code == 200
    with unit_of_work(hub.session_factory) as session:
        deactivate_partner(session, partner_id="ude")
    r = client.get("/v1/referrals", headers=headers)
    assert r.status_code == 401 and "partner" in r.json()["detail"]


def test_rotated_credentials_refuse_the_old_clients_cached_token(world: Any) -> None:
    hub, partners, client = world
    headers = bearer(partners, client)
    old = partners.creds["ude"]["client_id"]
    with unit_of_work(hub.session_factory) as session:
        new = add_client(
            session,
            partner_id="ude",
            scopes=["referrals:read"],
            auth_method="client_secret_basic",
            jwks=None,
        )
    with unit_of_work(hub.session_factory) as session:
        revoke_client(session, partner_id="ude", client_id=old)
    r = client.get("/v1/referrals", headers=headers)
    assert r.status_code == 401 and r.json()["detail"] == "token client revoked"
    form = {"grant_type": "client_credentials"}
    token = client.post(
        "/oauth/token", data=form, auth=(new["client_id"], new["client_secret"])
    ).json()["access_token"]
    assert client.get("/v1/referrals", headers={"Authorization": f"Bearer {token}"}).is_success


def test_an_immediate_key_rotation_refuses_cached_tokens_at_once(world: Any) -> None:
    hub, partners, client = world
    headers = bearer(partners, client)
    with unit_of_work(hub.session_factory) as session:
        rotate(session, hub.settings, immediate=True)
    r = client.get("/v1/referrals", headers=headers)
    assert r.status_code == 401 and r.json()["detail"] == "token key id unknown"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def second_gateway(world: Any, database_url: str, tmp_path: Path) -> Iterator[str]:
    """``hub gateway`` in its own process, on the same database and master key."""
    port = _free_port()
    env = {
        **os.environ,
        "HUB_DATABASE_URL": database_url,
        "HUB_DATA_DIR": str(tmp_path),
        "HUB_ISSUER": ISSUER,
        "HUB_HTTP_PORT": str(port),
        "HUB_LOG_LEVEL": "WARNING",
        # PostgreSQL: longer than the test allows, so only the notification can make it.
        # SQLite: the bound is all there is between processes.
        "HUB_AUTH_CACHE_SECONDS": "5" if database_url.startswith("postgresql") else "0.5",
    }
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub", "gateway"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "gateway.log").read_text()
            try:
                httpx.get(f"{url}/health/live", timeout=1.0)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the second gateway did not start"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def test_a_revocation_reaches_another_gateway_process_within_a_second(
    world: Any, second_gateway: str
) -> None:
    hub, partners, client = world
    token = partners.token(client, "ude")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=second_gateway, headers=headers, timeout=5) as other:
        assert other.get("/v1/referrals").status_code == 200
        time.sleep(0.5)  # PostgreSQL: its listener is in place, the next load is trusted long
        assert other.get("/v1/referrals").status_code == 200
        with unit_of_work(hub.session_factory) as session:
            revoke_client(session, partner_id="ude", client_id=partners.creds["ude"]["client_id"])
        revoked = time.monotonic()
        while (status := other.get("/v1/referrals").status_code) == 200:
            assert time.monotonic() - revoked < 1.0, "still accepted a second after revocation"
            time.sleep(0.02)
        assert status == 401


@pytest.mark.skipif(not PG_URL, reason="kills PostgreSQL backends (HUB_TEST_DATABASE_URL)")
def test_a_request_after_the_server_closed_pooled_connections_succeeds(world: Any) -> None:
    hub, partners, client = world
    if hub.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    headers = bearer(partners, client)
    held = [hub.engine.connect() for _ in range(3)]
    pids = [c.exec_driver_sql("SELECT pg_backend_pid()").scalar() for c in held]
    for conn in held:
        conn.close()  # back into the pool, idle
    admin = create_engine(str(PG_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for pid in pids:
                assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
            deadline = time.monotonic() + 5
            alive = text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:p)")
            while conn.execute(alive, {"p": pids}).scalar() and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        admin.dispose()
    r = client.post("/v1/referrals", json=referral("ES-AFTER-KILL"), headers=headers)
    assert r.status_code == 202, r.text
    assert client.get("/v1/referrals", headers=headers).status_code == 200
