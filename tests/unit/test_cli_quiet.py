"""Database commands print what they did and nothing else: no Alembic context lines, no
library deprecation warnings, and a line when there is nothing to show.

Real processes (``python -m hub``), so that logging set-up and import-time warnings are the
ones an operator gets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def hub(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATA_DIR"] = str(data_dir)
    env.pop("PYTHONWARNINGS", None)  # what an operator's shell has
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_migrate_says_what_it_did_in_one_line_each_time(tmp_path: Path) -> None:
    first = hub(tmp_path, "migrate")
    again = hub(tmp_path, "migrate")

    assert first.returncode == 0 and again.returncode == 0
    assert first.stderr == "" and again.stderr == ""
    assert first.stdout.startswith("database migrated from schema none to ")
    assert again.stdout.startswith("database is up to date (schema ")
    assert len(first.stdout.splitlines()) == 1 and len(again.stdout.splitlines()) == 1


def test_empty_lists_say_so_on_stderr_and_keep_stdout_empty(tmp_path: Path) -> None:
    assert hub(tmp_path, "migrate").returncode == 0

    overdue = hub(tmp_path, "deadlines", "overdue")
    held = hub(tmp_path, "holds", "list")

    assert (overdue.returncode, overdue.stdout) == (0, "")
    assert overdue.stderr == "no overdue deadlines / keine überfälligen Fristen\n"
    assert (held.returncode, held.stdout) == (0, "")
    assert held.stderr == "no held deliveries / keine zurückgehaltenen Zustellungen\n"


def test_the_help_names_the_exit_codes(tmp_path: Path) -> None:
    shown = hub(tmp_path, "--help")

    assert shown.returncode == 0 and shown.stderr == ""
    assert "Exit codes: 0 done; 1 refused or failed" in " ".join(shown.stdout.split())


def test_what_the_serving_commands_load_prints_no_library_warning() -> None:
    """``hub up``/``gateway``/``demo`` load the app and the partner connectors, and with them
    authlib's httpx client, which announces its own deprecation on import."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    loaded = subprocess.run(  # the same modules the serving commands import
        [sys.executable, "-c", "import hub.cli, hub.app, connectors.http, connectors.simulator"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert (loaded.returncode, loaded.stderr) == (0, "")
