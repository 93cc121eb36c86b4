"""Rows staged to be written together (hub.staged), on SQLite and PostgreSQL.

A staged row exists only if its transaction commits, is written before any ORM row that may
reference it, keeps every value as its column's type stores it, and on PostgreSQL several
tables' rows cost one statement.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub import staged
from hub.bootstrap import Hub
from hub.consent.models import Consent
from hub.db import table_of, unit_of_work
from hub.outbox.models import OutboxEvent
from hub.people.models import Person, PersonIndexEntry
from tests.api.test_hot_path import Statements, inserts_into

AT = datetime(2026, 12, 4, 9, 30, 15, 123456, tzinfo=UTC)


def person(pid: str) -> dict[str, Any]:
    return dict(id=pid, given_name=None, family_name=None, birth_date=None, created_at=AT)


def outbox_row(n: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "topic": "hub.events.v1",
        "key": f"k{n}",
        "headers": [["ce_type", f"t{n}"]],
        "value": f"v{n}",
        "created_at": AT,
        "published_at": None,
        "settled_at": None,
        "replay": 0,
    }


def count(session: Session, model: type[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def consent(person_id: str) -> Consent:
    return Consent(
        id=str(uuid.uuid4()),
        person_id=person_id,
        purpose="counselling",
        partners=["ude"],
        granted_on=date(2026, 12, 1),
        evidence_reference="form 1",
        notice_language="de",
        recorded_by="test",
    )


def test_staged_rows_are_written_at_commit_in_one_statement_on_postgresql(hub: Hub) -> None:
    with Statements(hub) as sent, unit_of_work(hub.session_factory) as session:
        staged.stage(session, table_of(Person), [person("p_staged")])
        staged.stage(
            session,
            table_of(PersonIndexEntry),
            [{"person_id": "p_staged", "kind": "token", "digest": bytes(32)}] * 2,
        )
        staged.stage(session, table_of(OutboxEvent), [outbox_row(1), outbox_row(2)])
        assert sent.sent == []  # nothing until commit
    expected = 1 if hub.engine.dialect.name == "postgresql" else 3
    assert len(sent.sent) == expected
    if hub.engine.dialect.name == "postgresql":
        # Sent with PostgreSQL's own placeholders, converted once per shape, not per call.
        assert "$1" in sent.sent[0] and "%(" not in sent.sent[0]
    with hub.session_factory() as session:
        assert count(session, Person) == 1 and count(session, PersonIndexEntry) == 2
        rows = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
        # Values come back as their columns store them, in the order staged.
        assert [(r.key, r.headers, r.created_at) for r in rows] == [
            ("k1", [["ce_type", "t1"]], AT),
            ("k2", [["ce_type", "t2"]], AT),
        ]


def test_staged_rows_go_with_a_rollback(hub: Hub) -> None:
    with pytest.raises(RuntimeError), unit_of_work(hub.session_factory) as session:
        staged.stage(session, table_of(Person), [person("p_gone")])
        staged.write(session)  # written, then rolled back with the transaction
        staged.stage(session, table_of(OutboxEvent), [outbox_row(1)])
        raise RuntimeError("the request fails")
    with unit_of_work(hub.session_factory) as session:
        assert count(session, Person) == 0 and count(session, OutboxEvent) == 0
        # Nothing staged is left over for the session's next transaction either.
        staged.stage(session, table_of(Person), [person("p_next")])
    with hub.session_factory() as session:
        assert session.scalars(select(Person.id)).all() == ["p_next"]


def test_orm_rows_referencing_a_staged_row_are_flushed_after_it(hub: Hub) -> None:
    with unit_of_work(hub.session_factory) as session:
        staged.stage(session, table_of(Person), [person("p_first")])
        session.add(consent("p_first"))
        # A query's autoflush writes the consent, which references the staged person.
        assert count(session, Consent) == 1
    with hub.session_factory() as session:
        assert count(session, Person) == 1 and count(session, Consent) == 1


def test_a_staged_row_breaking_a_constraint_fails_the_commit_and_leaves_nothing(
    hub: Hub,
) -> None:
    with pytest.raises(IntegrityError), unit_of_work(hub.session_factory) as session:
        staged.stage(session, table_of(OutboxEvent), [outbox_row(1)])
        staged.stage(
            session,
            table_of(PersonIndexEntry),
            [{"person_id": "p_nobody", "kind": "token", "digest": bytes(32)}],
        )
    with hub.session_factory() as session:
        assert count(session, OutboxEvent) == 0 and count(session, PersonIndexEntry) == 0


def test_a_bulk_job_stages_thousands_of_rows_and_each_table_goes_together(hub: Hub) -> None:
    # 3,000 people with an index entry each, staged person by person: 24,000 values, past
    # what one combined statement should carry (and 3,000 CTEs would exceed PostgreSQL's
    # 65,535 parameters if each staging were its own).
    people = 3000
    with Statements(hub) as sent, unit_of_work(hub.session_factory) as session:
        for n in range(people):
            staged.stage(session, table_of(Person), [person(f"p_bulk_{n}")])
            entry = {"person_id": f"p_bulk_{n}", "kind": "token", "digest": bytes(32)}
            staged.stage(session, table_of(PersonIndexEntry), [entry])
    tables = [t for s in sent.sent for t in ("people", "person_index") if f"INTO {t} " in s]
    assert tables[0] == "people" and set(tables) == {"people", "person_index"}
    assert tables.index("person_index") > max(i for i, t in enumerate(tables) if t == "people")
    with hub.session_factory() as session:
        assert count(session, Person) == people and count(session, PersonIndexEntry) == people


def test_rows_of_one_table_staged_apart_share_one_insert(hub: Hub) -> None:
    with Statements(hub) as sent, unit_of_work(hub.session_factory) as session:
        for n in range(3):
            staged.stage(session, table_of(Person), [person(f"p_apart_{n}")])
            staged.stage(session, table_of(OutboxEvent), [outbox_row(n)])
    inserts = [s.count("INSERT INTO") for s in sent.sent]
    assert inserts == ([2] if hub.engine.dialect.name == "postgresql" else [1, 1])
    with hub.session_factory() as session:
        keys = session.scalars(select(OutboxEvent.key).order_by(OutboxEvent.id)).all()
        assert keys == ["k0", "k1", "k2"]


def key_row(key: str) -> dict[str, Any]:
    return {
        "partner_id": "ude",
        "key": key,
        "request_hash": "h",
        "status_code": 202,
        "response": {"id": key},
        "location": None,
        "created_at": AT,
    }


def test_a_claim_goes_with_the_held_rows_and_tells_whether_it_was_new(hub: Hub) -> None:
    from hub.referrals.models import IdempotencyRecord

    records = table_of(IdempotencyRecord)
    postgresql = hub.engine.dialect.name == "postgresql"
    with Statements(hub) as sent, unit_of_work(hub.session_factory) as session:
        with staged.held(session):
            staged.stage(session, table_of(Person), [person("p_claim_1")])
            staged.write(session)  # held: written with the claim
            assert sent.sent == []
        assert staged.write_claiming(session, records, key_row("k-1")) is True
    assert len(sent.sent) == (1 if postgresql else 2), sent.sent
    if postgresql:
        assert inserts_into(sent.sent[0]) == ["people", "idempotency_records"]

    # The key taken: the claim says so, and the rows written with it leave with the rollback.
    session = hub.session_factory()
    try:
        staged.stage(session, table_of(Person), [person("p_claim_2")])
        assert staged.write_claiming(session, records, key_row("k-1")) is False
        session.rollback()
    finally:
        session.close()
    with hub.session_factory() as session:
        assert session.scalars(select(Person.id)).all() == ["p_claim_1"]
        assert session.scalars(select(IdempotencyRecord.key)).all() == ["k-1"]


def test_a_flush_inside_a_hold_still_writes_the_staged_rows_first(hub: Hub) -> None:
    with unit_of_work(hub.session_factory) as session, staged.held(session):
        staged.stage(session, table_of(Person), [person("p_held")])
        staged.write(session)  # held
        session.add(consent("p_held"))
        session.flush()  # the consent references the staged person
    with hub.session_factory() as session:
        assert count(session, Consent) == 1


def test_a_staged_table_must_be_given_its_python_defaults(hub: Hub) -> None:
    from hub.referrals.models import IdempotencyRecord

    if hub.engine.dialect.name != "postgresql":
        pytest.skip("SQLite inserts each table on its own, with SQLAlchemy's defaults")
    row = key_row("k-2")
    del row["created_at"]
    with (
        pytest.raises(ValueError, match="created_at"),
        unit_of_work(hub.session_factory) as session,
    ):
        staged.stage(session, table_of(IdempotencyRecord), [row])
        staged.write_claiming(session, table_of(Person), person("p_default"))


def test_named_placeholders_become_numbered_once_each() -> None:
    sql = staged._Sql.of("SELECT %(a)s, %(b)s, %(a)s, '100%%' WHERE x = %(c_1)s")
    assert sql.numbered == "SELECT $1, $2, $1, '100%' WHERE x = $3"
    assert sql.order == ("a", "b", "c_1")
