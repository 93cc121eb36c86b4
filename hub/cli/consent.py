"""``hub consent`` and ``hub holds``: a person's consents, and deliveries held back for them."""

from __future__ import annotations

import json

import click

from hub.bootstrap import bootstrap
from hub.cli.common import (
    say_if_none,
    settings_from_env,
)
from hub.cli.root import main
from hub.db import unit_of_work
from hub.errors import HubError


@main.group()
def consent() -> None:
    """Record, show and withdraw a person's consent."""


@consent.command("record")
@click.argument("person_id")
@click.option("--purpose", required=True)
@click.option("--partners", required=True, help="Comma-separated partner ids covered.")
@click.option("--granted-on", required=True, help="YYYY-MM-DD")
@click.option("--evidence", required=True, help="Where the signed consent is kept.")
@click.option("--language", required=True, help="Language of the notice given (BCP 47).")
def consent_record(
    person_id: str, purpose: str, partners: str, granted_on: str, evidence: str, language: str
) -> None:
    """Record a consent given at the Talent Center desk."""
    from datetime import date

    from hub.consent import service as consents

    hub = bootstrap(settings_from_env())
    try:
        with unit_of_work(hub.session_factory) as session:
            c = consents.grant(
                session,
                person_id=person_id,
                purpose=purpose,
                partners=[p.strip() for p in partners.split(",") if p.strip()],
                granted_on=date.fromisoformat(granted_on),
                evidence_reference=evidence,
                notice_language=language,
                by="cli:consent",
            )
            click.echo(
                json.dumps(
                    {
                        "id": c.id,
                        "person_id": c.person_id,
                        "purpose": c.purpose,
                        "partners": c.partners,
                    }
                )
            )
    except (HubError, ValueError) as exc:
        raise click.ClickException(getattr(exc, "detail", str(exc))) from exc


@consent.command("show")
@click.argument("person_id")
def consent_show(person_id: str) -> None:
    """A person's consents, withdrawn ones included, as JSON lines."""
    from hub.consent import service as consents

    hub = bootstrap(settings_from_env())
    with hub.session_factory() as session:
        given = consents.for_person(session, person_id=person_id)
        say_if_none(len(given), f"no consents of {person_id} / keine Einwilligungen")
        for c in given:
            click.echo(
                json.dumps(
                    {
                        "id": c.id,
                        "purpose": c.purpose,
                        "partners": c.partners,
                        "granted_on": c.granted_on.isoformat(),
                        "evidence": c.evidence_reference,
                        "language": c.notice_language,
                        "active": c.withdrawn_at is None,
                    }
                )
            )


@consent.command("withdraw")
@click.argument("consent_id")
def consent_withdraw(consent_id: str) -> None:
    """Withdraw a consent; events not yet routed under it are held."""
    from hub.consent import service as consents

    hub = bootstrap(settings_from_env())
    try:
        with unit_of_work(hub.session_factory) as session:
            consents.withdraw(session, consent_id=consent_id, by="cli:consent", partner=False)
    except HubError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(f"withdrawn {consent_id}")


@main.group()
def holds() -> None:
    """Deliveries held back by policy or consent.

    Deliveries the router held back (policy or consent), and releasing them.
    """


@holds.command("list")
@click.option("--person", help="Only this person's.")
def holds_list(person: str | None) -> None:
    """Held deliveries with their reasons, as JSON lines."""
    from hub.routing import service as routing

    hub = bootstrap(settings_from_env())
    with hub.session_factory() as session:
        held = routing.pending_holds(session, person_id=person)
        say_if_none(len(held), "no held deliveries / keine zurückgehaltenen Zustellungen")
        for h in held:
            click.echo(
                json.dumps(
                    {
                        "event_id": h.event_id,
                        "recipient": h.recipient,
                        "referral_id": h.referral_id,
                        "person_id": h.person_id,
                        "reason": h.reason,
                        "held_at": h.held_at.isoformat(),
                    }
                )
            )


@holds.command("release")
@click.option("--person", help="Only this person's holds.")
def holds_release(person: str | None) -> None:
    """Route held deliveries that may go now.

    Route held deliveries whose policy and consent allow it now; report the others.
    """
    from hub.routing import service as routing

    hub = bootstrap(settings_from_env())
    with unit_of_work(hub.session_factory) as session:
        for h in routing.pending_holds(session, person_id=person):
            why = routing.release(session, hold=h, policy=hub.policy, settings=hub.settings)
            click.echo(
                f"{h.event_id} -> {h.recipient}: "
                + ("released" if why is None else f"still held ({why})")
            )
