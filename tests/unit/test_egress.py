"""The egress guard refuses URLs the hub must not call (SSRF), before and while connecting."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import httpcore
import httpx
import pytest

from connectors.base import OutboundMessage
from connectors.config import ConnectorConfig
from connectors.egress import (
    DEVELOPMENT,
    PRODUCTION,
    EgressPolicy,
    EgressRefused,
    _CheckedBackend,
    check_url,
    client_options,
    guarded_client,
    guarded_transport,
    request_hook,
)
from connectors.http import HttpDeliverer

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"

#: What our fake DNS knows.
DNS: dict[str, list[str]] = {
    "partner.example": [PUBLIC_V4, PUBLIC_V6],
    "localhost": ["127.0.0.1", "::1"],
    "internal.example": ["10.1.2.3"],
    "metadata.example": ["169.254.169.254"],
    "mixed.example": [PUBLIC_V4, "192.168.0.10"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "cgnat.example": ["100.64.0.7"],
}


def resolve(host: str, port: int) -> list[str]:
    if host not in DNS:
        raise EgressRefused(f"cannot resolve host {host!r}")
    return DNS[host]


REFUSED_IN_PRODUCTION = [
    # schemes
    "http://partner.example/webhook",
    "ftp://partner.example/x",
    "file:///etc/passwd",
    "gopher://partner.example:70/_x",
    "//partner.example/x",
    # credentials and parser tricks
    "https://user:pw@partner.example/",
    "https://user@partner.example/",
    "https://partner.example\\@127.0.0.1/",
    "https://",
    # loopback, private, link-local, metadata
    "https://127.0.0.1/",
    "https://127.0.0.1:8443/",
    "https://localhost/",
    "https://[::1]/",
    "https://10.0.0.1/",
    "https://172.16.0.1/",
    "https://192.168.1.1/",
    "https://169.254.169.254/latest/meta-data/",
    "https://metadata.example/",
    "https://internal.example/",
    "https://[fe80::1]/",
    "https://[fc00::1]/",
    "https://[fec0::1]/",
    # unspecified, multicast, reserved, shared address space
    "https://0.0.0.0/",
    "https://[::]/",
    "https://224.0.0.1/",
    "https://[ff02::1]/",
    "https://240.0.0.1/",
    "https://255.255.255.255/",
    "https://100.64.0.1/",
    "https://cgnat.example/",
    # other spellings of 127.0.0.1
    "https://2130706433/",
    "https://0x7f000001/",
    "https://0x7f.1/",
    "https://017700000001/",
    "https://127.1/",
    # IPv4 inside IPv6
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:7f00:1]/",
    "https://[::ffff:169.254.169.254]/",
    "https://[::127.0.0.1]/",
    "https://[64:ff9b::a00:1]/",
    "https://[2002:c0a8:101::]/",
    "https://mapped.example/",
    # one bad address among good ones is enough
    "https://mixed.example/",
    # unresolvable
    "https://nowhere.example/",
]

ALLOWED_IN_PRODUCTION = [
    "https://partner.example/webhook",
    "https://partner.example:8443/oauth/token?x=1",
    "HTTPS://PARTNER.EXAMPLE/",
    f"https://{PUBLIC_V4}/",
    f"https://[{PUBLIC_V6}]/",
    "https://[::ffff:93.184.215.14]/",
    "https://[2002:5db8:d70e::]/",
]


@pytest.mark.parametrize("url", REFUSED_IN_PRODUCTION)
def test_production_refuses(url: str) -> None:
    with pytest.raises(EgressRefused):
        check_url(url, PRODUCTION, resolve)


@pytest.mark.parametrize("url", ALLOWED_IN_PRODUCTION)
def test_production_allows_public_https(url: str) -> None:
    check_url(url, PRODUCTION, resolve)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8081/webhook", "http://localhost/x", "https://10.0.0.1/"]
)
def test_development_allows_http_and_loopback(url: str) -> None:
    check_url(url, DEVELOPMENT, resolve)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pw@127.0.0.1/",
        "ftp://127.0.0.1/",
        "file:///etc/passwd",
        "http://a\\@127.0.0.1/",
        "javascript:alert(1)",
    ],
)
def test_development_still_refuses_credentials_and_other_schemes(url: str) -> None:
    with pytest.raises(EgressRefused):
        check_url(url, DEVELOPMENT, resolve)


def test_policy_per_profile() -> None:
    assert EgressPolicy.for_profile("production") == EgressPolicy() == PRODUCTION
    assert PRODUCTION.schemes == {"https"} and not PRODUCTION.allow_private
    assert DEVELOPMENT.schemes == {"http", "https"} and DEVELOPMENT.allow_private


def test_without_a_resolver_only_the_url_is_checked() -> None:
    check_url("https://internal.example/", PRODUCTION)  # names are checked when called
    with pytest.raises(EgressRefused):
        check_url("https://10.0.0.1/", PRODUCTION)


# ---------------------------------------------------------------------- every request


def recording_transport(status: int = 200, **headers: str) -> tuple[httpx.MockTransport, list[str]]:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(status, headers=headers, json={})

    return httpx.MockTransport(handle), seen


@pytest.mark.parametrize(
    "url", ["https://internal.example/jwks", "https://127.0.0.1/", "http://partner.example/"]
)
def test_the_request_hook_stops_a_request_before_it_is_sent(url: str) -> None:
    transport, seen = recording_transport()
    with (
        httpx.Client(
            transport=transport, event_hooks={"request": [request_hook(PRODUCTION, resolve)]}
        ) as http,
        pytest.raises(EgressRefused) as refused,
    ):
        http.get(url)
    assert seen == []
    assert isinstance(refused.value, httpx.HTTPError)  # callers treat it as a network failure


def test_redirects_are_never_followed() -> None:
    transport, seen = recording_transport(302, location="https://169.254.169.254/")
    options = {**client_options(PRODUCTION, resolve), "transport": transport}
    with httpx.Client(**options) as http:
        r = http.get("https://partner.example/jwks")
        assert r.status_code == 302
        assert seen == ["https://partner.example/jwks"]
        # Even a caller that asks for redirects does not get to the target: the hook refuses it.
        with pytest.raises(EgressRefused):
            http.get("https://partner.example/jwks", follow_redirects=True)
    assert seen == ["https://partner.example/jwks"] * 2


# ---------------------------------------------------------------------- connecting


class FakeBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self.connected: list[str] = []

    def connect_tcp(
        self, host: str, port: int, *args: Any, **kwargs: Any
    ) -> httpcore.NetworkStream:
        self.connected.append(host)
        raise httpcore.ConnectError("fake backend: not connecting for real")


def rebinding(first: str, then: str) -> Callable[[str, int], list[str]]:
    """A DNS answer that changes after the first lookup (DNS rebinding)."""
    answers = [first]

    def resolve_once(host: str, port: int) -> list[str]:
        return [answers.pop()] if answers else [then]

    return resolve_once


def test_connecting_rechecks_the_address_and_pins_it() -> None:
    inner = FakeBackend()
    backend = _CheckedBackend(inner, resolve)
    with pytest.raises(httpcore.ConnectError):
        backend.connect_tcp("partner.example", 443)
    # The checked addresses in turn (the fake refuses each), never the name itself.
    assert inner.connected == [PUBLIC_V4, PUBLIC_V6]
    for host in ("internal.example", "localhost", "127.0.0.1", "mixed.example"):
        with pytest.raises(EgressRefused):
            backend.connect_tcp(host, 443)
    assert inner.connected == [PUBLIC_V4, PUBLIC_V6]
    with pytest.raises(EgressRefused):
        backend.connect_unix_socket("/var/run/docker.sock")


def test_dns_rebinding_after_the_hook_is_caught_when_connecting() -> None:
    # The hook sees a public address; a moment later the name points at loopback.
    resolver = rebinding(PUBLIC_V4, "127.0.0.1")
    with guarded_client(PRODUCTION, resolver) as http, pytest.raises(EgressRefused) as refused:
        http.get("https://rebind.example/")
    assert "127.0.0.1" in str(refused.value)


def test_development_needs_no_connect_check() -> None:
    assert guarded_transport(DEVELOPMENT) is None
    assert isinstance(guarded_transport(PRODUCTION), httpx.HTTPTransport)


# ---------------------------------------------------------------------- where URLs are set


def message() -> OutboundMessage:
    return OutboundMessage(
        event_id="e-1",
        event_type="t",
        referral_id=None,
        body=b"{}",
        content_type="application/json",
    )


@pytest.mark.parametrize(
    ("endpoint", "token_endpoint", "stage"),
    [
        (f"https://{PUBLIC_V4}/webhook", "https://169.254.169.254/token", "token"),
        ("https://10.1.2.3/webhook", f"https://{PUBLIC_V4}/token", None),
        (f"https://{PUBLIC_V4}/webhook", f"http://{PUBLIC_V4}/token", "token"),
    ],
)
def test_push_delivery_refuses_forbidden_endpoints(
    endpoint: str, token_endpoint: str, stage: str | None
) -> None:
    seen: list[str] = []

    def partner(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.path == "/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        return httpx.Response(200, json={})

    deliverer = HttpDeliverer(
        endpoint_url=endpoint,
        token_endpoint=token_endpoint,
        client_id="hub",
        client_secret="s3cret-s3cret",
        signing_secret="sign-sign-sign",
        transport=httpx.MockTransport(partner),
        egress=PRODUCTION,
    )
    result = deliverer.deliver(message())
    deliverer.close()
    assert result.outcome == "transient", "a forbidden endpoint pauses the partner"
    assert "egress policy" in (result.reason or "")
    assert all(url.startswith(f"https://{PUBLIC_V4}/") for url in seen)
    if stage:
        assert result.details == {"stage": stage}


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("endpoint_url", "https://user:pw@partner.example/webhook"),
        ("endpoint_url", "ftp://partner.example/webhook"),
        ("token_endpoint", "file:///etc/passwd"),
        ("token_endpoint", "https://a\\@b/"),
    ],
)
def test_connector_config_refuses_what_no_profile_allows(field: str, url: str) -> None:
    config = {"mode": "push", "endpoint_url": "https://partner.example/webhook", field: url}
    with pytest.raises(ValueError, match=field):
        ConnectorConfig.model_validate(config)


def test_settings_refuse_bad_issuer_urls() -> None:
    from pydantic import ValidationError

    from hub.settings import Settings

    production = {
        "profile": "production",
        "database_url": "postgresql+psycopg://hub@db/hub",
        "kafka_bootstrap_servers": "kafka:9092",
        "kafka_allow_plaintext": True,  # the issuer checks are the subject here
        "issuer": "https://hub.example",
        "master_keys": {"k1": "A" * 43 + "="},
        "master_key_id": "k1",
    }
    issuer = {"issuer": "https://idp.example", "jwks_url": "https://idp.example/jwks"}
    Settings(**production, external_issuers=[issuer])
    for bad in ("http://idp.example/jwks", "https://169.254.169.254/jwks", "https://u:p@idp/"):
        with pytest.raises(ValidationError, match=r"external_issuers\[0\]\.jwks_url"):
            Settings(**production, external_issuers=[{**issuer, "jwks_url": bad}])
    with pytest.raises(ValidationError, match="staff_oidc_issuer"):
        Settings(**production, staff_oidc_issuer="http://login.example")
    Settings(external_issuers=[{**issuer, "jwks_url": "http://127.0.0.1:9/jwks"}])
    with pytest.raises(ValidationError, match="credentials"):
        Settings(external_issuers=[{**issuer, "jwks_url": "http://u:p@127.0.0.1:9/jwks"}])


def test_refusal_reasons_name_the_problem() -> None:
    from connectors.egress import refusal

    assert refusal(ipaddress.ip_address("127.0.0.1")) == "loopback"
    assert refusal(ipaddress.ip_address("169.254.169.254")) == "link-local"
    assert refusal(ipaddress.ip_address("::ffff:10.0.0.1")) == "embeds 10.0.0.1, private"
    assert refusal(ipaddress.ip_address(PUBLIC_V4)) is None
