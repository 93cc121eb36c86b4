"""Contract checks by tools the project did not write, installed from npm.

``make test`` runs ``npm ci`` here first (``package-lock.json`` pins every version). A test
that needs them calls :func:`node_modules`, which fails with the command to run when they are
missing rather than skipping: CI must not pass a contract nobody checked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = HERE / "node_modules"


def node_modules() -> Path:
    """The installed packages, or a failure that says how to install them."""
    if shutil.which("node") is None:
        raise AssertionError("node is not installed: apt-get install -y nodejs npm")
    if not (MODULES / ".installed").exists():
        raise AssertionError(f"contract checkers missing: run `make {MODULES / '.installed'}`")
    return MODULES


def run_node(
    *args: str | Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``node`` (or a package's bin, given as a path) with the checkers on its path."""
    node_modules()
    merged = {
        **os.environ,
        "NODE_PATH": str(MODULES),
        # Redocly and friends phone home and nag about updates unless told not to.
        "REDOCLY_TELEMETRY": "off",
        "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
        "NO_UPDATE_NOTIFIER": "1",
        **(env or {}),
    }
    return subprocess.run(
        ["node", *map(str, args)],
        cwd=HERE,
        env=merged,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
