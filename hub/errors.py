"""One error family: each error knows its HTTP status and its problem ``type`` (RFC 9457)."""

from __future__ import annotations

import math
from typing import Any

PROBLEM_BASE = "https://talenthub.duisburg.de/problems/"


class HubError(Exception):
    """Base of every expected failure; rendered as an RFC 9457 problem document."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions

    @property
    def type_uri(self) -> str:
        """The stable problem type URI."""
        return PROBLEM_BASE + self.slug

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """The problem document for this error."""
        doc: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            doc["instance"] = instance
        doc.update(self.extensions)
        return doc


class MalformedRequest(HubError):
    status, slug, title = 400, "malformed-request", "Malformed request"


class InvalidInput(HubError):
    status, slug, title = 422, "invalid-input", "Invalid input"


class Unauthenticated(HubError):
    status, slug, title = 401, "unauthenticated", "Authentication failed"


class InvalidClient(HubError):
    """OAuth client authentication failed at the token endpoint (RFC 6749 §5.2)."""

    status, slug, title = 401, "invalid-client", "Client authentication failed"


class InvalidGrant(HubError):
    status, slug, title = 400, "invalid-grant", "Invalid grant request"


class Forbidden(HubError):
    status, slug, title = 403, "forbidden", "Forbidden"


class ConsentRequired(HubError):
    status, slug, title = 403, "consent-required", "Consent required"


class ConsentWithdrawn(HubError):
    """Data that flowed on the person's consent is not served since the consent was withdrawn.

    403, not 451: the caller is who it claims and the resource exists, but the hub refuses to
    make it available (RFC 9110 §15.5.4), and no other credentials would change that. 451
    (RFC 7725) is meant for blocking on a legal demand by an outside authority and asks for a
    ``blocked-by`` link naming it; here the hub itself applies Art. 7(3) GDPR. A 403 is also
    what the gateway records in the audit as a refused call, so the data protection officer
    sees every read refused for a withdrawn consent. Clients tell it from other 403s by its
    ``type``; ``withdrawn_at`` says since when (absent when no consent was ever recorded).
    """

    status, slug, title = 403, "consent-withdrawn", "Consent withdrawn"


class InsufficientScope(HubError):
    status, slug, title = 403, "insufficient-scope", "Insufficient scope"


class NotFound(HubError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(HubError):
    status, slug, title = 409, "conflict", "Conflict"


class IllegalTransition(HubError):
    status, slug, title = 409, "illegal-transition", "Illegal status transition"


class IdempotencyConflict(HubError):
    status, slug, title = 409, "idempotency-key-reused", "Idempotency key reused"


class PayloadTooLarge(HubError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class UnsupportedMediaType(HubError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class TooManyRequests(HubError):
    """A rate limit or quota is used up; ``retry_after`` says when to come back (seconds)."""

    status, slug, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, detail: str, *, retry_after: float, **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        """The ``Retry-After`` value: whole seconds, at least 1 (RFC 9110 §10.2.3)."""
        return str(max(1, math.ceil(self.retry_after)))
