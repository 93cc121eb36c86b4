"""Log lines never carry credentials, whatever logs them and in which format."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from hub import logs

JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1ZGUtMSJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
SECRET = "Zq8-uW3_kT0pX5rV9yN2"


@pytest.mark.parametrize(
    "line",
    [
        f"Authorization: Bearer {SECRET}",
        f"authorization: DPoP {SECRET}",
        f"(b'authorization', b'Basic {SECRET}')",
        f"[(b'set-cookie', b'hub_staff={SECRET}; Path=/staff; HttpOnly')]",
        f"cookie hub_oidc={SECRET}",
        f"grant_type=client_credentials&client_secret={SECRET}&scope=x",
        f'{{"access_token": "{SECRET}", "token_type": "Bearer"}}',
        f"{{'refresh_token': '{SECRET}'}}",
        f"id_token={JWT}",
        f"token exchange answered {JWT}",
        f"password: '{SECRET} with spaces'",
        f'{{"credential_ref": "value:{SECRET}", "mode": "push"}}',
        f'(\'{{"kty": "EC", "crv": "P-256", "x": "xx", "y": "yy", "d": "{SECRET}"}}\',)',
        f"code_verifier={SECRET}",
    ],
)
def test_redact_removes_the_secret(line: str) -> None:
    cleaned = logs.redact(line)
    assert SECRET not in cleaned and "c2lnbmF0dXJl" not in cleaned
    assert logs.REDACTED in cleaned


@pytest.mark.parametrize(
    "line",
    [
        "delivery.attempted event_id=4f1c outcome=delivered status_code=200",
        "auth_method=client_secret_basic token_type=Bearer",
        "token endpoint refused: invalid_client",
        'HTTP Request: POST http://127.0.0.1:8081/webhook "HTTP/1.1 200 OK"',
    ],
)
def test_redact_keeps_ordinary_lines(line: str) -> None:
    assert logs.redact(line) == line


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in logs.QUIET_LOGGERS}
    stream = io.StringIO()
    logs.configure("DEBUG", "json", stream=stream)
    root.addHandler(logs.handler("text", stream))
    yield stream
    root.handlers[:], root.level = saved
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)


def test_both_formats_scrub_messages_fields_and_tracebacks(captured: io.StringIO) -> None:
    log = logging.getLogger("hub.test")
    log.info(
        "oauth.token_fetched",
        extra={
            "client_secret": SECRET,
            "answer": {"access_token": SECRET, "expires_in": 300, "nested": [f"Bearer {SECRET}"]},
            "reason": f"refused {JWT}",
        },
    )
    try:
        raise ValueError(f"client_secret={SECRET}")
    except ValueError:
        log.exception("oauth.failed")
    text = captured.getvalue()
    assert SECRET not in text and JWT not in text
    first = json.loads(text.splitlines()[0])
    assert first["client_secret"] == logs.REDACTED
    assert first["answer"]["expires_in"] == 300 and first["answer"]["access_token"] == "[redacted]"
    assert "oauth.failed" in text and "ValueError" in text


def test_chatty_libraries_are_held_at_warning(captured: io.StringIO) -> None:
    assert logging.getLogger().level == logging.DEBUG
    for name in ("httpx", "httpcore", "sqlalchemy", "kafka", "authlib"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
    logging.getLogger("sqlalchemy.engine.Engine").info("INSERT ... ('value:%s',)", SECRET)
    assert SECRET not in captured.getvalue()


def test_sqlalchemy_rows_are_never_logged_even_shortened(captured: io.StringIO) -> None:
    """SQLAlchemy shortens a long value in the middle ("... (102 characters truncated) ..."),
    which can cut a ``value:`` marker off and leave a secret's tail: rows go unlogged."""
    engine_log = logging.getLogger("sqlalchemy.engine.Engine")
    engine_log.setLevel(logging.DEBUG)
    shortened = f"{{'credential_ref' ... (102 characters truncated) ... {SECRET[-12:]}'}}"
    engine_log.debug("Row %r", ("amt", shortened))
    engine_log.info("SELECT partners.id FROM partners")

    text = captured.getvalue()
    assert SECRET[-12:] not in text
    assert "Row [redacted]" in text and "SELECT partners.id FROM partners" in text
