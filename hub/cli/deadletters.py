"""``hub deadletters``: list and replay what no consumer could apply."""

from __future__ import annotations

import json

import click

from hub.bootstrap import bootstrap
from hub.cli.common import (
    operator,
    say_if_none,
    settings_from_env,
    with_kafka,
)
from hub.cli.root import main
from hub.db import unit_of_work
from hub.errors import HubError


@main.group()
def deadletters() -> None:
    """List and replay dead letters."""


@deadletters.command("list")
@click.option("--partner", help="Only dead letters addressed to this partner.")
def deadletters_list(partner: str | None) -> None:
    """Print the dead letters as JSON lines."""
    from hub.deadletters import service as dlq

    settings = with_kafka(settings_from_env())
    shown = 0
    for letter in dlq.read_all(settings.kafka_bootstrap_servers or "", settings):
        if partner is None or letter.recipient == partner:
            click.echo(json.dumps(letter.summary()))
            shown += 1
    say_if_none(shown, "no dead letters / keine unzustellbaren Nachrichten")


@deadletters.command("replay")
@click.argument("letter_id", required=False)
@click.option("--partner", help="Replay every dead letter addressed to this partner.")
def deadletters_replay(letter_id: str | None, partner: str | None) -> None:
    """Replay one dead letter, or all of a partner's.

    Replay one dead letter by id (partition:offset), or all of a partner's.
    """
    from hub.audit.service import record as audit_record
    from hub.deadletters import service as dlq

    if bool(letter_id) == bool(partner):
        raise click.UsageError("give either a dead-letter ID or --partner")
    settings = with_kafka(settings_from_env())
    hub = bootstrap(settings)
    letters = dlq.read_all(settings.kafka_bootstrap_servers or "", settings)
    try:
        chosen = (
            [x for x in letters if x.recipient == partner]
            if partner
            else [dlq.find(letters, letter_id or "")]
        )
    except HubError as exc:
        raise click.ClickException(exc.detail) from exc
    for letter in chosen:
        try:
            with unit_of_work(hub.session_factory) as session:
                row = dlq.replay(session, letter=letter, catalogue=hub.catalogue)
                audit_record(
                    session,
                    actor_type="system",
                    actor=operator(),
                    action="operator.deadletter_replayed",
                    details={
                        "letter_id": letter.id,
                        "event_id": row.event_id,
                        "topic": row.topic,
                        "recipient": letter.recipient,
                        "replay": row.replay,
                    },
                )
            click.echo(f"replayed {letter.id} ({letter.event_id})")
        except HubError as exc:
            click.echo(f"not replayed {letter.id}: {exc.detail}", err=True)
