"""`hub policy show` and `hub policy record` need no database; the record is complete."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hub.cli import main

NO_DATABASE = [
    "postgresql+psycopg://hub@127.0.0.1:1/hub",  # nothing listens on port 1
    "sqlite:////nonexistent/dir/hub.db",
]


@pytest.mark.parametrize("url", NO_DATABASE)
def test_policy_show_and_record_work_without_a_database(url: str, tmp_path: Path) -> None:
    env = {"HUB_DATABASE_URL": url, "HUB_DATA_DIR": str(tmp_path / "none")}
    shown = CliRunner().invoke(main, ["policy", "show"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "any university -> any authority (residence.student)" in shown.output
    assert "reason: " in shown.output and "NEEDS THE CITY'S CONFIRMATION" in shown.output
    record = CliRunner().invoke(main, ["policy", "record"], env=env)
    assert record.exit_code == 0, record.output
    assert not (tmp_path / "none").exists(), "nothing was created"


def test_policy_show_checks_partners_only_when_asked() -> None:
    url = "postgresql+psycopg://hub@127.0.0.1:1/hub"
    env = {"HUB_DATABASE_URL": url}
    checked = CliRunner().invoke(main, ["policy", "show", "--check-partners"], env=env)
    assert checked.exit_code == 1 and "the database refused or did not answer" in checked.output


def test_the_record_names_controller_dpo_subjects_and_arrangement() -> None:
    env = {"HUB_CONTROLLER_NAME": "Stadt Duisburg, Amt 33", "HUB_DPO_CONTACT": "dsb@example.org"}
    result = CliRunner().invoke(main, ["policy", "record"], env=env)
    assert result.exit_code == 0, result.output
    text = result.output
    assert "**Verantwortlicher:** Stadt Duisburg, Amt 33" in text
    assert "**Datenschutzbeauftragte(r):** dsb@example.org" in text
    assert "**Kategorien betroffener Personen:**" in text and "Studierende" in text
    assert "eigenständig Verantwortlicher" in text and "Art. 26 DSGVO" in text
    assert "Übermittlung zwischen Verantwortlichen" in text
    assert "Verarbeitung innerhalb von amt, keine Übermittlung" in text
    assert "**Von der Stadt zu bestätigen**" in text and "Abschnitt 3" in text
