"""``Idempotency-Key`` for POSTs: a repeat with the same body gets the first answer again."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from hub.errors import IdempotencyConflict, InvalidInput
from hub.referrals.models import IdempotencyRecord

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: dict[str, Any]
    location: str | None = None


def request_hash(method: str, path: str, body: Any) -> str:
    """A fingerprint of the request that a key may only ever be used for."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def run_once(
    session: Session,
    *,
    partner_id: str,
    key: str | None,
    fingerprint: str,
    action: Callable[[], Answer],
) -> Answer:
    """Run ``action`` unless this key was used before; store its answer with the effect."""
    if key is None:
        return action()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters", field="Idempotency-Key"
        )
    previous = session.get(IdempotencyRecord, (partner_id, key))
    if previous is not None:
        if previous.request_hash != fingerprint:
            raise IdempotencyConflict(
                "this Idempotency-Key was used for a different request", field="Idempotency-Key"
            )
        return Answer(previous.status_code, previous.response, previous.location)
    answer = action()
    session.add(
        IdempotencyRecord(
            partner_id=partner_id,
            key=key,
            request_hash=fingerprint,
            status_code=answer.status_code,
            response=answer.body,
            location=answer.location,
        )
    )
    return answer
