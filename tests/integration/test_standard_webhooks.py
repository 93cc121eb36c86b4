"""A partner that verifies pushes with the ``standardwebhooks`` library accepts ours.

The pushes are real: the HttpDeliverer posts over loopback HTTP to a receiver that checks
them with that library as docs/partners.md tells partners to, with the ``whsec_`` secret
derived from the signing secret configured at the hub.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from connectors import signing
from connectors.base import DeliveryResult, OutboundMessage
from connectors.config import ConnectorConfig
from connectors.http import HttpDeliverer
from connectors.simulator import SimulatorServer

pytestmark = pytest.mark.integration

SIGNING_SECRET = "partner-signing-secret-for-tests"


class Receiver:
    """A partner's webhook that verifies with ``standardwebhooks`` and records every push."""

    def __init__(self, whsec: str) -> None:
        self.hook = Webhook(whsec)
        self.pushes: list[tuple[dict[str, str], bytes]] = []
        self.app = FastAPI()
        self.app.post("/oauth/token")(self.token)
        self.app.post("/webhook")(self.webhook)

    def token(self) -> dict[str, Any]:
        return {"access_token": "t", "token_type": "Bearer", "expires_in": 300}

    async def webhook(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        self.pushes.append((headers, body))
        try:
            self.hook.verify(body, headers)
        except WebhookVerificationError as exc:
            return JSONResponse({"error": str(exc)}, 401)
        return JSONResponse({"received": headers["webhook-id"]})


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[SimulatorServer] = []

    def start(receiver: Receiver) -> SimulatorServer:
        servers.append(SimulatorServer(receiver.app).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def push(server: SimulatorServer, message: OutboundMessage, secret: Any) -> DeliveryResult:
    deliverer = HttpDeliverer(
        endpoint_url=f"{server.url}/webhook",
        token_endpoint=f"{server.url}/oauth/token",
        client_id="talent-hub",
        client_secret="client-secret-for-tests",
        signing_secret=secret,
    )
    try:
        return deliverer.deliver(message)
    finally:
        deliverer.close()


def message() -> OutboundMessage:
    body = {"vorgang": {"art": "recognition.assessment"}, "name": "Łucja Öztürk"}
    return OutboundMessage(
        event_id=str(uuid.uuid4()),
        event_type="de.duisburg.talenthub.referral.requested.v1",
        referral_id=str(uuid.uuid4()),
        body=json.dumps(body, ensure_ascii=False).encode(),
    )


def test_the_library_accepts_a_push_and_refuses_it_tampered(serve: Any) -> None:
    receiver = Receiver(signing.standard_secret(SIGNING_SECRET))
    msg = message()

    result = push(serve(receiver), msg, SIGNING_SECRET)

    assert result == DeliveryResult("delivered", status_code=200)
    [(headers, body)] = receiver.pushes
    assert headers["webhook-id"] == msg.event_id
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["webhook-signature"].startswith("v1,")
    assert receiver.hook.verify(body, headers) == json.loads(msg.body)
    tampered = body.replace("Öztürk".encode(), b"Oeztuerk")
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        receiver.hook.verify(tampered, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.standard_secret("another-secret")).verify(body, headers)


def test_the_library_refuses_a_stale_push(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = Receiver(signing.standard_secret(SIGNING_SECRET))
    server = serve(receiver)
    late = time.time() - signing.MAX_SKEW_SECONDS - 30
    monkeypatch.setattr(signing.time, "time", lambda: late)  # the signing clock only

    result = push(server, message(), SIGNING_SECRET)

    assert result.outcome == "transient" and result.status_code == 401
    headers, body = receiver.pushes[-1]
    with pytest.raises(WebhookVerificationError, match="too old"):
        receiver.hook.verify(body, headers)


def test_a_whsec_secret_is_used_as_the_library_reads_it(serve: Any) -> None:
    whsec = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    receiver = Receiver(whsec)

    assert push(serve(receiver), message(), whsec).outcome == "delivered"
    assert signing.standard_secret(whsec) == whsec


def test_during_a_rotation_either_secret_verifies(serve: Any) -> None:
    old, new = "the-old-signing-secret", "the-new-signing-secret"
    on_old = serve(Receiver(signing.standard_secret(old)))
    on_new = serve(Receiver(signing.standard_secret(new)))

    assert push(on_old, message(), [new, old]).outcome == "delivered"
    assert push(on_new, message(), [new, old]).outcome == "delivered"
    assert push(on_new, message(), old).status_code == 401


def test_a_connector_config_in_rotation_signs_with_both_secrets(
    serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UDE_HMAC", "the-new-signing-secret")
    monkeypatch.setenv("UDE_HMAC_OLD", "the-old-signing-secret")
    config = ConnectorConfig(
        signing_secret_ref="env:UDE_HMAC", previous_signing_secret_ref="env:UDE_HMAC_OLD"
    )
    secrets_now = config.signing_secrets(allow_values=False)
    on_old = serve(Receiver(signing.standard_secret("the-old-signing-secret")))
    on_new = serve(Receiver(signing.standard_secret("the-new-signing-secret")))

    assert secrets_now == ["the-new-signing-secret", "the-old-signing-secret"]
    assert push(on_old, message(), secrets_now).outcome == "delivered"
    assert push(on_new, message(), secrets_now).outcome == "delivered"
    after = config.model_copy(update={"previous_signing_secret_ref": None})
    assert push(on_old, message(), after.signing_secrets()).status_code == 401


def test_the_deprecated_headers_still_verify_as_before(serve: Any) -> None:
    receiver = Receiver(signing.standard_secret(SIGNING_SECRET))
    assert push(serve(receiver), message(), SIGNING_SECRET).outcome == "delivered"
    [(headers, body)] = receiver.pushes

    mid, ts = headers["x-talenthub-message-id"], headers["x-talenthub-timestamp"]
    signed = f"{mid}.{ts}.".encode() + body
    expected = hmac.new(SIGNING_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert headers["x-talenthub-signature"] == f"v1={expected}"
    assert mid == headers["webhook-id"] and ts == headers["webhook-timestamp"]


def test_a_malformed_whsec_secret_pauses_the_partner(serve: Any) -> None:
    receiver = Receiver(signing.standard_secret(SIGNING_SECRET))

    result = push(serve(receiver), message(), "whsec_not base64!")

    assert result.outcome == "transient"
    assert result.reason == "signing secret malformed"
    assert receiver.pushes == [], "nothing unsigned leaves the hub"
