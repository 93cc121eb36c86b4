"""The hub's event contracts over HTTP: the AsyncAPI document and the event JSON Schemas.

``ce_dataschema`` of every event is ``https://talenthub.duisburg.de/schemas/<file>``; this
serves ``<file>`` at ``/schemas/<file>``, without authentication, always. The AsyncAPI
document follows the OpenAPI document: served in development, handed over at onboarding in
production. Both are rendered from the models, the same text as the committed files.
"""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter, Request, Response

from hub.errors import NotFound
from schemas import asyncapi, export

router = APIRouter(include_in_schema=False)

SCHEMA_TYPE = "application/schema+json"


@cache
def _schemas() -> dict[str, bytes]:
    return {name: text.encode() for name, text in export.rendered().items()}


@cache
def _asyncapi() -> bytes:
    return asyncapi.text().encode()


@router.get("/schemas/{name}")
def json_schema(name: str) -> Response:
    """One published JSON Schema by file name; any other name is 404."""
    body = _schemas().get(name)
    if body is None:
        raise NotFound("no such schema")
    return Response(body, media_type=SCHEMA_TYPE)


@router.get("/asyncapi.json")
def asyncapi_document(request: Request) -> Response:
    """The AsyncAPI 3.0 document of the hub's Kafka topics (not in production)."""
    if request.app.state.settings.profile == "production":
        raise NotFound("not published here")
    return Response(_asyncapi(), media_type="application/json")
