"""``Idempotency-Key`` for POSTs: a repeat with the same body gets the first answer again."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, cast, delete, or_
from sqlalchemy.orm import Session

from hub import staged
from hub.db import table_of, utcnow
from hub.errors import HubError, IdempotencyConflict, InvalidInput
from hub.referrals.models import IdempotencyRecord

MAX_KEY_LENGTH = 255
_RECORDS = table_of(IdempotencyRecord)
#: Visible ASCII, spaces only inside: HTTP strips a header value's outer whitespace, and a key
#: must reach the hub as it was sent. The route's header parameter declares the same pattern.
KEY_PATTERN = r"^[!-~](?:[ -~]*[!-~])?$"


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: dict[str, Any]
    location: str | None = None


class Repeated(Exception):
    """The key was used before for this request: ``answer`` is the first answer.

    Whoever owns the transaction rolls back what this run did before answering with it.
    """

    def __init__(self, answer: Answer) -> None:
        super().__init__("repeated request")
        self.answer = answer


def request_hash(method: str, path: str, body: Any) -> str:
    """A fingerprint of the request that a key may only ever be used for.

    ``path`` as the ASGI scope holds it (``request.scope["path"]``): for the keyed routes,
    whose paths hold no character a URL escapes, the same as ``request.url.path``, without
    building the URL."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def run_first(
    session: Session,
    *,
    partner_id: str,
    key: str | None,
    fingerprint: str,
    action: Callable[[], Answer],
) -> Answer:
    """Run ``action`` and store its answer under the key; raise Repeated if the key was used.

    For a request that is one keyed operation: a first use (nearly always) costs one
    ``INSERT … ON CONFLICT DO NOTHING`` after the action and no look-up before it; on
    PostgreSQL it is part of the statement that writes the action's rows (hub.staged). A repeat
    runs the action too, finds the key taken and raises Repeated; on PostgreSQL a concurrent
    first use of the key makes the insert wait for that transaction's outcome.
    """
    if key is None:
        return action()
    _check(key)
    try:
        # The action's rows wait for the key's insert: one statement on PostgreSQL.
        with staged.held(session):
            answer = action()
    except HubError:
        # A repeat may fail where the first run succeeded (the status it set is set now).
        _raise_if_used(session, partner_id, key, fingerprint)
        raise
    if not _store(session, partner_id, key, fingerprint, answer):
        _raise_if_used(session, partner_id, key, fingerprint)
        raise _in_use()
    return answer


def run_once(
    session: Session,
    *,
    partner_id: str,
    key: str | None,
    fingerprint: str,
    action: Callable[[], Answer],
) -> Answer:
    """Run ``action`` unless this key was used before; store its answer with the effect.

    For a request with several keyed operations (native messages), where a repeat of one
    must not undo the others: looks the key up first.
    """
    if key is None:
        return action()
    _check(key)
    previous = _previous(session, partner_id, key, fingerprint)
    if previous is not None:
        return previous
    answer = action()
    if not _store(session, partner_id, key, fingerprint, answer):
        raise _in_use()
    return answer


def _in_use() -> IdempotencyConflict:
    # Taken between our look and our insert, by a request that has not committed yet.
    return IdempotencyConflict(
        "this Idempotency-Key is in use by a concurrent request", field="Idempotency-Key"
    )


def _check(key: str) -> None:
    if len(key) > MAX_KEY_LENGTH or not re.fullmatch(KEY_PATTERN, key):
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters",
            field="Idempotency-Key",
        )


def _store(session: Session, partner_id: str, key: str, fingerprint: str, answer: Answer) -> bool:
    row = {
        "partner_id": partner_id,
        "key": key,
        "request_hash": fingerprint,
        "status_code": answer.status_code,
        "response": answer.body,
        "location": answer.location,
        "created_at": utcnow(),
    }
    # With whatever the action staged (hub.staged), when it held its writes for this.
    return staged.write_claiming(session, _RECORDS, row)


def _raise_if_used(session: Session, partner_id: str, key: str, fingerprint: str) -> None:
    previous = _previous(session, partner_id, key, fingerprint)
    if previous is not None:
        raise Repeated(previous)


def _previous(session: Session, partner_id: str, key: str, fingerprint: str) -> Answer | None:
    with session.no_autoflush:
        record = session.get(IdempotencyRecord, (partner_id, key), populate_existing=True)
    if record is None:
        return None
    if record.request_hash != fingerprint:
        raise IdempotencyConflict(
            "this Idempotency-Key was used for a different request", field="Idempotency-Key"
        )
    return Answer(record.status_code, record.response, record.location)


def forget_answers(session: Session, *, naming: Collection[str]) -> None:
    """Delete the stored answers that name any of these ids (a person, referrals), keys too.

    For erasure and retention: an answer names the person's pseudonym or a referral, and a
    partner may have built the key from its own identifiers. A repeat of such a request
    afterwards runs as a new one. The stored answers are matched by their text: the table
    only holds the answers of the housekeeping window, and erasure is rare.
    """
    if not naming:
        return
    response = cast(IdempotencyRecord.response, Text)
    matches = [response.contains(name, autoescape=True) for name in naming]
    session.execute(delete(IdempotencyRecord).where(or_(*matches)))
