"""The ``hub`` command: run the hub or one of its processes, and administer partners."""

from __future__ import annotations

import errno
import getpass
import importlib
import json
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import click
from sqlalchemy.exc import OperationalError, ProgrammingError

from hub import gateway as gateway_server
from hub import logs, runtime
from hub.audit.commands import audit
from hub.bootstrap import Hub, bootstrap, kafka_probe
from hub.db import unit_of_work
from hub.errors import HubError
from hub.settings import Settings


class _Commands(click.Group):
    """Database trouble ends a command with one line that says what to do, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (OperationalError, ProgrammingError) as exc:
            raise click.ClickException(database_problem(exc)) from exc


def database_problem(exc: OperationalError | ProgrammingError) -> str:
    """One line for an operator: what the database said, and the fix where it is known."""
    said = str(exc.orig or exc).strip().splitlines()[0]
    if "no such table" in said or ("relation" in said and "does not exist" in said):
        return f"the database has no tables for this version ({said}): run `hub migrate`"
    return f"the database refused or did not answer: {said}"


@click.group(cls=_Commands)
def main() -> None:
    """Talent Hub: referrals and status between the Amt, UDE, the chambers and the Jobcenter."""


@main.command()
def up() -> None:
    """Run everything on one machine: broker (unless configured), gateway, relay, consumers."""
    from hub.app import create_app

    base = _settings()
    _check_metrics_port(base)
    listening = _listen(base)
    with runtime.kafka_for(base) as settings:
        hub = bootstrap(settings)
        _first_start(settings, runtime.prepare_database(hub))
        _observe(hub, "hub")
        runtime.record_policy_in_force(hub)
        from hub.kafka.client import ensure_topics

        ensure_topics(hub.bootstrap_servers, runtime.topic_plan(hub), security=hub.kafka_security)
        stop = threading.Event()
        registry = importlib.import_module("consumers.registry")
        threads = runtime.start_relay(hub, stop)
        threads += [
            runtime.start_thread(n, registry.build_runner(n, hub).run, stop) for n in registry.NAMES
        ]
        threads += [
            runtime.start_thread(r.name, r.run, stop) for r in registry.build_delivery_runners(hub)
        ]
        threads.append(runtime.start_deadline_scheduler(hub, stop))
        threads.append(runtime.start_sequencer(hub, stop))
        click.echo(
            f"Talent Hub läuft / is running: http://{settings.http_host}:{settings.http_port}"
            f"  (Kafka {hub.bootstrap_servers}; Ctrl-C stops)",
            err=True,
        )
        # uvicorn re-raises SIGTERM after its graceful shutdown; with the default handler
        # that would end the process before the relay, consumers and broker are stopped.
        signal.signal(signal.SIGTERM, lambda *_: None)
        try:
            gateway_server.serve(
                settings,
                lambda: create_app(hub, kafka_check=kafka_probe(hub)),
                sock=listening,
                access_log=False,
            )
        finally:
            stop.set()
            runtime.join_all(threads)


@main.command()
@click.option(
    "--time-scale",
    default=0.3,
    show_default=True,
    help="Multiplies the simulated partners' delays (1.0: about two minutes).",
)
@click.option("--exit-when-done", is_flag=True, help="Stop once every journey has completed.")
def demo(time_scale: float, exit_when_done: bool) -> None:
    """Run the hub with simulated partners and play three client journeys."""
    from hub.demo.runner import Demo, DemoError

    base = _settings()
    settings = base.model_copy(
        update={
            "data_dir": base.data_dir / "demo",
            "kafka_bootstrap_servers": None,
            "database_url": None,
        }
    )
    listening = _listen(settings)
    run = Demo(
        settings,
        listening=listening,
        time_scale=time_scale,
        say=lambda line: click.echo(line, err=True),
    )
    signal.signal(signal.SIGTERM, lambda *_: run.stop.set())
    signal.signal(signal.SIGINT, lambda *_: run.stop.set())
    try:
        done = run.run(exit_when_done=exit_when_done)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(0 if done else 1)


@main.command()
def gateway() -> None:
    """Run only the gateway (partner API, OAuth endpoints, staff UI); HUB_GATEWAY_WORKERS."""
    from fastapi import FastAPI

    from hub.app import create_app

    settings = _settings()

    def build() -> FastAPI:
        hub = bootstrap(settings)
        _observe(hub, "gateway")
        probe = kafka_probe(hub) if settings.kafka_bootstrap_servers else (lambda: False)
        return create_app(hub, kafka_check=probe)

    gateway_server.serve(settings, build, sock=_listen(settings))


@main.command()
def relay() -> None:
    """Run the outbox relay and the audit log's sequencer."""
    hub = bootstrap(_needs_kafka(_settings()))
    _observe(hub, "relay")

    def run(stop: threading.Event) -> None:
        threads = [*runtime.start_relay(hub, stop), runtime.start_sequencer(hub, stop)]
        while any(t.is_alive() for t in threads):
            stop.wait(0.5)
        for thread in threads:
            thread.join()

    _run_until_signal(run)


@main.command()
@click.argument("name", type=click.Choice(["router", "timeline", "inbox", "deadlines", "delivery"]))
def consume(name: str) -> None:
    """Run one consumer: router, timeline, inbox, deadlines (with its scheduler), or delivery."""
    hub = bootstrap(_needs_kafka(_settings()))
    _observe(hub, f"consumer-{name}")
    registry = importlib.import_module("consumers.registry")
    if name == "deadlines":

        def with_scheduler(stop: threading.Event) -> None:
            scheduler = runtime.start_deadline_scheduler(hub, stop)
            registry.build_runner(name, hub).run(stop)
            scheduler.join(timeout=10)

        _run_until_signal(with_scheduler)
        return
    if name != "delivery":
        _run_until_signal(registry.build_runner(name, hub).run)
        return

    def deliver(stop: threading.Event) -> None:
        threads = [
            runtime.start_thread(r.name, r.run, stop)
            for r in registry.delivery_runners_when_ready(hub, stop)
        ]
        while any(t.is_alive() for t in threads) and not stop.is_set():
            stop.wait(0.5)
        for thread in threads:
            thread.join()

    _run_until_signal(deliver)


@main.command()
def migrate() -> None:
    """Bring the database to the newest schema."""
    from hub import migrate as migrations

    migrations.upgrade(bootstrap(_settings()).engine)
    click.echo("database is up to date")


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
    """Register a partner, print its credentials as JSON and the routes that now apply."""
    from sqlalchemy import select

    from hub.partners.models import Partner
    from hub.partners.service import register_partner
    from hub.policy import report
    from hub.policy.model import Party

    hub = bootstrap(_settings())
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
    """Require (--on) or stop requiring (--off) DPoP-bound tokens for a partner's clients."""
    from hub.partners.service import require_dpop

    hub = bootstrap(_settings())
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

    hub = bootstrap(_settings())
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
    """Set how the hub delivers to a partner (push to its endpoint, or pull from its inbox)."""
    from connectors.egress import EgressPolicy
    from hub.partners.service import connect_partner

    hub = bootstrap(_settings())
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
    """Create a staff account (local password at least 12 characters, or --no-password)."""
    from hub.web.accounts import add_staff

    password = None if no_password else _new_password(password_stdin)
    hub = bootstrap(_settings())
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
    """Every account: e-mail, role, purpose domains, state and last login."""
    from hub.web.accounts import list_staff

    hub = bootstrap(_settings())
    with hub.session_factory() as session:
        rows = list_staff(session)
        if not rows:
            click.echo("no staff accounts / keine Konten")
        for a in rows:
            state = "active" if a.active else "disabled"
            login = "oidc" if a.password_hash is None else "password"
            last = a.last_login_at.strftime("%Y-%m-%d %H:%M") if a.last_login_at else "never"
            purposes = ",".join(a.purposes) or "-"
            click.echo(f"{a.email:<32} {a.role:<10} {purposes:<24} {state:<8} {login:<8} {last}")


@staff.command("disable")
@click.argument("email")
def staff_disable(email: str) -> None:
    """Disable an account and end its sessions (the last active admin stays)."""
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
    """Set a new password, lift a lockout and end the account's sessions."""
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

    hub = bootstrap(_settings())
    try:
        with unit_of_work(hub.session_factory) as session:
            if password is not None:
                account = accounts.reset_password(session, email=email, password=password)
            else:
                account = accounts.set_active(session, email=email, active=bool(active))
            audit_record(
                session,
                actor_type="system",
                actor=f"cli:{getpass.getuser()}",
                action=action,
                details={"email": account.email, "role": account.role},
            )
            click.echo(f"{account.email}: {action.removeprefix('staff.account_')}")
    except HubError as exc:
        raise click.ClickException(exc.detail) from exc


@main.group()
def deadletters() -> None:
    """List and replay dead letters."""


@deadletters.command("list")
@click.option("--partner", help="Only dead letters addressed to this partner.")
def deadletters_list(partner: str | None) -> None:
    """Print the dead letters as JSON lines."""
    from hub.deadletters import service as dlq

    settings = _with_kafka(_settings())
    for letter in dlq.read_all(settings.kafka_bootstrap_servers or "", settings):
        if partner is None or letter.recipient == partner:
            click.echo(json.dumps(letter.summary()))


@deadletters.command("replay")
@click.argument("letter_id", required=False)
@click.option("--partner", help="Replay every dead letter addressed to this partner.")
def deadletters_replay(letter_id: str | None, partner: str | None) -> None:
    """Replay one dead letter by id (partition:offset), or all of a partner's."""
    from hub.audit.service import record as audit_record
    from hub.deadletters import service as dlq

    if bool(letter_id) == bool(partner):
        raise click.UsageError("give either a dead-letter ID or --partner")
    settings = _with_kafka(_settings())
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
                    actor=f"cli:{getpass.getuser()}",
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


main.add_command(audit)


@main.group()
def keys() -> None:
    """Master keys of the personal data (rewrap) and token signing keys (rotate, list)."""


@keys.command("rotate")
@click.option(
    "--immediate",
    is_flag=True,
    help="Key compromised: sign with the new key now and retire the others now.",
)
def keys_rotate(immediate: bool) -> None:
    """Add an access-token signing key; schedule the retirement of the current ones."""
    from hub.auth.keys import rotate

    settings = _settings()
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
    """The access-token signing keys: kid, created, not_before, retired, state."""
    from hub.auth.keys import list_keys

    hub = bootstrap(_settings())
    with hub.session_factory() as session:
        for k in list_keys(session):
            retired = k.retired_at.isoformat() if k.retired_at else "-"
            click.echo(
                f"{k.kid}  created {k.created_at.isoformat()}  "
                f"not_before {k.not_before.isoformat()}  retired {retired}  {k.state}"
            )


@keys.command("rewrap")
@click.option("--to", "to_kid", required=True, help="A configured master key id (HUB_MASTER_KEYS).")
def keys_rewrap(to_kid: str) -> None:
    """Re-wrap every data key and audit signing key under master key KID; print the count."""
    from hub.audit.keys import rewrap
    from hub.crypto.keystore import DbKeyStore, master_keys_from

    settings = _settings()
    hub = bootstrap(settings)
    try:
        master_keys, current = master_keys_from(settings)
        with unit_of_work(hub.session_factory) as session:
            count = DbKeyStore(session, master_keys, current).rewrap_all(to_kid)
            audit_keys = rewrap(session, to_kid)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(count)
    # Keys minted meanwhile by a process still on the old current key would be missed.
    click.echo(
        f"data keys and {audit_keys} audit signing keys re-wrapped under {to_kid}; once every "
        f"process runs with "
        f"HUB_MASTER_KEY_ID={to_kid}, re-run this, then remove the old master keys",
        err=True,
    )


@main.group()
def policy() -> None:
    """The route policy (legal basis, purpose, fields, retention per route)."""


@policy.command("show")
@click.option(
    "--check-partners",
    is_flag=True,
    help="Also check the partners the policy names against the database's registered ones.",
)
def policy_show(check_partners: bool) -> None:
    """Validate the route policy against the catalogue and print it (no database needed).

    With --check-partners it also refuses partners the policy names that are not registered
    or of another kind; that needs the database.
    """
    from hub.policy import report
    from hub.policy.model import PolicyError, load_policy
    from schemas.catalogue import load_catalogue

    settings = _settings()
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
    """The draft Art. 30 record of processing, generated from the policy (no database needed)."""
    from hub.policy import record
    from hub.policy.model import PolicyError, load_policy
    from schemas.catalogue import load_catalogue

    settings = _settings()
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

    hub = bootstrap(_settings())
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

    hub = bootstrap(_settings())
    with hub.session_factory() as session:
        for c in consents.for_person(session, person_id=person_id):
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

    hub = bootstrap(_settings())
    try:
        with unit_of_work(hub.session_factory) as session:
            consents.withdraw(session, consent_id=consent_id, by="cli:consent", partner=False)
    except HubError as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(f"withdrawn {consent_id}")


@main.group()
def holds() -> None:
    """Deliveries the router held back (policy or consent), and releasing them."""


@holds.command("list")
@click.option("--person", help="Only this person's.")
def holds_list(person: str | None) -> None:
    """Held deliveries with their reasons, as JSON lines."""
    from hub.routing import service as routing

    hub = bootstrap(_settings())
    with hub.session_factory() as session:
        for h in routing.pending_holds(session, person_id=person):
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
    """Route held deliveries whose policy and consent allow it now; report the others."""
    from hub.routing import service as routing

    hub = bootstrap(_settings())
    with unit_of_work(hub.session_factory) as session:
        for h in routing.pending_holds(session, person_id=person):
            why = routing.release(session, hold=h, policy=hub.policy, settings=hub.settings)
            click.echo(
                f"{h.event_id} -> {h.recipient}: "
                + ("released" if why is None else f"still held ({why})")
            )


@main.group()
def deadlines() -> None:
    """Deadline clocks: overdue counts and the digest."""


@deadlines.command("overdue")
def deadlines_overdue() -> None:
    """Overdue clocks per performing partner and referral type."""
    from hub.db import utcnow
    from hub.deadlines.service import overdue_counts

    hub = bootstrap(_settings())
    with hub.session_factory() as session:
        for partner, rtype, count in overdue_counts(session, now=utcnow()):
            click.echo(f"{partner:<12} {rtype:<36} {count}")


@deadlines.command("digest")
def deadlines_digest() -> None:
    """Send (or, without SMTP, write) today's digest to each partner with deadlines."""
    from hub.db import utcnow
    from hub.deadlines import digest

    hub = bootstrap(_settings())
    now = utcnow()
    with hub.session_factory() as session:
        texts = digest.compose(session, now=now)
    for where in digest.send(texts, settings=hub.settings, now=now):
        click.echo(where)


@main.group()
def people() -> None:
    """A person's data: the Art. 15 export."""


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
    """Erase a person: delete the data key (crypto-shredding) and tombstone the projections."""
    from hub.privacy.service import erase_person

    hub = bootstrap(_settings())
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
    """Close idle open referrals; shred what outlived its route's retention (routes.v1.yaml)."""
    from hub.db import utcnow
    from hub.privacy import retention as job

    hub = bootstrap(_settings())
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
    """Delete published outbox rows, old dedup marks and expired sessions (hub/housekeeping)."""
    from hub.db import utcnow
    from hub.housekeeping import service as job

    hub = bootstrap(_settings())
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
    help="Language of the HTML page: de, en, ar, tr or uk; default: that of the person's "
    "newest consent notice, else German.",
)
@click.option("--force", is_flag=True, help="Replace report files already there.")
def people_export(person_id: str, out_dir: Path, language: str | None, force: bool) -> None:
    """Write the Art. 15 report as JSON and as an HTML page for the person (files 0600)."""
    from hub.privacy.export import export_person
    from hub.privacy.report import render_html, write_private
    from schemas.labels import LANGUAGES

    if language is not None and language not in LANGUAGES:
        raise click.BadParameter(f"one of {', '.join(LANGUAGES)}", param_hint="--language")
    paths = [out_dir / f"art15-{person_id}.{ext}" for ext in ("json", "html")]
    taken = [str(p) for p in paths if p.exists()]
    if taken and not force:
        raise click.ClickException(f"{', '.join(taken)} already there; --force replaces it")
    hub = bootstrap(_settings())
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


def _with_kafka(settings: Settings) -> Settings:
    try:
        return runtime.running_kafka(settings)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc


def _observe(hub: Hub, service: str) -> None:
    """Traces and metrics for this process, once (design §12); a server process's GC."""
    from hub import gauges, telemetry

    telemetry.configure(hub.settings, service=service)
    gauges.register(hub.session_factory)
    runtime.tune_gc()


def _listen(settings: Settings) -> socket.socket:
    """The gateway's listening socket, taken before anything starts; a port in use ends the
    command with one line naming it and the setting that moves it."""
    try:
        return gateway_server.listen(settings)
    except OSError as exc:
        raise click.ClickException(_port_problem(settings.http_port, "HUB_HTTP_PORT", exc)) from exc


def _check_metrics_port(settings: Settings) -> None:
    """The same for the metrics port, which the metrics server binds a moment later."""
    if not settings.metrics_port:
        return
    try:
        with socket.create_server((settings.metrics_host, settings.metrics_port)):
            pass
    except OSError as exc:
        raise click.ClickException(
            _port_problem(settings.metrics_port, "HUB_METRICS_PORT", exc)
        ) from exc


def _port_problem(port: int, setting: str, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"Port {port} ist schon belegt, {setting} auf einen freien Port setzen"
            f" / port {port} is already in use: set {setting} to a free port"
        )
    return (
        f"Port {port} lässt sich nicht öffnen ({exc.strerror}), {setting} prüfen"
        f" / cannot listen on port {port} ({exc.strerror}): check {setting}"
    )


def _settings() -> Settings:
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    return settings


def _needs_kafka(settings: Settings) -> Settings:
    if not settings.kafka_bootstrap_servers:
        raise click.ClickException("set HUB_KAFKA_BOOTSTRAP_SERVERS (hub up starts its own broker)")
    return settings


def _first_start(settings: Settings, creds: list[dict[str, object]]) -> None:
    if not creds:
        return
    path = runtime.store_credentials(settings, creds)
    click.echo("Partner registriert / partners registered:", err=True)
    for c in creds:
        click.echo(
            f"  {c['partner_id']:<10} client_id={c['client_id']} "
            f"client_secret={c.get('client_secret')}",
            err=True,
        )
    click.echo(f"Zugangsdaten gespeichert in / credentials stored in {path}", err=True)


def _run_until_signal(target: Callable[[threading.Event], None]) -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        target(stop)
    except Exception as exc:
        click.echo(f"stopped: {exc}", err=True)
        sys.exit(1)
