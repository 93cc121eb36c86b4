"""A private PostgreSQL server for the postgres-restart scenario.

The machine's PostgreSQL is shared (the test suite, other runs); crashing it would break them.
This one lives in a temporary directory on its own port, so the scenario can crash it
(``pg_ctl stop -m immediate``: every server process killed, no checkpoint, as on a crash) and
start it again, which runs PostgreSQL's crash recovery from its write-ahead log.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from hub.kafka.embedded import free_port


def find_binary(name: str) -> str | None:
    """``initdb``/``pg_ctl`` on the PATH or in Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def available() -> str | None:
    """None when a private server can be started here, else why not."""
    missing = [b for b in ("initdb", "pg_ctl") if find_binary(b) is None]
    if missing:
        return f"PostgreSQL server binaries not found: {', '.join(missing)}"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root and runuser is missing (initdb refuses to run as root)"
    return None


class PrivatePostgres:
    """initdb + pg_ctl in a temporary directory; ``crash()`` and ``start()`` at will."""

    def __init__(self) -> None:
        # In the system temp dir: the server's user must be able to reach its directory.
        self._root = Path(tempfile.mkdtemp(prefix="hub-pg-"))
        self.datadir = self._root / "data"
        self.port = free_port()
        self._user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60.0) -> None:
        cmd = ["runuser", "-u", self._user, "--", *args] if self._user else list(args)
        subprocess.run(cmd, check=True, timeout=timeout, capture_output=True)

    def init(self) -> PrivatePostgres:
        if self._user:
            shutil.chown(self._root, user=self._user)
        initdb = find_binary("initdb")
        assert initdb is not None
        self._run(initdb, "-D", str(self.datadir), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        return self

    def start(self, timeout: float = 60.0) -> None:
        pg_ctl = find_binary("pg_ctl")
        assert pg_ctl is not None
        options = f"-p {self.port} -k {self._root} -c listen_addresses=127.0.0.1"
        self._run(
            pg_ctl,
            "-D",
            str(self.datadir),
            "-o",
            options,
            "-l",
            str(self._root / "server.log"),
            "-w",
            "-t",
            str(int(timeout)),
            "start",
            timeout=timeout + 10,
        )

    def crash(self) -> None:
        """Kill every server process without a checkpoint; the next start recovers from WAL."""
        pg_ctl = find_binary("pg_ctl")
        assert pg_ctl is not None
        self._run(pg_ctl, "-D", str(self.datadir), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        pg_ctl = find_binary("pg_ctl")
        if pg_ctl is None or not (self.datadir / "postmaster.pid").exists():
            return
        try:
            self._run(pg_ctl, "-D", str(self.datadir), "-m", "fast", "-w", "stop")
        except subprocess.SubprocessError:
            time.sleep(0.5)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._root, ignore_errors=True)
