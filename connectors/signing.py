"""Signatures on webhook deliveries, verified by the receiving partner.

Every push is signed as Standard Webhooks (https://www.standardwebhooks.com/) prescribe:
``webhook-id`` (the event id, the same on every retry), ``webhook-timestamp`` (Unix seconds
of the attempt) and ``webhook-signature: v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}." +
body)>``, several space-separated while a partner's secret is being rotated. Receivers
reject more than 5 minutes of skew, which bounds replays (FIT-Connect callbacks use the same
window), and can verify with any Standard Webhooks library.

The key is the partner's configured signing secret: a secret written ``whsec_<base64>`` (the
spec's format) is those decoded bytes, any other secret is its UTF-8 bytes, so the partner's
``whsec_`` secret for a library is ``"whsec_" + base64(secret)`` (``standard_secret``).

Deprecated: the same HMAC as hex in ``X-TalentHub-Signature: v1=<hex>`` with
``X-TalentHub-Message-Id`` and ``X-TalentHub-Timestamp``, keyed with the secret's UTF-8 bytes
as before. It is sent until 30 June 2027 and not removed before every push partner has
confirmed verifying ``webhook-signature`` (docs/partners.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"  # noqa: S105  (the spec's prefix, not a secret)
LEGACY_SIGNATURE_HEADER = "X-TalentHub-Signature"
LEGACY_MESSAGE_ID_HEADER = "X-TalentHub-Message-Id"
LEGACY_TIMESTAMP_HEADER = "X-TalentHub-Timestamp"
MAX_SKEW_SECONDS = 300
VERSION = "v1"


class SignatureError(ValueError):
    """The signature is missing, malformed, stale or wrong."""


def key(secret: str) -> bytes:
    """The HMAC key of a configured secret: ``whsec_`` + base64 decoded, else its UTF-8."""
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError("a whsec_ signing secret must be base64 after the prefix") from exc


def standard_secret(secret: str) -> str:
    """The ``whsec_…`` form of a configured secret, as Standard Webhooks libraries take it."""
    return SECRET_PREFIX + base64.b64encode(key(secret)).decode()


def mac(key_bytes: bytes, message_id: str, timestamp: int, body: bytes) -> bytes:
    """HMAC-SHA256 over id, timestamp and the exact body bytes."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return hmac.new(key_bytes, signed, hashlib.sha256).digest()


def sign(
    secrets: str | Sequence[str], message_id: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    """The headers that authenticate one delivery; with several secrets (a rotation, newest
    first) ``webhook-signature`` carries one signature per secret."""
    chosen = [secrets] if isinstance(secrets, str) else list(secrets)
    ts = int(now if now is not None else time.time())
    signatures = " ".join(
        f"{VERSION},{base64.b64encode(mac(key(s), message_id, ts, body)).decode()}" for s in chosen
    )
    legacy = mac(chosen[0].encode(), message_id, ts, body).hex()
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: signatures,
        LEGACY_MESSAGE_ID_HEADER: message_id,
        LEGACY_TIMESTAMP_HEADER: str(ts),
        LEGACY_SIGNATURE_HEADER: f"{VERSION}={legacy}",
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> str:
    """Check a delivery's Standard Webhooks signature, or while they are still sent the
    deprecated ``X-TalentHub-*`` one; return its message id or raise SignatureError."""
    lower = {k.lower(): v for k, v in headers.items()}
    if SIGNATURE_HEADER in lower:
        return _verify_standard(secret, lower, body, now)
    if LEGACY_SIGNATURE_HEADER.lower() in lower:
        return _verify_legacy(secret, lower, body, now)
    raise SignatureError("signature headers missing")


def _verify_standard(
    secret: str, headers: Mapping[str, str], body: bytes, now: float | None
) -> str:
    message_id, ts = _id_and_time(headers, ID_HEADER, TIMESTAMP_HEADER, now)
    expected = mac(key(secret), message_id, ts, body)
    for entry in headers[SIGNATURE_HEADER].split():
        version, _, encoded = entry.partition(",")
        if version != VERSION:
            continue  # another scheme (v1a, a later version): not ours to judge
        try:
            given = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        if hmac.compare_digest(expected, given):
            return message_id
    raise SignatureError("signature does not match")


def _verify_legacy(secret: str, headers: Mapping[str, str], body: bytes, now: float | None) -> str:
    message_id, ts = _id_and_time(
        headers, LEGACY_MESSAGE_ID_HEADER.lower(), LEGACY_TIMESTAMP_HEADER.lower(), now
    )
    given = headers[LEGACY_SIGNATURE_HEADER.lower()]
    if not given.startswith(f"{VERSION}="):
        raise SignatureError("signature headers missing")
    expected = mac(secret.encode(), message_id, ts, body).hex().encode()
    if not hmac.compare_digest(expected, given.removeprefix(f"{VERSION}=").encode()):
        raise SignatureError("signature does not match")
    return message_id


def _id_and_time(
    headers: Mapping[str, str], id_name: str, ts_name: str, now: float | None
) -> tuple[str, int]:
    message_id, ts_text = headers.get(id_name), headers.get(ts_name)
    if not message_id or not ts_text:
        raise SignatureError("signature headers missing")
    try:
        ts = int(ts_text)
    except ValueError as exc:
        raise SignatureError("timestamp is not an integer") from exc
    current = now if now is not None else time.time()
    if abs(current - ts) > MAX_SKEW_SECONDS:
        raise SignatureError("timestamp outside the 5-minute window")
    return message_id, ts
