"""``hub demo`` from the command line: three journeys complete, visible through the timeline API."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from hub.kafka.embedded import free_port
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration

SUMMARY = r"person (p_[\w-]+), (\d+) timeline entries"
LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} ", re.MULTILINE)
STAFF_LOGIN = r"E-Mail: (\S+)  Passwort / password: (\S+)"


def test_demo_plays_three_journeys(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path), "HUB_HTTP_PORT": str(port)}
    for name in ("HUB_DATABASE_URL", "HUB_KAFKA_BOOTSTRAP_SERVERS"):
        env.pop(name, None)
    log_path = tmp_path / "terminal.txt"  # what the terminal shows; demo.log is the hub's
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub", "demo", "--time-scale", "0.05"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:

            def finished() -> bool:
                """the demo reports that every journey completed"""
                assert proc.poll() is None, log_path.read_text()[-3000:]
                # Wait for the whole summary: it is written line by line after that message.
                return len(re.findall(SUMMARY, log_path.read_text())) == 3

            wait_for(finished, timeout=240, interval=0.5)
            wait_for(lambda: re.search(STAFF_LOGIN, log_path.read_text()), timeout=30)
            output = log_path.read_text()
            assert "all journeys completed" in output
            # Story lines only, in both languages with labels; the services log to a file.
            assert not LOG_LINE.search(output), output[:3000]
            assert "in Bearbeitung / in progress" in output
            assert "consumer.started" in (tmp_path / "demo.log").read_text()
            assert "timeline still catching up" not in output, output[-3000:]
            people = re.findall(SUMMARY, output)
            assert len(people) == 3, output[-3000:]
            creds = {
                c["partner_id"]: c
                for c in json.loads((tmp_path / "demo" / "credentials.json").read_text())
            }
            base = f"http://127.0.0.1:{port}"
            for (person, _), viewer in zip(people, ("amt", "ude", "jobcenter"), strict=True):
                c = creds[viewer]
                token = httpx.post(
                    f"{base}/oauth/token",
                    data={"grant_type": "client_credentials"},
                    auth=(c["client_id"], c["client_secret"]),
                ).json()["access_token"]
                entries = httpx.get(
                    f"{base}/v1/people/{person}/timeline",
                    headers={"Authorization": f"Bearer {token}"},
                ).json()["entries"]
                statuses = [e["status"] for e in entries if e["status"]]
                assert statuses.count("completed") >= 2, (person, statuses, output[-3000:])
                assert len({e["source_partner"] for e in entries}) >= 2
                assert f"{base}/staff/people/{person}" in output
            email, password = re.findall(STAFF_LOGIN, output)[0]
            with httpx.Client(base_url=base) as browser:
                form = browser.get("/staff/login")
                csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
                assert csrf, form.text
                # The cookie is Secure; a browser sends it to 127.0.0.1, httpx only over https.
                cookie = form.headers["set-cookie"].split(";", 1)[0]
                login = browser.post(
                    "/staff/login",
                    data={"email": email, "password": password, "csrf_token": csrf.group(1)},
                    headers={"Cookie": cookie},
                )
            assert login.status_code == 303, login.text  # the printed account logs in
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
    assert code == 0, log_path.read_text()[-3000:]
