"""Erasure reaches every store: raw bytes of the database, data dir, logs and Kafka.

One person goes through every flow the hub has (referral with payload, status changes with
a note, a staff note, consent given and withdrawn, a held delivery, an Idempotency-Key
request, pull inbox and push delivery, a running deadline clock) and is erased; then no
distinctive string of theirs, nor its base64 form, is left anywhere the hub wrote.

UDE and the Amt take push delivery, IHK FOSA pulls: a closing status change goes to both
parties of a referral under one event id, and the one inbox consumer of all pull partners
deduplicates by event id, so two pull parties would get it once between them.
"""

from __future__ import annotations

import base64
import json
import logging
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from hub.db import unit_of_work, utcnow
from hub.deadlines.models import ClockInstance, DeadlineNotice
from hub.deadlines.service import announce_due
from hub.outbox.models import OutboxEvent
from hub.people.models import PersonIndexEntry
from hub.privacy.export import export_person
from hub.privacy.report import render_html
from hub.privacy.service import erase_person
from hub.referrals.models import Referral
from hub.web.accounts import add_staff
from tests.hubtest import api_client
from tests.integration.conftest import Running, wait_for
from tests.integration.push import Sim, start_delivery, start_sims
from tests.integration.test_erasure import all_topic_bytes
from tests.staffweb import PASSWORD, csrf_of, log_in, staff_client

pytestmark = pytest.mark.integration

# ASCII only: JSON columns store non-ASCII characters as \u escapes, which a byte scan for
# the UTF-8 form would miss.
PERSON = {
    "given_name": "Oluwaseunbami",
    "family_name": "Adeyemikanmiolu",
    "birth_date": "1997-07-13",
    "partner_reference": "MX0424242Q",
}
PROGRAMME = "Quantengravitationsseminar"
OCCUPATION = "Orgelbauermeisterin"
TOPIC = "Karriereplanungsthemawunsch"
STATUS_NOTE = "Nachreichungsvermerkzeile"
STAFF_NOTE = "Beratungsvermerkinternzeile"
EVIDENCE = "Einwilligungsbogen-ZX81-Blatt7"
IDEMPOTENCY_KEY = "ude-zulassung-KQ77JXW3"
NEEDLES = [*PERSON.values(), PROGRAMME, OCCUPATION, TOPIC, STATUS_NOTE, STAFF_NOTE, EVIDENCE]
NEEDLES.append(IDEMPOTENCY_KEY)
KEPT = {"family_name": "Benkiranwatiya", "partner_reference": "MX0555111K"}


def base64_forms(needle: bytes) -> list[bytes]:
    """The needle as it appears inside base64 (and base64url) at each of the 3 alignments."""
    forms = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + needle).rstrip(b"=")
        # Drop the characters that also depend on the bytes before or after the needle.
        core = encoded[(shift * 8 + 5) // 6 : -2]
        forms += [core, core.replace(b"+", b"-").replace(b"/", b"_")]
    return forms


def patterns() -> dict[bytes, str]:
    """Every byte form searched for, with the needle it stands for."""
    found = {}
    for needle in NEEDLES:
        raw = needle.encode()
        found[raw] = needle
        for form in base64_forms(raw):
            found[form] = f"{needle} (base64)"
    return found


def leaks(haystacks: dict[str, bytes]) -> set[tuple[str, str]]:
    """(where, what) for every form of every needle found in a haystack."""
    return {
        (where, what)
        for where, data in haystacks.items()
        for form, what in patterns().items()
        if form in data
    }


def postgres_hits(engine: Engine, needles: list[str]) -> set[tuple[str, str]]:
    """(table.column, needle) for every text, json or bytea value of the schema holding one.

    Every column of every table is asked, not a list of the columns expected to hold
    personal data, so a new table or column is scanned too. json and jsonb are searched in
    their text form; bytea as bytes.
    """
    hits = set()
    with engine.connect() as conn:
        columns = conn.execute(
            text(
                "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
                " JOIN information_schema.tables t ON t.table_schema = c.table_schema"
                " AND t.table_name = c.table_name"
                " WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"
                " AND c.data_type IN ('text', 'character varying', 'character', 'json',"
                " 'jsonb', 'bytea', 'ARRAY', 'USER-DEFINED')"
            )
        ).all()
        assert len(columns) > 20, columns  # the hub's schema, not an empty one
        for table, column, data_type in columns:
            value = (
                f'"{column}"' if data_type == "bytea" else f"convert_to(\"{column}\"::text, 'UTF8')"
            )
            for needle in needles:
                for form in (needle.encode(), *base64_forms(needle.encode())):
                    found = conn.execute(
                        text(f'SELECT 1 FROM "{table}" WHERE position(:n IN {value}) > 0 LIMIT 1'),
                        {"n": form},
                    ).first()
                    if found:
                        hits.add((f"{table}.{column}", needle))
    return hits


def database_bytes(running: Running) -> bytes:
    """SQLite: the database file and its WAL, as they lie on disk (no checkpoint here)."""
    path = Path(running.hub.engine.url.database or "")
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def data_dir_bytes(root: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield str(path.relative_to(root)), path.read_bytes()


def stored(running: Running, needles: list[str]) -> set[str]:
    """The needles the database holds in plain text now (the scanner's own check)."""
    if running.hub.engine.dialect.name == "postgresql":
        return {n for _, n in postgres_hits(running.hub.engine, needles)}
    data = database_bytes(running)
    return {n for n in needles if n.encode() in data}


def settled(running: Running) -> bool:
    """every committed event was published"""
    with running.hub.session_factory() as s:
        unpublished = select(func.count()).select_from(OutboxEvent)
        return s.scalar(unpublished.where(OutboxEvent.published_at.is_(None))) == 0


def post(client: Any, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    r = client.post(path, json=body, headers=headers)
    assert r.status_code in (200, 201, 202), r.text
    return r.json()


def go_through_every_flow(running: Running, client: Any, sims: dict[str, Sim]) -> dict[str, Any]:
    """The person's whole life in the hub; returns the ids the checks need."""
    p = running.partners
    ude, amt = p.headers(client, "ude"), p.headers(client, "amt")
    keyed = {**ude, "Idempotency-Key": IDEMPOTENCY_KEY}
    body = {
        "type": "residence.student",
        "performer": "amt",
        "person": PERSON,
        "payload": {"programme": PROGRAMME, "semester": "2027S"},
    }
    student = post(client, "/v1/referrals", body, keyed)
    assert post(client, "/v1/referrals", body, keyed) == student  # the stored answer
    person_id = student["person_id"]
    for step in (
        {"status": "accepted"},
        {"status": "on-hold", "reason": "awaiting-client-documents", "note": STATUS_NOTE},
    ):
        post(client, f"/v1/referrals/{student['id']}/status", step, amt)
    recognition = post(
        client,
        "/v1/referrals",
        {
            "type": "recognition.assessment",
            "performer": "ihk-fosa",
            "person": {"id": person_id},
            "payload": {"reference_occupation": OCCUPATION},
        },
        amt,
    )
    consent = post(
        client,
        "/v1/consents",
        {
            "person": {"id": person_id},
            "purpose": "counselling",
            "partners": ["ude", "amt"],
            "granted_on": "2026-11-02",
            "evidence_reference": EVIDENCE,
            "notice_language": "yo",
        },
        ude,
    )
    counselling = post(
        client,
        "/v1/referrals",
        {
            "type": "counselling.talent-center",
            "performer": "amt",
            "person": {"id": person_id},
            "payload": {"topic": TOPIC},
        },
        ude,
    )
    post(client, f"/v1/consents/{consent['id']}/withdraw", {}, ude)
    # With the consent withdrawn, the Amt's acceptance is held back from UDE.
    post(client, f"/v1/referrals/{counselling['id']}/status", {"status": "accepted"}, amt)
    kept = post(client, "/v1/referrals", {**body, "person": KEPT}, ude)
    add_note(running, student["id"])

    def delivered() -> bool:
        """IHK FOSA pulled its request, UDE and the Amt were pushed theirs, one event was held"""
        fosa = p.headers(client, "ihk-fosa")
        pulled = {i["referral_id"] for i in client.get("/v1/inbox", headers=fosa).json()["items"]}
        to_ude = [d for d in sims["ude"].received().values() if d.referral_id == student["id"]]
        to_amt = {d.referral_id for d in sims["amt"].received().values()}
        view = client.get(f"/v1/referrals/{counselling['id']}", headers=ude).json()
        return (
            recognition["id"] in pulled
            and len(to_ude) >= 2
            and student["id"] in to_amt
            and bool(view["holds"])
        )

    wait_for(delivered)
    wait_for(lambda: clocks(running, recognition["id"]).get("receipt-confirmation") == "running")
    return {
        "person_id": person_id,
        "kept_person_id": kept["person_id"],
        "open": [student["id"], recognition["id"], counselling["id"]],
    }


def add_note(running: Running, referral_id: str) -> None:
    """A Talent Center caseworker notes something on the referral, in the staff UI."""
    with unit_of_work(running.hub.session_factory) as session:
        add_staff(
            session,
            email="tc@duisburg.de",
            role="caseworker",
            purposes=["residence"],
            password=PASSWORD,
        )
    with staff_client(running.hub) as browser:
        assert log_in(browser, "tc@duisburg.de").status_code == 303
        page = browser.get(f"/staff/referrals/{referral_id}")
        assert page.status_code == 200, page.text
        r = browser.post(
            f"/staff/referrals/{referral_id}/notes",
            data={"text": STAFF_NOTE, "csrf_token": csrf_of(page.text)},
        )
        assert r.status_code == 200 and STAFF_NOTE in r.text


def clocks(running: Running, referral_id: str) -> dict[str, str]:
    with running.hub.session_factory() as s:
        rows = s.scalars(select(ClockInstance).where(ClockInstance.referral_id == referral_id))
        return {c.name: c.state for c in rows}


def test_erasure_reaches_every_store(
    running: Running, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sims = start_sims(running, ["ude", "amt"])
    running.start_relay()
    for name in ("router", "timeline", "inbox", "deadlines"):
        running.start_consumer_thread(name)
    start_delivery(running)
    try:
        erase_after_every_flow(running, tmp_path, sims)
    finally:
        for sim in sims.values():
            sim.server.stop()
    hub = running.hub
    haystacks = {
        "kafka": all_topic_bytes(hub.bootstrap_servers),
        "logs": "\n".join(str(vars(r)) for r in caplog.records).encode(),
        **dict(data_dir_bytes(tmp_path)),
    }
    found = leaks(haystacks)
    if hub.engine.dialect.name == "postgresql":
        found |= postgres_hits(hub.engine, NEEDLES)
    assert found == set(), f"the erased person's data is still stored: {sorted(found)}"


def erase_after_every_flow(running: Running, tmp_path: Path, sims: dict[str, Sim]) -> None:
    """Every flow, the erasure, the checks of what it closed, and the export afterwards."""
    hub = running.hub
    with api_client(hub) as client:
        ids = go_through_every_flow(running, client, sims)
        wait_for(lambda: settled(running))
        # The scanner finds what is stored in plain text before the erasure.
        assert {PERSON["partner_reference"], EVIDENCE, IDEMPOTENCY_KEY} <= stored(running, NEEDLES)

        digests = index_digests(running, ids["person_id"])
        assert len(digests) >= 5, "name tokens, their phonetic keys and the birth date"

        with unit_of_work(hub.session_factory) as session:
            erase_person(
                session,
                person_id=ids["person_id"],
                reason="request-art-17",
                by="staff:dsb",
                topic=hub.settings.topic_events,
            )
        closed_checks(running, client, ids, sims)
        wait_for(lambda: settled(running))
        with unit_of_work(hub.session_factory) as session:
            report = export_person(
                session, person_id=ids["person_id"], by="staff:dsb", policy=hub.policy
            )
        (tmp_path / "export.json").write_text(json.dumps(report, ensure_ascii=False))
        (tmp_path / "export.html").write_text(render_html(report), encoding="utf-8")
        assert report["consents"] == [] and report["erased_at"]
        assert report["person"]["partner_references"] == []
        # The kept person's data is still there, so the scans below could find data at all.
        assert KEPT["partner_reference"] in stored(running, [KEPT["partner_reference"]])
        assert index_digests(running, ids["person_id"]) == set()
        assert digests_stored(running, digests) == set(), "the search index still finds them"
        kept = index_digests(running, ids["kept_person_id"])
        assert kept and digests_stored(running, kept) == kept
        wait_for(lambda: settled(running))

    if hub.engine.dialect.name == "sqlite":
        path = Path(hub.engine.url.database or "")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (path, Path(f"{path}-wal"))}
        assert modes == {"hub.db": 0o600, "hub.db-wal": 0o600}


def index_digests(running: Running, person_id: str) -> set[bytes]:
    """The person's rows in the search index (digests of name tokens and birth date)."""
    with running.hub.session_factory() as session:
        rows = session.scalars(
            select(PersonIndexEntry.digest).where(PersonIndexEntry.person_id == person_id)
        )
        return {bytes(d) for d in rows}


def digests_stored(running: Running, digests: set[bytes]) -> set[bytes]:
    """The digests still in the database: its file bytes (SQLite) or any index row."""
    if running.hub.engine.dialect.name == "sqlite":
        data = database_bytes(running)
        return {d for d in digests if d in data}
    with running.hub.session_factory() as session:
        rows = session.scalars(
            select(PersonIndexEntry.digest).where(PersonIndexEntry.digest.in_(list(digests)))
        )
        return {bytes(d) for d in rows}


def closed_checks(running: Running, client: Any, ids: dict[str, Any], sims: dict[str, Sim]) -> None:
    """The open referrals are cancelled, both parties hear of it, no clock runs on."""
    hub = running.hub
    with hub.session_factory() as s:
        for rid in ids["open"]:
            referral = s.get(Referral, rid)
            assert referral is not None and referral.status == "cancelled"
            assert referral.history[-1].reason == "person-erased"
    assert clocks(running, ids["open"][1]) == {
        "receipt-confirmation": "stopped",
        "decision": "not-started",
    }
    with unit_of_work(hub.session_factory) as session:
        later = utcnow() + timedelta(days=400)
        announce_due(session, catalogue=hub.catalogue, settings=hub.settings, now=later)
        notices = session.scalars(
            select(DeadlineNotice.referral_id).where(DeadlineNotice.referral_id.in_(ids["open"]))
        ).all()
        session.rollback()
    assert notices == []

    p = running.partners

    def pushed(partner: str) -> set[str | None]:
        received = sims[partner].received().values()
        return {d.referral_id for d in received if "person-erased" in json.dumps(d.body)}

    def told() -> bool:
        """UDE and the Amt (push), IHK FOSA (pull) heard that the referrals were cancelled"""
        fosa = p.headers(client, "ihk-fosa")
        pulled = {
            i["referral_id"]
            for i in client.get("/v1/inbox", headers=fosa).json()["items"]
            if i["data"].get("status") == "cancelled" and i["data"].get("reason") == "person-erased"
        }
        student, recognition, _ = ids["open"]
        return (
            student in pushed("ude")
            and {student, recognition} <= pushed("amt")
            and recognition in pulled
        )

    wait_for(told)
