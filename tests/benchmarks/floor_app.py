"""The ingest floor: a referral's durable work hand-rolled, without the hub's plumbing.

    python -m tests.benchmarks.floor_app --port P --workers N   (BENCH_DATABASE, BENCH_TOKEN)

What the hub must do for an accepted referral, and nothing around it: check the bearer token
against a token held in memory (by its SHA-256, as the hub's cache does in the steady state),
validate the body into :class:`schemas.messages.ReferralCreate`, make the person's data key
and wrap it, seal the person's three fields and the payload's with AES-GCM, compute the five
search digests, build the event, and write the same 14 rows as the hub into the hub's own
tables (audit record of the call, person reference, person key, person, five index rows,
referral, its first history entry, two outbox rows, the ``Idempotency-Key``) in one
statement, with PostgreSQL's own placeholders, prepared by psycopg. Requests that arrive
while a commit runs go together in the next transaction (one ``COMMIT`` for them all, as the
hub's group commit does); each 202 leaves after its transaction committed. Served by uvicorn
(httptools, uvloop), each of ``--workers`` processes on a socket of its own in one
``SO_REUSEPORT`` group, as ``hub gateway`` does.

It takes what the load sends (a new person with both names, a birth date and a partner
reference; anything else is a 422) and is a measuring stick, not a gateway: no rate limit, no
policy, no routing table (the performer is the body's), no telemetry, no problem documents,
no audit of refusals. A repeated ``Idempotency-Key`` would keep its rows (the load never
repeats one). What the hub spends beyond this floor is its plumbing; what this floor spends
is what the work costs here.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import multiprocessing
import os
import queue
import secrets
import signal
import socket
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
import uvicorn
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from psycopg.types.json import Json

from schemas.messages import ReferralCreate

_TS = "TIMESTAMP WITH TIME ZONE"
# The statement the hub sends for a new person's referral with an Idempotency-Key
# (hub.staged: data-modifying CTEs, the claim last).
STATEMENT = f"""WITH
w0 AS (INSERT INTO audit_log (at, actor_type, actor, action, person_id, purpose, details)
  VALUES ($1::{_TS}, $2, $3, $4, $5, $6, $7::JSON)),
w1 AS (INSERT INTO person_references (person_id, partner_id, reference, reference_key,
  created_at) VALUES ($8, $9, $10, $11, $12::{_TS})),
w2 AS (INSERT INTO person_keys (person_id, wrapped_key, master_key_id, created_at)
  VALUES ($13, $14, $15, $16::{_TS})),
w3 AS (INSERT INTO people (id, given_name, family_name, birth_date, created_at)
  VALUES ($17, $18, $19, $20, $21::{_TS})),
w4 AS (INSERT INTO person_index (person_id, kind, digest) VALUES ($22, $23, $24),
  ($25, $26, $27), ($28, $29, $30), ($31, $32, $33), ($34, $35, $36)),
w5 AS (INSERT INTO referrals (id, type, requester_id, performer_id, person_id, status,
  business_status, payload, correlation_id, created_at, updated_at, shredded_at, version)
  VALUES ($37, $38, $39, $40, $41, $42, $43, $44::JSON, $45, $46::{_TS}, $47::{_TS},
  $48::{_TS}, $49::INTEGER)),
w6 AS (INSERT INTO referral_status_history (referral_id, status, business_status, reason,
  outcome, note, set_by, occurred_at, recorded_at, event_id)
  VALUES ($50, $51, $52, $53, $54, $55, $56, $57::{_TS}, $58::{_TS}, $59)),
w7 AS (INSERT INTO outbox (event_id, topic, key, headers, value, created_at, published_at,
  settled_at, replay) VALUES ($60, $61, $62, $63::JSON, $64, $65::{_TS}, $66::{_TS},
  $67::{_TS}, $68::INTEGER), ($69, $70, $71, $72::JSON, $73, $74::{_TS}, $75::{_TS},
  $76::{_TS}, $77::INTEGER))
INSERT INTO idempotency_records (partner_id, key, request_hash, status_code, response,
  location, created_at) VALUES ($78, $79, $80, $81::INTEGER, $82::JSON, $83, $84::{_TS})
ON CONFLICT DO NOTHING"""

_MASTER = AESGCM(hashlib.sha256(b"bench floor master key").digest())
_INDEX_KEY = hashlib.sha256(b"bench floor index key").digest()
_TOKENS: dict[bytes, str] = {}
_MOST = 64  # requests per transaction at most


def _seal(cipher: AESGCM, text: str) -> str:
    nonce = secrets.token_bytes(12)
    sealed = nonce + cipher.encrypt(nonce, text.encode(), None)
    return "enc:v1:" + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()


def _digest(kind: str, value: str) -> bytes:
    return hmac.new(_INDEX_KEY, f"{kind}:{value.casefold()}".encode(), hashlib.sha256).digest()


def _row(
    body: ReferralCreate, raw: bytes, partner: str, key: str
) -> tuple[tuple[Any, ...], str] | None:
    """The statement's values; None for a body whose rows would differ from the load's."""
    person = body.person
    given_name, family_name, birth = person.given_name, person.family_name, person.birth_date
    if person.id or not (given_name and family_name and birth and person.partner_reference):
        return None
    now = datetime.now(UTC)
    stamp = now.isoformat().replace("+00:00", "Z")
    person_id = "p_" + base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()
    data_key = AESGCM.generate_key(256)
    nonce = secrets.token_bytes(12)
    wrapped = nonce + _MASTER.encrypt(nonce, data_key, person_id.encode())
    cipher = AESGCM(data_key)
    given, family = _seal(cipher, given_name), _seal(cipher, family_name)
    born = _seal(cipher, birth.isoformat())
    payload = {name: _seal(cipher, str(value)) for name, value in body.payload.items()}
    referral_id, event_id, correlation_id = (str(uuid.uuid4()) for _ in range(3))
    event = orjson.dumps(
        {
            "event_id": event_id,
            "referral_id": referral_id,
            "person_id": person_id,
            "acting_partner": partner,
            "occurred_at": stamp,
            "recorded_at": stamp,
            "purpose": "residence",
            "schema_version": "1",
            "correlation_id": correlation_id,
            "causation_id": None,
            "referral_type": body.type,
            "requester": partner,
            "performer": body.performer,
            "person": {"given_name": given, "family_name": family, "birth_date": born},
            "payload": payload,
        }
    ).decode()
    location = f"/v1/referrals/{referral_id}"
    answer = {"id": referral_id, "status": "requested"}
    reference = person.partner_reference
    digests = [
        ("token", _digest("token", given_name)),
        ("phonetic", _digest("phonetic", given_name)),
        ("token", _digest("token", family_name)),
        ("phonetic", _digest("phonetic", family_name)),
        ("birth_date", _digest("birth_date", birth.isoformat())),
    ]

    def headers(topic: str) -> Json:
        return Json([["ce_id", event_id], ["ce_type", "referral.requested"], ["topic", topic]])

    args = (
        *(now, "partner", partner, "api.call", None, None),
        Json({"method": "POST", "route": "/v1/referrals", "status": 202}),
        *(person_id, partner, reference, reference.upper(), now),
        *(person_id, wrapped, "bench-floor", now),
        *(person_id, given, family, born, now),
        *(x for kind, digest in digests for x in (person_id, kind, digest)),
        *(referral_id, body.type, partner, body.performer, person_id, "requested", None),
        *(Json(payload), correlation_id, now, now, None, 1),
        *(referral_id, "requested", None, None, None, None, partner, now, now, event_id),
        *(event_id, "hub.events.v1", person_id, headers("hub.events.v1"), event, now),
        *(None, None, 0),
        *(event_id, f"hub.deliveries.{body.performer}.v1", person_id),
        *(headers(f"hub.deliveries.{body.performer}.v1"), event, now, None, None, 0),
        *(partner, key, hashlib.sha256(raw).hexdigest(), 202, Json(answer), location, now),
    )
    return args, referral_id


class _Committer:
    """One thread, one connection: runs what queued as one transaction, then the next."""

    def __init__(self, url: str) -> None:
        self._queue: queue.SimpleQueue[tuple[tuple[Any, ...], asyncio.Future[None]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._thread.start()

    def submit(self, args: tuple[Any, ...]) -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        self._queue.put((args, future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self, url: str) -> None:
        with psycopg.connect(url, cursor_factory=psycopg.RawCursor) as conn:
            stopping = False
            while not stopping:
                batch: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = []
                item = self._queue.get()
                while True:
                    if item is None:  # close(): what queued before it still commits
                        stopping = True
                        break
                    batch.append(item)
                    if len(batch) == _MOST:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    self._commit(conn, batch)

    @staticmethod
    def _commit(
        conn: psycopg.Connection[Any], batch: list[tuple[tuple[Any, ...], asyncio.Future[None]]]
    ) -> None:
        outcome: BaseException | None = None
        try:
            with conn.transaction(), conn.cursor() as cur:
                for args, _future in batch:
                    cur.execute(STATEMENT, args, prepare=True)
        except psycopg.Error as exc:
            outcome = exc
        for _args, future in batch:
            future.get_loop().call_soon_threadsafe(_settle, future, outcome)


def _settle(future: asyncio.Future[None], outcome: BaseException | None) -> None:
    if not future.done():
        if outcome is None:
            future.set_result(None)
        else:
            future.set_exception(outcome)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.committer = _Committer(os.environ["BENCH_DATABASE"])
    try:
        yield
    finally:
        app.state.committer.close()


app = FastAPI(lifespan=_lifespan)


@app.post("/v1/referrals", status_code=202)
async def create(
    request: Request,
    body: ReferralCreate,
    authorization: str = Header(),
    idempotency_key: str = Header(),
) -> JSONResponse:
    partner = _TOKENS.get(hashlib.sha256(authorization.removeprefix("Bearer ").encode()).digest())
    if partner is None:
        raise HTTPException(401)
    raw = body.model_dump_json().encode()
    row = _row(body, raw, partner, idempotency_key)
    if row is None:  # the statement's shape is a new person's with every field
        raise HTTPException(422, "the floor takes a new person with names, birth date, reference")
    args, referral_id = row
    await request.app.state.committer.submit(args)
    return JSONResponse(
        {"id": referral_id, "status": "requested"},
        status_code=202,
        headers={"Location": f"/v1/referrals/{referral_id}"},
    )


def accept(token: str, partner: str) -> None:
    """Let ``token`` act as ``partner``."""
    _TOKENS[hashlib.sha256(token.encode()).digest()] = partner


def _worker(port: int) -> None:
    accept(os.environ["BENCH_TOKEN"], "ude")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    # SIGTERM (the benchmark's stop) ends the workers with this process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_worker, args=(args.port,)) for _ in range(args.workers)]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join()
    finally:
        for worker in workers:
            worker.terminate()


if __name__ == "__main__":
    main()
