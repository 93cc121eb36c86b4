"""Crypto-shredding: after erasure nothing anywhere reads back the person's plaintext."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import func, select

from hub.db import unit_of_work
from hub.outbox.models import OutboxEvent
from hub.privacy.export import export_person
from hub.privacy.report import render_html
from hub.privacy.service import erase_person
from tests.hubtest import api_client
from tests.integration.conftest import Running, wait_for

pytestmark = pytest.mark.integration

ERASED_PERSON = {
    "given_name": "Xiaoyunqing",
    "family_name": "Zhangwenqiang",
    "birth_date": "1999-12-31",
    "partner_reference": "ES077766655",
}
KEPT_PERSON = {
    "given_name": "Fatimazahra",
    "family_name": "Benkiranwati",
    "birth_date": "1998-11-30",
    "partner_reference": "ES066655544",
}
NEEDLES = [
    b"Xiaoyunqing",
    b"Zhangwenqiang",
    b"1999-12-31",
    b"ES077766655",
    b"Quantenoptikprogramm",
    "Rückfragenotiz".encode(),
]


def referral(person: dict[str, Any], programme: str) -> dict[str, Any]:
    return {
        "type": "residence.student",
        "performer": "amt",
        "person": person,
        "payload": {"programme": programme, "semester": "2027S"},
    }


def all_topic_bytes(bootstrap: str) -> bytes:
    """Keys, values and headers of every record in every topic."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        chunks: list[bytes] = []
        for topic in consumer.topics():
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            while any(consumer.position(tp) < end[tp] for tp in tps):
                for batch in consumer.poll(timeout_ms=500).values():
                    for r in batch:
                        chunks += [r.key or b"", r.value or b""]
                        chunks += [v for _, v in r.headers or []]
        return b"\n".join(chunks)
    finally:
        consumer.close()


def test_erasure_leaves_no_plaintext_anywhere(
    running: Running, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every log line of the hub's threads, with its fields
    running.start_relay()
    for name in ("router", "timeline", "inbox"):
        running.start_consumer_thread(name)
    with api_client(running.hub) as client:
        ude, amt = running.partners.headers(client, "ude"), running.partners.headers(client, "amt")
        gone = client.post(
            "/v1/referrals", json=referral(ERASED_PERSON, "Quantenoptikprogramm"), headers=ude
        ).json()
        kept = client.post(
            "/v1/referrals", json=referral(KEPT_PERSON, "Bauingenieurwesen"), headers=ude
        ).json()
        r = client.post(
            f"/v1/referrals/{gone['id']}/status",
            headers=amt,
            json={
                "status": "on-hold",
                "reason": "awaiting-client-documents",
                "note": "Rückfragenotiz",
            },
        )
        assert r.status_code == 409  # on-hold only after acceptance
        for step in (
            {"status": "accepted"},
            {"status": "on-hold", "reason": "awaiting-client-documents", "note": "Rückfragenotiz"},
        ):
            assert (
                client.post(
                    f"/v1/referrals/{gone['id']}/status", json=step, headers=amt
                ).status_code
                == 200
            )
        wait_for(lambda: len(client.get("/v1/inbox", headers=amt).json()["items"]) == 2)
        wait_for(lambda: len(client.get("/v1/inbox", headers=ude).json()["items"]) == 2)

        with unit_of_work(running.hub.session_factory) as session:
            erase_person(
                session,
                person_id=gone["person_id"],
                reason="request-art-17",
                by="staff:dsb",
                topic=running.hub.settings.topic_events,
            )

        def published() -> bool:
            """the person.erased event reached Kafka"""
            with running.hub.session_factory() as s:
                return (
                    s.scalar(
                        select(func.count())
                        .select_from(OutboxEvent)
                        .where(OutboxEvent.published_at.is_(None))
                    )
                    == 0
                )

        wait_for(published)
        with unit_of_work(running.hub.session_factory) as session:
            report = export_person(
                session, person_id=gone["person_id"], by="staff:dsb", policy=running.hub.policy
            )
        export_json = tmp_path / "export.json"
        export_json.write_text(json.dumps(report, ensure_ascii=False))
        (tmp_path / "export.html").write_text(render_html(report), encoding="utf-8")

        # The erased person's records still answer, and show as erased rather than failing.
        view = client.get(f"/v1/referrals/{gone['id']}", headers=ude)
        assert view.status_code == 200 and "Quantenoptik" not in view.text
        # Another person's data still reads back.
        assert (
            client.get(f"/v1/referrals/{kept['id']}", headers=ude).json()["payload"]["programme"]
            == "Bauingenieurwesen"
        )
        items = client.get("/v1/inbox", headers=amt).json()["items"]
        names = [i["data"].get("person", {}).get("family_name") for i in items]
        assert "Benkiranwati" in names and "Zhangwenqiang" not in names

    haystacks = {
        "kafka": all_topic_bytes(running.hub.bootstrap_servers),
        "logs": "\n".join(str(vars(r)) for r in caplog.records).encode(),
        "export.json": export_json.read_bytes(),
        "export.html": (tmp_path / "export.html").read_bytes(),
    }
    if running.hub.engine.dialect.name == "sqlite":
        running.hub.engine.dispose()
        db_path = running.hub.engine.url.database or ""
        with sqlite3.connect(db_path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        haystacks["database"] = b"".join(
            Path(p).read_bytes() for p in (db_path, db_path + "-wal") if Path(p).exists()
        )
    assert b"Benkiranwati" in haystacks["kafka"] or b"enc:v1:" in haystacks["kafka"]
    leaks = {(where, n.decode()) for where, data in haystacks.items() for n in NEEDLES if n in data}
    assert leaks == set(), f"plaintext of the erased person found: {sorted(leaks)}"
