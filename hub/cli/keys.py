"""``hub keys``: access-token signing keys (rotate, list) and master-key re-wrapping."""

from __future__ import annotations

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
def keys() -> None:
    """Token signing keys and master-key re-wrapping.

    Master keys of the personal data (rewrap) and token signing keys (rotate, list).
    """


@keys.command("rotate")
@click.option(
    "--immediate",
    is_flag=True,
    help="Key compromised: sign with the new key now and retire the others now.",
)
def keys_rotate(immediate: bool) -> None:
    """Add a token signing key; retire the current ones.

    Add an access-token signing key; schedule the retirement of the current ones.
    """
    from hub.auth.keys import rotate

    settings = settings_from_env()
    hub = bootstrap(settings)
    try:
        with unit_of_work(hub.session_factory) as session:
            done = rotate(session, settings, immediate=immediate)
    except HubError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(f"new key {done.kid}: published now, signs from {done.not_before.isoformat()}")
    for kid, when in done.retiring.items():
        click.echo(f"key {kid}: leaves the JWKS at {when.isoformat()}")


@keys.command("list")
def keys_list() -> None:
    """List the access-token signing keys.

    The access-token signing keys: kid, created, not_before, retired, state.
    """
    from hub.auth.keys import list_keys

    hub = bootstrap(settings_from_env())
    with hub.session_factory() as session:
        signing = list_keys(session)
        say_if_none(len(signing), "no signing keys yet: the gateway makes one at its first start")
        for k in signing:
            retired = k.retired_at.isoformat() if k.retired_at else "-"
            click.echo(
                f"{k.kid}  created {k.created_at.isoformat()}  "
                f"not_before {k.not_before.isoformat()}  retired {retired}  {k.state}"
            )


@keys.command("rewrap")
@click.option("--to", "to_kid", required=True, help="A configured master key id (HUB_MASTER_KEYS).")
def keys_rewrap(to_kid: str) -> None:
    """Re-wrap every key under another master key.

    Re-wrap every data key, the audit signing keys and the search index key under master
    key KID; print the count of data keys.
    """
    from hub.audit.keys import rewrap
    from hub.crypto import blind
    from hub.crypto.keystore import DbKeyStore, master_keys_from

    settings = settings_from_env()
    hub = bootstrap(settings)
    try:
        master_keys, current = master_keys_from(settings)
        with unit_of_work(hub.session_factory) as session:
            count = DbKeyStore(session, master_keys, current).rewrap_all(to_kid)
            audit_keys = rewrap(session, to_kid)
            search_keys = blind.rewrap(session, to_kid)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(count)
    # Keys minted meanwhile by a process still on the old current key would be missed.
    click.echo(
        f"data keys, {audit_keys} audit signing keys and {search_keys} search index key"
        f" re-wrapped under {to_kid}; once every "
        f"process runs with "
        f"HUB_MASTER_KEY_ID={to_kid}, re-run this, then remove the old master keys",
        err=True,
    )
