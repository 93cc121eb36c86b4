"""What the ``hub`` commands share: settings from the environment, Kafka and port checks,
running until a signal."""

from __future__ import annotations

import errno
import getpass
import signal
import socket
import sys
import threading
from collections.abc import Callable

import click

from hub import gateway as gateway_server
from hub import logs, runtime
from hub.bootstrap import Hub
from hub.settings import Settings


def with_kafka(settings: Settings) -> Settings:
    try:
        return runtime.running_kafka(settings)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc


def observe(hub: Hub, service: str) -> None:
    """Traces and metrics for this process, once (design §12); a server process's GC."""
    from hub import gauges, telemetry

    telemetry.configure(hub.settings, service=service)
    gauges.register(hub.session_factory)
    runtime.tune_gc()


def listen(settings: Settings) -> socket.socket:
    """The gateway's listening socket, taken before anything starts; a port in use ends the
    command with one line naming it and the setting that moves it."""
    try:
        return gateway_server.listen(settings)
    except OSError as exc:
        raise click.ClickException(port_problem(settings.http_port, "HUB_HTTP_PORT", exc)) from exc


def check_metrics_port(settings: Settings) -> None:
    """The same for the metrics port, which the metrics server binds a moment later."""
    if not settings.metrics_port:
        return
    try:
        with socket.create_server((settings.metrics_host, settings.metrics_port)):
            pass
    except OSError as exc:
        raise click.ClickException(
            port_problem(settings.metrics_port, "HUB_METRICS_PORT", exc)
        ) from exc


def port_problem(port: int, setting: str, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"Port {port} ist schon belegt, {setting} auf einen freien Port setzen"
            f" / port {port} is already in use: set {setting} to a free port"
        )
    return (
        f"Port {port} lässt sich nicht öffnen ({exc.strerror}), {setting} prüfen"
        f" / cannot listen on port {port} ({exc.strerror}): check {setting}"
    )


def settings_from_env() -> Settings:
    """The settings from the environment, with logging set up as they say."""
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    return settings


def needs_kafka(settings: Settings) -> Settings:
    if not settings.kafka_bootstrap_servers:
        raise click.ClickException("set HUB_KAFKA_BOOTSTRAP_SERVERS (hub up starts its own broker)")
    return settings


def first_start(settings: Settings, creds: list[dict[str, object]]) -> None:
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


def run_until_signal(target: Callable[[threading.Event], None]) -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        target(stop)
    except Exception as exc:
        click.echo(f"stopped: {exc}", err=True)
        sys.exit(1)


def operator() -> str:
    """Who ran the command, as the audit trail names an operator."""
    return f"cli:{getpass.getuser()}"


def say_if_none(shown: int, what: str) -> None:
    """An empty list says so, on stderr: standard output stays valid (JSON lines, tables)."""
    if not shown:
        click.echo(what, err=True)
