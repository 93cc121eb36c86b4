"""A new person's reference is claimed before the person is written (hub.people.service), or,
inside ``references_late``, written with the person and the request run again if it was taken.

Two requests introducing one reference at once must agree on one person, either way; a claim
whose request fails must leave nothing behind; and the reference's foreign key, checked at
commit, must still refuse a reference to a person that was never written.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.bootstrap import Hub
from hub.db import unit_of_work
from hub.people import service
from hub.people.models import Person, PersonReference
from hub.people.service import known_references, references_late, resolve_person
from schemas.messages import PersonIn

ANNA = PersonIn(
    given_name="Anna", family_name="Kowalska", birth_date="1999-04-02", partner_reference="M-77"
)


def _counts(hub: Hub) -> tuple[int, int]:
    with hub.session_factory() as session:
        people = session.scalar(select(func.count()).select_from(Person))
        references = session.scalar(select(func.count()).select_from(PersonReference))
    return int(people or 0), int(references or 0)


def _second_request(
    hub: Hub, found: dict[str, str], runs: list[int], *, late: bool = False
) -> threading.Thread:
    def run() -> None:
        with unit_of_work(hub.session_factory) as session:

            def work() -> str:
                runs.append(1)
                return resolve_person(session, partner_id="ude", person=ANNA).id

            found["id"] = references_late(session, work) if late else work()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _race(hub: Hub, first: Session, first_commits: bool, second: threading.Thread) -> None:
    """The second request waits for the first's outcome, then ends; one person, one reference."""
    time.sleep(0.5)
    assert second.is_alive()
    if first_commits:
        first.commit()
    else:
        first.rollback()
    first.close()
    second.join(timeout=30)
    assert not second.is_alive()
    assert _counts(hub) == (1, 1)


def _stored(hub: Hub) -> tuple[str, str]:
    """The one reference's person, and the one person."""
    with hub.session_factory() as check:
        return (
            check.scalars(select(PersonReference.person_id)).one(),
            check.scalars(select(Person.id)).one(),
        )


@pytest.mark.parametrize("first_commits", [True, False], ids=["first-commits", "first-fails"])
def test_two_requests_introducing_one_reference_agree_on_one_person(
    hub: Hub, first_commits: bool
) -> None:
    session = hub.session_factory()
    first = resolve_person(session, partner_id="ude", person=ANNA).id
    found: dict[str, str] = {}
    # The second request waits for the first's outcome instead of minting a second person.
    _race(hub, session, first_commits, _second_request(hub, found, []))
    if first_commits:
        assert found["id"] == first
    else:
        assert found["id"] != first  # the claim went with the failed request
    assert _stored(hub) == (found["id"], found["id"])


def test_a_known_reference_reads_its_person_and_writes_nothing(hub: Hub) -> None:
    with unit_of_work(hub.session_factory) as session:
        first = resolve_person(session, partner_id="ude", person=ANNA).id
    with unit_of_work(hub.session_factory) as session:
        again = resolve_person(session, partner_id="ude", person=ANNA)
        assert again.id == first
    assert _counts(hub) == (1, 1)


def test_a_reference_to_a_person_never_written_is_refused_at_commit(hub: Hub) -> None:
    with pytest.raises(IntegrityError), unit_of_work(hub.session_factory) as session:
        assert service._link(session, "p_never_written", "ude", "M-78")
    assert _counts(hub) == (0, 0)


@pytest.mark.parametrize("first_commits", [True, False], ids=["first-commits", "first-fails"])
def test_two_requests_writing_one_reference_late_agree_on_one_person(
    hub: Hub, first_commits: bool
) -> None:
    if hub.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: on SQLite a reference is always claimed first")
    session = hub.session_factory()
    first = references_late(
        session, lambda: resolve_person(session, partner_id="ude", person=ANNA).id
    )
    # The reference and the person are written, not committed. The second request comes as
    # from another gateway process, which has not seen the reference.
    assert _pending_references(session) == 1
    known_references(session).clear()
    found: dict[str, str] = {}
    runs: list[int] = []
    # Its insert waits on the reference's unique key for the first's outcome.
    _race(hub, session, first_commits, _second_request(hub, found, runs, late=True))
    if first_commits:
        # The insert failed on the key: rolled back, run again claiming first, person read.
        assert found["id"] == first and len(runs) == 2
    else:
        assert found["id"] != first and len(runs) == 1  # the key was free again
    assert _stored(hub) == (found["id"], found["id"])
    # Both outcomes leave the reference known: the next request claims first.
    with hub.session_factory() as check:
        assert known_references(check).holds("ude", ANNA.partner_reference or "")


def _pending_references(session: object) -> int:
    assert isinstance(session, Session)
    return int(session.scalar(select(func.count()).select_from(PersonReference)) or 0)


def test_outside_references_late_or_on_sqlite_a_reference_is_claimed_first(hub: Hub) -> None:
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(hub.engine, "before_cursor_execute", record)
    try:
        with unit_of_work(hub.session_factory) as session:
            resolve_person(session, partner_id="ude", person=ANNA)
            claimed_at_once = list(statements)
        other = ANNA.model_copy(update={"partner_reference": "M-79"})
        statements.clear()
        with unit_of_work(hub.session_factory) as session:
            references_late(
                session, lambda: resolve_person(session, partner_id="ude", person=other)
            )
    finally:
        event.remove(hub.engine, "before_cursor_execute", record)
    # Without the block the claim is a statement of its own, sent at once.
    claims = [s for s in claimed_at_once if "INSERT INTO person_references" in s]
    assert len(claims) == 1 and "ON CONFLICT DO NOTHING" in claims[0]
    late = [s for s in statements if "person_references" in s]
    if hub.engine.dialect.name == "postgresql":
        # Inside it, one statement writes the reference with the person, no claim of its own.
        assert len(statements) == 1 and "ON CONFLICT" not in statements[0]
        assert "INSERT INTO people" in statements[0]
    else:
        assert len(late) == 1 and "ON CONFLICT" in late[0]
    assert _counts(hub) == (2, 2)


def test_a_process_remembers_references_only_as_keyed_digests_and_only_the_last_ones(
    hub: Hub,
) -> None:
    with hub.session_factory() as session:
        known = known_references(session)
    known.clear()
    known.add([("ude", "M-80"), ("ude", "M-81")])
    assert known.holds("ude", "M-80") and not known.holds("ude", "M-82")
    kept = list(known._seen)
    assert len(kept) == 2 and all(len(d) == 16 for d in kept)
    assert not [d for d in kept if b"M-8" in d or b"ude" in d]
    bounded = service._KnownReferences(most=2)
    bounded.add([("ude", "M-80"), ("ude", "M-81"), ("ude", "M-82")])
    assert not bounded.holds("ude", "M-80")
    assert bounded.holds("ude", "M-81") and bounded.holds("ude", "M-82")
