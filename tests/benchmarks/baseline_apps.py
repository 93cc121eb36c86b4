"""The two ingest baselines, served by uvicorn in their own process like the hub's gateway.

``bare``: parses the body into :class:`schemas.messages.ReferralCreate` and answers 202 (the
HTTP ceiling of FastAPI on this machine). ``direct_kafka``: the same, then produces the body to
Kafka with kafka-python (``make_producer``: acks=all, idempotent) and waits for the ack before
answering; no auth, no database, no outbox. Kafka address: ``BENCH_KAFKA``; topic
``BENCH_TOPIC`` (default ``bench.direct.v1``).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from hub.kafka.client import make_producer
from schemas.messages import ReferralCreate

bare = FastAPI()


@bare.post("/v1/referrals", status_code=202)
async def bare_create(body: ReferralCreate) -> JSONResponse:
    return JSONResponse({"id": str(uuid.uuid4()), "status": "requested"}, status_code=202)


direct_kafka = FastAPI()
_producer: dict[str, Any] = {}


def _kafka() -> Any:
    if "p" not in _producer:
        _producer["p"] = make_producer(os.environ["BENCH_KAFKA"], client_id="bench.direct")
    return _producer["p"]


@direct_kafka.post("/v1/referrals", status_code=202)
def direct_create(body: ReferralCreate) -> JSONResponse:
    # Sync endpoint (FastAPI's thread pool) like the hub's: it blocks until the broker acks.
    rid = str(uuid.uuid4())
    value = body.model_dump_json().encode()
    _kafka().send(
        os.environ.get("BENCH_TOPIC", "bench.direct.v1"), value=value, key=rid.encode()
    ).get(timeout=10)
    return JSONResponse({"id": rid, "status": "requested"}, status_code=202)
