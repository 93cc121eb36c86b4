"""``hub people``, ``hub retention``, ``hub housekeeping``: a person's data (erasure, the
Art. 15 export) and what the hub deletes on schedule."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hub.bootstrap import bootstrap
from hub.cli.common import (
    settings_from_env,
)
from hub.cli.root import main
from hub.db import unit_of_work
from hub.errors import HubError


@main.group()
def people() -> None:
    """A person's data: erasure and the access report.

    A person's data: the Art. 15 export.
    """


@people.command("erase")
@click.argument("person_id")
@click.option(
    "--reason",
    required=True,
    type=click.Choice(
        ["request-art-17", "retention-expired", "unlawful-processing", "court-order"]
    ),
)
def people_erase(person_id: str, reason: str) -> None:
    """Erase a person (crypto-shredding).

    Erase a person: delete the data key (crypto-shredding) and tombstone the projections.
    """
    from hub.privacy.service import erase_person

    hub = bootstrap(settings_from_env())
    try:
        with unit_of_work(hub.session_factory) as session:
            erase_person(
                session,
                person_id=person_id,
                reason=reason,
                by="cli:erase",
                topic=hub.settings.topic_events,
            )
    except HubError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(f"erased {person_id}")


@main.command()
@click.option(
    "--dry-run", is_flag=True, help="List what would be closed or shredded; change nothing."
)
def retention(dry_run: bool) -> None:
    """Close idle referrals and shred expired data.

    Close idle open referrals; shred what outlived its route's retention (routes.v1.yaml).
    """
    from hub.db import utcnow
    from hub.privacy import retention as job

    hub = bootstrap(settings_from_env())
    now, day, topic = utcnow(), job.day_length(hub.settings), hub.settings.topic_events
    with unit_of_work(hub.session_factory) as session:
        if dry_run:
            report = job.plan(session, policy=hub.policy, now=now, day=day)
        else:
            report = job.run(session, policy=hub.policy, now=now, topic=topic, day=day)
    for idle in report.closed:
        action = "would close (idle)" if dry_run else "closed (idle)"
        click.echo(json.dumps({**idle.as_json(), "action": action}))
    items = report.shredded
    for item in items:
        click.echo(
            json.dumps(
                {
                    "referral_id": item.referral_id,
                    "person_id": item.person_id,
                    "route": item.route,
                    "ended": item.ended.isoformat(),
                    "erase_person": item.erase_person,
                    "action": "would shred" if dry_run else "shredded",
                }
            )
        )
    closed = f"{len(report.closed)} idle referral(s) {'to close' if dry_run else 'closed'}"
    click.echo(f"{closed}, {len(items)} referral(s) {'due' if dry_run else 'shredded'}", err=True)


@main.command()
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; change nothing.")
def housekeeping(dry_run: bool) -> None:
    """Delete what the hub no longer needs.

    Delete published outbox rows, old dedup marks and expired sessions (hub/housekeeping).
    """
    from hub.db import utcnow
    from hub.housekeeping import service as job

    hub = bootstrap(settings_from_env())
    keep = hub.settings.housekeeping_keep_days
    with unit_of_work(hub.session_factory) as session:
        step = job.due if dry_run else job.sweep
        sweeps = step(session, now=utcnow(), keep_days=keep)
    for s in sweeps:
        click.echo(
            json.dumps(
                {
                    "table": s.table,
                    "before": s.before.isoformat(),
                    "rows": s.rows,
                    "action": "would delete" if dry_run else "deleted",
                }
            )
        )
    total = sum(s.rows for s in sweeps)
    click.echo(f"{total} row(s) {'due' if dry_run else 'deleted'}", err=True)


@people.command("export")
@click.argument("person_id")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for the two files; created readable by its owner only if missing.",
)
@click.option(
    "--language",
    help="Language of the HTML page: de, en, ar, tr, uk or ru; default: that of the person's "
    "newest consent notice, else German.",
)
@click.option("--force", is_flag=True, help="Replace report files already there.")
def people_export(person_id: str, out_dir: Path, language: str | None, force: bool) -> None:
    """Write a person's access report (GDPR Article 15).

    Write the Art. 15 report as JSON and as an HTML page for the person (files 0600).
    """
    from hub.privacy.export import export_person
    from hub.privacy.report import render_html, write_private
    from schemas.labels import LANGUAGES

    if language is not None and language not in LANGUAGES:
        raise click.BadParameter(f"one of {', '.join(LANGUAGES)}", param_hint="--language")
    paths = [out_dir / f"art15-{person_id}.{ext}" for ext in ("json", "html")]
    taken = [str(p) for p in paths if p.exists()]
    if taken and not force:
        raise click.ClickException(f"{', '.join(taken)} already there; --force replaces it")
    hub = bootstrap(settings_from_env())
    try:
        with unit_of_work(hub.session_factory) as session:
            report = export_person(
                session,
                person_id=person_id,
                by="cli:export",
                policy=hub.policy,
                settings=hub.settings,
                language=language,
            )
    except HubError as exc:
        raise click.ClickException(exc.detail) from exc
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(paths[0], json.dumps(report, indent=2, ensure_ascii=False), force=force)
    write_private(paths[1], render_html(report), force=force)
    for path in paths:
        click.echo(str(path))
    click.echo(f"Art. 15 report in {report['language']} written (0600)", err=True)
