"""The audit log's public face: its newest signed checkpoint and its verifier keys.

Both are meant for anyone: a partner, the data protection officer or a witness can keep
copies of checkpoints and later hold the log against them. Neither holds personal data.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import select

from hub.api.problems import PROBLEM_RESPONSES
from hub.audit.keys import published_keys
from hub.audit.models import AuditCheckpoint
from hub.errors import NotFound

router = APIRouter(prefix="/audit/v1", tags=["audit log"])


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    responses={404: {**PROBLEM_RESPONSES[404], "description": "No checkpoint signed yet."}},
)
def newest_checkpoint(request: Request) -> PlainTextResponse:
    """The newest signed checkpoint, a C2SP signed note (text/plain)."""
    with request.app.state.session_factory() as session:
        note = session.scalar(
            select(AuditCheckpoint.note).order_by(AuditCheckpoint.tree_size.desc()).limit(1)
        )
    if note is None:
        raise NotFound("the audit log has no signed checkpoint yet")
    return PlainTextResponse(note, headers={"Cache-Control": "no-cache"})


@router.get("/keys", response_class=PlainTextResponse)
def verifier_keys(request: Request) -> PlainTextResponse:
    """Every key that signed or signs checkpoints, one verifier key a line, newest last."""
    with request.app.state.session_factory() as session:
        keys = published_keys(session)
    return PlainTextResponse("".join(f"{k.text()}\n" for k in keys))
