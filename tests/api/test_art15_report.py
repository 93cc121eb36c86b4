"""The Art. 15 access report: everything stored about the person, decrypted, labelled in the
person's language, with the Art. 15(1) information, written 0600 by ``hub people export``.

The router, the timeline, the deadline and the inbox consumers run here as plain handlers
over the outbox rows, as in tests/api/test_partner_reads_audited.py.
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from consumers import deadlines
from hub import cli
from hub.bootstrap import Hub
from hub.crypto.fields import seal_value
from hub.db import unit_of_work
from hub.privacy.export import export_person
from hub.privacy.report import render_html
from hub.privacy.service import erase_person
from hub.referrals.models import StaffNote
from schemas.labels import LANGUAGES
from tests.api.test_partner_reads_audited import _apply, apply_outbox
from tests.hubtest import STUDENT_REFERRAL, Partners

NOTE = "Bitte den Pass zur Abholung mitbringen"
STAFF_NOTE = "Rückruf vereinbart für Dienstag"
EVIDENCE = "ITC-Beratung 2027/0815"
# Codes, payload keys and ISO timestamps; ids are random base64 and may hold "9T7", so the
# timestamp pattern needs the date in front.
RAW = re.compile(
    r"residence\.student|PERMIT_GRANTED|payload\.|\d{2}:\d{2}:\d{2}\.\d{6}|\d{4}-\d{2}-\d{2}T\d{2}"
)
# A heading of each Art. 15(1) section, per language: recipients, rights, complaint.
ART15 = {
    "de": ("Empfänger", "Recht auf Berichtigung", "Aufsichtsbehörde"),
    "en": ("Recipients", "Right to rectification", "supervisory authority"),
    "ar": ("المستلمون", "الحق في التصحيح", "السلطة الرقابية"),
    "tr": ("Alıcılar", "Düzeltme hakkı", "denetim makamı"),  # noqa: RUF001 (dotless i is Turkish)
    "uk": ("Одержувачі", "Право на виправлення", "наглядового органу"),
    "ru": ("Получатели", "Право на исправление", "надзорный орган"),
}


def went_through_a_referral(hub: Hub, client: TestClient, partners: Partners) -> dict[str, str]:
    """A student referral with payload, a note on its completion, a staff note, a consent,
    a running deadline clock and a read by the Amt."""
    ude, amt = partners.headers(client, "ude"), partners.headers(client, "amt")
    created = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=ude).json()
    rid, pid = created["id"], created["person_id"]
    for change in (
        {"status": "accepted", "business_status": "APPOINTMENT_BOOKED"},
        {"status": "completed", "business_status": "PERMIT_GRANTED", "note": NOTE},
    ):
        r = client.post(f"/v1/referrals/{rid}/status", json=change, headers=amt)
        assert r.status_code in (200, 201), r.text
    consent = {
        "person": {"id": pid},
        "purpose": "counselling",
        "partners": ["ude", "amt"],
        "granted_on": "2025-03-01",
        "evidence_reference": EVIDENCE,
        "notice_language": "ar",
    }
    r = client.post("/v1/consents", json=consent, headers=ude)
    assert r.status_code == 201, r.text
    with unit_of_work(hub.session_factory) as session:
        text = seal_value(session, pid, STAFF_NOTE) or ""
        session.add(StaffNote(referral_id=rid, person_id=pid, author="tc", text=text))
    apply_outbox(hub)
    _apply(hub, deadlines.handle, lambda topic: topic == hub.settings.topic_events)
    assert client.get(f"/v1/referrals/{rid}", headers=amt).status_code == 200
    return {"rid": rid, "pid": pid}


def report_of(hub: Hub, pid: str, language: str | None = None) -> dict[str, Any]:
    with unit_of_work(hub.session_factory) as session:
        return export_person(
            session, person_id=pid, by="staff:dsb", policy=hub.policy, language=language
        )


def test_the_report_holds_everything_decrypted_and_labelled(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    ids = went_through_a_referral(hub, client, partners)
    report = report_of(hub, ids["pid"])

    assert report["language"] == "ar"  # the newest consent's notice language
    assert report["person"]["family_name"] == "Li"
    [referral] = report["referrals"]
    assert {"field": "programme", "value": "M.Sc. Computer Engineering"} in referral["payload"]
    assert [h["note"] for h in referral["history"]][-1] == NOTE
    assert referral["history"][-1]["business_status"] == "PERMIT_GRANTED"
    assert [n["text"] for n in referral["staff_notes"]] == [STAFF_NOTE]
    assert [c["name"] for c in referral["clocks"]] == ["first-appointment"]
    assert referral["retention_days"] == 730 and referral["requester"]["name"] != "ude"
    assert [(c["purpose"], c["evidence"]) for c in report["consents"]] == [
        ("counselling", EVIDENCE)
    ]
    assert any(
        z["partner"]["id"] == "amt" and z["read"] == "referral" for z in report["partner_reads"]
    )
    assert {e["event"] for e in report["timeline"]} >= {
        "referral.requested",
        "referral.status-changed",
    }
    to_ude = [d for d in report["deliveries"] if d["recipient"]["id"] == "ude"]
    completed = [
        d["status_change"]
        for d in to_ude
        if d.get("status_change", {}).get("status") == "completed"
    ]
    # The university's route shares neither this code nor notes (hub/policy/routes.v1.yaml).
    assert completed == [
        {
            "status": "completed",
            "reason": None,
            "business_status": None,
            "outcome": None,
            "note_included": False,
        }
    ]
    assert {r["id"] for r in report["recipients"]} >= {"amt", "ude"}
    json.dumps(report)  # machine-readable as it is

    page = render_html(report, "de")
    for shown in (
        "M.Sc. Computer Engineering",
        NOTE,
        STAFF_NOTE,
        EVIDENCE,
        "Aufenthaltserlaubnis zum Studium",
        "Aufenthaltserlaubnis erteilt",
        "Studiengang",
        "Ersttermin",
    ):
        assert shown in page, shown
    assert "Vermittlung" in page and "abgeschlossen" in page
    assert not RAW.search(page), RAW.search(page)
    assert re.search(r"\d{2}\.\d{2}\.\d{4}, \d{2}:\d{2}", page)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_art15_information_is_there_in_every_language(
    hub_and_partners: tuple[Hub, Partners], client: TestClient, language: str
) -> None:
    hub, partners = hub_and_partners
    ids = went_through_a_referral(hub, client, partners)
    page = render_html(report_of(hub, ids["pid"], language))
    assert f'lang="{language}"' in page
    assert ('dir="rtl"' in page) == (language == "ar")
    for heading in ART15[language]:
        assert heading in page, heading
    assert "poststelle@ldi.nrw.de" in page and "40213" in page
    assert not RAW.search(page)


def test_an_erased_person_shows_nothing_decryptable(
    hub_and_partners: tuple[Hub, Partners], client: TestClient
) -> None:
    hub, partners = hub_and_partners
    ids = went_through_a_referral(hub, client, partners)
    with unit_of_work(hub.session_factory) as session:
        erase_person(
            session, person_id=ids["pid"], reason="request-art-17", by="staff:dsb", topic="t"
        )
    report = report_of(hub, ids["pid"])
    text = json.dumps(report, ensure_ascii=False) + render_html(report, "en")
    for secret in ("Li", "M.Sc. Computer Engineering", NOTE, STAFF_NOTE, EVIDENCE, "ES012345601"):
        assert f'"{secret}"' not in text and f">{secret}<" not in text, secret
    assert report["erased_at"] and report["consents"] == [] and report["holds"] == []
    assert [r["payload"] for r in report["referrals"]] == [[]]
    assert "Your personal data were erased" in text


def test_the_command_writes_0600_and_refuses_to_overwrite(
    hub_and_partners: tuple[Hub, Partners],
    client: TestClient,
    tmp_path: Path,
) -> None:
    hub, partners = hub_and_partners
    ids = went_through_a_referral(hub, client, partners)
    env = {
        "HUB_DATABASE_URL": hub.settings.database_url,
        "HUB_DATA_DIR": str(hub.settings.data_dir),
    }
    out = tmp_path / "reports"
    args = ["people", "export", ids["pid"], "--out", str(out), "--language", "tr"]
    first = CliRunner().invoke(cli.main, args, env=env)
    assert first.exit_code == 0, first.output
    files = sorted(out.iterdir())
    assert [f.suffix for f in files] == [".html", ".json"]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    assert 'lang="tr"' in files[0].read_text("utf-8")
    assert json.loads(files[1].read_text("utf-8"))["language"] == "tr"

    again = CliRunner().invoke(cli.main, args, env=env)
    assert again.exit_code != 0 and "--force" in again.output
    forced = CliRunner().invoke(cli.main, [*args, "--force"], env=env)
    assert forced.exit_code == 0, forced.output
    assert {stat.S_IMODE(f.stat().st_mode) for f in out.iterdir()} == {0o600}
