"""Helpers for push-delivery tests: a simulator per partner, connected to the hub."""

from __future__ import annotations

import importlib
import secrets
from dataclasses import dataclass
from typing import Any

from connectors.simulator import SimulatorServer
from hub.db import unit_of_work
from hub.partners.models import Partner
from hub.partners.service import connect_partner
from tests.integration.conftest import Running


@dataclass
class Sim:
    partner_id: str
    kind: str
    server: SimulatorServer
    app: Any

    @property
    def state(self) -> Any:
        return self.app.state.simulator

    def received(self) -> dict[str, Any]:
        """What the partner recorded, by event id."""
        with self.state.lock:
            return dict(self.state.deliveries)


def start_sims(running: Running, partner_ids: list[str], hub_client: Any = None) -> dict[str, Sim]:
    """Start one simulator per partner and switch those partners to push delivery."""
    sims: dict[str, Sim] = {}
    with unit_of_work(running.hub.session_factory) as session:
        for pid in partner_ids:
            partner = session.get(Partner, pid)
            assert partner is not None
            client_id, secret, signing = (
                f"hub-at-{pid}",
                secrets.token_urlsafe(16),
                secrets.token_urlsafe(16),
            )
            module = importlib.import_module(f"connectors.{partner.kind}.simulator")
            app = module.build(
                client_id=client_id, client_secret=secret, signing_secret=signing, hub=hub_client
            )
            server = SimulatorServer(app).start()
            connect_partner(
                session,
                partner_id=pid,
                config={
                    "mode": "push",
                    "endpoint_url": f"{server.url}/webhook",
                    "token_endpoint": f"{server.url}/oauth/token",
                    "client_id": client_id,
                    "credential_ref": f"value:{secret}",
                    "signing_secret_ref": f"value:{signing}",
                    "read_timeout": 2.0,
                    "connect_timeout": 1.0,
                },
            )
            sims[pid] = Sim(pid, partner.kind, server, app)
    return sims


def start_delivery(running: Running) -> None:
    """The push-delivery runners of every push partner, as threads."""
    from consumers.registry import build_delivery_runners
    from hub.runtime import start_thread

    for runner in build_delivery_runners(running.hub):
        running.threads.append(start_thread(runner.name, runner.run, running.stop))
