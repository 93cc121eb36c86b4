"""Partner simulators: stand-ins for UDE, the chambers, the Jobcenter and the Amt.

A simulator checks what a real partner would (our bearer token from its own issuer, the
Standard Webhooks signature; the deprecated ``X-TalentHub-Signature`` only where that is
missing), records each message once and reports status changes back through the hub's public
API. ``/_sim/*`` endpoints switch its behaviour at runtime; they exist only here, never on the hub.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

import httpx
import uvicorn
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from pydantic import BaseModel, Field

from connectors.signing import SignatureError, verify

log = logging.getLogger(__name__)

ALG = "ES256"
ACCESS_TOKEN_TTL_SECONDS = 300
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
START_TIMEOUT_SECONDS = 10.0
# 401: the hub client fetched a fresh token meanwhile; the others ask us to come back later.
RETRY_STATUSES = frozenset({401, 408, 425, 429})
Mode = Literal["ok", "slow", "error500", "reject400", "malformed", "throttle429"]
#: One progression step: wait this many seconds (times ``time_scale``), then report this change.
Step = tuple[float, dict[str, Any]]


@dataclass(frozen=True)
class Progression:
    """The status changes a partner reports per referral type, and how fast."""

    steps: Mapping[str, Sequence[Step]]
    time_scale: float = 1.0
    #: Called with (delivery, hub) after the last step was reported, e.g. to start a follow-up.
    then: Callable[[Delivery, HubClient], None] | None = None
    attempts: int = 5
    backoff_seconds: float = 0.5

    def referral_type(self, body: Any, depth: int = 3) -> str | None:
        """The first known referral type among the body's values (native formats differ)."""
        if isinstance(body, str):
            return body if body in self.steps else None
        values = body.values() if isinstance(body, dict) else body if isinstance(body, list) else []
        found = (self.referral_type(v, depth - 1) for v in values if depth > 0)
        return next((f for f in found if f), None)


class HubClient:
    """Reports status changes through the hub's canonical API as one partner."""

    def __init__(
        self, hub_url: str, client_id: str, client_secret: str, *, scope: str | None = None
    ) -> None:
        self._hub_url = hub_url.rstrip("/")
        self._lock = threading.Lock()
        self._oauth = OAuth2Client(
            client_id=client_id,
            client_secret=client_secret,
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106
            scope=scope,
            token_endpoint=f"{self._hub_url}/oauth/token",
            grant_type="client_credentials",
            leeway=30,
            timeout=5.0,
            follow_redirects=False,
        )

    def change_status(self, referral_id: str, change: dict[str, Any], idempotency_key: str) -> int:
        """POST one status change; the HTTP status, or an httpx/OAuth error when unreachable."""
        with self._lock:
            if not self._oauth.token:
                self._oauth.fetch_token()
            response = self._oauth.post(
                f"{self._hub_url}/v1/referrals/{referral_id}/status",
                json=change,
                headers={"Idempotency-Key": idempotency_key},
            )
            if response.status_code == 401:
                self._oauth.fetch_token()  # the retry of this step brings the fresh token
            return int(response.status_code)

    def send_native(self, kind: str, message: dict[str, Any]) -> int:
        """POST a message in this partner's native format; the HTTP status."""
        with self._lock:
            if not self._oauth.token:
                self._oauth.fetch_token()
            url = f"{self._hub_url}/v1/connectors/{kind}/messages"
            return int(self._oauth.post(url, json=message).status_code)

    def close(self) -> None:
        """Release connections."""
        self._oauth.close()


class ProgressionRunner:
    """Plays progressions in background threads; a stopped runner starts nothing new."""

    def __init__(self, progression: Progression, hub: HubClient) -> None:
        self._progression = progression
        self._hub = hub
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def on_delivery(self, delivery: Delivery) -> None:
        """Begin reporting the steps for a newly requested referral of a known type."""
        requested = delivery.event_type.removesuffix(".v1").endswith("referral.requested")
        # A partner that performs one type only (the chambers) gets no type in its format.
        only = next(iter(self._progression.steps)) if len(self._progression.steps) == 1 else None
        referral_type = self._progression.referral_type(delivery.body) or only
        if not requested or not delivery.referral_id or not referral_type or self._stop.is_set():
            return
        args = (delivery, self._progression.steps[referral_type])
        thread = threading.Thread(target=self._play, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def close(self) -> None:
        """Stop waiting steps and release the hub client."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._hub.close()

    def _play(self, delivery: Delivery, steps: Sequence[Step]) -> None:
        event_id, referral_id = delivery.event_id, delivery.referral_id or ""
        for index, (delay, change) in enumerate(steps):
            if self._stop.wait(delay * self._progression.time_scale):
                return
            # The key makes a retried step a no-op at the hub if the first try got through.
            status = self._report(referral_id, change, f"{event_id}:{index}")
            if status is None or not 200 <= status < 300:
                log.warning("simulator.progression_stopped", extra={"step": index})
                return
        if self._progression.then is not None:
            self._progression.then(delivery, self._hub)

    def _report(self, referral_id: str, change: dict[str, Any], key: str) -> int | None:
        pause = self._progression.backoff_seconds  # real seconds: the hub recovers in real time
        status: int | None = None
        for _ in range(self._progression.attempts):
            try:
                status = self._hub.change_status(referral_id, change, key)
            except (httpx.HTTPError, OAuthError, ValueError):
                status = None  # hub down: worth another try
            if status is not None and status not in RETRY_STATUSES and status < 500:
                return status
            if self._stop.wait(pause):
                return status
            pause *= 2
        return status


@dataclass
class Delivery:
    """One message as the simulated partner recorded it."""

    event_id: str
    event_type: str
    referral_id: str | None
    body: Any
    #: The ``Idempotency-Key`` of every receipt, in order (None where it was missing).
    idempotency_keys: list[str | None] = field(default_factory=list)

    @property
    def received_count(self) -> int:
        """How many times the message arrived."""
        return len(self.idempotency_keys)


class ModeChange(BaseModel):
    """Body of ``POST /_sim/mode``."""

    mode: Mode
    delay: float = Field(0.0, ge=0, le=120)


@dataclass
class SimulatorState:
    """What one simulated partner holds: its signing key, deliveries, mode and progressions."""

    kind: str
    client_id: str
    client_secret: str
    signing_secret: str
    runner: ProgressionRunner | None
    key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256", auto_kid=True))
    lock: threading.Lock = field(default_factory=threading.Lock)
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    mode: ModeChange = field(default_factory=lambda: ModeChange(mode="ok"))

    @property
    def issuer(self) -> str:
        """Our issuer (``iss``); the webhook is the audience."""
        return f"urn:talenthub:simulator:{self.kind}"

    def record(self, delivery: Delivery, idempotency_key: str | None) -> bool:
        """Keep a delivery once per message id; True if it is new (a repeat is not applied)."""
        with self.lock:
            kept = self.deliveries.setdefault(delivery.event_id, delivery)
            kept.idempotency_keys.append(idempotency_key)
            return kept is delivery

    def issue_token(self) -> str:
        """A short-lived access token (RFC 9068 profile) for our one client."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": f"{self.issuer}:webhook",
            "sub": self.client_id,
            "client_id": self.client_id,
            "iat": now,
            "exp": now + ACCESS_TOKEN_TTL_SECONDS,
            "jti": str(uuid.uuid4()),
        }
        header = {"alg": ALG, "typ": "at+jwt", "kid": self.key.kid}
        return jwt.encode(header, claims, self.key, algorithms=[ALG])

    def token_valid(self, token: str) -> bool:
        """Whether a bearer token is one of ours, for us, and current."""
        try:
            decoded = jwt.decode(token, self.key, algorithms=[ALG])
            if decoded.header.get("typ") != "at+jwt":
                return False
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": f"{self.issuer}:webhook"},
                exp={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError):
            return False
        return True

    def client_valid(self, authorization: str) -> bool:
        """Whether an HTTP Basic header names our client (RFC 6749 §2.3.1 encoding)."""
        scheme, _, encoded = authorization.partition(" ")
        try:
            client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        given = f"{unquote(client_id)}:{unquote(secret)}".encode()
        expected = f"{self.client_id}:{self.client_secret}".encode()
        return scheme.lower() == "basic" and hmac.compare_digest(given, expected)


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    """An RFC 9457 problem document."""
    title = HTTPStatus(status).phrase
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status, headers=headers, media_type="application/problem+json")


def create_simulator_app(
    *,
    kind: str,
    client_id: str,
    client_secret: str,
    signing_secret: str,
    progression: Progression,
    hub: HubClient | None,
) -> FastAPI:
    """A FastAPI app that behaves like one partner's system; ``hub=None`` reports nothing."""
    runner = ProgressionRunner(progression, hub) if hub is not None else None
    state = SimulatorState(kind, client_id, client_secret, signing_secret, runner)
    app = FastAPI(title=f"{kind} simulator", openapi_url=None)
    app.state.simulator = state

    @app.post("/oauth/token")
    async def token(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode(errors="replace")))
        if not state.client_valid(request.headers.get("authorization", "")):
            body = {"error": "invalid_client"}
            headers = {**NO_STORE, "WWW-Authenticate": 'Basic realm="simulator"'}
            return JSONResponse(body, 401, headers=headers)
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, 400, headers=NO_STORE)
        token, ttl = state.issue_token(), ACCESS_TOKEN_TTL_SECONDS
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": ttl}
        return JSONResponse(answer, headers=NO_STORE)

    @app.post("/webhook")
    async def webhook(request: Request) -> Response:
        return await _receive(state, request)

    @app.get("/_sim/received")
    def received() -> list[dict[str, Any]]:
        with state.lock:
            return [
                {**asdict(d), "received_count": d.received_count} for d in state.deliveries.values()
            ]

    @app.post("/_sim/mode")
    def set_mode(change: ModeChange) -> dict[str, Any]:
        state.mode = change
        return change.model_dump()

    return app


async def _receive(state: SimulatorState, request: Request) -> Response:
    body = await request.body()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not state.token_valid(token.strip()):
        challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        return problem(401, "bearer token missing or invalid", challenge)
    try:
        message_id = verify(state.signing_secret, request.headers, body)
    except SignatureError as exc:
        return problem(401, f"signature rejected: {exc}")
    mode = state.mode
    if mode.mode == "slow":
        await asyncio.sleep(mode.delay)
    refusal = _refusal(mode)
    if refusal is not None:
        return refusal
    try:
        document = json.loads(body) if body.strip() else None
    except ValueError:
        return problem(400, "body is not JSON")
    delivery = Delivery(
        event_id=message_id,
        event_type=request.headers.get("x-talenthub-event-type", ""),
        referral_id=request.headers.get("x-talenthub-referral-id"),
        body=document,
    )
    if state.record(delivery, request.headers.get("idempotency-key")) and state.runner is not None:
        state.runner.on_delivery(delivery)
    if mode.mode == "malformed":
        return Response(b"<html>Service Temporarily Unavailable", 200, media_type="text/html")
    return JSONResponse({"received": message_id})


def _refusal(mode: ModeChange) -> Response | None:
    if mode.mode == "error500":
        return problem(500, "simulated partner failure")
    if mode.mode == "reject400":
        return problem(400, "simulated rejection: field 'person' is not accepted")
    if mode.mode == "throttle429":
        retry_after = {"Retry-After": str(max(1, round(mode.delay)))}
        return problem(429, "simulated rate limit", retry_after)
    return None


class SimulatorServer:
    """Serves an ASGI app with uvicorn on 127.0.0.1 from a background thread."""

    def __init__(self, app: Any, *, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.app = app
        self.host = host
        self.port = port or _free_port(host)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> SimulatorServer:
        """Start listening; returns self."""
        self.up()
        return self

    def stop(self) -> None:
        """Stop listening and stop the simulator's progressions."""
        self.down()
        state = getattr(getattr(self.app, "state", None), "simulator", None)
        if isinstance(state, SimulatorState) and state.runner is not None:
            state.runner.close()

    def up(self) -> None:
        """Listen (again) on the same port."""
        if self._thread is not None and self._thread.is_alive():
            return
        config = uvicorn.Config(self.app, self.host, self.port, lifespan="off", log_level="warning")
        config.timeout_graceful_shutdown = 2  # a "slow" request must not hold up down()
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="simulator")
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"simulator server did not start on {self.url}")
            time.sleep(0.02)

    def down(self) -> None:
        """Stop listening, so that connections are refused (a partner outage)."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=START_TIMEOUT_SECONDS)
        self._server = self._thread = None


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
