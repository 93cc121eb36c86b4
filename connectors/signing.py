"""HMAC-SHA256 signatures on webhook deliveries, verified by the receiving partner.

The signature covers message id, timestamp and the exact body bytes:
``hex(HMAC-SHA256(secret, f"{message_id}.{timestamp}.".encode() + body))``, sent as
``X-TalentHub-Signature: v1=<hex>`` with ``X-TalentHub-Message-Id`` and
``X-TalentHub-Timestamp`` (Unix seconds). Receivers reject more than 5 minutes of skew, which
bounds replays (FIT-Connect callbacks use the same window).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

SIGNATURE_HEADER = "X-TalentHub-Signature"
MESSAGE_ID_HEADER = "X-TalentHub-Message-Id"
TIMESTAMP_HEADER = "X-TalentHub-Timestamp"
MAX_SKEW_SECONDS = 300
VERSION = "v1"


class SignatureError(ValueError):
    """The signature is missing, malformed, stale or wrong."""


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 over id, timestamp and body."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, message_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The three headers that authenticate one delivery."""
    ts = int(now if now is not None else time.time())
    return {
        MESSAGE_ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: f"{VERSION}={signature(secret, message_id, ts, body)}",
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> str:
    """Check a delivery's signature; return its message id or raise SignatureError."""
    lower = {k.lower(): v for k, v in headers.items()}
    message_id = lower.get(MESSAGE_ID_HEADER.lower())
    ts_text = lower.get(TIMESTAMP_HEADER.lower())
    sig = lower.get(SIGNATURE_HEADER.lower(), "")
    if not message_id or not ts_text or not sig.startswith(f"{VERSION}="):
        raise SignatureError("signature headers missing")
    try:
        ts = int(ts_text)
    except ValueError as exc:
        raise SignatureError("timestamp is not an integer") from exc
    current = now if now is not None else time.time()
    if abs(current - ts) > MAX_SKEW_SECONDS:
        raise SignatureError("timestamp outside the 5-minute window")
    expected = signature(secret, message_id, ts, body)
    if not hmac.compare_digest(expected, sig.removeprefix(f"{VERSION}=")):
        raise SignatureError("signature does not match")
    return message_id
