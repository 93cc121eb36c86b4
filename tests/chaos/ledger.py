"""An independent ledger of what partners were told and what they received, over HTTP only.

The requester (``ude``) sends referrals to the performer (``amt``) at a steady rate, each
request retried under the same ``Idempotency-Key`` until it gets an answer. The performer
pulls its inbox, accepts some of the referrals (some of those it then starts working on)
and acknowledges each message once it acted on it; the requester pulls its inbox for those
status changes. Both sides are partners as docs/partners.md describes them: they retry
everything that got no answer, and they keep pulling until nothing more arrives.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from schemas.cloudevents import EventType
from tests.hubtest import STUDENT_REFERRAL

REQUESTER = "ude"
PERFORMER = "amt"
#: The statuses the performer sets on a referral, by the referral id's last hex digit: none
#: on half of them, "accepted" on a quarter, "accepted" then "in-progress" on the rest.
PLANS: tuple[tuple[str, ...], ...] = ((), ("accepted",), ("accepted", "in-progress"))
RETRY_PAUSE = 0.2
POLL_PAUSE = 0.3


def plan_for(referral_id: str) -> tuple[str, ...]:
    """The status changes the performer makes on this referral (fixed per referral)."""
    digit = int(referral_id.replace("-", "")[-1], 16)
    return PLANS[0] if digit < 8 else PLANS[1] if digit < 12 else PLANS[2]


# ---------------------------------------------------------------- one partner's HTTP client


class Stopped(Exception):
    """The scenario ended before this request got an answer."""


class Partner:
    """A partner's HTTP client that retries a request until it gets an answer.

    No answer (connection refused or reset, timeout), 5xx, 429 and a 409 for a key in use
    by a request still running are not answers: the same request, under the same
    ``Idempotency-Key``, goes again. A 401 (a token from before a restart) fetches a token.
    """

    def __init__(self, base_url: str, creds: dict[str, Any], stop: threading.Event) -> None:
        self.creds = creds
        self.stop = stop
        self.http = httpx.Client(base_url=base_url, timeout=httpx.Timeout(30.0, connect=2.0))
        self.token: str | None = None
        self.unanswered: dict[str, int] = defaultdict(int)  # why a try got no answer

    def close(self) -> None:
        self.http.close()

    def call(
        self, method: str, path: str, *, key: str | None = None, body: Any = None
    ) -> tuple[httpx.Response, int]:
        """The first answer to this request, and how many tries it took."""
        tries = 0
        while not self.stop.is_set():
            tries += 1
            response = self._try(method, path, key, body)
            if response is not None:
                return response, tries
            self.stop.wait(RETRY_PAUSE)
        raise Stopped(f"{method} {path}")

    def _try(self, method: str, path: str, key: str | None, body: Any) -> httpx.Response | None:
        headers = {"Idempotency-Key": key} if key else {}
        try:
            if self.token is None:
                self.token = self._fetch_token()
                if self.token is None:
                    return None
            headers["Authorization"] = f"Bearer {self.token}"
            r = self.http.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            self.unanswered[type(exc).__name__] += 1
            return None
        if r.status_code == 401:
            self.token = None
        elif r.status_code == 429:
            self.stop.wait(min(float(r.headers.get("Retry-After", "1")), 2.0))
        elif not (r.status_code >= 500 or (r.status_code == 409 and "in use" in r.text)):
            return r
        self.unanswered[str(r.status_code)] += 1
        return None

    def _fetch_token(self) -> str | None:
        r = self.http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(self.creds["client_id"], self.creds["client_secret"]),
        )
        if r.status_code != 200:
            self.unanswered[f"token {r.status_code}"] += 1
            return None
        return str(r.json()["access_token"])


# ---------------------------------------------------------------- the ledger


@dataclass
class Request:
    key: str
    family_name: str
    status: int | None = None  # the answer
    referral_id: str | None = None  # on 202
    tries: int = 0
    answered_at: float | None = None  # seconds into the scenario


@dataclass
class Ledger:
    """What each side was answered and what it received; shared by the worker threads."""

    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    requests: dict[str, Request] = field(default_factory=dict)
    #: (referral id, status) -> the answer to the performer's status change
    changes: dict[tuple[str, str], int] = field(default_factory=dict)
    #: performer's inbox: referral id -> event ids of its referral.requested
    requested: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    #: performer's inbox: family name (one per request) -> referral ids that arrived for it
    names: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    #: requester's inbox: (referral id, status) -> event ids of its status change
    status_events: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    #: event id -> times it was handed out by either inbox (again when an ack was lost)
    receipts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: event ids whose ack was answered 204, and those of them handed out again after that
    acks: set[str] = field(default_factory=set)
    after_ack: set[str] = field(default_factory=set)
    last_receipt: float = field(default_factory=time.monotonic)
    #: (seconds into the scenario, what happened) for every fault and restart
    faults: list[tuple[float, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acked(self) -> dict[str, Request]:
        """The requests answered 202, by referral id."""
        with self.lock:
            return {r.referral_id: r for r in self.requests.values() if r.referral_id}

    def answers(self) -> int:
        with self.lock:
            return sum(1 for r in self.requests.values() if r.status is not None)

    def received(self, event_id: str) -> None:
        with self.lock:
            self.receipts[event_id] += 1
            if event_id in self.acks:
                self.after_ack.add(event_id)
            self.last_receipt = time.monotonic()

    def acknowledged(self, event_id: str) -> None:
        with self.lock:
            self.acks.add(event_id)

    def fault(self, what: str) -> None:
        with self.lock:
            self.faults.append((round(time.monotonic() - self.started, 2), what))

    def dump(self, path: Path) -> None:
        """Every request with its answer and whether it arrived, and the faults (JSON)."""
        with self.lock:
            requests = [
                {**r.__dict__, "arrived": r.referral_id in self.requested}
                for r in self.requests.values()
            ]
            doc = {"requests": requests, "faults": self.faults, "changes": len(self.changes)}
        path.write_text(json.dumps(doc, indent=1))


def referral_body(ledger: Ledger, n: int) -> tuple[str, dict[str, Any]]:
    """The n-th referral: its key, and a body whose person names that key."""
    key = f"ledger-{ledger.run}-{n:05d}"
    person = {
        "given_name": "Ledger",
        "family_name": key,
        "birth_date": "2001-04-03",
        "partner_reference": key,
    }
    return key, {**STUDENT_REFERRAL, "person": person}


# ---------------------------------------------------------------- the two partners at work


class Requester:
    """``ude``: sends the referrals from a few threads at a steady rate in all."""

    def __init__(
        self, base_url: str, creds: dict[str, Any], ledger: Ledger, *, count: int, rate: float
    ) -> None:
        self.base_url, self.creds, self.ledger = base_url, creds, ledger
        self.count, self.rate = count, rate
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.clients: list[Partner] = []
        self.ended = 0.0

    def start(self, threads: int = 4) -> Requester:
        for n in range(threads):
            client = Partner(self.base_url, self.creds, self.stop)
            items = list(range(n, self.count, threads))
            t = threading.Thread(target=self._send, args=(client, items, threads), daemon=True)
            self.clients.append(client)
            self.threads.append(t)
            t.start()
        return self

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def wait(self, timeout: float) -> None:
        """Until every referral was answered, or ``timeout``; what is unanswered then stays so."""
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        self.close()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=40)
        for client in self.clients:
            client.close()
        if not self.ended:
            self.ended = time.monotonic()

    def _send(self, client: Partner, items: list[int], threads: int) -> None:
        interval = threads / self.rate
        next_at = time.monotonic() + interval * (items[0] if items else 0) / threads
        for n in items:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at + interval, time.monotonic() - interval)
            key, body = referral_body(self.ledger, n)
            request = Request(key=key, family_name=key)
            with self.ledger.lock:
                self.ledger.requests[key] = request
            with contextlib.suppress(Stopped):
                r, request.tries = client.call("POST", "/v1/referrals", key=key, body=body)
                with self.ledger.lock:
                    request.status = r.status_code
                    request.answered_at = round(time.monotonic() - self.ledger.started, 2)
                    if r.status_code == 202:
                        request.referral_id = str(r.json()["id"])


class Inboxes:
    """The performer and the requester pulling their inboxes, each in its own thread."""

    def __init__(self, base_url: str, creds: dict[str, dict[str, Any]], ledger: Ledger) -> None:
        self.ledger = ledger
        self.stop = threading.Event()
        self.performer = Partner(base_url, creds[PERFORMER], self.stop)
        self.requester = Partner(base_url, creds[REQUESTER], self.stop)
        self.threads = [
            threading.Thread(target=self._pull, args=(self.performer, self._act), daemon=True),
            threading.Thread(target=self._pull, args=(self.requester, self._note), daemon=True),
        ]

    def start(self) -> Inboxes:
        for t in self.threads:
            t.start()
        return self

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=40)
        self.performer.close()
        self.requester.close()

    def _pull(self, partner: Partner, handle: Any) -> None:
        with contextlib.suppress(Stopped):
            while not self.stop.is_set():
                r, _ = partner.call("GET", "/v1/inbox?limit=100")
                items = r.json()["items"] if r.status_code == 200 else []
                for item in items:
                    event_id = item["event_id"]
                    self.ledger.received(event_id)
                    handle(item)
                    ack, _ = partner.call("POST", f"/v1/inbox/{event_id}/ack")
                    if ack.status_code == 204:  # committed: it must not come back
                        self.ledger.acknowledged(event_id)
                if not items:
                    self.stop.wait(POLL_PAUSE)

    def _act(self, item: dict[str, Any]) -> None:
        """The performer: note a new referral, make its planned status changes (same key
        each time, so a message handed out again after a lost ack changes nothing twice)."""
        if item["event_type"] != EventType.REFERRAL_REQUESTED:
            return
        rid, name = str(item["referral_id"]), item["data"]["person"]["family_name"]
        with self.ledger.lock:
            self.ledger.requested[rid].add(item["event_id"])
            self.ledger.names[name].add(rid)
        for status in plan_for(rid):
            key = hashlib.sha256(f"{rid}:{status}".encode()).hexdigest()[:32]
            path = f"/v1/referrals/{rid}/status"
            r, _ = self.performer.call("POST", path, key=key, body={"status": status})
            with self.ledger.lock:
                self.ledger.changes[(rid, status)] = r.status_code

    def _note(self, item: dict[str, Any]) -> None:
        """The requester: note each status change it is told about."""
        if item["event_type"] != EventType.REFERRAL_STATUS_CHANGED:
            return
        step = (str(item["referral_id"]), str(item["data"]["status"]))
        with self.ledger.lock:
            self.ledger.status_events[step].add(item["event_id"])
