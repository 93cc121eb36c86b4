"""``hub deadlines``: overdue clocks and the daily digest."""

from __future__ import annotations

import click

from hub.bootstrap import bootstrap
from hub.cli.common import (
    say_if_none,
    settings_from_env,
)
from hub.cli.root import main


@main.group()
def deadlines() -> None:
    """Deadline clocks: overdue counts and the digest."""


@deadlines.command("overdue")
def deadlines_overdue() -> None:
    """Overdue clocks per performing partner and referral type."""
    from hub.db import utcnow
    from hub.deadlines.service import overdue_counts

    hub = bootstrap(settings_from_env())
    with hub.session_factory() as session:
        counts = overdue_counts(session, now=utcnow())
        say_if_none(len(counts), "no overdue deadlines / keine überfälligen Fristen")
        for partner, rtype, count in counts:
            click.echo(f"{partner:<12} {rtype:<36} {count}")


@deadlines.command("digest")
def deadlines_digest() -> None:
    """Send today's deadline digest to each partner.

    Send (or, without SMTP, write) today's digest to each partner with deadlines.
    """
    from hub.db import utcnow
    from hub.deadlines import digest

    hub = bootstrap(settings_from_env())
    now = utcnow()
    with hub.session_factory() as session:
        texts = digest.compose(session, now=now)
    for where in digest.send(texts, settings=hub.settings, now=now):
        click.echo(where)
