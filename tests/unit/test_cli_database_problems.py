"""The CLI answers database trouble with one line and what to do, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hub.cli import main


@pytest.mark.parametrize(
    "args", [["partners", "list"], ["housekeeping", "--dry-run"], ["retention", "--dry-run"]]
)
def test_a_database_without_tables_asks_for_hub_migrate(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(
        main, args, env={"HUB_DATA_DIR": str(tmp_path), "HUB_DATABASE_URL": ""}
    )
    assert result.exit_code == 1, result.output
    assert "run `hub migrate`" in result.output
    assert "Traceback" not in result.output


def test_a_database_that_does_not_answer_says_so() -> None:
    url = "postgresql+psycopg://hub@127.0.0.1:1/hub"  # nothing listens on port 1
    result = CliRunner().invoke(main, ["partners", "list"], env={"HUB_DATABASE_URL": url})
    assert result.exit_code == 1, result.output
    # One line of the command's own; a log line of another thread of the test process (a
    # Kafka client of an earlier test) may come before it in the captured output.
    [said] = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert said.startswith("Error: the database refused or did not answer:")
    assert "Connection refused" in said and "Traceback" not in result.output
