"""Shared tools of the adversarial suite: problem checks, database snapshots, a seeded world
of referrals between partners, and a walk over every route of the app."""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fastapi import routing as fastapi_routing
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey
from sqlalchemy import Engine, MetaData, Table, select
from starlette.routing import BaseRoute, Mount

from hub.auth.models import SigningKey
from hub.auth.scopes import SCOPES
from hub.bootstrap import Hub
from hub.db import unit_of_work, utcnow
from hub.inbox.models import InboxMessage
from hub.partners.models import Partner
from hub.timeline.models import TimelineEntry
from tests.hubtest import STUDENT_REFERRAL, Partners

PROBLEM_JSON = "application/problem+json"
ALL_SCOPES = " ".join(SCOPES)
#: Tables a refused request may write to: the audit trail records every denial on purpose.
AUDIT_TABLES = frozenset({"audit_log", "audit_checkpoints", "audit_keys"})

#: Settings that lift the per-partner and per-address rate limits (where the hub has them):
#: a suite that sends hundreds of refused requests in a second tests the refusals, not the
#: limiter. Unknown settings are ignored, so this holds with and without rate limiting.
NO_RATE_LIMITS: dict[str, Any] = {
    "rate_limit_api_per_minute": 10**6,
    "rate_limit_api_per_day": 10**8,
    "rate_limit_token_per_minute": 10**6,
    "rate_limit_auth_failures_per_minute": 10**6,
    "enumeration_max_not_found": 10**6,
}


# ---------------------------------------------------------------------- answers


def problem_failure(response: Any, *statuses: int) -> str | None:
    """Why ``response`` is not an RFC 9457 problem document with one of ``statuses``."""
    where = f"{response.request.method} {response.request.url.path}"
    if response.status_code not in statuses:
        return f"{where}: {response.status_code} (wanted {statuses}): {response.text[:300]}"
    if not response.headers.get("content-type", "").startswith(PROBLEM_JSON):
        return f"{where}: content-type {response.headers.get('content-type')!r}"
    try:
        doc = response.json()
    except ValueError:
        return f"{where}: body is not JSON: {response.text[:200]}"
    if not isinstance(doc, dict) or doc.get("status") != response.status_code:
        return f"{where}: problem status does not match: {doc}"
    if not str(doc.get("type", "")).startswith("https://") or not doc.get("title"):
        return f"{where}: problem without type or title: {doc}"
    return None


def assert_problem(response: Any, *statuses: int) -> dict[str, Any]:
    """The problem document of ``response``, which must have one of ``statuses``."""
    failure = problem_failure(response, *statuses)
    assert failure is None, failure
    return dict(response.json())


# ---------------------------------------------------------------------- database state


def snapshot(hub: Hub, *, skip: frozenset[str] = AUDIT_TABLES) -> dict[str, list[str]]:
    """Every row of every table (reflected, so new tables count too), audit trail aside."""
    rows: dict[str, list[str]] = {}
    with hub.engine.connect() as conn:
        for table in _tables(hub.engine):
            if table.name in skip:
                continue
            rows[table.name] = sorted(repr(tuple(r)) for r in conn.execute(select(table)))
    return rows


@functools.lru_cache(maxsize=8)
def _tables(engine: Engine) -> list[Table]:
    """The tables of a migrated database, reflected once per engine."""
    meta = MetaData()
    meta.reflect(engine)
    return list(meta.sorted_tables)


def changes(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, Any]:
    """The tables whose rows differ, with the rows that appeared and disappeared."""
    diff: dict[str, Any] = {}
    for name in sorted(set(before) | set(after)):
        old, new = set(before.get(name, [])), set(after.get(name, []))
        if old != new:
            diff[name] = {"added": sorted(new - old)[:5], "removed": sorted(old - new)[:5]}
    return diff


def hub_signing_key(hub: Hub) -> ECKey:
    """The hub's own private access-token key, read from the database (it must exist)."""
    with hub.session_factory() as session:
        row = session.scalars(select(SigningKey).order_by(SigningKey.created_at)).first()
        assert row is not None, "get a token first: the first key is created on first use"
        return ECKey.import_key(row.private_jwk)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------------- a seeded world


@dataclass(frozen=True)
class SeededReferral:
    id: str
    requester: str
    performer: str
    person: str


@dataclass
class World:
    """Referrals between some partners, with consents, inbox messages and timeline entries."""

    partners: list[str]
    kinds: dict[str, str]
    referrals: list[SeededReferral]
    #: consent id -> (person, partners that may see it: recorder and those covered)
    consents: dict[str, tuple[str, frozenset[str]]]
    #: inbox event id -> the partner whose inbox holds it
    inbox: dict[str, str]
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def referral_parties(self, referral_id: str) -> frozenset[str]:
        r = next(r for r in self.referrals if r.id == referral_id)
        return frozenset({r.requester, r.performer})

    @property
    def people(self) -> dict[str, frozenset[str]]:
        """Person id -> the partners taking part in a referral about the person."""
        found: dict[str, set[str]] = {}
        for r in self.referrals:
            found.setdefault(r.person, set()).update({r.requester, r.performer})
        return {p: frozenset(s) for p, s in found.items()}

    def consent_viewers(self, person_id: str) -> frozenset[str]:
        return frozenset().union(*(v for p, v in self.consents.values() if p == person_id))


#: (requester, performer, body) of the seeded referrals.
SEED_REFERRALS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("ude", "amt", STUDENT_REFERRAL),
    (
        "amt",
        "ihk-fosa",
        {
            "type": "recognition.assessment",
            "performer": "ihk-fosa",
            "person": {"family_name": "Okafor", "partner_reference": "ABH-1"},
            "payload": {"reference_occupation": "Elektroniker/in"},
        },
    ),
    (
        "jobcenter",
        "hwk",
        {
            "type": "recognition.assessment",
            "performer": "hwk",
            "person": {"family_name": "Kovalenko", "partner_reference": "123D456789"},
            "payload": {"qualification_title": "Pflegefachkraft"},
        },
    ),
)


def seed_world(client: TestClient, partners: Partners, hub: Hub) -> World:
    """Referrals ude->amt, amt->ihk-fosa and jobcenter->hwk, consents, inbox and timeline."""
    headers = {p: partners.headers(client, p, ALL_SCOPES) for p in partners.creds}
    referrals = []
    for requester, performer, body in SEED_REFERRALS:
        r = client.post("/v1/referrals", json=body, headers=headers[requester])
        assert r.status_code == 202, r.text
        referrals.append(
            SeededReferral(r.json()["id"], requester, performer, r.json()["person_id"])
        )
    consents: dict[str, tuple[str, frozenset[str]]] = {}
    for recorder, ref, covered, purpose in (
        ("ude", referrals[0], ["ude", "amt"], "education"),
        ("jobcenter", referrals[2], ["jobcenter", "hwk"], "recognition"),
    ):
        body = {
            "person": {"id": ref.person},
            "purpose": purpose,
            "partners": covered,
            "granted_on": date.today().isoformat(),
            "evidence_reference": "Einwilligung Blatt 1",
            "notice_language": "de",
        }
        r = client.post("/v1/consents", json=body, headers=headers[recorder])
        assert r.status_code == 201, r.text
        consents[r.json()["id"]] = (ref.person, frozenset({recorder, *covered}))
    inbox: dict[str, str] = {}
    now = utcnow()
    with unit_of_work(hub.session_factory) as session:
        kinds = {p.id: p.kind for p in session.scalars(select(Partner))}
        for ref in referrals:
            for owner, event in ((ref.performer, "requested"), (ref.requester, "status-changed")):
                event_id = str(uuid.uuid4())
                session.add(
                    InboxMessage(
                        partner_id=owner,
                        event_id=event_id,
                        event_type=f"de.duisburg.talenthub.referral.{event}.v1",
                        referral_id=ref.id,
                        data={"referral_id": ref.id},
                    )
                )
                inbox[event_id] = owner
            session.add(
                TimelineEntry(
                    event_id=str(uuid.uuid4()),
                    person_id=ref.person,
                    referral_id=ref.id,
                    referral_type="recognition.assessment",
                    source_partner=ref.requester,
                    event_type="de.duisburg.talenthub.referral.requested.v1",
                    status="requested",
                    purpose="recognition",
                    legal_basis="§ 6 BQFG",
                    occurred_at=now,
                    recorded_at=now,
                )
            )
    return World(
        partners=sorted(partners.creds),
        kinds=kinds,
        referrals=referrals,
        consents=consents,
        inbox=inbox,
        headers=headers,
    )


def partner_requests(world: World) -> dict[tuple[str, str], tuple[str, Any]]:
    """A concrete request per partner route, with ids and bodies of ude's own objects."""
    ref = world.referrals[0]  # ude -> amt
    consent = next(c for c, (p, _) in world.consents.items() if p == ref.person)
    event = next(e for e, owner in world.inbox.items() if owner == "ude")
    native = {
        "meldungsart": "EINSCHREIBUNGSSTATUS",
        "nachricht_id": "5e8a1c37-2d94-4b6f-8a03-7c1e9f2b4d22",
        "vermittlung_id": ref.id,
        "status": "IMMATRIKULIERT",
        "semester": "WiSe 2027/28",
        "zeitpunkt": "2027-10-04T11:20:00+02:00",
    }
    return {
        ("POST", "/v1/referrals"): ("/v1/referrals", STUDENT_REFERRAL),
        ("GET", "/v1/referrals"): ("/v1/referrals", None),
        ("GET", "/v1/referrals/{referral_id}"): (f"/v1/referrals/{ref.id}", None),
        ("POST", "/v1/referrals/{referral_id}/status"): (
            f"/v1/referrals/{ref.id}/status",
            {"status": "cancelled", "reason": "withdrawn-by-client"},
        ),
        ("POST", "/v1/connectors/{kind}/messages"): ("/v1/connectors/university/messages", native),
        ("POST", "/v1/consents"): (
            "/v1/consents",
            {
                "person": {"id": ref.person},
                "purpose": "residence",
                "partners": ["ude", "amt"],
                "granted_on": date.today().isoformat(),
                "evidence_reference": "Blatt 2",
                "notice_language": "de",
            },
        ),
        ("GET", "/v1/people/{person_id}/consents"): (f"/v1/people/{ref.person}/consents", None),
        ("POST", "/v1/consents/{consent_id}/withdraw"): (f"/v1/consents/{consent}/withdraw", None),
        ("GET", "/v1/inbox"): ("/v1/inbox", None),
        ("POST", "/v1/inbox/{event_id}/ack"): (f"/v1/inbox/{event}/ack", None),
        ("GET", "/v1/people/{person_id}/timeline"): (f"/v1/people/{ref.person}/timeline", None),
    }


# ---------------------------------------------------------------------- routes of the app


@dataclass(frozen=True)
class RouteInfo:
    """One route of the app as a request would reach it."""

    methods: frozenset[str]
    path: str
    kind: str  # "api" (FastAPI route with dependencies), "route" (plain), "mount"
    dependant: Any = None
    name: str | None = None


def app_routes(app: Any) -> list[RouteInfo]:
    """Every route of the app, included routers and mounted sub-apps resolved."""
    return list(_walk(list(app.routes), ""))


def _contexts(routes: list[BaseRoute]) -> Iterator[Any]:
    # FastAPI >= 0.16x includes routers lazily; its route contexts give the effective routes.
    iterate = getattr(fastapi_routing, "iter_route_contexts", None)
    yield from iterate(routes) if iterate else routes


def _walk(routes: list[BaseRoute], prefix: str) -> Iterator[RouteInfo]:
    for ctx in _contexts(routes):
        original = getattr(ctx, "original_route", ctx)
        path = prefix + (getattr(ctx, "path", None) or "")
        if isinstance(original, Mount):
            sub_routes = list(getattr(original, "routes", None) or [])
            if sub_routes:
                yield from _walk(sub_routes, path)
            else:
                yield RouteInfo(frozenset(), path, "mount", None, original.name)
            continue
        dependant = getattr(ctx, "dependant", None)
        yield RouteInfo(
            frozenset(getattr(ctx, "methods", None) or ()),
            path,
            "api" if dependant is not None else "route",
            dependant,
            getattr(ctx, "name", None),
        )


def dependency_calls(dependant: Any) -> Iterator[Any]:
    """Every callable in a route's dependency tree, depth first."""
    for sub in getattr(dependant, "dependencies", None) or []:
        yield sub.call
        yield from dependency_calls(sub)


def path_params(path: str) -> list[str]:
    """The names of the ``{parameters}`` of a path template."""
    return re.findall(r"{([^}:]+)(?::[^}]*)?}", path)
