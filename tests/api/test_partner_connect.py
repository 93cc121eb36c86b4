"""A push configuration that could never deliver is refused when it is given, not retried.

Without a token endpoint, client credentials or a signing secret every push would fail and
be retried as transient for ever; the connector config refuses it, so the CLI, the staff
UI and the service all do.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hub.cli import main
from hub.db import unit_of_work
from hub.errors import InvalidInput
from hub.partners.models import Partner
from hub.partners.service import connect_partner
from tests.hubtest import make_hub

COMPLETE = [
    "--endpoint",
    "https://ude.example/talenthub/webhook",
    "--token-endpoint",
    "https://ude.example/oauth/token",
    "--client-id",
    "talent-hub",
    "--credential-ref",
    "env:UDE_CLIENT_SECRET",
    "--signing-secret-ref",
    "file:/run/secrets/ude-hmac",
]


@pytest.fixture
def hub(database_url: str, tmp_path: Path) -> Iterator[Any]:
    made, _ = make_hub(database_url, tmp_path)
    yield made
    made.engine.dispose()


def connect(hub: Any, *options: str) -> Any:
    env = {
        "HUB_DATABASE_URL": hub.settings.database_url,
        "HUB_DATA_DIR": str(hub.settings.data_dir),
    }
    return CliRunner().invoke(main, ["partners", "connect", "ude", *options], env=env)


def mode_of(hub: Any, partner_id: str = "ude") -> str:
    with hub.session_factory() as session:
        partner = session.get(Partner, partner_id)
        assert partner is not None
        return str(partner.delivery_mode)


def test_the_cli_names_what_a_push_configuration_lacks(hub: Any) -> None:
    before = mode_of(hub)

    result = connect(hub, "--mode", "push", "--endpoint", "https://ude.example/talenthub/webhook")

    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: push mode needs --token-endpoint, --client-id, --credential-ref, "
        "--signing-secret-ref (or --mode pull)"
    ]
    assert mode_of(hub) == before


def test_the_cli_refuses_push_without_the_endpoint_too(hub: Any) -> None:
    result = connect(hub, "--mode", "push", *COMPLETE[2:])

    assert result.exit_code == 1
    assert "needs --endpoint (or --mode pull)" in result.output
    assert "Traceback" not in result.output


def test_a_complete_push_configuration_is_stored(hub: Any) -> None:
    result = connect(hub, "--mode", "push", *COMPLETE)

    assert result.exit_code == 0, result.output
    assert mode_of(hub) == "push"


def test_a_rotation_stores_the_previous_signing_secret_until_connected_without_it(
    hub: Any,
) -> None:
    rotating = [*COMPLETE, "--previous-signing-secret-ref", "file:/run/secrets/ude-hmac-old"]

    assert connect(hub, "--mode", "push", *rotating).exit_code == 0
    assert connector_of(hub)["previous_signing_secret_ref"] == "file:/run/secrets/ude-hmac-old"
    assert connect(hub, "--mode", "push", *COMPLETE).exit_code == 0
    assert connector_of(hub)["previous_signing_secret_ref"] is None


def test_a_previous_signing_secret_alone_is_refused(hub: Any) -> None:
    config = {"mode": "pull", "previous_signing_secret_ref": "env:OLD_HMAC"}
    with unit_of_work(hub.session_factory) as session, pytest.raises(InvalidInput) as refused:
        connect_partner(session, partner_id="ude", config=config)

    assert "previous_signing_secret_ref needs signing_secret_ref" in refused.value.detail


def connector_of(hub: Any, partner_id: str = "ude") -> dict[str, Any]:
    with hub.session_factory() as session:
        partner = session.get(Partner, partner_id)
        assert partner is not None
        return dict(partner.connector or {})


def test_pull_needs_none_of_it(hub: Any) -> None:
    assert connect(hub, "--mode", "pull").exit_code == 0
    assert mode_of(hub) == "pull"


def test_the_service_refuses_with_a_problem_naming_the_missing_fields(hub: Any) -> None:
    config = {"mode": "push", "endpoint_url": "https://ude.example/hook", "client_id": "hub"}
    with unit_of_work(hub.session_factory) as session, pytest.raises(InvalidInput) as refused:
        connect_partner(session, partner_id="ude", config=config)

    problem = refused.value.to_problem()
    assert problem["status"] == 422 and problem["field"] == "connector"
    assert problem["missing"] == ["token_endpoint", "credential_ref", "signing_secret_ref"]
    assert problem["detail"] == (
        "push mode needs token_endpoint, credential_ref, signing_secret_ref"
    )


def test_a_stored_push_config_that_could_never_deliver_starts_no_runner_and_stops_no_other(
    hub: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from consumers.registry import build_delivery_runners

    complete = {
        "mode": "push",
        "endpoint_url": "https://hwk.example/webhook",
        "token_endpoint": "https://hwk.example/oauth/token",
        "client_id": "talent-hub",
        "credential_ref": "value:secret",
        "signing_secret_ref": "value:signing",
    }
    with unit_of_work(hub.session_factory) as session:
        for pid, connector in (
            ("hwk", complete),
            # Stored before push settings were checked: no token endpoint, no credentials.
            ("ihk-fosa", {"mode": "push", "endpoint_url": "https://ihk.example/webhook"}),
        ):
            partner = session.get(Partner, pid)
            partner.delivery_mode, partner.connector = "push", connector
    runners = build_delivery_runners(hub)
    assert [r.name for r in runners] == ["delivery.hwk"]
    [refused] = [r for r in caplog.records if r.msg == "delivery.partner_not_started"]
    assert refused.levelname == "ERROR" and refused.partner == "ihk-fosa"  # type: ignore[attr-defined]
