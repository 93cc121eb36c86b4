"""Push delivery against the partner simulators over real loopback HTTP.

Every partner kind gets a simulator with its own token endpoint and signature check; the
HttpDeliverer must get through exactly when a real partner would let it, and classify every
way a partner can fail as the delivery consumer needs it (transient vs permanent).
"""

from __future__ import annotations

import base64
import importlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from connectors.base import DeliveryResult, OutboundMessage
from connectors.http import HttpDeliverer
from connectors.signing import sign
from connectors.simulator import (
    HubClient,
    Progression,
    SimulatorServer,
    create_simulator_app,
)
from schemas.catalogue import load_catalogue
from schemas.lifecycle import REASONS, Role, Status, allowed_role

pytestmark = pytest.mark.integration

KINDS = ["university", "chamber", "jobcenter", "authority"]
CLIENT_ID = "talent-hub"
CLIENT_SECRET = "sim-client-secret-for-tests"
SIGNING_SECRET = "sim-signing-secret-for-tests"
REQUESTED = "de.duisburg.talenthub.referral.requested.v1"
STATUS_CHANGED = "de.duisburg.talenthub.referral.status-changed.v1"
CREDENTIALS = {
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
    "signing_secret": SIGNING_SECRET,
}


def wait_for(predicate: Callable[[], Any], timeout: float) -> None:
    """Poll until ``predicate()`` is truthy; a deadline, not a sleep, bounds the test."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"condition not met within {timeout} s"
        time.sleep(0.05)


def kind_module(kind: str) -> Any:
    return importlib.import_module(f"connectors.{kind}.simulator")


def message(
    referral_type: str = "recognition.assessment", event_type: str = REQUESTED
) -> OutboundMessage:
    referral_id = str(uuid.uuid4())
    body = {"vorgang": {"art": referral_type, "id": referral_id}, "name": "Li"}
    return OutboundMessage(
        event_id=str(uuid.uuid4()),
        event_type=event_type,
        referral_id=referral_id,
        body=httpx.Request("POST", "/", json=body).read(),
    )


def deliverer(server: SimulatorServer, **overrides: Any) -> HttpDeliverer:
    options: dict[str, Any] = {
        "endpoint_url": f"{server.url}/webhook",
        "token_endpoint": f"{server.url}/oauth/token",
        **CREDENTIALS,
        "connect_timeout": 5.0,
        "read_timeout": 10.0,
        **overrides,
    }
    return HttpDeliverer(**options)


def received(server: SimulatorServer) -> list[dict[str, Any]]:
    answer = httpx.get(f"{server.url}/_sim/received", timeout=10)
    answer.raise_for_status()
    return list(answer.json())


def set_mode(server: SimulatorServer, mode: str, delay: float = 0.0) -> None:
    answer = httpx.post(f"{server.url}/_sim/mode", json={"mode": mode, "delay": delay}, timeout=10)
    answer.raise_for_status()


def sim_token(server: SimulatorServer) -> str:
    answer = httpx.post(
        f"{server.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


@pytest.fixture(params=KINDS)
def partner(request: pytest.FixtureRequest) -> Iterator[SimulatorServer]:
    """A simulator of one partner kind, progressions off."""
    app = kind_module(request.param).build(hub=None, **CREDENTIALS)
    server = SimulatorServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    """A simulator of no particular kind, for the behaviour all kinds share."""
    app = create_simulator_app(kind="test", progression=Progression({}), hub=None, **CREDENTIALS)
    server = SimulatorServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def push(sim: SimulatorServer) -> Iterator[HttpDeliverer]:
    d = deliverer(sim)
    yield d
    d.close()


def test_each_partner_kind_receives_a_signed_delivery_once(partner: SimulatorServer) -> None:
    push = deliverer(partner)
    msg = message()
    try:
        first, again = push.deliver(msg), push.deliver(msg)
    finally:
        push.close()

    assert first == DeliveryResult("delivered", status_code=200)
    assert again.outcome == "delivered"
    [record] = received(partner)
    assert record["event_id"] == msg.event_id
    assert record["event_type"] == REQUESTED
    assert record["referral_id"] == msg.referral_id
    assert record["body"]["vorgang"]["id"] == msg.referral_id
    assert record["received_count"] == 2
    assert record["idempotency_keys"] == [msg.event_id, msg.event_id]


def test_a_tampered_body_is_refused_and_has_no_effect(sim: SimulatorServer) -> None:
    original = b'{"vorgang": {"art": "recognition.assessment"}}'
    headers = {
        "Authorization": f"Bearer {sim_token(sim)}",
        "Content-Type": "application/json",
        "X-TalentHub-Event-Type": REQUESTED,
        **sign(SIGNING_SECRET, str(uuid.uuid4()), original),
    }
    tampered = original.replace(b"assessment", b"adaptation")

    answer = httpx.post(f"{sim.url}/webhook", content=tampered, headers=headers, timeout=10)

    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert received(sim) == []
    intact = httpx.post(f"{sim.url}/webhook", content=original, headers=headers, timeout=10)
    assert intact.status_code == 200


@pytest.mark.parametrize(
    ("kept", "status"),
    [
        ({"webhook-id", "webhook-timestamp", "webhook-signature"}, 200),
        ({"X-TalentHub-Message-Id", "X-TalentHub-Timestamp", "X-TalentHub-Signature"}, 200),
        ({"webhook-id", "webhook-timestamp", "X-TalentHub-Signature"}, 401),
        (set(), 401),
    ],
)
def test_the_simulator_checks_standard_webhooks_headers_or_else_the_deprecated_ones(
    sim: SimulatorServer, kept: set[str], status: int
) -> None:
    body = b'{"vorgang": {"art": "recognition.assessment"}}'
    signed = sign(SIGNING_SECRET, str(uuid.uuid4()), body)
    headers = {
        "Authorization": f"Bearer {sim_token(sim)}",
        "Content-Type": "application/json",
        **{name: value for name, value in signed.items() if name in kept},
    }

    answer = httpx.post(f"{sim.url}/webhook", content=body, headers=headers, timeout=10)

    assert answer.status_code == status, answer.text
    assert len(received(sim)) == (1 if status == 200 else 0)


def test_a_wrong_standard_signature_is_refused_beside_a_right_deprecated_one(
    sim: SimulatorServer,
) -> None:
    body = b"{}"
    headers = {
        "Authorization": f"Bearer {sim_token(sim)}",
        **sign(SIGNING_SECRET, str(uuid.uuid4()), body),
        "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode(),
    }

    answer = httpx.post(f"{sim.url}/webhook", content=body, headers=headers, timeout=10)

    assert answer.status_code == 401 and "does not match" in answer.json()["detail"]


def test_a_token_not_issued_by_the_partner_is_refused(sim: SimulatorServer) -> None:
    body = b"{}"
    other = create_simulator_app(kind="test", progression=Progression({}), hub=None, **CREDENTIALS)
    with_other_key = SimulatorServer(other).start()
    try:
        foreign = sim_token(with_other_key)  # same issuer name, different signing key
    finally:
        with_other_key.stop()

    for authorization in (f"Bearer {foreign}", "Bearer not-a-jwt", "Basic dGFsZW50LWh1Yjp4"):
        headers = {"Authorization": authorization, **sign(SIGNING_SECRET, "m-1", body)}
        answer = httpx.post(f"{sim.url}/webhook", content=body, headers=headers, timeout=10)
        assert answer.status_code == 401, authorization
        assert answer.headers["www-authenticate"].startswith("Bearer")
    assert received(sim) == []


def test_wrong_client_secret_is_a_transient_failure(sim: SimulatorServer) -> None:
    push = deliverer(sim, client_secret="wrong-secret")
    try:
        result = push.deliver(message())
    finally:
        push.close()

    assert result.outcome == "transient"
    assert "invalid_client" in result.reason
    assert received(sim) == []


def test_partner_errors_are_transient(sim: SimulatorServer, push: HttpDeliverer) -> None:
    set_mode(sim, "error500")
    assert push.deliver(message()) == DeliveryResult(
        "transient", reason="partner answered 500", status_code=500
    )

    set_mode(sim, "malformed")
    malformed = push.deliver(message())
    assert (malformed.outcome, malformed.reason) == ("transient", "malformed response")


def test_a_rejection_is_permanent_and_keeps_only_the_status(
    sim: SimulatorServer, push: HttpDeliverer
) -> None:
    set_mode(sim, "reject400")

    result = push.deliver(message())

    # The partner's error text may name a person: only the status is kept.
    assert (result.outcome, result.status_code) == ("permanent", 400)
    assert result.reason == "partner answered 400 (rejected)"
    assert result.details == {}
    assert received(sim) == []


def test_a_slow_partner_is_a_transient_timeout(sim: SimulatorServer) -> None:
    set_mode(sim, "slow", delay=2.0)
    push = deliverer(sim, read_timeout=0.5)
    try:
        started = time.monotonic()
        result = push.deliver(message())
        elapsed = time.monotonic() - started
    finally:
        push.close()

    assert result.outcome == "transient"
    assert result.reason.startswith("timeout")
    assert elapsed < 1.9


def test_throttling_passes_retry_after_on(sim: SimulatorServer, push: HttpDeliverer) -> None:
    set_mode(sim, "throttle429", delay=7)

    result = push.deliver(message())

    assert (result.outcome, result.status_code, result.retry_after) == ("transient", 429, 7.0)


def test_a_partner_that_is_down_is_transient_until_it_is_back(
    sim: SimulatorServer, push: HttpDeliverer
) -> None:
    assert push.deliver(message()).outcome == "delivered"  # token cached, connection pooled
    msg = message()

    sim.down()
    down = push.deliver(msg)
    sim.up()
    back = push.deliver(msg)

    assert (down.outcome, down.reason) == ("transient", "connection failed (ConnectError)")
    assert back.outcome == "delivered"
    assert [r["received_count"] for r in received(sim) if r["event_id"] == msg.event_id] == [1]


class Quirky:
    """A partner that misbehaves in ways the simulator modes don't cover."""

    def __init__(self, webhook: Response) -> None:
        self.webhook = webhook
        self.tokens_issued = 0
        self.rejected_tokens: set[str] = set()

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/oauth/token")
        def token() -> dict[str, Any]:
            self.tokens_issued += 1
            return {"access_token": f"t{self.tokens_issued}", "token_type": "Bearer"}

        @app.post("/webhook")
        def webhook(request: Request) -> Response:
            token = request.headers["authorization"].removeprefix("Bearer ")
            if token in self.rejected_tokens:
                return JSONResponse({"title": "token revoked"}, 401)
            return self.webhook

        return app


@pytest.fixture
def quirky(request: pytest.FixtureRequest) -> Iterator[tuple[Quirky, HttpDeliverer]]:
    partner = Quirky(request.param)
    server = SimulatorServer(partner.app()).start()
    push = deliverer(server, max_response_bytes=1000)
    yield partner, push
    push.close()
    server.stop()


@pytest.mark.parametrize(
    "quirky",
    [JSONResponse({"padding": "x" * 2000}), Response(b"x" * 2000, 200, media_type="text/plain")],
    indirect=True,
    ids=["json", "unsized"],
)
def test_an_oversized_answer_is_transient(quirky: tuple[Quirky, HttpDeliverer]) -> None:
    result = quirky[1].deliver(message())

    assert (result.outcome, result.reason) == ("transient", "response too large")


@pytest.mark.parametrize(
    "quirky",
    [Response(status_code=307, headers={"Location": "http://example.org/"})],
    indirect=True,
)
def test_a_redirect_is_never_followed(quirky: tuple[Quirky, HttpDeliverer]) -> None:
    result = quirky[1].deliver(message())

    assert (result.outcome, result.status_code) == ("permanent", 307)


@pytest.mark.parametrize("quirky", [Response(status_code=204)], indirect=True)
def test_the_token_is_reused_and_renewed_once_after_a_401(
    quirky: tuple[Quirky, HttpDeliverer],
) -> None:
    partner, push = quirky
    assert [push.deliver(message()).outcome for _ in range(3)] == ["delivered"] * 3
    assert partner.tokens_issued == 1

    partner.rejected_tokens.add("t1")
    assert push.deliver(message()).outcome == "delivered"
    assert partner.tokens_issued == 2

    partner.rejected_tokens.add("t2")
    partner.rejected_tokens.add("t3")
    refused = push.deliver(message())
    assert (refused.outcome, refused.status_code) == ("transient", 401)
    assert partner.tokens_issued == 3  # one renewal per delivery, not a loop


class FakeHub:
    """The hub's token endpoint and status API, recording what the simulators report."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.applied: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/oauth/token")
        def token(request: Request) -> dict[str, Any]:
            assert request.headers["authorization"].startswith("Basic ")
            return {"access_token": "hub-token", "token_type": "Bearer", "expires_in": 300}

        @app.post("/v1/referrals/{referral_id}/status")
        def status(referral_id: str, change: dict[str, Any], request: Request) -> Response:
            if request.headers.get("authorization") != "Bearer hub-token":
                return JSONResponse({"title": "unauthorized"}, 401)
            key = request.headers["idempotency-key"]
            with self.lock:
                self.calls.append((referral_id, key, change))
                self.applied.setdefault(key, change)  # the hub's Idempotency-Key semantics
                if len(self.calls) <= self.fail_first:
                    return JSONResponse({"title": "answer lost"}, 503)  # applied, answer lost
            return JSONResponse({"id": referral_id, "status": change["status"]})

        return app


def chamber_with_hub(hub_url: str, **progression: Any) -> SimulatorServer:
    steps = kind_module("chamber").PROGRESSIONS
    app = create_simulator_app(
        kind="chamber",
        progression=Progression(steps, **progression),
        hub=HubClient(hub_url, "ihk-fosa-client", "ihk-fosa-secret"),
        **CREDENTIALS,
    )
    return SimulatorServer(app).start()


def test_a_requested_referral_plays_its_progression_once() -> None:
    hub = FakeHub()
    hub_server = SimulatorServer(hub.app()).start()
    chamber = chamber_with_hub(hub_server.url, time_scale=0.01)
    push = deliverer(chamber)
    msg = message("recognition.assessment")
    try:
        assert push.deliver(msg).outcome == "delivered"
        assert push.deliver(msg).outcome == "delivered"  # a redelivery starts nothing
        other_event = message("recognition.assessment", STATUS_CHANGED)
        assert push.deliver(other_event).outcome == "delivered"  # not a request: no progression
        steps = kind_module("chamber").PROGRESSIONS["recognition.assessment"]
        wait_for(lambda: len(hub.calls) >= len(steps), timeout=30)
        time.sleep(0.5)  # time for a second progression, if one had wrongly started
    finally:
        push.close()
        chamber.stop()
        hub_server.stop()

    assert [c for _, _, c in hub.calls] == [change for _, change in steps]
    assert [k for _, k, _ in hub.calls] == [f"{msg.event_id}:{i}" for i in range(len(steps))]
    assert {r for r, _, _ in hub.calls} == {msg.referral_id}


def test_a_step_is_retried_with_the_same_key_until_the_hub_answers() -> None:
    hub = FakeHub(fail_first=1)
    hub_server = SimulatorServer(hub.app()).start()
    chamber = chamber_with_hub(hub_server.url, time_scale=0.01, backoff_seconds=0.2)
    push = deliverer(chamber)
    msg = message("recognition.assessment")
    try:
        hub_server.down()
        assert push.deliver(msg).outcome == "delivered"
        time.sleep(0.3)  # the first step finds the hub down
        hub_server.up()
        wait_for(lambda: len(hub.applied) >= 5, timeout=30)
    finally:
        push.close()
        chamber.stop()
        hub_server.stop()

    keys = [k for _, k, _ in hub.calls]
    assert keys[:2] == [f"{msg.event_id}:0"] * 2  # the 503 after applying was retried
    assert sorted(hub.applied) == [f"{msg.event_id}:{i}" for i in range(5)]


@pytest.mark.parametrize("kind", KINDS)
def test_progressions_are_legal_for_the_catalogue_and_lifecycle(kind: str) -> None:
    catalogue = load_catalogue()
    for type_id, steps in kind_module(kind).PROGRESSIONS.items():
        rtype = catalogue.get(type_id)
        assert rtype is not None and kind in rtype.performer, type_id
        current = Status.REQUESTED
        for _, change in steps:
            target = Status(change["status"])
            assert allowed_role(current, target) == Role.PERFORMER, (type_id, current, target)
            assert current != target or change.get("business_status"), (type_id, target)
            assert change.get("business_status", rtype.business_statuses[0]) in (
                rtype.business_statuses
            )
            assert change.get("reason") is None or change["reason"] in REASONS[target]
            assert change.get("outcome") is None or target == Status.COMPLETED
            current = target
        assert current == Status.COMPLETED, type_id
