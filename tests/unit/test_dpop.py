"""DPoP proofs (RFC 9449 §4.3) checked on their own: form, key, signature, claims, nonces."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from hub.auth.dpop import (
    Nonces,
    ProofRejected,
    access_token_hash,
    check_proof,
    normalize_htu,
)

URL = "https://hub.test/v1/referrals"
KEY = ECKey.generate_key("P-256")
RSA = RSAKey.generate_key(2048)
TOKEN = "header.payload.signature"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def proof(
    key: Any = KEY,
    alg: str = "ES256",
    header: dict[str, Any] | None = None,
    **overrides: Any,
) -> str:
    claims: dict[str, Any] = {
        "jti": str(uuid.uuid4()),
        "htm": "GET",
        "htu": URL,
        "iat": int(time.time()),
        "ath": access_token_hash(TOKEN),
    }
    claims.update(overrides)
    head = {"typ": "dpop+jwt", "alg": alg, "jwk": key.as_dict(private=False), **(header or {})}
    head = {k: v for k, v in head.items() if v is not None}
    return jwt.encode(head, {k: v for k, v in claims.items() if v is not None}, key, [alg])


def unsigned(alg: str, secret: bytes | None = None) -> str:
    head = {"typ": "dpop+jwt", "alg": alg, "jwk": KEY.as_dict(private=False)}
    body = {"jti": "j", "htm": "GET", "htu": URL, "iat": int(time.time())}
    signing_input = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(body).encode())}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest() if secret else b""
    return f"{signing_input}.{b64(sig)}"


def check(token: str, method: str = "GET", url: str = URL, access_token: str | None = TOKEN):
    return check_proof(
        token,
        method=method,
        url=url,
        now=time.time(),
        max_age=60,
        skew=30,
        access_token=access_token,
    )


def test_valid_proof_gives_the_key_thumbprint() -> None:
    checked = check(proof(jti="j-1", nonce="n-1"))
    assert checked.jkt == KEY.thumbprint()
    assert (checked.jti, checked.nonce) == ("j-1", "n-1")


@pytest.mark.parametrize(
    ("key", "alg"),
    [(RSA, "PS256"), (OKPKey.generate_key("Ed25519"), "EdDSA")],
)
def test_other_allowed_algorithms(key: Any, alg: str) -> None:
    assert check(proof(key, alg)).jkt == key.thumbprint()


def test_token_endpoint_proof_needs_no_ath() -> None:
    checked = check(proof(ath=None, htm="POST"), method="POST", access_token=None)
    assert checked.jkt == KEY.thumbprint()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        # form and header
        (lambda: "not-a-jwt", "malformed"),
        (lambda: "a" * 9000, "too large"),
        (lambda: proof(header={"typ": None}), "typ is not dpop+jwt"),
        (lambda: proof(header={"typ": "JWT"}), "typ is not dpop+jwt"),
        (lambda: proof(header={"typ": "at+jwt"}), "typ is not dpop+jwt"),
        # algorithm allow-list
        (lambda: unsigned("none"), "algorithm not allowed"),
        (lambda: unsigned("HS256", b"k" * 32), "algorithm not allowed"),
        (lambda: proof(OctKey.generate_key(256), "HS256"), "algorithm not allowed"),
        (lambda: proof(RSA, "RS256"), "algorithm not allowed"),
        (lambda: proof(ECKey.generate_key("P-384"), "ES384"), "algorithm not allowed"),
        # the key in the jwk header
        (lambda: proof(header={"jwk": None}), "no jwk"),
        (lambda: proof(header={"jwk": KEY.as_dict(private=True)}), "private key"),
        (lambda: proof(header={"jwk": {**RSA.as_dict(private=True)}}), "private key"),
        (lambda: proof(header={"jwk": RSA.as_dict(private=False)}), "does not fit"),
        (lambda: proof(RSAKey.generate_key(1024), "PS256"), "RSA key too short"),
        (
            lambda: proof(ECKey.generate_key("P-256"), header={"jwk": KEY.as_dict(private=False)}),
            "signature invalid",
        ),
        # claims bound to the request
        (lambda: proof(htm="POST"), "htm does not match"),
        (lambda: proof(htm="get"), "htm does not match"),
        (lambda: proof(htu="https://hub.test/v1/inbox"), "htu does not match"),
        (lambda: proof(htu="https://evil.test/v1/referrals"), "htu does not match"),
        (lambda: proof(htu="http://hub.test/v1/referrals"), "htu does not match"),
        (lambda: proof(htu="https://hub.test:8443/v1/referrals"), "htu does not match"),
        (lambda: proof(htu="https://user@hub.test/v1/referrals"), "htu does not match"),
        (lambda: proof(htu=None), "htu does not match"),
        (lambda: proof(ath=access_token_hash("another.token.value")), "ath does not match"),
        (lambda: proof(ath=None), "ath does not match"),
        # time and uniqueness
        (lambda: proof(iat=int(time.time()) + 120), "issued in the future"),
        (lambda: proof(iat=int(time.time()) - 120), "too old"),
        (lambda: proof(iat=None), "missing iat"),
        (lambda: proof(iat="now"), "missing iat"),
        (lambda: proof(jti=None), "missing jti"),
        (lambda: proof(jti=""), "missing jti"),
    ],
)
def test_bad_proof_is_rejected(make: Any, reason: str) -> None:
    with pytest.raises(ProofRejected, match=re.escape(reason)):
        check(make())


def test_iat_within_the_window_and_skew_is_accepted() -> None:
    assert check(proof(iat=int(time.time()) - 80)).jkt
    assert check(proof(iat=int(time.time()) + 20)).jkt


@pytest.mark.parametrize(
    "htu",
    [
        "https://hub.test/v1/referrals",
        "HTTPS://HUB.test/v1/referrals",
        "https://hub.test:443/v1/referrals",
        "https://hub.test/v1/referrals?page=2",
        "https://hub.test/v1/referrals#top",
        "https://hub.test/v1/%72eferrals",
        "https://hub.test/v1/x/../referrals",
        "https://hub.test/./v1/referrals",
    ],
)
def test_htu_is_compared_after_normalisation(htu: str) -> None:
    assert normalize_htu(htu) == "https://hub.test/v1/referrals"
    assert check(proof(htu=htu)).jkt


def test_normalisation_keeps_what_matters() -> None:
    assert normalize_htu("https://hub.test") == "https://hub.test/"
    assert normalize_htu("http://[::1]:8000/a") == "http://[::1]:8000/a"
    assert normalize_htu("https://hub.test/a%2fb") == "https://hub.test/a%2Fb"
    assert normalize_htu("https://hub.test/a/") != normalize_htu("https://hub.test/a")
    assert normalize_htu("ftp://hub.test/a") is None
    assert normalize_htu("https://hub.test:99999/a") is None


def test_nonce_is_accepted_within_its_lifetime_only() -> None:
    nonces = Nonces(b"s" * 32, lifetime=300, skew=30)
    now = time.time()
    nonce = nonces.issue(now)
    assert nonces.valid(nonce, now + 299)
    assert not nonces.valid(nonce, now + 301)
    assert not nonces.valid(nonce, now - 60)  # issued "in the future"
    assert not Nonces(b"t" * 32, 300, 30).valid(nonce, now)
    assert nonces.issue(now) != Nonces(b"t" * 32, 300, 30).issue(now)


@pytest.mark.parametrize("nonce", ["", "x", "!!!!", "A" * 32, b64(b"\0" * 24)])
def test_forged_nonce_is_rejected(nonce: str) -> None:
    assert not Nonces(b"s" * 32, 300, 30).valid(nonce, time.time())


def test_tampered_nonce_timestamp_is_rejected() -> None:
    nonces = Nonces(b"s" * 32, 300, 30)
    raw = bytearray(base64.urlsafe_b64decode(nonces.issue(time.time()) + "=="))
    raw[7] ^= 1
    assert not nonces.valid(b64(bytes(raw)), time.time())
