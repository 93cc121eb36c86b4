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
