"""Group commit (hub.commits): requests that arrive together share one transaction, and never
more than that.

The gateway app runs in this process behind ``httpx.ASGITransport``; its commit group gets one
lane, which a unit of work holds until the test's requests have queued behind it, so that they
go into one transaction together. Commits are counted at the engine (``commit`` events), rows
in the database itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from hub import telemetry
from hub.app import create_app
from hub.audit.models import AuditRecord
from hub.bootstrap import Hub
from hub.commits import CommitGroup
from hub.db import unit_of_work
from hub.outbox.models import OutboxEvent
from hub.people.models import Person, PersonReference
from hub.people.service import known_references
from hub.referrals.models import Referral
from tests.hubtest import STUDENT_REFERRAL, Partners, data_points, make_hub


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[tuple[Hub, Partners, FastAPI]]:
    hub, partners = make_hub(database_url, tmp_path, gateway_commit_lanes=1)
    yield hub, partners, create_app(hub, kafka_check=lambda: True)
    hub.engine.dispose()


def referral(reference: str, performer: str = "amt") -> dict[str, Any]:
    body = copy.deepcopy(STUDENT_REFERRAL)
    body["person"]["partner_reference"] = reference
    body["performer"] = performer
    return body


class Commits:
    """The engine's commits while counting (each a ``COMMIT`` of one transaction)."""

    def __init__(self, hub: Hub) -> None:
        self.count = 0
        event.listen(hub.engine, "commit", self._one)

    def _one(self, _conn: Any) -> None:
        self.count += 1

    def reset(self) -> None:
        """Count from now on."""
        self.count = 0


Call = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


def together(
    app: FastAPI,
    partners: Partners,
    calls: list[Call],
    queued: Callable[[], None] = lambda: None,
) -> list[httpx.Response]:
    """Send ``calls`` at once while the group's one lane is held; once all queued behind it,
    ``queued()``, then the lane is free."""

    async def main() -> list[httpx.Response]:
        group: CommitGroup = app.state.commit_group
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://hub.test") as ac,
        ):
            c = partners.creds["ude"]
            r = await ac.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(c["client_id"], c["client_secret"]),
            )
            ac.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            # The token's first use reads it from the database; the test's requests do not.
            warming = await ac.post("/v1/referrals", json=referral("WARM-1"))
            assert warming.status_code == 202
            gate = threading.Event()
            holder = asyncio.ensure_future(group.run(lambda _s: gate.wait(10)))
            sent = [asyncio.ensure_future(call(ac)) for call in calls]
            with anyio.fail_after(10):
                while group.waiting < len(calls):
                    await asyncio.sleep(0.005)
            queued()
            gate.set()
            await holder
            return list(await asyncio.gather(*sent))

    return asyncio.run(main())


def post(body: dict[str, Any], key: str | None = None) -> Call:
    headers = {"Idempotency-Key": key} if key else {}
    return lambda ac: ac.post("/v1/referrals", json=body, headers=headers)


def count(hub: Hub, statement: Any) -> int:
    with unit_of_work(hub.session_factory) as session:
        return int(session.scalar(statement) or 0)


@pytest.fixture
def measured(hub: Hub) -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    telemetry.configure(hub.settings, service="test", metric_readers=[reader])
    yield reader
    telemetry.reset()


def test_requests_that_arrive_together_commit_together(world, measured) -> None:  # type: ignore[no-untyped-def]
    hub, partners, app = world
    commits = Commits(hub)
    calls = [post(referral(f"GC-{n}")) for n in range(8)]
    answers = together(app, partners, calls, queued=commits.reset)
    # Operators see it: the warm-up's and the lane holder's transactions of one, the eight's.
    (sizes,) = data_points(measured, "hub.gateway.commit.units")
    assert (sizes.count, sizes.sum, sizes.max) == (3, 10, 8)
    assert data_points(measured, "hub.gateway.commit.separated") == []
    assert [a.status_code for a in answers] == [202] * 8
    assert commits.count == 1  # the held lane's unit wrote nothing
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 8
    with unit_of_work(hub.session_factory) as session:
        stored = set(session.scalars(select(Referral.id).where(Referral.id.in_(ids))))
        events = session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.key.is_not(None))
        )
        calls = session.scalar(
            select(func.count()).select_from(AuditRecord).where(AuditRecord.action == "api.call")
        )
    assert stored == ids
    assert events and events >= 8
    # Each request's own record of the call went with its work: the warm-up's, the eight's.
    assert calls == 9


def test_a_failing_request_takes_none_of_the_others_with_it(world, measured) -> None:  # type: ignore[no-untyped-def]
    hub, partners, app = world
    first = referral("GC-REPEATED")
    calls = [
        post(referral("GC-A")),
        post(first, key="gc-key-1"),
        post(referral("GC-B")),
        post(referral("GC-C", performer="nobody")),  # refused inside the work, after others
        post(first, key="gc-key-1"),  # the same key again: run, found taken, rolled back
        post(referral("GC-D")),
    ]
    commits = Commits(hub)
    answers = together(app, partners, calls, queued=commits.reset)
    assert [a.status_code for a in answers] == [202, 202, 202, 422, 202, 202]
    assert answers[3].headers["content-type"] == "application/problem+json"
    assert "performer" in answers[3].json()["detail"]
    assert answers[4].json() == answers[1].json()  # the repeat answers as the first did
    # Rolled back together, then each alone: the five that write (the repeat its call).
    assert commits.count == 5
    (separated,) = data_points(measured, "hub.gateway.commit.separated")
    assert separated.value == 1
    with unit_of_work(hub.session_factory) as session:
        ids = [a.json()["id"] for a in answers if a.status_code == 202]
        stored = session.scalar(
            select(func.count()).select_from(Referral).where(Referral.id.in_(ids))
        )
        total = session.scalar(select(func.count()).select_from(Referral))
    assert stored == 4  # A, the keyed one, B, D; the repeat is the keyed one
    assert total == 1 + 4  # and the warm-up: nothing twice, nothing of the refused one


def test_a_reference_found_taken_in_a_shared_transaction_takes_none_of_the_others_with_it(
    world, measured
) -> None:  # type: ignore[no-untyped-def]
    hub, partners, app = world
    (earlier,) = together(app, partners, [post(referral("GC-TAKEN"))])
    # As if another gateway process had introduced it: this one has not seen the reference.
    with hub.session_factory() as session:
        known_references(session).clear()
    people = count(hub, select(func.count()).select_from(Person))
    answers = together(
        app,
        partners,
        [post(referral("GC-H")), post(referral("GC-TAKEN")), post(referral("GC-I"))],
    )
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert answers[1].json()["person_id"] == earlier.json()["person_id"]
    separated = sum(p.value for p in data_points(measured, "hub.gateway.commit.separated"))
    if hub.engine.dialect.name == "postgresql":
        # The second's statement, writing the reference with a new person, failed on the
        # reference's key: the shared transaction was rolled back and each ran alone; the
        # second claimed first and found the earlier person.
        assert separated == 1
    else:
        # SQLite claims first: the second found the person at once. The three's rows, a
        # table at a time, went in the order of the foreign keys (the third's person before
        # its referral, though the second staged a referral and no person), all together.
        assert separated == 0
    ids = [a.json()["id"] for a in answers]
    stored = count(hub, select(func.count()).select_from(Referral).where(Referral.id.in_(ids)))
    assert stored == 3
    # And the two warm-ups (one per ``together``) and the earlier one: nothing twice.
    assert count(hub, select(func.count()).select_from(Referral)) == 2 + 1 + 3
    assert count(hub, select(func.count()).select_from(Person)) == people + 2
    assert count(hub, select(func.count()).select_from(PersonReference)) == people + 2


def test_requests_that_read_what_the_caches_lack_do_not_block_the_shared_transaction(
    database_url: str, tmp_path: Path
) -> None:
    """A partner not in the cache (here: never kept) is read in the request's own
    transaction, which on SQLite holds the write lock: it ends before the work is queued, or
    the shared transaction waits for it until SQLite's busy timeout."""
    hub, partners = make_hub(database_url, tmp_path, gateway_commit_lanes=1, auth_cache_seconds=0)
    try:
        app = create_app(hub, kafka_check=lambda: True)
        calls = [post(referral(f"GC-M{n}")) for n in range(4)]
        answers = together(app, partners, calls)  # fails after 10 s of waiting to queue
        assert [a.status_code for a in answers] == [202] * 4
    finally:
        hub.engine.dispose()


def test_a_repeat_that_rolls_back_loses_none_of_the_units_before_it(world) -> None:  # type: ignore[no-untyped-def]
    hub, partners, app = world
    first = referral("GC-KEYED")
    calls = [post(first, key="gc-key-2")]
    (answer,) = together(app, partners, calls)
    # The repeat rolls the shared transaction back: the referral before it must still be kept.
    before, repeat, after = together(
        app, partners, [post(referral("GC-E")), post(first, key="gc-key-2"), post(referral("GC-G"))]
    )
    assert (before.status_code, repeat.status_code, after.status_code) == (202, 202, 202)
    assert repeat.json() == answer.json()
    ids = [before.json()["id"], after.json()["id"]]
    stored = count(hub, select(func.count()).select_from(Referral).where(Referral.id.in_(ids)))
    assert stored == 2


def test_a_failed_commit_is_every_request_s_failure_and_runs_nothing_again(world) -> None:  # type: ignore[no-untyped-def]
    hub, partners, app = world
    failing = {"on": False, "commits": 0}

    def commit(_conn: Any) -> None:
        if failing["on"]:
            failing["commits"] += 1
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    event.listen(hub.engine, "commit", commit)
    calls = [post(referral(f"GC-F{n}")) for n in range(4)]
    answers = together(app, partners, calls, queued=lambda: failing.update(on=True))
    assert [a.status_code for a in answers] == [503] * 4
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers)
    assert failing["commits"] == 1  # one COMMIT tried; its outcome unknown, nothing run again
    failing["on"] = False
    assert count(hub, select(func.count()).select_from(Referral)) == 1  # the warm-up's


def test_after_a_commit_whose_answer_was_lost_the_same_key_answers_as_stored(world) -> None:  # type: ignore[no-untyped-def]
    """The COMMIT reached the database but its answer did not: the 503 must not say that
    nothing was stored, and repeating the request with its key answers it as stored."""
    hub, partners, app = world
    lost = {"on": False}

    def commit(conn: Any) -> None:
        if lost["on"]:
            lost["on"] = False
            conn.connection.dbapi_connection.commit()  # it is stored ...
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    event.listen(hub.engine, "commit", commit)
    body = referral("GC-LOST")

    def queued() -> None:
        lost.update(on=True)

    (first,) = together(app, partners, [post(body, key="gc-lost")], queued)
    assert first.status_code == 503
    detail = first.json()["detail"]
    assert "nothing was stored" not in detail and "Idempotency-Key" in detail
    (again,) = together(app, partners, [post(body, key="gc-lost")])
    assert again.status_code == 202, again.text
    stored = select(func.count()).select_from(Referral).where(Referral.id == again.json()["id"])
    assert count(hub, stored) == 1


def test_a_commit_refused_for_a_deferred_constraint_runs_each_alone(world) -> None:  # type: ignore[no-untyped-def]
    hub, partners, app = world
    refusals = {"left": 0}

    def commit(_conn: Any) -> None:
        if refusals["left"]:
            refusals["left"] -= 1
            raise IntegrityError("COMMIT", {}, Exception("deferred foreign key violated"))

    commits = Commits(hub)  # first: it sees the refused COMMIT too
    event.listen(hub.engine, "commit", commit)

    def queued() -> None:
        refusals["left"] = 1
        commits.reset()

    answers = together(app, partners, [post(referral(f"GC-R{n}")) for n in range(3)], queued)
    assert [a.status_code for a in answers] == [202] * 3
    assert commits.count == 1 + 3  # the refused shared one, then each alone
    ids = [a.json()["id"] for a in answers]
    assert count(hub, select(func.count()).select_from(Referral).where(Referral.id.in_(ids))) == 3


def _group(hub: Hub, *, most: int = 16) -> CommitGroup:
    return CommitGroup(hub.session_factory, most=most, lanes=1)


def test_at_most_so_many_units_share_a_transaction(hub: Hub) -> None:
    group = _group(hub, most=3)
    commits = Commits(hub)
    seen: list[int] = []

    async def main() -> None:
        gate = threading.Event()
        holder = asyncio.ensure_future(group.run(lambda _s: gate.wait(10)))

        def unit(n: int) -> Callable[[Session], int]:
            def work(session: Session) -> int:
                session.execute(select(func.count()).select_from(Referral))
                seen.append(n)
                return n

            return work

        units = [asyncio.ensure_future(group.run(unit(n))) for n in range(7)]
        while group.waiting < 7:
            await asyncio.sleep(0.005)
        gate.set()
        await holder
        assert await asyncio.gather(*units) == list(range(7))

    asyncio.run(main())
    assert seen == list(range(7))
    assert commits.count == 3  # 3 + 3 + 1


def test_a_unit_runs_in_its_request_s_context_and_a_cancelled_one_never_runs(hub: Hub) -> None:
    group = _group(hub)
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")
    ran: list[str] = []

    async def submit(name: str) -> str:
        request_id.set(name)
        return await group.run(lambda _s: ran.append(request_id.get()) or request_id.get())

    async def main() -> None:
        gate = threading.Event()
        holder = asyncio.ensure_future(group.run(lambda _s: gate.wait(10)))
        kept = asyncio.ensure_future(submit("kept"))
        gone = asyncio.ensure_future(submit("gone"))
        while group.waiting < 2:
            await asyncio.sleep(0.005)
        gone.cancel()
        gate.set()
        await holder
        assert await kept == "kept"
        with pytest.raises(asyncio.CancelledError):
            await gone

    asyncio.run(main())
    assert ran == ["kept"]


def test_beside_a_held_transaction_a_second_begins_only_for_a_queue(hub: Hub) -> None:
    group = CommitGroup(hub.session_factory, most=16, lanes=2)  # a queue of 4 spills over
    commits = Commits(hub)

    def reading(result: Any, gate: threading.Event | None = None) -> Callable[[Session], Any]:
        # Its transaction begins after the gate: on SQLite a begun one holds the write lock.
        def work(session: Session) -> Any:
            if gate is not None:
                assert gate.wait(10)
            session.execute(select(func.count()).select_from(Referral))
            return result

        return work

    async def main() -> None:
        gate = threading.Event()
        holder = asyncio.ensure_future(group.run(reading("held", gate)))
        await asyncio.sleep(0.05)  # it has the first lane
        units = [asyncio.ensure_future(group.run(reading(0)))]
        await asyncio.sleep(0.05)
        assert group.waiting == 1  # one unit waits for the running transaction
        units += [asyncio.ensure_future(group.run(reading(n))) for n in (1, 2, 3)]
        # Four waiting: they go together in the second lane while the first is still held.
        assert await asyncio.wait_for(asyncio.gather(*units), 5) == [0, 1, 2, 3]
        assert commits.count == 1
        assert not holder.done()
        gate.set()
        assert await holder == "held"

    asyncio.run(main())
    assert commits.count == 2


def test_switched_off_each_request_commits_alone_and_a_failure_keeps_nothing(
    database_url: str, tmp_path: Path
) -> None:
    """``HUB_GATEWAY_GROUP_COMMIT=1``: each write in a transaction of its own, its call's
    audit record with it; a refused one leaves nothing, a repeated key answers as the first."""
    hub, partners = make_hub(database_url, tmp_path, gateway_group_commit=1)
    try:
        app = create_app(hub, kafka_check=lambda: True)
        assert app.state.commit_group is None
        with TestClient(app) as client:
            headers = partners.headers(client, "ude")
            client.post("/v1/referrals", json=referral("OFF-WARM"), headers=headers)
            commits = Commits(hub)
            keyed = {**headers, "Idempotency-Key": "off-1"}
            first = client.post("/v1/referrals", json=referral("OFF-1"), headers=keyed)
            again = client.post("/v1/referrals", json=referral("OFF-1"), headers=keyed)
            refused = client.post(
                "/v1/referrals", json=referral("OFF-2", performer="nobody"), headers=headers
            )
        assert (first.status_code, again.status_code, refused.status_code) == (202, 202, 422)
        assert again.json() == first.json()
        assert commits.count == 2  # the first, and the repeat's record of its call
        with unit_of_work(hub.session_factory) as session:
            total = session.scalar(select(func.count()).select_from(Referral))
            calls = session.scalar(
                select(func.count())
                .select_from(AuditRecord)
                .where(AuditRecord.action == "api.call")
            )
        assert total == 2  # the warm-up and the first: nothing twice, nothing refused
        assert calls == 3  # the warm-up's, the first's, the repeat's; the refused one's went
    finally:
        hub.engine.dispose()
