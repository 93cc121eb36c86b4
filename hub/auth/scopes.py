"""The scopes a partner client may be granted on the hub API."""

from __future__ import annotations

SCOPES: tuple[str, ...] = (
    "referrals:write",
    "referrals:read",
    "status:write",
    "inbox:read",
    "timeline:read",
    "consent:read",
    "consent:write",
)

#: What each scope lets a client do, as the OAuth 2.0 security scheme of the OpenAPI names it.
SCOPE_DESCRIPTIONS: dict[str, str] = {
    "referrals:write": "Request referrals to other partners",
    "referrals:read": "Read and list the referrals you request or perform",
    "status:write": "Report status changes of referrals you take part in",
    "inbox:read": "Fetch and acknowledge the messages routed to you",
    "timeline:read": "Read the timeline of persons in your referrals",
    "consent:read": "Read the consents of persons in your referrals or consents",
    "consent:write": "Record and withdraw consents",
}
