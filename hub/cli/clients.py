"""``hub clients``: access codes for Mein Verfahren — issue one, list them, revoke one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

import click

from hub.bootstrap import bootstrap
from hub.cli.common import operator, say_if_none, settings_from_env
from hub.cli.root import main
from hub.db import unit_of_work, utcnow
from hub.errors import HubError


@main.group()
def clients() -> None:
    """Access codes for Mein Verfahren.

    Access codes with which clients follow their own case (Mein Verfahren).
    """


@clients.command("invite")
@click.argument("person_id")
@click.option(
    "--days",
    default=30,
    show_default=True,
    type=click.IntRange(1, 90),
    help="How many days the code stays valid.",
)
@click.option(
    "--language",
    type=click.Choice(["de", "en", "ar", "tr", "uk", "ru"]),
    help="The portal's language for this client (default: their consent notice's language).",
)
@click.option(
    "--letter",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the invite letter with a QR code as HTML to this new file (mode 0600).",
)
def clients_invite(person_id: str, days: int, language: str | None, letter: Path | None) -> None:
    """Issue a one-time access code for a person.

    Issue a one-time access code for PERSON_ID and print it once; only its hash is kept.
    """
    from hub.portal.invites import issue
    from hub.portal.letter import letter_html
    from hub.portal.pages import notice_language
    from hub.portal.words import Words

    settings = settings_from_env()
    if not settings.client_view_enabled:
        raise click.ClickException("Mein Verfahren is switched off (HUB_CLIENT_VIEW_ENABLED)")
    out = _new_file(letter) if letter is not None else None
    hub = bootstrap(settings)
    try:
        with unit_of_work(hub.session_factory) as session:
            issued = issue(
                session,
                person_id=person_id,
                by=operator(),
                by_type="system",
                now=utcnow(),
                valid_days=days,
                language=language,
            )
            letter_language = language or notice_language(session, person_id) or "de"
    except BaseException as exc:
        if out is not None and letter is not None:  # no code, no letter
            out.close()
            letter.unlink(missing_ok=True)
        if isinstance(exc, HubError):
            raise click.ClickException(exc.detail) from exc
        raise
    base = settings.client_view_url or settings.resolved_issuer
    if out is not None:
        with out:
            out.write(letter_html(issued, base_url=base, words=Words(letter_language)))
    click.echo(f"code:    {issued.code}")
    click.echo(f"invite:  {issued.id}")
    click.echo(f"valid:   until {issued.expires_at:%Y-%m-%d %H:%M} UTC, once")
    click.echo(f"address: {base.rstrip('/')}/mein-verfahren/")


@clients.command("invites")
@click.argument("person_id")
def clients_invites(person_id: str) -> None:
    """List a person's access codes.

    List a person's access codes and their state (never the codes themselves).
    """
    from hub.portal.invites import invites_of, usable

    hub = bootstrap(settings_from_env())
    now = utcnow()
    with hub.session_factory() as session:
        rows = invites_of(session, person_id)
    say_if_none(len(rows), f"no access codes for {person_id}")
    for invite in rows:
        states = []
        if invite.used_at:
            states.append(f"used {invite.used_at:%Y-%m-%d %H:%M}")
        if invite.revoked_at:
            why = invite.revoked_reason
            states.append("revoked" if why in (None, "revoked") else f"revoked ({why})")
        if not states:
            states.append("open" if usable(invite, now) else "expired")
        state = ", ".join(states)
        click.echo(
            f"{invite.id}  issued {invite.created_at:%Y-%m-%d %H:%M} by {invite.created_by}"
            f"  until {invite.expires_at:%Y-%m-%d}  {state}"
        )


@clients.command("revoke")
@click.argument("invite_id")
def clients_revoke(invite_id: str) -> None:
    """Revoke an access code.

    Revoke an access code and end the client sessions it opened.
    """
    from hub.portal.invites import revoke

    hub = bootstrap(settings_from_env())
    try:
        with unit_of_work(hub.session_factory) as session:
            ended = revoke(
                session, invite_id=invite_id, by=operator(), by_type="system", now=utcnow()
            )
    except HubError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(f"{invite_id} revoked; {ended} session(s) ended")


def _new_file(path: Path) -> TextIO:
    """A new file only the owner may read, opened before the code exists: a code issued
    but never printed would be a code nobody can hand over."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise click.ClickException(f"{path} exists: the letter goes to a new file") from exc
    except OSError as exc:
        raise click.ClickException(f"cannot write the letter to {path}: {exc.strerror}") from exc
    return os.fdopen(fd, "w", encoding="utf-8")
