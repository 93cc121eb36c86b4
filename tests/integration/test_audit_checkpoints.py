"""Signed checkpoints leave the database: through the outbox to their Kafka topic, readable by
any Kafka client, and to the checkpoint file; the partner API's calls are in the signed log."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from hub.audit.keys import published_keys
from hub.audit.models import AuditRecord
from hub.audit.note import open_checkpoint
from hub.audit.sequencer import read_lines
from hub.audit.verify import verify
from hub.runtime import start_sequencer
from tests.hubtest import STUDENT_REFERRAL
from tests.integration.conftest import Running, wait_for
from tests.integration.test_referral_flow import read_topic


def _all_signed(running: Running) -> bool:
    """every audit record so far is under a signed checkpoint"""
    with running.hub.session_factory() as session:
        return not session.scalar(
            select(func.count()).select_from(AuditRecord).where(AuditRecord.leaf_index.is_(None))
        )


def test_checkpoints_reach_kafka_and_the_file(running: Running) -> None:
    hub = running.hub
    outside = running.hub.settings.data_dir / "checkpoints.jsonl"
    hub.settings.audit_checkpoint_file = outside
    hub.settings.audit_checkpoint_seconds = 0.2
    running.start_relay()
    running.threads.append(start_sequencer(hub, running.stop))
    from fastapi.testclient import TestClient

    from hub.app import create_app

    with TestClient(create_app(hub, kafka_check=lambda: True)) as client:
        headers = running.partners.headers(client, "ude")
        for i in range(3):
            body = STUDENT_REFERRAL | {
                "person": STUDENT_REFERRAL["person"] | {"partner_reference": f"ES0123456{i:02d}"}
            }
            assert client.post("/v1/referrals", json=body, headers=headers).status_code == 202
        wait_for(lambda: _all_signed(running) and len(read_lines(outside)) >= 2)
        newest = client.get("/audit/v1/checkpoint")
        keys = client.get("/audit/v1/keys").text.split()
    assert newest.status_code == 200 and newest.headers["content-type"].startswith("text/plain")

    with hub.session_factory() as session:
        published = published_keys(session)
        report = verify(session, checkpoint_file=outside)
    assert report.ok and report.checked >= 3 and report.waiting == 0, report.problems
    assert keys == [k.text() for k in published]
    records = read_topic(hub.bootstrap_servers, hub.settings.topic_audit_checkpoints, expect=1)
    assert records
    headers = {k: v.decode() for k, v in records[0].headers}
    assert headers["ce_type"] == "de.duisburg.talenthub.audit.checkpoint-signed.v1"
    data = json.loads(records[0].value)
    checkpoint, signer = open_checkpoint(data["note"], published)
    assert (checkpoint.size, checkpoint.root.hex()) == (data["tree_size"], data["root_hash"])
    assert signer.text() == data["key"]
