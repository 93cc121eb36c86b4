"""Which proxies the gateway believes is the operator's word, checked when it is given."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.gateway import GatewayConfig, server
from hub.settings import Settings


def test_no_proxy_is_believed_unless_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")  # uvicorn's own variable is not read

    config = server(None, Settings(http_header_timeout_seconds=3)).config  # type: ignore[arg-type]

    assert isinstance(config, GatewayConfig)
    assert config.proxy_headers is False and config.forwarded_allow_ips == ""
    assert config.header_timeout == 3


@pytest.mark.parametrize("value", ["*", "10.0.0.5", "10.0.0.0/8, 127.0.0.1", "fd00::/8"])
def test_named_proxies_are_passed_on(value: str) -> None:
    config = server(None, Settings(forwarded_allow_ips=value)).config  # type: ignore[arg-type]

    assert config.proxy_headers is True and config.forwarded_allow_ips == value


@pytest.mark.parametrize("value", ["ingress.local", "10.0.0.0/33", "10.0.0.5;10.0.0.6"])
def test_what_is_no_address_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="not an address or network"):
        Settings(forwarded_allow_ips=value)


def test_an_empty_value_names_no_proxy() -> None:
    assert Settings(forwarded_allow_ips=" ").forwarded_allow_ips is None
