"""The gateway serves the event contracts: each event's ce_dataschema and the AsyncAPI
document, the same text as the committed files."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from schemas import asyncapi
from schemas.events import EVENT_DATA, dataschema
from schemas.export import OUT_DIR
from tests.hubtest import api_client


def test_every_dataschema_url_path_is_served(client: TestClient) -> None:
    for event_type in EVENT_DATA:
        path = urlsplit(dataschema(event_type)).path
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"] == "application/schema+json"
        assert r.text == (OUT_DIR / path.rsplit("/", 1)[1]).read_text(encoding="utf-8")


def test_every_committed_schema_is_served(client: TestClient) -> None:
    files = sorted(OUT_DIR.glob("*.json"))
    assert len(files) >= len(EVENT_DATA)
    for file in files:
        assert client.get(f"/schemas/{file.name}").text == file.read_text(encoding="utf-8")


def test_the_asyncapi_document_is_served_without_a_token(client: TestClient) -> None:
    r = client.get("/asyncapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.text == asyncapi.OUT.read_text(encoding="utf-8")
    assert r.json()["asyncapi"] == "3.0.0"


@pytest.mark.parametrize(
    "path",
    [
        "/schemas/person.linked.v1.json",
        "/schemas/referral.requested.v1",
        "/schemas/..%2Fexport.py",
        "/schemas/..%2F..%2Fpyproject.toml",
        "/schemas/%2E%2E/messages.py",
        "/schemas/jsonschema%2Freferral.json",
        "/schemas/",
    ],
)
def test_unknown_schema_names_are_404_problems(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert "[project]" not in r.text and "import" not in r.text


def test_contract_routes_stay_out_of_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/schemas", "/asyncapi"))]


def test_in_production_schemas_are_served_and_asyncapi_is_not(hub_and_partners: Any) -> None:
    hub = hub_and_partners[0]
    hub.settings = hub.settings.model_copy(update={"profile": "production"})
    with api_client(hub) as client:
        assert client.get("/schemas/person.erased.v1.json").status_code == 200
        r = client.get("/asyncapi.json")
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/problem+json"
