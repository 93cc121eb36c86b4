"""Staff administration: list, disable and enable, reset a password — in the UI and the CLI.

Disabling an account or resetting its password ends its sessions at once; the last active
admin cannot be disabled; every change is audited with who made it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from hub.audit.models import AuditRecord
from hub.cli import main
from hub.db import unit_of_work
from hub.errors import Conflict
from hub.web import accounts
from hub.web.models import StaffAccount
from tests.staffweb import PASSWORD, csrf_of, log_in, staff_client

ADMIN, CASE = "admin@duisburg.de", "case@duisburg.de"
NEW_PASSWORD = "another long password"


@pytest.fixture
def hub(hub_and_partners: Any) -> Any:
    made, _ = hub_and_partners
    with unit_of_work(made.session_factory) as session:
        accounts.add_staff(session, email=ADMIN, role="admin", purposes=[], password=PASSWORD)
        accounts.add_staff(
            session, email=CASE, role="caseworker", purposes=["residence"], password=PASSWORD
        )
    return made


@pytest.fixture
def admin(hub: Any) -> Iterator[TestClient]:
    with staff_client(hub) as client:
        assert log_in(client, ADMIN).status_code == 303
        yield client


def account_id(hub: Any, email: str) -> int:
    with hub.session_factory() as session:
        return int(
            session.scalars(select(StaffAccount.id).where(StaffAccount.email == email)).one()
        )


def actions(hub: Any) -> list[tuple[str, str]]:
    with hub.session_factory() as session:
        rows = session.scalars(
            select(AuditRecord).where(AuditRecord.action.like("staff.account_%"))
        )
        return [(r.actor, r.action) for r in rows]


def cli(hub: Any, *args: str, stdin: str | None = None) -> Any:
    env = {
        "HUB_DATABASE_URL": hub.settings.database_url,
        "HUB_DATA_DIR": str(hub.settings.data_dir),
    }
    return CliRunner().invoke(main, ["staff", *args], env=env, input=stdin)


def test_the_page_lists_accounts_with_labels_for_admins_only(hub: Any, admin: TestClient) -> None:
    page = admin.get("/staff/accounts")

    assert page.status_code == 200
    assert CASE in page.text and "Sachbearbeitung" in page.text and "Aufenthaltsrecht" in page.text
    with staff_client(hub) as other:
        assert log_in(other, CASE).status_code == 303
        assert other.get("/staff/accounts").status_code == 403


def test_disabling_ends_the_sessions_and_enabling_lets_them_log_in_again(
    hub: Any, admin: TestClient
) -> None:
    with staff_client(hub) as caseworker:
        assert log_in(caseworker, CASE).status_code == 303
        assert caseworker.get("/staff/search").status_code == 200
        target = account_id(hub, CASE)
        csrf = csrf_of(admin.get("/staff/accounts").text)

        off = admin.post(f"/staff/accounts/{target}/active", data={"csrf_token": csrf})

        assert off.status_code == 200 and "deaktiviert" in off.text
        assert caseworker.get("/staff/search", follow_redirects=False).status_code in (302, 303)
        assert log_in(caseworker, CASE).status_code != 303
        on = admin.post(
            f"/staff/accounts/{target}/active", data={"csrf_token": csrf, "active": "on"}
        )
        assert on.status_code == 200
        assert log_in(caseworker, CASE).status_code == 303
    assert actions(hub) == [
        (ADMIN, "staff.account_disabled"),
        (ADMIN, "staff.account_enabled"),
    ]


def test_a_password_reset_takes_the_new_password_and_ends_the_old_sessions(
    hub: Any, admin: TestClient
) -> None:
    with staff_client(hub) as caseworker:
        assert log_in(caseworker, CASE).status_code == 303
        csrf = csrf_of(admin.get("/staff/accounts").text)
        target = account_id(hub, CASE)

        short = admin.post(
            f"/staff/accounts/{target}/password", data={"csrf_token": csrf, "password": "short"}
        )
        assert short.status_code == 422 and "12" in short.text
        done = admin.post(
            f"/staff/accounts/{target}/password",
            data={"csrf_token": csrf, "password": NEW_PASSWORD},
        )

        assert done.status_code == 200
        assert caseworker.get("/staff/search", follow_redirects=False).status_code in (302, 303)
        assert log_in(caseworker, CASE).status_code != 303
        assert log_in(caseworker, CASE, NEW_PASSWORD).status_code == 303
    assert actions(hub) == [(ADMIN, "staff.account_password_reset")]


def test_an_admin_adds_an_account_and_cannot_disable_their_own(hub: Any, admin: TestClient) -> None:
    csrf = csrf_of(admin.get("/staff/accounts").text)
    added = admin.post(
        "/staff/accounts",
        data={
            "csrf_token": csrf,
            "email": "Lead@Duisburg.de",
            "role": "team_lead",
            "purposes": ["recognition"],
            "password": NEW_PASSWORD,
        },
    )
    assert added.status_code == 200 and "lead@duisburg.de" in added.text

    own = admin.post(f"/staff/accounts/{account_id(hub, ADMIN)}/active", data={"csrf_token": csrf})

    assert own.status_code == 409 and "eigene Konto" in own.text
    assert admin.get("/staff/accounts").status_code == 200  # still logged in
    assert actions(hub) == [(ADMIN, "staff.account_created")]


def test_the_last_active_admin_cannot_be_disabled(hub: Any) -> None:
    with unit_of_work(hub.session_factory) as session, pytest.raises(Conflict):
        accounts.set_active(session, email=ADMIN, active=False)


def test_the_cli_lists_disables_enables_and_resets(hub: Any) -> None:
    listed = cli(hub, "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert any(line.startswith(ADMIN) and "admin" in line for line in lines)
    assert any(line.startswith(CASE) and "residence" in line for line in lines)

    assert cli(hub, "disable", CASE.upper()).exit_code == 0
    assert "disabled" in next(line for line in cli(hub, "list").output.splitlines() if CASE in line)
    assert cli(hub, "enable", CASE).exit_code == 0
    reset = cli(hub, "reset-password", CASE, "--password-stdin", stdin=NEW_PASSWORD + "\n")
    assert reset.exit_code == 0, reset.output
    with hub.session_factory() as session:
        account = session.scalars(select(StaffAccount).where(StaffAccount.email == CASE)).one()
        assert account.active
        assert accounts.verify_password(NEW_PASSWORD, account.password_hash or "")

    missing = cli(hub, "disable", "nobody@duisburg.de")
    assert missing.exit_code == 1 and "no staff account nobody@duisburg.de" in missing.output
    last = cli(hub, "disable", ADMIN)
    assert last.exit_code == 1 and "last active admin" in last.output
    assert [a for _, a in actions(hub)] == [
        "staff.account_disabled",
        "staff.account_enabled",
        "staff.account_password_reset",
    ]


def test_staff_add_without_a_terminal_says_how_to_give_the_password(hub: Any) -> None:
    result = cli(hub, "add", "new@duisburg.de", "--role", "dpo")

    assert result.exit_code == 1
    assert "--password-stdin" in result.output and "Aborted" not in result.output
