"""``hub up`` as a user runs it: embedded broker, credentials, partners add, clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from hub.kafka.client import probe
from hub.kafka.embedded import free_port
from tests.hubtest import STUDENT_REFERRAL
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration


def hub_cmd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hub_up_serves_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    metrics_port = free_port()
    env = {
        **os.environ,
        "HUB_DATA_DIR": str(tmp_path / "data"),
        "HUB_HTTP_PORT": str(port),
        "HUB_METRICS_PORT": str(metrics_port),
    }
    env.pop("HUB_DATABASE_URL", None)
    env.pop("HUB_KAFKA_BOOTSTRAP_SERVERS", None)
    log = open(tmp_path / "hub.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub", "up"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            """hub up answers /health with 200"""
            try:
                return httpx.get(f"{base}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=60)
        out = (tmp_path / "hub.log").read_text()
        assert "client_secret=" in out and "credentials.json" in out
        creds_file = tmp_path / "data" / "credentials.json"
        assert oct(creds_file.stat().st_mode & 0o777) == "0o600"
        assert {c["partner_id"] for c in json.loads(creds_file.read_text())} == {
            "amt",
            "ude",
            "ihk-fosa",
            "hwk",
            "jobcenter",
        }
        bootstrap = out.split("Kafka ")[1].split(";")[0]
        assert probe(bootstrap)
        _metrics_follow_a_referral(base, creds_file, metrics_port)

        added = hub_cmd(
            "partners",
            "add",
            "ude-essen",
            "--name",
            "UDE Campus Essen",
            "--kind",
            "university",
            "--scopes",
            "referrals:write referrals:read",
            env=env,
        )
        assert added.returncode == 0, added.stderr
        creds = json.loads(added.stdout)
        assert creds["client_id"].startswith("ude-essen-") and creds["client_secret"]
        duplicate = hub_cmd(
            "partners", "add", "ude-essen", "--name", "x", "--kind", "university", env=env
        )
        assert duplicate.returncode != 0 and "already registered" in duplicate.stderr

        token = httpx.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(creds["client_id"], creds["client_secret"]),
        ).json()
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        assert httpx.get(f"{base}/v1/referrals", headers=bearer).status_code == 200
        # The policy's rules are by partner kind: a new university refers students at once.
        r = httpx.post(f"{base}/v1/referrals", json=STUDENT_REFERRAL, headers=bearer)
        assert r.status_code == 202, r.text
        # The calls above are in the audit log, under a checkpoint its sequencer signed.
        checkpoint = wait_for(lambda: _checkpoint(base), timeout=30)
        assert checkpoint.startswith("talent-hub.duisburg.de/audit\n")
        verified = hub_cmd("audit", "verify", env=env)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "audit log intact" in verified.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "hub.log").read_text()[-2000:]
    assert not probe(bootstrap), "the embedded broker outlived hub up"


def _checkpoint(base: str) -> str | None:
    """hub up's sequencer has signed a checkpoint"""
    r = httpx.get(f"{base}/audit/v1/checkpoint", timeout=5)
    return r.text if r.status_code == 200 else None


def _metrics_follow_a_referral(base: str, creds_file: Path, metrics_port: int) -> None:
    """Prometheus scrapes the process's metrics; a referral shows up in them."""
    ude = {c["partner_id"]: c for c in json.loads(creds_file.read_text())}["ude"]
    token = httpx.post(
        f"{base}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(ude["client_id"], ude["client_secret"]),
    ).json()["access_token"]
    r = httpx.post(
        f"{base}/v1/referrals",
        json=STUDENT_REFERRAL,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 202, r.text

    def scraped() -> dict[str, float]:
        """the referral was published, consumed and delivered, and the hub owes nothing more"""
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("hub_") and " " in line:
                name, _, value = line.rpartition(" ")
                values[name.split("{")[0]] = values.get(name.split("{")[0], 0) + float(value)
        # The delivery writes a third outbox row (referral.delivered) after the first two are
        # published and consumed, so "nothing owed" is part of the condition, not a snapshot.
        done = values.get("hub_outbox_published_total", 0) >= 2
        done = done and values.get("hub_consumer_processed_total", 0) >= 2
        return values if done and values.get("hub_outbox_backlog") == 0 else {}

    values = wait_for(scraped, timeout=60)
    assert values["hub_referrals_accepted_total"] == 1
    assert "hub_consumer_lag" in values and "hub_partners_paused" in values
