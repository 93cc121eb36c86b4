"""``hub staff``: accounts of the staff UI — add, list, disable, enable, reset a password."""

from __future__ import annotations

import sys

import click

from hub import runtime
from hub.bootstrap import bootstrap
from hub.cli.common import (
    operator,
    say_if_none,
    settings_from_env,
)
from hub.cli.root import main
from hub.db import unit_of_work
from hub.errors import HubError


@main.group()
def staff() -> None:
    """Staff accounts of the web UI."""


@staff.command("add")
@click.argument("email")
@click.option(
    "--role", required=True, type=click.Choice(["caseworker", "team_lead", "dpo", "admin"])
)
@click.option(
    "--purpose",
    "purposes",
    multiple=True,
    type=click.Choice(["residence", "counselling", "education", "employment", "recognition"]),
    help="A purpose domain whose timeline entries the account sees (repeatable).",
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input instead of prompting.",
)
@click.option(
    "--no-password",
    is_flag=True,
    help="No local password: the account logs in through the city's OpenID Connect provider.",
)
def staff_add(
    email: str, role: str, purposes: tuple[str, ...], password_stdin: bool, no_password: bool
) -> None:
    """Create a staff account.

    Create a staff account (local password at least 12 characters, or --no-password).
    """
    from hub.web.accounts import add_staff

    password = None if no_password else _new_password(password_stdin)
    hub = bootstrap(settings_from_env())
    runtime.migrate.upgrade(hub.engine)
    try:
        with unit_of_work(hub.session_factory) as session:
            account = add_staff(
                session, email=email, role=role, purposes=list(purposes), password=password
            )
            click.echo(f"staff account {account.email} ({account.role}) created")
    except HubError as exc:
        raise click.ClickException(exc.detail) from exc


@staff.command("list")
def staff_list() -> None:
    """List the staff accounts.

    Every account: e-mail, role, purpose domains, state and last login.
    """
    from hub.web.accounts import list_staff

    hub = bootstrap(settings_from_env())
    with hub.session_factory() as session:
        rows = list_staff(session)
        say_if_none(len(rows), "no staff accounts / keine Konten")
        for a in rows:
            state = "active" if a.active else "disabled"
            login = "oidc" if a.password_hash is None else "password"
            last = a.last_login_at.strftime("%Y-%m-%d %H:%M") if a.last_login_at else "never"
            purposes = ",".join(a.purposes) or "-"
            click.echo(f"{a.email:<32} {a.role:<10} {purposes:<24} {state:<8} {login:<8} {last}")


@staff.command("disable")
@click.argument("email")
def staff_disable(email: str) -> None:
    """Disable an account and end its sessions.

    Disable an account and end its sessions (the last active admin stays).
    """
    _staff_change(email, "staff.account_disabled", active=False)


@staff.command("enable")
@click.argument("email")
def staff_enable(email: str) -> None:
    """Let a disabled account log in again."""
    _staff_change(email, "staff.account_enabled", active=True)


@staff.command("reset-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
def staff_reset_password(email: str, password_stdin: bool) -> None:
    """Set a new password for an account.

    Set a new password, lift a lockout and end the account's sessions.
    """
    _staff_change(email, "staff.account_password_reset", password=_new_password(password_stdin))


def _new_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise click.ClickException(
            "no terminal to ask for the password: pipe it in with --password-stdin"
            " (or create an OIDC-only account with --no-password)"
        )
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def _staff_change(
    email: str, action: str, *, active: bool | None = None, password: str | None = None
) -> None:
    from hub.audit.service import record as audit_record
    from hub.web import accounts

    hub = bootstrap(settings_from_env())
    try:
        with unit_of_work(hub.session_factory) as session:
            if password is not None:
                account = accounts.reset_password(session, email=email, password=password)
            else:
                account = accounts.set_active(session, email=email, active=bool(active))
            audit_record(
                session,
                actor_type="system",
                actor=operator(),
                action=action,
                details={"email": account.email, "role": account.role},
            )
            click.echo(f"{account.email}: {action.removeprefix('staff.account_')}")
    except HubError as exc:
        raise click.ClickException(exc.detail) from exc
