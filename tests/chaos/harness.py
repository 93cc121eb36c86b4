"""The system under test for the chaos suite, and how its outcome is measured.

One ``Stack`` per scenario: a fresh embedded broker, a fresh database, the gateway, the relay
and the consumers (router, timeline, delivery) as separate ``hub`` processes that can be
SIGKILLed, and one push-delivery partner simulator per performer. A ``Load`` creates
referrals through the gateway's HTTP API and keeps a ledger of what was answered 202.
``measure`` compares the ledger with what the partner simulators recorded and with the
dead-letter topic.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaProducer
from sqlalchemy import func, select

from connectors.simulator import Delivery
from hub.deadletters import service as dlq
from hub.kafka.client import ensure_topics
from hub.kafka.embedded import EmbeddedBroker, free_port
from hub.outbox.models import OutboxEvent
from hub.referrals.models import Referral
from hub.runtime import topic_plan
from tests.hubtest import make_hub
from tests.integration.conftest import Running
from tests.integration.push import Sim, start_sims
from tests.integration.test_push_delivery import REFERRALS

#: The performers that get deliveries in this suite (each with a push simulator).
PERFORMERS = ("amt", "jobcenter", "ihk-fosa")
#: Marks the records the malformed scenario writes straight into the events topic.
MALFORMED_HEADER = "chaos_malformed"
REQUESTED = "referral.requested"
#: The consumer processes of the pipeline (all read with their own consumer group).
CONSUMERS = ("router", "timeline", "delivery")


# ---------------------------------------------------------------- the system under test


class Stack:
    """Broker, database, gateway, relay, consumers and simulators for one scenario."""

    def __init__(self, database_url: str, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.broker = EmbeddedBroker(log_path=workdir / "broker.log")
        self.broker.start()
        hub, partners = make_hub(
            database_url, workdir, kafka_bootstrap_servers=self.broker.bootstrap_servers
        )
        ensure_topics(self.broker.bootstrap_servers, topic_plan(hub))
        self.gateway_port = free_port()
        env = {
            **os.environ,
            "HUB_DATABASE_URL": database_url,
            "HUB_DATA_DIR": str(workdir),
            "HUB_KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
            "HUB_LOG_FORMAT": "json",
            "HUB_HTTP_PORT": str(self.gateway_port),
            # the load comes from three partners; the API's per-partner limits are not tested
            "HUB_RATE_LIMIT_API_PER_MINUTE": "1000000",
            "HUB_RATE_LIMIT_TOKEN_PER_MINUTE": "100000",
        }
        self.running = Running(hub, partners, env)
        self.sims: dict[str, Sim] = start_sims(self.running, list(PERFORMERS))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.kills: dict[str, int] = defaultdict(int)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    # processes

    def spawn(self, role: str) -> subprocess.Popen[bytes]:
        """Start (again) one role: gateway, relay, router, timeline or delivery."""
        args = ("gateway",) if role == "gateway" else ("relay",) if role == "relay" else ()
        proc = self.running.spawn(*(args or ("consume", role)))
        self.procs[role] = proc
        if role == "gateway":
            self.wait_gateway()
        return proc

    def kill(self, role: str) -> None:
        """SIGKILL one role's process, as a crash would."""
        proc = self.procs[role]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            self.kills[role] += 1
        proc.wait(timeout=10)

    def start_all(self) -> None:
        for role in ("gateway", "relay", *CONSUMERS):
            self.spawn(role)

    def wait_gateway(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.base_url}/health", timeout=1.0)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"gateway did not answer on {self.base_url}")

    def close(self) -> None:
        self.running.close()
        for sim in self.sims.values():
            sim.server.stop()
        self.broker.stop()

    # observations

    def unpublished(self) -> int:
        with self.running.hub.session_factory() as s:
            q = select(func.count()).select_from(OutboxEvent)
            return int(s.scalar(q.where(OutboxEvent.published_at.is_(None))) or 0)

    def performers_of(self, referral_ids: set[str]) -> dict[str, str]:
        """Each referral's performer as the hub recorded it (also for unacknowledged ones)."""
        out: dict[str, str] = {}
        ids = sorted(referral_ids)
        with self.running.hub.session_factory() as s:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                rows = s.execute(
                    select(Referral.id, Referral.performer_id).where(Referral.id.in_(chunk))
                )
                out.update({rid: pid for rid, pid in rows})
        return out

    def dead_letters(self) -> list[dlq.DeadLetter]:
        try:
            return dlq.read_all(self.broker.bootstrap_servers, self.running.hub.settings)
        except Exception:
            return []  # broker down or restarting: nothing readable now

    def set_mode(self, performer: str, mode: str, delay: float = 0.0) -> None:
        url = f"{self.sims[performer].server.url}/_sim/mode"
        httpx.post(url, json={"mode": mode, "delay": delay}, timeout=5).raise_for_status()


# ---------------------------------------------------------------- load and ledger


@dataclass
class Acked:
    referral_id: str
    key: str
    performer: str
    person: str
    seq: int
    at: float


@dataclass
class Ledger:
    acked: dict[str, Acked] = field(default_factory=dict)
    unanswered: int = 0  # no HTTP answer (connection refused/reset, timeout)
    refused: int = 0  # an HTTP answer other than 202
    refused_statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: int = 0
    answered: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.answered = threading.Condition(self.lock)


def _body(performer: str, person: str) -> tuple[str, dict[str, Any]]:
    requester, template = REFERRALS[performer]
    letters = "".join(chr(ord("a") + int(c)) for c in person[-8:] if c.isdigit()) or "x"
    person_data = {
        "given_name": f"Chaos{letters.capitalize()}",
        "family_name": f"Test{letters.capitalize()}",
        "birth_date": "1990-01-01",
        "partner_reference": person,
    }
    return requester, {**template, "person": person_data}


class Load:
    """Creates referrals through the HTTP API from a few threads; each person's referrals
    come from one thread, one after the other, so their recorded order is known."""

    def __init__(
        self,
        stack: Stack,
        *,
        people: int,
        per_person: int,
        rate: float,
        threads: int = 4,
        ledger: Ledger | None = None,
        tag: str = "",
    ) -> None:
        self.stack = stack
        self.ledger = ledger or Ledger()
        self.rate = rate
        self.threads = threads
        run = uuid.uuid4().hex[:6]
        performers = itertools.cycle(PERFORMERS)
        # per thread: a list of (person, performer, seq), persons interleaved
        work: list[list[tuple[str, str, int]]] = [[] for _ in range(threads)]
        for i in range(people):
            person = f"CH{tag}{run}{i:08d}"
            performer = next(performers)
            for seq in range(per_person):
                work[i % threads].append((person, performer, seq))
        for items in work:
            items.sort(key=lambda item: item[2])
        self.work = work
        self.total = people * per_person
        self.started = 0.0
        self.ended = 0.0
        self._threads: list[threading.Thread] = []

    def start(self) -> Load:
        self.started = time.monotonic()
        self._threads = [
            threading.Thread(target=self._run, args=(items,), daemon=True, name=f"load-{n}")
            for n, items in enumerate(self.work)
        ]
        for t in self._threads:
            t.start()
        return self

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def wait(self, timeout: float = 600.0) -> None:
        for t in self._threads:
            t.join(timeout=timeout)
        self.ended = time.monotonic()

    def _run(self, items: list[tuple[str, str, int]]) -> None:
        interval = self.threads / self.rate
        tokens: dict[str, str] = {}
        partners = self.stack.running.partners
        with httpx.Client(base_url=self.stack.base_url, timeout=10.0) as client:
            next_at = time.monotonic()
            for person, performer, seq in items:
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))
                requester, body = _body(performer, person)
                key = f"{person}-{seq}"
                status, answer = self._post(client, partners, tokens, requester, body, key)
                if status is None:  # gateway down: wait for it, then go on with the next
                    with contextlib.suppress(RuntimeError):
                        self.stack.wait_gateway(timeout=30)
                    next_at = time.monotonic()
                with self.ledger.lock:
                    if status is None:
                        self.ledger.unanswered += 1
                    elif status == 202:
                        rid = str(answer["id"])
                        self.ledger.acked[rid] = Acked(
                            rid, key, performer, person, seq, time.monotonic()
                        )
                    else:
                        self.ledger.refused += 1
                        self.ledger.refused_statuses[status] += 1
                    self.ledger.answers += 1
                    self.ledger.answered.notify_all()

    @staticmethod
    def _post(
        client: httpx.Client,
        partners: Any,
        tokens: dict[str, str],
        requester: str,
        body: dict[str, Any],
        key: str,
    ) -> tuple[int | None, Any]:
        """One POST; a 401 (token from before a restart, expired) is retried with a new one."""
        for _ in range(2):
            try:
                if requester not in tokens:
                    tokens[requester] = partners.token(client, requester)
                r = client.post(
                    "/v1/referrals",
                    json=body,
                    headers={
                        "Authorization": f"Bearer {tokens[requester]}",
                        "Idempotency-Key": key,
                    },
                )
            except (httpx.HTTPError, AssertionError):
                return None, None  # no answer, or no token (gateway down): not acknowledged
            if r.status_code == 401:
                tokens.pop(requester, None)
                continue
            return r.status_code, (r.json() if r.status_code == 202 else None)
        return 401, None


# ---------------------------------------------------------------- malformed records


def malformed_record(n: int) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """The n-th malformed record: four kinds of poison, each marked with its number."""
    mark = (MALFORMED_HEADER, str(n).encode())
    ce = [
        ("ce_specversion", b"1.0"),
        ("ce_id", f"chaos-bad-{n}".encode()),
        ("ce_source", b"/chaos"),
        ("ce_type", REQUESTED.encode()),
        ("ce_time", b"2026-01-01T00:00:00Z"),
    ]
    kind = n % 4
    if kind == 0:
        return b"not json at all", [*ce, mark]
    if kind == 1:
        return b'{"event_id": 1}', [mark]  # no CloudEvents headers
    if kind == 2:
        return b"[1, 2, 3]", [*ce, mark]  # JSON but not an object
    return b"\xff\xfe\xfa invalid utf-8", [*ce, mark]


def inject_malformed(stack: Stack, count: int, spread_seconds: float) -> list[str]:
    """Write ``count`` malformed records into the events topic with a raw producer."""
    producer = KafkaProducer(bootstrap_servers=stack.broker.bootstrap_servers, acks="all")
    ids = []
    try:
        for n in range(count):
            value, headers = malformed_record(n)
            producer.send(
                stack.running.hub.settings.topic_events,
                key=f"chaos-bad-{n}".encode(),
                value=value,
                headers=headers,
            ).get(timeout=30)
            ids.append(str(n))
            time.sleep(spread_seconds / max(count, 1))
    finally:
        producer.close(timeout=5)
    return ids


# ---------------------------------------------------------------- measuring


@dataclass
class Outcome:
    acknowledged: int = 0
    unanswered: int = 0
    refused: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    lost: int = 0
    # One event id received more than once (a delivery consumer killed between the partner's
    # answer and its own commit sends again). Not an effect: every receipt carried the event
    # id as Idempotency-Key, and the partner applied the first only.
    redelivered: int = 0
    # A repeat under another Idempotency-Key, or none: the partner could not recognise it.
    unkeyed_repeats: int = 0
    duplicate_steps: int = 0  # two event ids for the same referral step at a partner
    misrouted: int = 0
    order_violations: int = 0
    unacknowledged_delivered: int = 0  # no 202 seen, yet the hub had committed it
    malformed_injected: int = 0
    malformed_precision: float | None = None
    malformed_recall: float | None = None
    recovery_seconds: float | None = None
    settled: bool = False
    lost_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kills: dict[str, int] = field(default_factory=dict)

    @property
    def duplicate_effects(self) -> int:
        return self.unkeyed_repeats + self.duplicate_steps

    @property
    def passed(self) -> bool:
        ok = self.lost == 0 and self.duplicate_effects == 0 and self.misrouted == 0
        if self.malformed_injected:
            ok = ok and self.malformed_precision == 1.0 and self.malformed_recall == 1.0
        return ok

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "lost_ids"}
        d["lost_ids"] = self.lost_ids[:20]
        d["duplicate_effects"] = self.duplicate_effects
        d["passed"] = self.passed
        return d


def unrecognisable_repeat(delivery: Delivery) -> bool:
    """Received more than once, and not every time under its event id as Idempotency-Key: a
    partner keeping keys would apply it again."""
    keys = set(delivery.idempotency_keys)
    return delivery.received_count > 1 and keys != {delivery.event_id}


def delivered_now(stack: Stack) -> dict[str, list[tuple[str, Any]]]:
    """referral id -> [(partner, delivery)] of every referral.requested at the simulators."""
    out: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for pid, sim in stack.sims.items():
        for d in sim.received().values():
            if d.referral_id and d.event_type.removesuffix(".v1").endswith(REQUESTED):
                out[d.referral_id].append((pid, d))
    return out


def rejected_now(letters: list[dlq.DeadLetter]) -> set[str]:
    """Referral ids whose delivery a partner rejected for good (dead-lettered by delivery)."""
    out = set()
    for letter in letters:
        if letter.consumer.startswith("delivery."):
            subject = dict(letter.headers).get("ce_subject")
            if subject:
                out.add(subject.decode(errors="replace"))
    return out


def malformed_scores(
    letters: list[dlq.DeadLetter], injected: list[str], events_topic: str
) -> tuple[float, float, dict[str, Any]]:
    """Precision and recall of the dead-letter topic against the injected records, taking
    the worse of the consumers that read the events topic (router, timeline)."""
    per: dict[str, dict[str, Any]] = {}
    for consumer in ("router", "timeline"):
        mine = [x for x in letters if x.consumer == consumer and x.original_topic == events_topic]
        marks = [dict(x.headers).get(MALFORMED_HEADER) for x in mine]
        hits = {m.decode() for m in marks if m is not None}
        precision = (len([m for m in marks if m is not None]) / len(mine)) if mine else 1.0
        recall = len(hits & set(injected)) / len(injected) if injected else 1.0
        per[consumer] = {"dead_letters": len(mine), "precision": precision, "recall": recall}
    return (
        min(p["precision"] for p in per.values()),
        min(p["recall"] for p in per.values()),
        per,
    )


def settle(
    stack: Stack,
    ledger: Ledger,
    *,
    since: float,
    timeout: float,
    injected: list[str] | None = None,
) -> float | None:
    """Wait until every acknowledged referral was delivered or dead-lettered (and every
    injected malformed record dead-lettered); seconds from ``since``, None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivered = delivered_now(stack)
        with ledger.lock:
            owed = set(ledger.acked) - set(delivered)
        letters: list[dlq.DeadLetter] | None = None
        if owed or injected:
            letters = stack.dead_letters()
            owed -= rejected_now(letters)
        done = not owed
        if done and injected and letters is not None:
            _, recall, _ = malformed_scores(
                letters, injected, stack.running.hub.settings.topic_events
            )
            done = recall == 1.0
        if done:
            return time.monotonic() - since
        time.sleep(0.5)
    return None


def measure(
    stack: Stack, ledger: Ledger, *, injected: list[str] | None = None, quiet: float = 2.0
) -> Outcome:
    """Compare ledger, partners and dead-letter topic (after ``quiet`` s for late repeats)."""
    time.sleep(quiet)
    out = Outcome(kills=dict(stack.kills))
    delivered = delivered_now(stack)
    letters = stack.dead_letters()
    rejected = rejected_now(letters)
    with ledger.lock:
        acked = dict(ledger.acked)
        out.unanswered, out.refused = ledger.unanswered, ledger.refused
        if ledger.refused_statuses:
            out.notes.append(f"non-202 answers: {dict(ledger.refused_statuses)}")
    out.acknowledged = len(acked)
    out.delivered = len([r for r in acked if r in delivered])
    out.dead_lettered = len([r for r in acked if r in rejected and r not in delivered])
    lost = sorted(set(acked) - set(delivered) - rejected)
    out.lost, out.lost_ids = len(lost), lost
    both = [r for r in acked if r in rejected and r in delivered]
    if both:
        out.notes.append(f"{len(both)} referrals both delivered and dead-lettered")
    performers = stack.performers_of(set(delivered))
    for rid, got in delivered.items():
        if rid not in acked:
            out.unacknowledged_delivered += 1
        for pid, d in got:
            if d.received_count > 1:
                out.redelivered += 1
                out.unkeyed_repeats += unrecognisable_repeat(d)
            if performers.get(rid, acked[rid].performer if rid in acked else None) != pid:
                out.misrouted += 1
        # the same step (referral.requested) under two event ids at one partner
        per_partner: dict[str, set[str]] = defaultdict(set)
        for pid, d in got:
            per_partner[pid].add(d.event_id)
        out.duplicate_steps += sum(len(ids) - 1 for ids in per_partner.values())
    # per-person order at each partner: the order of first receipt against the ledger
    for sim in stack.sims.values():
        last: dict[str, int] = {}
        for d in sim.received().values():
            entry = acked.get(d.referral_id or "")
            if entry is None:
                continue
            if entry.seq < last.get(entry.person, -1):
                out.order_violations += 1
            last[entry.person] = max(entry.seq, last.get(entry.person, -1))
    if injected is not None:
        out.malformed_injected = len(injected)
        p, r, per = malformed_scores(letters, injected, stack.running.hub.settings.topic_events)
        out.malformed_precision, out.malformed_recall = p, r
        out.notes.append(f"malformed per consumer: {per}")
    return out


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise RuntimeError(f"not within {timeout} s: {what}")
