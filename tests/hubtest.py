"""Helpers for tests that drive a hub: building one, getting tokens, making referrals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from hub.app import create_app
from hub.bootstrap import Hub, bootstrap
from hub.runtime import prepare_database
from hub.settings import Settings

STUDENT_REFERRAL: dict[str, Any] = {
    "type": "residence.student",
    "performer": "amt",
    "person": {
        "given_name": "Wei",
        "family_name": "Li",
        "birth_date": "2001-04-03",
        "partner_reference": "ES012345601",
    },
    "payload": {
        "programme": "M.Sc. Computer Engineering",
        "semester": "2027S",
        "admission_date": "2027-02-15",
    },
}


class Partners:
    """The seeded partners' credentials, by partner id."""

    def __init__(self, creds: list[dict[str, Any]]) -> None:
        self.creds = {c["partner_id"]: c for c in creds}

    def token(
        self, client: TestClient | httpx.Client, partner: str, scope: str | None = None
    ) -> str:
        """An access token for ``partner`` from the hub's token endpoint."""
        c = self.creds[partner]
        form = {"grant_type": "client_credentials"}
        if scope is not None:
            form["scope"] = scope
        r = client.post("/oauth/token", data=form, auth=(c["client_id"], c["client_secret"]))
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def headers(
        self, client: TestClient | httpx.Client, partner: str, scope: str | None = None
    ) -> dict[str, str]:
        """Authorization headers for ``partner``."""
        return {"Authorization": f"Bearer {self.token(client, partner, scope)}"}


def make_hub(database_url: str, data_dir: Path, **overrides: Any) -> tuple[Hub, Partners]:
    """A migrated hub with the demo partners registered."""
    settings = Settings(database_url=database_url, data_dir=data_dir, **overrides)
    hub = bootstrap(settings)
    creds = prepare_database(hub)
    return hub, Partners(creds)


def api_client(hub: Hub, kafka_up: bool = True) -> TestClient:
    """An in-process HTTP client for the hub's gateway."""
    return TestClient(create_app(hub, kafka_check=lambda: kafka_up))


def data_points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    """The data points an in-memory metric reader holds for the instrument ``name``."""
    data = reader.get_metrics_data()
    return [
        point
        for resource in (data.resource_metrics if data else [])
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]
