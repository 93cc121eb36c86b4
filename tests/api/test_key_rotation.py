"""Signing-key rotation, JWKS caching and refetching, and keys the token header cannot choose."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from joserfc import jws, jwt
from joserfc.jwk import ECKey, RSAKey

import hub.auth.tokens as tokens_module
from hub.app import create_app
from hub.auth.keys import (
    CURRENT_KEY_CACHE_SECONDS,
    JWKS_MAX_AGE_SECONDS,
    SigningKeys,
    list_keys,
    rotate,
)
from hub.auth.models import SigningKey
from hub.auth.tokens import TokenValidator, build_token_validator
from hub.cli import main
from hub.db import unit_of_work, utcnow
from hub.errors import Conflict, Unauthenticated
from hub.settings import ExternalIssuer, Settings
from tests.hubtest import make_hub

ISSUER = "https://hub.test"
IDP = "https://idp.duisburg.test"


class FakeTime:
    """Stands in for the ``time`` module inside hub.auth.tokens: a monotonic clock we move."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return time.time()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(tokens_module, "time", fake)
    return fake


class World:
    """A migrated hub whose gateway signs with a key it never caches."""

    def __init__(self, database_url: str, tmp_path: Path) -> None:
        self.hub, self.partners = make_hub(database_url, tmp_path, issuer=ISSUER)
        self.settings = self.hub.settings
        self.app = create_app(self.hub, kafka_check=lambda: True)
        self.app.state.signing_keys = SigningKeys(cache_seconds=0)

    def validator(self) -> TokenValidator:
        """A fresh validator, as a newly started gateway has."""
        return build_token_validator(
            settings=self.settings,
            session_factory=self.hub.session_factory,
            signing_keys=SigningKeys(),
        )

    def rotate(self, **kw: Any) -> Any:
        with unit_of_work(self.hub.session_factory) as session:
            return rotate(session, self.settings, **kw)

    def shift(self, kid: str, **fields: Any) -> None:
        """Move a key's timestamps, as if time had passed."""
        with unit_of_work(self.hub.session_factory) as session:
            row = session.get(SigningKey, kid)
            assert row is not None
            for name, value in fields.items():
                setattr(row, name, value)


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    w = World(database_url, tmp_path)
    yield w
    w.hub.engine.dispose()


@pytest.fixture
def http(world: World) -> Iterator[TestClient]:
    with TestClient(world.app, base_url=ISSUER) as c:
        yield c


def kid_of(token: str) -> str:
    return str(jws.extract_compact(token.encode()).headers()["kid"])


def published(http: TestClient) -> list[str]:
    return [k["kid"] for k in http.get("/.well-known/jwks.json").json()["keys"]]


# --- rotation -----------------------------------------------------------------------------------


def test_jwks_says_how_long_it_may_be_cached(http: TestClient) -> None:
    r = http.get("/.well-known/jwks.json")
    assert r.headers["cache-control"] == f"public, max-age={JWKS_MAX_AGE_SECONDS}"


def test_new_key_is_published_at_once_but_signs_only_later(http: TestClient, world: World) -> None:
    old_token = world.partners.token(http, "ude")
    old = kid_of(old_token)
    before = utcnow()
    done = world.rotate(now=before)
    skew, ttl = world.settings.clock_skew_seconds, world.settings.access_token_ttl_seconds
    assert done.not_before == before + timedelta(seconds=JWKS_MAX_AGE_SECONDS + skew)
    last_use = done.not_before + timedelta(seconds=CURRENT_KEY_CACHE_SECONDS + ttl + skew)
    assert done.retiring == {old: last_use}
    assert sorted(published(http)) == sorted([old, done.kid])
    # Still signing with the old key: some resource server may not have the new one yet.
    assert kid_of(world.partners.token(http, "ude")) == old

    world.shift(done.kid, not_before=utcnow())  # its time has come
    new_token = world.partners.token(http, "ude")
    assert kid_of(new_token) == done.kid
    for token in (old_token, new_token):  # the old key keeps verifying until it retires
        r = http.get("/v1/referrals", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text

    world.shift(old, retired_at=utcnow() - timedelta(seconds=1))
    assert published(http) == [done.kid]
    with pytest.raises(Unauthenticated, match="key id unknown"):
        world.validator().validate(old_token)
    assert world.validator().validate(new_token).partner_id == "ude"


def test_key_list_shows_each_state(world: World) -> None:
    with unit_of_work(world.hub.session_factory) as session:
        first = SigningKeys().current(session).kid
    now = utcnow()
    done = world.rotate(now=now)
    with world.hub.session_factory() as session:
        states = {k.kid: k.state for k in list_keys(session, now=now)}
        assert states == {first: "signing", done.kid: "pending"}
        later = done.not_before + timedelta(seconds=1)
        assert {k.kid: k.state for k in list_keys(session, now=later)} == {
            first: "verifying",
            done.kid: "signing",
        }
        gone = done.retiring[first] + timedelta(seconds=1)
        assert {k.kid: k.state for k in list_keys(session, now=gone)}[first] == "retired"


def test_second_rotation_waits_for_the_pending_key(world: World) -> None:
    world.rotate()  # the first key: nobody holds an older JWKS, so it signs at once
    pending = world.rotate()
    with pytest.raises(Conflict, match=f"key {pending.kid} is still pending"):
        world.rotate()


def test_first_rotation_signs_at_once(world: World) -> None:
    now = utcnow()
    done = world.rotate(now=now)
    assert done.not_before == now and done.retiring == {}


def test_immediate_rotation_retires_the_old_key_now(http: TestClient, world: World) -> None:
    old_token = world.partners.token(http, "ude")
    done = world.rotate(immediate=True)
    assert published(http) == [done.kid]
    assert kid_of(world.partners.token(http, "ude")) == done.kid
    with pytest.raises(Unauthenticated, match="key id unknown"):
        world.validator().validate(old_token)


def test_cli_rotates_and_lists(world: World, database_url: str, tmp_path: Path) -> None:
    env = {"HUB_DATABASE_URL": database_url, "HUB_DATA_DIR": str(tmp_path), "HUB_ISSUER": ISSUER}
    runner = CliRunner()
    first = runner.invoke(main, ["keys", "rotate"], env=env)
    assert first.exit_code == 0, first.output
    second = runner.invoke(main, ["keys", "rotate"], env=env)
    assert second.exit_code == 0, second.output
    assert "leaves the JWKS at" in second.output
    third = runner.invoke(main, ["keys", "rotate"], env=env)
    assert third.exit_code != 0 and "still pending" in third.output
    listing = runner.invoke(main, ["keys", "list"], env=env)
    assert listing.exit_code == 0, listing.output
    lines = listing.output.strip().splitlines()
    assert [line.split()[-1] for line in lines] == ["signing", "pending"]
    assert all("created" in line and "not_before" in line and "retired" in line for line in lines)


# --- processes that add a key at the same time ---------------------------------------------------


def test_workers_starting_together_share_one_first_key(world: World) -> None:
    """Two gateway workers each sign their first token while no key exists: the second waits
    for the first's key instead of adding its own, which the first would not know yet."""
    factory = world.hub.session_factory
    with factory() as first, ThreadPoolExecutor(1) as pool:
        kid = SigningKeys().current(first).kid
        other = pool.submit(lambda: _current_kid(factory))
        time.sleep(0.5)
        assert not other.done(), "the second worker added a key while the first was unsaved"
        first.commit()
        assert other.result(timeout=30) == kid
    with factory() as session:
        assert [k.kid for k in list_keys(session)] == [kid]


def test_rotations_at_the_same_time_add_one_signing_key(world: World) -> None:
    factory = world.hub.session_factory
    with factory() as first, ThreadPoolExecutor(1) as pool:
        done = rotate(first, world.settings)
        other = pool.submit(lambda: _rotate_in(factory, world.settings))
        time.sleep(0.5)
        assert not other.done()
        first.commit()
        second = other.result(timeout=30)
    with factory() as session:
        states = {k.kid: k.state for k in list_keys(session)}
    # The second saw the first key and waits its turn to sign, as a later rotation does.
    assert states == {done.kid: "signing", second.kid: "pending"}


def _current_kid(factory: Any) -> str:
    with factory() as session:
        kid = str(SigningKeys().current(session).kid)
        session.commit()
        return kid


def _rotate_in(factory: Any, settings: Settings) -> Any:
    with unit_of_work(factory) as session:
        return rotate(session, settings)


# --- our validator refetches on an unknown kid, rate-limited ------------------------------------


def test_local_keys_are_reread_on_an_unknown_kid_at_most_once_a_second(
    world: World, clock: FakeTime
) -> None:
    loads: list[float] = []
    jwks = {"keys": [_our_key(world).as_dict(private=False)]}

    def local_jwks() -> dict[str, Any]:
        loads.append(clock.now)
        return jwks

    validator = TokenValidator(
        settings=world.settings, local_jwks=local_jwks, partner_active=lambda p: True
    )
    validator.validate(_ours(world, _our_key(world)))
    assert len(loads) == 1
    newer = ECKey.generate_key("P-256", parameters={"alg": "ES256"}, auto_kid=True)
    jwks = {"keys": [*jwks["keys"], newer.as_dict(private=False)]}
    clock.now += 0.5
    with pytest.raises(Unauthenticated, match="key id unknown"):
        validator.validate(_ours(world, newer))
    assert len(loads) == 1  # within a second of the last read: no reload
    clock.now += 1.0
    assert validator.validate(_ours(world, newer)).partner_id == "ude"
    assert len(loads) == 2


def _our_key(world: World) -> ECKey:
    with unit_of_work(world.hub.session_factory) as session:
        return SigningKeys().current(session)


def _ours(world: World, key: ECKey) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "c",
        "aud": world.settings.api_audience,
        "client_id": "c",
        "partner_id": "ude",
        "scope": "referrals:read",
        "iat": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": key.kid}, claims, key, ["ES256"])


def test_our_retired_key_stops_verifying_within_the_local_cache_age(
    http: TestClient, world: World, clock: FakeTime
) -> None:
    token = world.partners.token(http, "ude")
    validator = world.validator()
    assert validator.validate(token).partner_id == "ude"
    world.shift(kid_of(token), retired_at=utcnow() - timedelta(seconds=1))
    assert validator.validate(token).partner_id == "ude"  # cached
    clock.now += tokens_module.LOCAL_MAX_AGE_SECONDS
    with pytest.raises(Unauthenticated, match="key id unknown"):
        validator.validate(token)


# --- external issuers: refetch on rotation, never a key the token names -------------------------


class IdP:
    """A fake identity provider; records every URL anyone fetches."""

    def __init__(self) -> None:
        self.keys = [RSAKey.generate_key(2048, parameters={"use": "sig"}, auto_kid=True)]
        self.extra: dict[str, Any] = {}
        self.fetched: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.fetched.append(str(request.url))
        if str(request.url) != f"{IDP}/jwks":
            return httpx.Response(200, json={"keys": [ATTACKER.as_dict(private=False)]})
        keys = [{**k.as_dict(private=False), **self.extra} for k in self.keys]
        return httpx.Response(200, json={"keys": keys})

    def token(self, key: Any = None, header: dict[str, Any] | None = None) -> str:
        key = key or self.keys[-1]
        now = int(time.time())
        claims = {"iss": IDP, "azp": "ude", "sub": "svc", "aud": "urn:talenthub:api:v1"}
        claims.update(iat=now, exp=now + 300, jti=str(uuid.uuid4()), scope="referrals:read")
        head = {"alg": "RS256", "typ": "at+jwt", "kid": key.kid, **(header or {})}
        return jwt.encode(head, claims, key, ["RS256"])


ATTACKER = RSAKey.generate_key(2048, parameters={"use": "sig"}, auto_kid=True)


@pytest.fixture
def idp() -> IdP:
    return IdP()


@pytest.fixture
def external(idp: IdP, tmp_path: Path) -> TokenValidator:
    settings = Settings(
        data_dir=tmp_path,
        issuer=ISSUER,
        external_issuers=[ExternalIssuer(issuer=IDP, jwks_url=f"{IDP}/jwks", partners=["ude"])],
    )
    return TokenValidator(
        settings=settings,
        local_jwks=lambda: {"keys": []},
        partner_active=lambda p: p == "ude",
        http=httpx.Client(transport=httpx.MockTransport(idp.handle)),
    )


def test_idp_key_rotation_is_picked_up_on_the_unknown_kid(
    external: TokenValidator, idp: IdP, clock: FakeTime
) -> None:
    assert external.validate(idp.token()).partner_id == "ude"
    idp.keys.append(RSAKey.generate_key(2048, parameters={"use": "sig"}, auto_kid=True))
    clock.now += 30
    with pytest.raises(Unauthenticated, match="key id unknown"):
        external.validate(idp.token())
    assert len(idp.fetched) == 1  # rate-limited: once a minute at most
    clock.now += 30
    assert external.validate(idp.token()).partner_id == "ude"
    assert len(idp.fetched) == 2


def test_key_the_idp_dropped_stops_verifying_after_the_cache_age(
    external: TokenValidator, idp: IdP, clock: FakeTime
) -> None:
    token = idp.token()
    assert external.validate(token).partner_id == "ude"
    idp.keys = [RSAKey.generate_key(2048, parameters={"use": "sig"}, auto_kid=True)]
    clock.now += 60
    assert external.validate(token).partner_id == "ude"  # cached
    clock.now += tokens_module.JWKS_MAX_AGE_SECONDS
    with pytest.raises(Unauthenticated, match="key id unknown"):
        external.validate(token)


@pytest.mark.parametrize(
    "header",
    [
        {"jku": "https://attacker.test/jwks"},
        {"x5u": "https://attacker.test/cert.pem"},
        {"jwk": ECKey.generate_key("P-256").as_dict(private=False)},
        {"x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]},
    ],
)
def test_keys_named_in_an_idp_token_header_are_never_used(
    external: TokenValidator, idp: IdP, header: dict[str, Any]
) -> None:
    # Signed by the attacker under the IdP's kid: only the IdP's JWKS decides.
    forged = idp.token(_with_kid(ATTACKER, idp.keys[0].kid), header)
    with pytest.raises(Unauthenticated, match="signature invalid"):
        external.validate(forged)
    # Under a kid the IdP does not have, the header is not followed either.
    with pytest.raises(Unauthenticated, match="key id unknown"):
        external.validate(idp.token(ATTACKER, header))
    assert idp.fetched == [f"{IDP}/jwks"]


def test_urls_inside_the_idp_jwks_are_not_fetched(external: TokenValidator, idp: IdP) -> None:
    idp.extra = {"x5u": "https://attacker.test/cert.pem", "jku": "https://attacker.test/j"}
    assert external.validate(idp.token()).partner_id == "ude"
    assert idp.fetched == [f"{IDP}/jwks"]


@pytest.mark.parametrize(
    "header",
    [
        {"jku": "https://attacker.test/jwks"},
        {"x5u": "https://attacker.test/cert.pem"},
        {"jwk": "attacker"},
        {"x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]},
    ],
)
def test_keys_named_in_our_token_header_are_never_used(
    world: World, header: dict[str, Any]
) -> None:
    ours = _our_key(world)
    attacker = ECKey.generate_key("P-256", parameters={"kid": str(ours.kid)})
    if header.get("jwk") == "attacker":
        header = {"jwk": attacker.as_dict(private=False)}
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "c", "aud": world.settings.api_audience, "client_id": "c"}
    claims.update(partner_id="ude", iat=now, exp=now + 60, jti=str(uuid.uuid4()))
    head = {"alg": "ES256", "typ": "at+jwt", "kid": ours.kid, **header}
    forged = jwt.encode(head, claims, attacker, ["ES256"])
    with pytest.raises(Unauthenticated, match="signature invalid"):
        world.validator().validate(forged)


def _with_kid(key: RSAKey, kid: str | None) -> RSAKey:
    data = json.loads(json.dumps(key.as_dict(private=True)))
    data["kid"] = kid
    return RSAKey.import_key(data)
