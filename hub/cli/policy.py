"""``hub policy``: the route policy in force and the record of processing it makes."""

from __future__ import annotations

from pathlib import Path

import click

from hub import runtime
from hub.bootstrap import bootstrap
from hub.cli.common import (
    settings_from_env,
)
from hub.cli.root import main


@main.group()
def policy() -> None:
    """The route policy and its record of processing.

    The route policy (legal basis, purpose, fields, retention per route).
    """


@policy.command("show")
@click.option(
    "--check-partners",
    is_flag=True,
    help="Also check the partners the policy names against the database's registered ones.",
)
def policy_show(check_partners: bool) -> None:
    """Check the route policy and print it.

    Validate the route policy against the catalogue and print it (no database needed).

    With --check-partners it also refuses partners the policy names that are not registered
    or of another kind; that needs the database.
    """
    from hub.policy import report
    from hub.policy.model import PolicyError, load_policy
    from schemas.catalogue import load_catalogue

    settings = settings_from_env()
    try:
        p = load_policy(load_catalogue(), settings.policy_file)
        if check_partners:
            runtime.check_policy(bootstrap(settings))
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from exc
    for line in report.describe(p):
        click.echo(line)


@policy.command("record")
@click.option(
    "--write",
    "target",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Renew the generated part of this file (docs/privacy.md).",
)
def policy_record(target: Path | None) -> None:
    """Print the draft record of processing (Article 30).

    The draft Art. 30 record of processing, generated from the policy (no database needed).
    """
    from hub.policy import record
    from hub.policy.model import PolicyError, load_policy
    from schemas.catalogue import load_catalogue

    settings = settings_from_env()
    try:
        catalogue = load_catalogue()
        policy = load_policy(catalogue, settings.policy_file)
        generated = record.render(policy, catalogue, record.Contacts.of(settings))
    except PolicyError as exc:
        raise click.ClickException(str(exc)) from exc
    if target is None:
        click.echo(generated)
        return
    target.write_text(record.replace_in(target, generated), encoding="utf-8")
    click.echo(f"updated {target}")
