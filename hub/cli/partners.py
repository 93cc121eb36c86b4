"""``hub partners``: register partners, require DPoP, connect push or pull delivery."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hub import runtime
from hub.bootstrap import bootstrap
from hub.cli.common import (
    settings_from_env,
)
from hub.cli.root import main
from hub.db import unit_of_work
from hub.errors import HubError


@main.group()
def partners() -> None:
    """Register and list partners."""


@partners.command("add")
@click.argument("partner_id")
@click.option("--name", required=True)
@click.option(
    "--kind", required=True, type=click.Choice(["authority", "university", "chamber", "jobcenter"])
)
@click.option(
    "--scopes",
    default="referrals:write referrals:read status:write inbox:read timeline:read",
    show_default=True,
    help="Space-separated scopes.",
)
@click.option(
    "--auth",
    "auth_method",
    default="client_secret_basic",
    show_default=True,
    type=click.Choice(["client_secret_basic", "private_key_jwt"]),
)
@click.option(
    "--jwks",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The partner's public JWKS (for private_key_jwt).",
)
@click.option("--dpop", is_flag=True, help="Require DPoP-bound tokens (RFC 9449).")
def partners_add(
    partner_id: str,
    name: str,
    kind: str,
    scopes: str,
    auth_method: str,
    jwks: Path | None,
    dpop: bool,
) -> None:
    """Register a partner and print its credentials.

    Register a partner, print its credentials as JSON and the routes that now apply.
    """
    from sqlalchemy import select

    from hub.partners.models import Partner
    from hub.partners.service import register_partner
    from hub.policy import report
    from hub.policy.model import Party

    hub = bootstrap(settings_from_env())
    runtime.migrate.upgrade(hub.engine)
    try:
        with unit_of_work(hub.session_factory) as session:
            creds = register_partner(
                session,
                partner_id=partner_id,
                name=name,
                kind=kind,
                scopes=scopes.split(),
                auth_method=auth_method,
                jwks=json.loads(jwks.read_text()) if jwks else None,
                dpop_required=dpop,
            )
    except HubError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(json.dumps(creds, indent=2))
    with hub.session_factory() as session:
        kinds = {pid: k for pid, k in session.execute(select(Partner.id, Partner.kind))}
    routes = report.applying(hub.policy, Party(partner_id, kind), kinds)
    if not routes:
        click.echo(report.no_route_hint(Party(partner_id, kind)), err=True)
        return
    click.echo(f"routes of the policy that apply to {partner_id}:", err=True)
    for line in report.route_lines(routes):
        click.echo(line, err=True)


@partners.command("dpop")
@click.argument("partner_id")
@click.option("--on/--off", "required", required=True, help="Require DPoP-bound tokens or not.")
def partners_dpop(partner_id: str, required: bool) -> None:
    """Require DPoP-bound tokens for a partner, or not.

    Require (--on) or stop requiring (--off) DPoP-bound tokens for a partner's clients.
    """
    from hub.partners.service import require_dpop

    hub = bootstrap(settings_from_env())
    try:
        with unit_of_work(hub.session_factory) as session:
            require_dpop(session, partner_id=partner_id, required=required)
    except HubError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(f"{partner_id}: DPoP {'required' if required else 'optional'}")
    if required:
        click.echo("bearer tokens issued before keep working until they expire", err=True)


@partners.command("list")
def partners_list() -> None:
    """List registered partners."""
    from sqlalchemy import select

    from hub.partners.models import Partner

    hub = bootstrap(settings_from_env())
    with hub.session_factory() as session:
        for p in session.scalars(select(Partner).order_by(Partner.id)):
            click.echo(f"{p.id:<12} {p.kind:<10} {p.delivery_mode:<5} {p.name}")


@partners.command("connect")
@click.argument("partner_id")
@click.option("--mode", type=click.Choice(["push", "pull"]), default="push", show_default=True)
@click.option("--endpoint", "endpoint_url", help="The partner's webhook URL (push).")
@click.option("--token-endpoint", help="The partner's OAuth token endpoint.")
@click.option("--client-id", help="Our client id at the partner's authorization server.")
@click.option("--credential-ref", help="Our client secret there: env:VAR or file:/path.")
@click.option("--signing-secret-ref", help="HMAC secret for webhook signatures: env: or file:.")
@click.option(
    "--previous-signing-secret-ref",
    help="During a rotation, the secret being replaced: pushes are signed with both until the "
    "partner has switched; connect again without it to stop.",
)
def partners_connect(partner_id: str, **options: str | None) -> None:
    """Set how the hub delivers to a partner.

    Set how the hub delivers to a partner (push to its endpoint, or pull from its inbox).
    """
    from connectors.egress import EgressPolicy
    from hub.partners.service import connect_partner

    hub = bootstrap(settings_from_env())
    config = {k: v for k, v in options.items() if v is not None}
    try:
        with unit_of_work(hub.session_factory) as session:
            partner = connect_partner(
                session,
                partner_id=partner_id,
                config=config,
                egress=EgressPolicy.for_profile(hub.settings.profile),
            )
            click.echo(json.dumps({"partner_id": partner.id, "connector": partner.connector}))
    except HubError as exc:
        if missing := exc.extensions.get("missing"):
            flags = {p.name: p.opts[0] for p in click.get_current_context().command.params}
            needed = ", ".join(flags.get(name, name) for name in missing)
            raise click.ClickException(f"push mode needs {needed} (or --mode pull)") from exc
        raise click.ClickException(exc.detail) from exc
    click.echo("restart the delivery consumers (hub up, hub consume delivery) to apply", err=True)
