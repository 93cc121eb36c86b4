"""A new person's reference is claimed before the person is written (hub.people.service).

Two requests introducing one reference at once must agree on one person; a claim whose
request fails must leave nothing behind; and the reference's foreign key, checked at commit,
must still refuse a reference to a person that was never written.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from hub.bootstrap import Hub
from hub.db import unit_of_work
from hub.people import service
from hub.people.models import Person, PersonReference
from hub.people.service import resolve_person
from schemas.messages import PersonIn

ANNA = PersonIn(
    given_name="Anna", family_name="Kowalska", birth_date="1999-04-02", partner_reference="M-77"
)


def _counts(hub: Hub) -> tuple[int, int]:
    with hub.session_factory() as session:
        people = session.scalar(select(func.count()).select_from(Person))
        references = session.scalar(select(func.count()).select_from(PersonReference))
    return int(people or 0), int(references or 0)


def _second_request(hub: Hub, found: dict[str, str]) -> threading.Thread:
    def run() -> None:
        with unit_of_work(hub.session_factory) as session:
            found["id"] = resolve_person(session, partner_id="ude", person=ANNA).id

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("first_commits", [True, False], ids=["first-commits", "first-fails"])
def test_two_requests_introducing_one_reference_agree_on_one_person(
    hub: Hub, first_commits: bool
) -> None:
    session = hub.session_factory()
    first = resolve_person(session, partner_id="ude", person=ANNA).id
    found: dict[str, str] = {}
    second = _second_request(hub, found)
    time.sleep(0.5)
    # The second request waits for the first's outcome instead of minting a second person.
    assert second.is_alive() and not found
    if first_commits:
        session.commit()
    else:
        session.rollback()
    session.close()
    second.join(timeout=30)
    assert not second.is_alive()
    if first_commits:
        assert found["id"] == first
    else:
        assert found["id"] != first  # the claim went with the failed request
    assert _counts(hub) == (1, 1)
    with hub.session_factory() as check:
        assert check.scalars(select(PersonReference.person_id)).one() == found["id"]
        assert check.scalars(select(Person.id)).one() == found["id"]


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
