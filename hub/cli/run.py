"""``hub up``, ``hub demo``, one process alone (gateway, relay, a consumer), ``hub migrate``."""

from __future__ import annotations

import importlib
import signal
import sys
import threading

import click

from hub import gateway as gateway_server
from hub import logs, runtime
from hub.bootstrap import bootstrap, kafka_probe
from hub.cli.common import (
    check_metrics_port,
    first_start,
    listen,
    needs_kafka,
    observe,
    run_until_signal,
    settings_from_env,
)
from hub.cli.root import main


@main.command()
def up() -> None:
    """Run the whole hub on this machine.

    Run everything on one machine: broker (unless configured), gateway, relay, consumers.
    """
    from hub.app import create_app

    base = settings_from_env()
    check_metrics_port(base)
    listening = listen(base)
    with runtime.kafka_for(base) as settings:
        hub = bootstrap(settings)
        first_start(settings, runtime.prepare_database(hub))
        observe(hub, "hub")
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
@click.option(
    "--exit-when-done/--keep-running",
    default=False,
    help="Stop once every journey has completed, or keep the hub up for the staff UI"
    " (the default) until Ctrl-C.",
)
def demo(time_scale: float, exit_when_done: bool) -> None:
    """Play three client journeys with simulated partners.

    Run the hub with simulated partners and play three client journeys.
    """
    from hub.demo.runner import Demo, DemoError

    base = settings_from_env()
    settings = base.model_copy(
        update={
            "data_dir": base.data_dir / "demo",
            "kafka_bootstrap_servers": None,
            "database_url": None,
        }
    )
    listening = listen(settings)
    # Story lines on the terminal; the services' own log lines go to a file.
    log_path = base.data_dir / "demo.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_path.open("w", encoding="utf-8")
    logs.configure(settings.log_level, settings.log_format, stream=log_file)
    click.echo(f"Protokoll der Dienste / service log: {log_path}", err=True)
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
    """Run the gateway alone.

    Run only the gateway (partner API, OAuth endpoints, staff UI); HUB_GATEWAY_WORKERS.
    """
    from fastapi import FastAPI

    from hub.app import create_app

    settings = settings_from_env()

    def build() -> FastAPI:
        hub = bootstrap(settings)
        observe(hub, "gateway")
        probe = kafka_probe(hub) if settings.kafka_bootstrap_servers else (lambda: False)
        return create_app(hub, kafka_check=probe)

    gateway_server.serve(settings, build, sock=listen(settings))


@main.command()
def relay() -> None:
    """Run the outbox relay and the audit log's sequencer."""
    hub = bootstrap(needs_kafka(settings_from_env()))
    observe(hub, "relay")

    def run(stop: threading.Event) -> None:
        threads = [*runtime.start_relay(hub, stop), runtime.start_sequencer(hub, stop)]
        while any(t.is_alive() for t in threads):
            stop.wait(0.5)
        for thread in threads:
            thread.join()

    run_until_signal(run)


@main.command()
@click.argument("name", type=click.Choice(["router", "timeline", "inbox", "deadlines", "delivery"]))
def consume(name: str) -> None:
    """Run one consumer alone.

    Run one consumer: router, timeline, inbox, deadlines (with its scheduler), or delivery.
    """
    hub = bootstrap(needs_kafka(settings_from_env()))
    observe(hub, f"consumer-{name}")
    registry = importlib.import_module("consumers.registry")
    if name == "deadlines":

        def with_scheduler(stop: threading.Event) -> None:
            scheduler = runtime.start_deadline_scheduler(hub, stop)
            registry.build_runner(name, hub).run(stop)
            scheduler.join(timeout=10)

        run_until_signal(with_scheduler)
        return
    if name != "delivery":
        run_until_signal(registry.build_runner(name, hub).run)
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

    run_until_signal(deliver)


@main.command()
def migrate() -> None:
    """Bring the database to the newest schema."""
    from hub import migrate as migrations

    engine = bootstrap(settings_from_env()).engine
    before = migrations.revision(engine)
    migrations.upgrade(engine)
    after = migrations.revision(engine)
    if before == after:
        click.echo(f"database is up to date (schema {after})")
    else:
        click.echo(f"database migrated from schema {before or 'none'} to {after}")
