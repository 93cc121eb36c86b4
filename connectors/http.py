"""Push delivery to one partner over HTTPS (design §7).

Each attempt carries an OAuth access token from the partner's own token endpoint (client
credentials, ``client_secret_basic``), the Standard Webhooks signature of ``connectors.signing``
(with the deprecated ``X-TalentHub-*`` one) and the event id as ``Idempotency-Key``.
Redirects are never followed and the partner's answer is read only up to a limit, so a
misbehaving partner can neither redirect our signed messages elsewhere nor exhaust our memory.
Both the webhook and the token endpoint go through the egress guard (``connectors.egress``):
a URL the policy forbids is a transient failure that pauses the partner.

A failure's reason is the status and a fixed phrase (``partner answered 422 (rejected)``), or the
exception class for transport errors, never text the partner wrote: a partner that echoes a
name in its error body would otherwise leak it into logs, the delivery state, dead-letter
headers and the ``delivery-failed`` event. The error body is not read at all.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from email.utils import parsedate_to_datetime

import httpx
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import OAuth2Client

from connectors.base import DeliveryResult, OutboundMessage
from connectors.egress import DEVELOPMENT, EgressPolicy, EgressRefused, client_options
from connectors.signing import sign

log = logging.getLogger(__name__)

EVENT_TYPE_HEADER = "X-TalentHub-Event-Type"
REFERRAL_ID_HEADER = "X-TalentHub-Referral-Id"
# Refresh before expiry so a token never lapses between fetching it and the partner checking it.
TOKEN_REFRESH_MARGIN_SECONDS = 30.0
# RFC 6749 §5.1 makes expires_in optional; assume a short life rather than forever.
DEFAULT_TOKEN_LIFETIME_SECONDS = 300.0
# The error codes of RFC 6749 §5.2; any other ``error`` a token endpoint sends is partner text.
OAUTH_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
)
# 408 Request Timeout, 425 Too Early, 429 Too Many Requests: the partner asks us to come back.
TRANSIENT_STATUSES = frozenset({408, 425, 429})


class _TokenUnavailable(Exception):
    """The partner's token endpoint gave us no usable token."""


class _SecretMalformed(Exception):
    """A signing secret written ``whsec_…`` is not base64 after the prefix."""


class _TooLarge(Exception):
    """The partner's answer exceeds the response limit."""


class HttpDeliverer:
    """Delivers outbound messages to one partner's webhook; implements ``Deliverer``."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        token_endpoint: str,
        client_id: str,
        client_secret: str,
        signing_secret: str | Sequence[str],
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        max_response_bytes: int = 65536,
        scope: str | None = None,
        transport: httpx.BaseTransport | None = None,
        egress: EgressPolicy = DEVELOPMENT,
    ) -> None:
        self._endpoint_url = endpoint_url
        self._token_endpoint = token_endpoint
        self._signing_secret = signing_secret
        self._max_response_bytes = max_response_bytes
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
        )
        # The hub passes the policy of its profile (consumers/registry.py); the default suits
        # tests and tools that talk to simulators on loopback.
        guard = client_options(egress)
        if transport is not None:
            guard["transport"] = transport
        self._http = OAuth2Client(
            client_id=client_id,
            client_secret=client_secret,
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106
            scope=scope,
            timeout=timeout,
            **guard,
        )

    def deliver(self, message: OutboundMessage) -> DeliveryResult:
        """Try to deliver once; never raises for partner-side failures."""
        try:
            token = self._access_token()
            result = self._post(message, token)
            if result.status_code == 401:
                # The partner may have rotated its keys or revoked the token early: one retry.
                self._drop_token(token)
                result = self._post(message, self._access_token())
        except _TokenUnavailable as exc:
            result = DeliveryResult("transient", reason=str(exc), details={"stage": "token"})
        except _SecretMalformed:
            # Every message to this partner would fail alike: pause it, don't dead-letter.
            reason = "signing secret malformed"
            result = DeliveryResult("transient", reason=reason, details={"stage": "signing"})
        log.info(
            "delivery.attempted",
            extra={
                "event_id": message.event_id,
                "outcome": result.outcome,
                "status_code": result.status_code,
                "reason": result.reason,
            },
        )
        return result

    def close(self) -> None:
        """Release connections."""
        self._http.close()

    def _post(self, message: OutboundMessage, token: str) -> DeliveryResult:
        headers = self._headers(message, token)
        try:
            with self._http.stream(
                "POST",
                self._endpoint_url,
                content=message.body,
                headers=headers,
                withhold_token=True,
            ) as response:
                return _classify(response, self._max_response_bytes)
        except httpx.TimeoutException as exc:
            return DeliveryResult("transient", reason=f"timeout ({type(exc).__name__})")
        except EgressRefused as exc:
            return DeliveryResult("transient", reason=f"endpoint refused by egress policy: {exc}")
        except httpx.HTTPError as exc:
            return DeliveryResult("transient", reason=f"connection failed ({type(exc).__name__})")

    def _headers(self, message: OutboundMessage, token: str) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": message.content_type,
            "Accept": "application/json",
            "Idempotency-Key": message.event_id,
            EVENT_TYPE_HEADER: message.event_type,
        }
        if message.referral_id:
            headers[REFERRAL_ID_HEADER] = message.referral_id
        try:
            headers.update(sign(self._signing_secret, message.event_id, message.body))
        except ValueError as exc:
            raise _SecretMalformed from exc
        return headers

    def _access_token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._refresh_at:
                self._token, lifetime = self._fetch_token()
                self._refresh_at = time.monotonic() + lifetime - TOKEN_REFRESH_MARGIN_SECONDS
            return self._token

    def _drop_token(self, token: str) -> None:
        with self._lock:
            if self._token == token:  # another thread may already hold a fresh one
                self._token = None

    def _fetch_token(self) -> tuple[str, float]:
        try:
            answer = self._http.fetch_token(self._token_endpoint, grant_type="client_credentials")
        except httpx.HTTPStatusError as exc:
            raise _TokenUnavailable(f"token endpoint answered {exc.response.status_code}") from exc
        except EgressRefused as exc:
            raise _TokenUnavailable(f"token endpoint refused by egress policy: {exc}") from exc
        except httpx.HTTPError as exc:
            raise _TokenUnavailable(f"token endpoint unreachable ({type(exc).__name__})") from exc
        except OAuthError as exc:
            # Wrong credentials affect every message to this partner: pause it, don't dead-letter.
            code = exc.error if exc.error in OAUTH_ERRORS else "unrecognised error"
            raise _TokenUnavailable(f"token endpoint refused: {code}") from exc
        except ValueError as exc:
            raise _TokenUnavailable("token endpoint answer malformed") from exc
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise _TokenUnavailable("token endpoint answer has no access_token")
        lifetime = answer.get("expires_in")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float):
            lifetime = DEFAULT_TOKEN_LIFETIME_SECONDS
        return token, float(lifetime)


def _classify(response: httpx.Response, limit: int) -> DeliveryResult:
    status = response.status_code
    if 200 <= status < 300:
        return _delivered(response, limit)
    if 300 <= status < 400:
        # A signed message must reach the configured endpoint only, never a redirect target.
        return DeliveryResult("permanent", reason="redirect not followed", status_code=status)
    if status == 401:
        # Bad credentials or signing secret concern the whole partner: pause, don't dead-letter.
        return DeliveryResult(
            "transient", reason="partner refused our credentials", status_code=401
        )
    if status in TRANSIENT_STATUSES or status >= 500:
        return DeliveryResult(
            "transient",
            reason=f"partner answered {status}",
            status_code=status,
            retry_after=_retry_after(response.headers.get("retry-after")),
        )
    return DeliveryResult(
        "permanent", reason=f"partner answered {status} (rejected)", status_code=status
    )


def _delivered(response: httpx.Response, limit: int) -> DeliveryResult:
    status = response.status_code
    try:
        body = _read(response, limit)
    except _TooLarge:
        return DeliveryResult("transient", reason="response too large", status_code=status)
    if body.strip():
        try:
            json.loads(body)
        except ValueError:
            return DeliveryResult("transient", reason="malformed response", status_code=status)
    return DeliveryResult("delivered", status_code=status)


def _read(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of the body, or _TooLarge; never buffers more than that."""
    declared = response.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date, RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²".isdigit() is True, float("²") fails
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
