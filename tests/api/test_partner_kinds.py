"""Routes by partner kind: a partner added with `hub partners add` uses them at once."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from fastapi.testclient import TestClient

from hub.cli import main
from tests.hubtest import STUDENT_REFERRAL, Partners


def _add(env: dict[str, str], partner_id: str, kind: str) -> tuple[dict[str, str], str]:
    args = ["partners", "add", partner_id, "--name", f"{partner_id} test", "--kind", kind]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    creds, _, told = result.stdout.partition("\n}\n")
    return json.loads(creds + "\n}"), told + result.stderr


def test_a_new_university_refers_a_student_at_once(
    client: TestClient, database_url: str, tmp_path: Path
) -> None:
    env = {"HUB_DATABASE_URL": database_url, "HUB_DATA_DIR": str(tmp_path)}
    creds, told = _add(env, "ude-essen", "university")
    assert "ude-essen -> amt (residence.student)" in told
    assert "ude-essen -> amt (counselling.talent-center)" in told
    assert "amt -> ude-essen (university.enrolment-confirmation)" in told
    essen = Partners([creds]).headers(client, "ude-essen")
    r = client.post("/v1/referrals", json=STUDENT_REFERRAL, headers=essen)
    assert r.status_code == 202, r.text


def test_a_kind_without_routes_is_warned_about(database_url: str, tmp_path: Path) -> None:
    policy = tmp_path / "routes.yaml"
    policy.write_text("version: 1\nroutes: []\n", encoding="utf-8")
    env = {
        "HUB_DATABASE_URL": database_url,
        "HUB_DATA_DIR": str(tmp_path),
        "HUB_POLICY_FILE": str(policy),
    }
    _, told = _add(env, "hwk-krefeld", "chamber")
    assert "warning: no route of the policy applies to hwk-krefeld" in told
    assert "{kind: chamber}" in told
