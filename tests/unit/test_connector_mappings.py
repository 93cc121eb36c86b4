"""Partner-kind mappings: every shipped example maps as documented, bad input names its field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from connectors.authority.mapping import STATUS_CODES as AUTHORITY_CODES
from connectors.base import ChangeStatus, CreateReferral, MappingError, Operation
from connectors.chamber.mapping import STATUS_CODES as CHAMBER_CODES
from connectors.config import ConnectorConfig, resolve_secret
from connectors.jobcenter.mapping import STATUS_CODES as JOBCENTER_CODES
from connectors.native import ERASED, REQUESTED, STATUS_CHANGED, StatusCode
from connectors.registry import KINDS, connector_for
from connectors.university.mapping import STATUS_CODES as UNIVERSITY_CODES
from schemas.catalogue import load_catalogue, validate_payload
from schemas.lifecycle import REASONS, Status
from schemas.messages import (
    PersonDetails,
    PersonErased,
    ReferralCreate,
    ReferralRequested,
    ReferralStatusChanged,
    StatusChange,
)

ROOT = Path(__file__).resolve().parents[2] / "connectors"
CATALOGUE = load_catalogue()


def example(kind: str, name: str) -> dict[str, Any]:
    return json.loads((ROOT / kind / "examples" / f"{name}.json").read_text("utf-8"))


def inbound(kind: str, native: dict[str, Any]) -> list[Operation]:
    return KINDS[kind].inbound.to_operations(native)


def dump(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"key": op.idempotency_key}
    if isinstance(op, ChangeStatus):
        out["referral_id"] = str(op.referral_id)
    return out | op.body.model_dump(mode="json", exclude_none=True)


# --- inbound examples -------------------------------------------------------------------

_MSG = "5e8a1c37-2d94-4b6f-8a03-7c1e9f2b4d22"
_ENROLMENT = "9a4f2c61-7e3b-4d58-b1a6-0c2d8e5f7a33"
_ENROLLED = {"note": "Semester 2027W", "occurred_at": "2027-10-04T11:20:00+02:00"}
_ASSESSMENT = "2f7c9e14-b3a8-4d61-9e07-5a1c3b8d6f55"

INBOUND: list[tuple[str, str, str, list[dict[str, Any]]]] = [
    ("university", "inbound-zulassung", "residence.student", [{
        "key": "3b2d6f0e-8c41-4f7a-9e25-1a6c0d9b7e11", "type": "residence.student",
        "performer": "amt",
        "person": {"given_name": "Wei", "family_name": "Li", "birth_date": "2001-04-03",
                   "partner_reference": "ES012345601"},
        "payload": {"programme": "M.Sc. Computer Engineering", "semester": "2027S",
                    "admission_date": "2027-02-15"},
    }]),
    ("university", "inbound-einschreibungsstatus", "university.enrolment-confirmation", [
        {"key": f"{_MSG}:accept", "referral_id": _ENROLMENT, "status": "accepted", **_ENROLLED},
        {"key": _MSG, "referral_id": _ENROLMENT, "status": "completed",
         "business_status": "ENROLMENT_COMPLETED", "outcome": "enrolled", **_ENROLLED},
    ]),
    ("chamber", "inbound-verfahrensstand", "recognition.assessment", [{
        "key": "c41e7b20-5a9d-4e3f-a862-3f0b1d7c9e44", "referral_id": _ASSESSMENT,
        "status": "on-hold", "business_status": "DOCUMENTS_REQUESTED",
        "reason": "awaiting-client-documents",
        "note": "Beglaubigte Übersetzung des Abschlusszeugnisses fehlt.",
        "occurred_at": "2027-04-12T09:05:00+02:00",
    }]),
    ("chamber", "inbound-anpassungsqualifizierung", "recognition.adaptation", [{
        "key": "d8a03f5b-1e6c-4a97-b2d4-6e9f0a1c3b66", "type": "recognition.adaptation",
        "performer": "amt",
        "person": {"id": "p_Xk3v9QmT2bLr7WzA", "given_name": "Amina", "family_name": "Okafor",
                   "birth_date": "1994-11-21", "partner_reference": "FOSA-2027-004711"},
        "payload": {"reference_occupation": "Elektroniker/in für Betriebstechnik",
                    "decision_date": "2027-06-30", "follow_up_of": _ASSESSMENT},
    }]),
    ("jobcenter", "inbound-zuweisung", "counselling.talent-center", [{
        "key": "7b1e4d92-3c5a-4f08-9d6e-2b8a0c4f1e77", "type": "counselling.talent-center",
        "performer": "amt",
        "person": {"given_name": "Olena", "family_name": "Kovalenko",
                   "birth_date": "1989-07-14", "partner_reference": "123D456789"},
        "payload": {"topic": "Beratung zur Anerkennung des ukrainischen Pflegeabschlusses",
                    "preferred_language": "uk"},
    }]),
    ("jobcenter", "inbound-vermittlungsstand", "jobcenter.integration", [{
        "key": "e2c58a14-9f3b-4d71-a0e6-8d4b1f7c2a88",
        "referral_id": "4c8e1a73-6d2f-4b90-8e15-9f3a7c0d2b99", "status": "in-progress",
        "business_status": "COOPERATION_PLAN_AGREED", "occurred_at": "2027-05-20T14:00:00+02:00",
    }]),
    ("authority", "inbound-anfrage-0101", "recognition.assessment", [{
        "key": "0f6b3d8e-4a27-4c19-b5e3-1d9a7f2c4e10", "type": "recognition.assessment",
        "performer": "ihk-fosa",
        "person": {"given_name": "Amina", "family_name": "Okafor", "birth_date": "1994-11-21",
                   "partner_reference": "ABH-32-2027-01234"},
        "payload": {"reference_occupation": "Elektroniker/in für Betriebstechnik",
                    "qualification_title": "National Diploma in Electrical Engineering",
                    "country_of_qualification": "NG", "accelerated": True},
        "correlation_id": "a1d4e7b2-5c83-4f96-9b0a-3e6c2d8f1b21",
    }]),
    ("authority", "inbound-status-0201", "residence.skilled-worker", [{
        "key": "6a2e9c41-d7b5-4f38-8c1e-0b4d6a9f3e32",
        "referral_id": "8d3f1b62-a4c9-4e75-b0d2-7e1a5c9f4b43", "status": "in-progress",
        "business_status": "BA_CONSENT_DEEMED", "occurred_at": "2027-04-01T00:00:00+02:00",
        "note": "Keine Rückfrage der BA innerhalb von zwei Wochen.",
    }]),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "name", "rtype", "expected"), INBOUND)
def test_inbound_example_maps_to_the_documented_operations(
    kind: str, name: str, rtype: str, expected: list[dict[str, Any]]
) -> None:
    ops = inbound(kind, example(kind, name))
    assert [dump(op) for op in ops] == expected
    for op in ops:
        _assert_valid_canonical(op, CATALOGUE.types[rtype])


def _assert_valid_canonical(op: Operation, rtype: Any) -> None:
    if isinstance(op, CreateReferral):
        ReferralCreate.model_validate(op.body.model_dump())
        assert validate_payload(rtype, op.body.payload) == []
    else:
        StatusChange.model_validate(op.body.model_dump())
        assert op.body.business_status in [None, *rtype.business_statuses]


def test_every_shipped_example_is_tested() -> None:
    shipped = {(p.parent.parent.name, p.stem) for p in ROOT.glob("*/examples/*.json")}
    tested = {(kind, name) for kind, name, *_ in INBOUND}
    tested |= {(kind, f"outbound-{event}") for kind in KINDS for event in OUTBOUND_EVENTS}
    assert shipped == tested


# --- code tables ------------------------------------------------------------------------

TABLES: list[tuple[str, dict[str, StatusCode], list[str]]] = [
    ("university", UNIVERSITY_CODES, ["university.enrolment-confirmation"]),
    ("chamber", CHAMBER_CODES, ["recognition.assessment"]),
    ("jobcenter", JOBCENTER_CODES, ["jobcenter.integration"]),
    ("authority", AUTHORITY_CODES, [t for t, v in CATALOGUE.types.items()
                                    if "authority" in v.performer]),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "table", "types"), TABLES)
def test_code_tables_use_catalogue_statuses_and_lifecycle_reasons(
    kind: str, table: dict[str, StatusCode], types: list[str]
) -> None:
    known = {b for t in types for b in CATALOGUE.types[t].business_statuses}
    for code, entry in table.items():
        assert entry.business_status in known | {None}, code
        assert entry.reason is None or entry.reason in REASONS[entry.status], code
        assert (entry.outcome is not None) == (entry.status == Status.COMPLETED), code


def test_chamber_negative_decision_completes_and_withdrawal_fails() -> None:
    assert CHAMBER_CODES["BESCHEID_KEINE_GLEICHWERTIGKEIT"].status == Status.COMPLETED
    assert CHAMBER_CODES["ANTRAG_ZURUECKGENOMMEN"].status == Status.FAILED
    assert CHAMBER_CODES["ANTRAG_ABGELEHNT"].reason == "not-eligible"


# --- outbound ---------------------------------------------------------------------------

OUTBOUND_EVENTS = {
    "referral-requested": REQUESTED,
    "referral-status-changed": STATUS_CHANGED,
    "person-erased": ERASED,
}
_COMMON: dict[str, Any] = {
    "person_id": "p_Xk3v9QmT2bLr7WzA",
    "occurred_at": "2027-03-01T09:30:00+01:00",
    "recorded_at": "2027-03-01T09:30:01+01:00",
    "correlation_id": "a1d4e7b2-5c83-4f96-9b0a-3e6c2d8f1b21",
}
_PERSON = PersonDetails(given_name="Amina", family_name="Okafor", birth_date="1994-11-21")


def _requested(rtype: str, requester: str, performer: str, payload: dict[str, Any]) -> Any:
    spec = CATALOGUE.types[rtype]
    return ReferralRequested.model_validate({
        **_COMMON, "event_id": "11111111-2222-4333-8444-555555555555",
        "referral_id": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", "acting_partner": requester,
        "purpose": spec.purpose, "legal_basis": spec.legal_basis, "referral_type": rtype,
        "requester": requester, "performer": performer, "person": _PERSON, "payload": payload,
    })  # fmt: skip


def _changed(rtype: str, requester: str, performer: str, **status: Any) -> Any:
    return ReferralStatusChanged.model_validate({
        **_COMMON, "event_id": "66666666-7777-4888-8999-000000000000",
        "referral_id": "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff", "acting_partner": performer,
        "referral_type": rtype, "requester": requester, "performer": performer, **status,
    })  # fmt: skip


def _erased(partner: str) -> Any:
    return PersonErased.model_validate({
        **_COMMON, "event_id": "99999999-aaaa-4bbb-8ccc-dddddddddddd", "acting_partner": "hub",
        "reason": "request-art-17",
        "notify": {partner: ["aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
                             "bbbbbbbb-cccc-4ddd-8eee-ffffffffffff"]},
    })  # fmt: skip


EVENTS: dict[tuple[str, str], Any] = {
    ("university", REQUESTED): _requested(
        "university.enrolment-confirmation", "amt", "ude",
        {"semester": "2027W", "programme": "M.Sc. Computer Engineering"}),
    ("university", STATUS_CHANGED): _changed(
        "residence.student", "ude", "amt", from_status="in-progress", status="completed",
        business_status="PERMIT_GRANTED", outcome="granted"),
    ("chamber", REQUESTED): _requested(
        "recognition.assessment", "amt", "ihk-fosa",
        {"reference_occupation": "Elektroniker/in für Betriebstechnik",
         "qualification_title": "National Diploma in Electrical Engineering",
         "country_of_qualification": "NG", "accelerated": True}),
    ("chamber", STATUS_CHANGED): _changed(
        "recognition.adaptation", "ihk-fosa", "amt", from_status="accepted",
        status="in-progress", business_status="ADAPTATION_QUALIFICATION_STARTED"),
    ("jobcenter", REQUESTED): _requested(
        "jobcenter.integration", "amt", "jobcenter",
        {"reason": "Arbeitsuchend nach Studienabschluss", "integration_course_needed": False}),
    ("jobcenter", STATUS_CHANGED): _changed(
        "counselling.talent-center", "jobcenter", "amt", from_status="accepted",
        status="completed", business_status="COUNSELLING_SESSION_HELD", outcome="counselled"),
    ("authority", REQUESTED): _requested(
        "residence.student", "ude", "amt",
        {"programme": "M.Sc. Computer Engineering", "semester": "2027S",
         "admission_date": "2027-02-15"}),
    ("authority", STATUS_CHANGED): _changed(
        "recognition.assessment", "amt", "ihk-fosa", from_status="in-progress",
        status="completed", business_status="DECISION_PARTIAL_EQUIVALENCE",
        outcome="partial-equivalence"),
    ("university", ERASED): _erased("ude"),
    ("chamber", ERASED): _erased("ihk-fosa"),
    ("jobcenter", ERASED): _erased("jobcenter"),
    ("authority", ERASED): _erased("amt"),
}  # fmt: skip


@pytest.mark.parametrize(("kind", "event_type"), sorted(EVENTS))
def test_outbound_matches_the_documented_example(kind: str, event_type: str) -> None:
    event = EVENTS[(kind, event_type)]
    name = next(n for n, t in OUTBOUND_EVENTS.items() if t == event_type)
    native = KINDS[kind].outbound.to_native(event_type, event.model_dump(mode="json"))
    assert native == example(kind, f"outbound-{name}")
    text = json.dumps(native)
    if event_type == ERASED:  # the pseudonym and the partner's own referrals, nothing else
        referrals = [str(i) for ids in event.notify.values() for i in ids]
        assert event.person_id in text and all(r in text for r in referrals)
        return
    assert str(event.event_id) in text and str(event.referral_id) in text


def test_outbound_carries_no_partner_reference_of_the_inbound_side() -> None:
    # The chamber's follow-up names its file number; what the Amt receives must not.
    op = inbound("chamber", example("chamber", "inbound-anpassungsqualifizierung"))[0]
    assert isinstance(op, CreateReferral)
    event = EVENTS[("authority", REQUESTED)].model_copy(
        update={"referral_type": op.body.type, "payload": op.body.payload}
    )
    native = KINDS["authority"].outbound.to_native(REQUESTED, event.model_dump(mode="json"))
    assert "FOSA-2027-004711" not in json.dumps(native)


# --- bad input --------------------------------------------------------------------------


def _with(kind: str, name: str, path: str, value: Any) -> dict[str, Any]:
    """The example with one field set (or removed when value is ...)."""
    native = copy.deepcopy(example(kind, name))
    *parents, leaf = path.split(".")
    target = native
    for part in parents:
        target = target[part]
    if value is ...:
        del target[leaf]
    else:
        target[leaf] = value
    return native


ZUL, EIN = "inbound-zulassung", "inbound-einschreibungsstatus"
VST, ANP = "inbound-verfahrensstand", "inbound-anpassungsqualifizierung"
ZUW, VMS = "inbound-zuweisung", "inbound-vermittlungsstand"
ANF, STA = "inbound-anfrage-0101", "inbound-status-0201"

BAD: list[tuple[str, str, str, Any, str]] = [
    ("university", ZUL, "matrikelnummer", ..., "matrikelnummer"),
    ("university", ZUL, "matrikelnummer", "0123456", "matrikelnummer"),
    ("university", ZUL, "zulassungsdatum", "15.02.2027", "zulassungsdatum"),
    ("university", ZUL, "geburtsdatum", 986256000, "geburtsdatum"),
    ("university", ZUL, "semester", "SS 2027", "semester"),
    ("university", ZUL, "semester", "WiSe 2027/29", "semester"),
    ("university", ZUL, "studiengang.titel", "", "studiengang.titel"),
    ("university", ZUL, "staatsangehoerigkeit", "CN", "staatsangehoerigkeit"),
    ("university", ZUL, "meldungsart", "ZEUGNIS", "meldungsart"),
    ("university", EIN, "status", "BEURLAUBT", "status"),
    ("university", EIN, "vermittlung_id", "42", "vermittlung_id"),
    ("university", EIN, "zeitpunkt", "2027-10-04T11:20:00", "zeitpunkt"),
    ("chamber", VST, "status", "BESCHEID_VIELLEICHT", "status"),
    ("chamber", VST, "aktenzeichen", "fosa 4711", "aktenzeichen"),
    ("chamber", VST, "bemerkung", "Siehe Akte FOSA-2027-004711", "bemerkung"),
    ("chamber", ANP, "bescheiddatum", "30.06.2027", "bescheiddatum"),
    ("chamber", ANP, "antragsteller.nachname", ..., "antragsteller.nachname"),
    ("chamber", ANP, "person_pseudonym", "Amina", "person_pseudonym"),
    ("jobcenter", ZUW, "leistungen", {"regelbedarf": 563}, "leistungen"),
    ("jobcenter", ZUW, "kunde.Regelbedarf", 563, "kunde.Regelbedarf"),
    ("jobcenter", ZUW, "kundennummer", "123456789", "kundennummer"),
    ("jobcenter", ZUW, "sprache", "Ukrainisch", "sprache"),
    ("jobcenter", VMS, "status", "LEISTUNG_BEWILLIGT", "status"),
    ("jobcenter", VMS, "bemerkung", "frei", "bemerkung"),
    ("authority", ANF, "nachrichtenkopf.nachrichtenUUID", "42", "nachrichtenkopf.nachrichtenUUID"),
    ("authority", ANF, "nachrichtenkopf.nachrichtentyp", "talenthub.referral.zuweisung.0301",
     "nachrichtenkopf.nachrichtentyp"),
    ("authority", ANF, "nachrichtenkopf.erstellungszeitpunkt", "2027-03-01T09:30:00",
     "nachrichtenkopf.erstellungszeitpunkt"),
    ("authority", ANF, "nachrichtenkopf.empfaenger", "zfe-nrw", "nachrichtenkopf.empfaenger"),
    ("authority", ANF, "nachrichtenkopf.absender", "abh-essen", "nachrichtenkopf.absender"),
    ("authority", ANF, "inhalt.vermittlungsart", "residence.student", "inhalt.vermittlungsart"),
    ("authority", ANF, "inhalt.vermittlungsart", "visa.express", "inhalt.vermittlungsart"),
    ("authority", ANF, "inhalt.fachdaten.religion", "x", "inhalt.fachdaten.religion"),
    ("authority", ANF, "inhalt.fachdaten.accelerated", "ja", "inhalt.fachdaten.accelerated"),
    ("authority", ANF, "inhalt.person", {}, "inhalt.person"),
    ("authority", ANF, "inhalt.person.azrNummer", "123456789012", "inhalt.person.azrNummer"),
    ("authority", STA, "inhalt.status.code", "ERTEILT", "inhalt.status.code"),
    ("authority", STA, "inhalt.vermittlungID", ..., "inhalt.vermittlungID"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "name", "path", "value", "field"), BAD)
def test_bad_input_names_the_native_field(
    kind: str, name: str, path: str, value: Any, field: str
) -> None:
    with pytest.raises(MappingError) as caught:
        inbound(kind, _with(kind, name, path, value))
    assert caught.value.field == field
    if isinstance(value, str) and len(value) > 4:
        assert value not in caught.value.message  # no personal data echoed into logs


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_message_that_is_not_an_object_is_refused(kind: str) -> None:
    with pytest.raises(MappingError):
        inbound(kind, [])  # type: ignore[arg-type]


def test_household_number_is_accepted_but_never_mapped() -> None:
    ops = inbound("jobcenter", example("jobcenter", ZUW))
    assert "12345BG0067890" not in json.dumps([dump(op) for op in ops])


def test_unanswered_enrolment_request_is_a_single_status() -> None:
    ops = inbound("university", _with("university", EIN, "status", "ANFRAGE_ERHALTEN"))
    assert [dump(op)["status"] for op in ops] == ["received"]


@pytest.mark.parametrize(
    ("kind", "event_type", "change", "field"),
    [
        ("chamber", "de.duisburg.talenthub.person.linked.v1", {}, "event_type"),
        ("chamber", REQUESTED, {"referral_type": "jobcenter.integration"}, "data.referral_type"),
        ("university", REQUESTED, {"payload": {"semester": "WS27"}}, "data.payload.semester"),
        ("jobcenter", REQUESTED, {"referral_id": None}, "data.referral_id"),
        ("authority", STATUS_CHANGED, {"event_id": "x"}, "data.event_id"),
    ],
)
def test_outbound_problems_name_the_field(
    kind: str, event_type: str, change: dict[str, Any], field: str
) -> None:
    source = EVENTS[(kind, event_type if event_type in OUTBOUND_EVENTS.values() else REQUESTED)]
    data = source.model_dump(mode="json") | change
    with pytest.raises(MappingError) as caught:
        KINDS[kind].outbound.to_native(event_type, data)
    assert caught.value.field == field


# --- config and registry ----------------------------------------------------------------


def test_secret_references_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_TEST_SECRET", "from-env")
    (tmp_path / "secret").write_text("from-file\n")
    assert resolve_secret("env:HUB_TEST_SECRET") == "from-env"
    assert resolve_secret(f"file:{tmp_path / 'secret'}") == "from-file"
    assert resolve_secret("value:inline") == "inline"
    assert resolve_secret(None) is None


@pytest.mark.parametrize(
    ("ref", "allow_values", "shown"),
    [
        ("env:HUB_TEST_UNSET_SECRET", True, "env:HUB_TEST_UNSET_SECRET"),
        ("file:/nonexistent/secret", True, "file:/nonexistent/secret"),
        ("value:s3cr3t-value", False, "value:"),
        ("s3cr3t-without-scheme", True, "s3cr3t-w"),
    ],
)
def test_unresolvable_secret_names_the_reference_not_the_secret(
    ref: str, allow_values: bool, shown: str
) -> None:
    with pytest.raises(ValueError) as caught:
        resolve_secret(ref, allow_values=allow_values)
    assert shown in str(caught.value)
    assert "s3cr3t-value" not in str(caught.value)
    assert "s3cr3t-without-scheme" not in str(caught.value)


def test_config_is_strict_and_push_needs_an_endpoint() -> None:
    with pytest.raises(ValueError, match="endpoint_url"):
        ConnectorConfig(mode="push")
    with pytest.raises(ValueError, match="credential_ref"):
        ConnectorConfig(credential_ref="hunter2")
    with pytest.raises(ValueError):
        ConnectorConfig.model_validate({"endpoint": "https://x"})


def test_registry_builds_a_kind_with_one_partners_settings() -> None:
    assert set(KINDS) == {"university", "chamber", "jobcenter", "authority"}
    hwk = connector_for("chamber", ConnectorConfig.model_validate({"mode": "pull"}))
    assert hwk.kind == "chamber"
    with pytest.raises(KeyError, match="visa"):
        connector_for("visa")


def test_chamber_id_from_settings_reaches_the_chamber() -> None:
    from connectors.chamber import connector
    from connectors.chamber.config import ChamberConfig

    hwk = connector(ChamberConfig(chamber_id="hwk"))
    data = EVENTS[("chamber", REQUESTED)].model_dump(mode="json")
    assert hwk.outbound.to_native(REQUESTED, data)["kammer"] == "hwk"
