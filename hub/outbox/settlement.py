"""When an outbox row is done, and what the relay does on meeting a broker it does not know.

A broker's acknowledgement is not the end of an event: the embedded broker keeps its log in
memory, so whatever it acknowledged but no consumer had applied yet is gone when it
restarts, and nothing would send it again. So (design §13):

- a row is *published* once the broker acknowledged it, and *settled* once every consumer
  group that must apply it has done so; their processed-event marks (``processed_events``,
  written in the transaction of each effect) say so. ``Settler`` finds those rows;
- the relay knows its broker by an *epoch*: the id the broker gave the hub's epoch topic
  (hub.kafka.epoch). A broker that forgot its topics, or a different cluster, gives another
  one. On meeting an epoch the database has not recorded, ``meet_broker`` puts every
  published but unsettled row back in the queue, and the relay sends them again in outbox
  order (so in order per key); consumers drop what they had already applied by event id;
- housekeeping never deletes an unsettled row, nor the marks of its event.

Apache Kafka keeps its log, so in production the epoch never changes and re-publishing
never happens; only the settling runs, on the few rows of the last seconds.

Which groups must apply a row follows from its topic:

- the events topic: the timeline and the deadline consumers, each of them, and the router
  for the events it applies (hub.routing.applies: not those routed at acceptance, nor
  events it never routes);
- a partner's deliveries topic: that partner's inbox (pull) or its push delivery, either;
- every other topic (checkpoints, the epoch): none, so it settles once published. A dead
  letter is not settled by the consumer that gave up on it (it marks nothing): it stays
  owed until staff replay it and it is applied, so a forgetful broker's restart sends it
  again and it reaches the dead-letter topic again, instead of vanishing with that topic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from hub.db import unit_of_work, utcnow
from hub.deliveries.service import consumer_name
from hub.events.models import ProcessedEvent
from hub.inbox.service import consumer_name as inbox_consumer_name
from hub.kafka.cloudevents import PREFIX
from hub.outbox.models import BrokerEpoch, OutboxEvent
from hub.routing.applies import router_applies
from hub.settings import Settings

log = logging.getLogger(__name__)

TYPE = PREFIX + "type"

#: The consumer groups (their names in processed_events) that apply every event.
EVENT_CONSUMERS = ("router", "timeline", "deadlines")
#: The consumer that files every pull partner's copies (each marked per recipient).
INBOX_CONSUMER = "inbox"
#: Rows looked at per query; one settling pass reads at most ``PAGES`` pages of rows new to
#: it and at most as many rows whose next look is due.
PAGE = 500
PAGES = 8
#: Unsettled rows a settler keeps track of at most (what settles them, when to look again).
KNOWN_ROWS = 100_000
#: A row its consumers have not all applied is looked at again after this long, then after
#: twice as long each time up to ``OWED_MOST_SECONDS``: a dead letter, or the backlog of a
#: consumer that is stopped or behind, costs a look now and then instead of every pass.
OWED_FIRST_SECONDS = 1.0
OWED_MOST_SECONDS = 10.0
#: How often a settler reads every unsettled row again from the first: a row it has not met
#: (published by another relay after a row with a higher id, or published again after a
#: broker change while it was not looked at) is found within this long.
ROUND_SECONDS = 60.0


def required(
    settings: Settings, topic: str, headers: list[list[str]] | None = None
) -> list[frozenset[str]]:
    """What settles a row of ``topic`` (with these Kafka headers): for each set, one of its
    consumers must have applied it."""
    if topic == settings.topic_events:
        names = dict((name, value) for name, value in headers or [])
        extensions = {
            name.removeprefix(PREFIX): value for name, value in names.items() if name != TYPE
        }
        routed = router_applies(names.get(TYPE, ""), extensions)
        return [frozenset({name}) for name in EVENT_CONSUMERS if routed or name != "router"]
    prefix, suffix = settings.topic_deliveries_prefix, settings.topic_deliveries_suffix
    if topic.startswith(prefix) and topic.endswith(suffix):
        partner_id = topic[len(prefix) : len(topic) - len(suffix)]
        return [frozenset({inbox_consumer_name(partner_id), consumer_name(partner_id)})]
    return []


def is_settled(needs: list[frozenset[str]], applied_by: set[str]) -> bool:
    """True when every requirement is met by one of the consumers that applied the event."""
    return all(group & applied_by for group in needs)


class _Row(NamedTuple):
    id: int
    topic: str
    event_id: str


@dataclass(slots=True)
class _Owed:
    """An unsettled row met before: what it is, when to look again, the wait after that."""

    topic: str
    event_id: str
    due: float
    wait: float


@dataclass
class Settler:
    """Marks published rows settled once their consumers applied them; one per relay.

    A pass looks at the rows published since the last pass (by outbox id) and at the rows
    still owed whose next look is due. Every ``ROUND_SECONDS`` it starts again from the
    first unsettled row, so that a row published behind one it had already seen is met
    too; rows it is tracking wait for their turn then as well."""

    session_factory: sessionmaker[Session]
    settings: Settings
    clock: Callable[[], float] = time.monotonic
    #: Rows up to this id were met in this round.
    _seen: int = 0
    _round_at: float = float("-inf")
    #: What settles each unsettled row met so far, by outbox id.
    _known: dict[int, list[frozenset[str]]] = field(default_factory=dict)
    #: The rows met and not yet settled, by outbox id.
    _owed: dict[int, _Owed] = field(default_factory=dict)

    def settle(self) -> int:
        """One pass: rows new to this settler, then owed rows that are due; how many it
        settled."""
        now = self.clock()
        if now >= self._round_at:
            self._seen, self._round_at = 0, now + ROUND_SECONDS
        settled = 0
        for _ in range(PAGES):
            with unit_of_work(self.session_factory) as session:
                (done, count), full = self._new_page(session, now)
            self._forget(done)  # committed: they are not looked at again
            settled += count
            if not full:
                break
        due = sorted(row_id for row_id, owed in self._owed.items() if owed.due <= now)
        for start in range(0, min(len(due), PAGES * PAGE), PAGE):
            with unit_of_work(self.session_factory) as session:
                done, count = self._again(session, due[start : start + PAGE], now)
            self._forget(done)
            settled += count
        return settled

    def _new_page(self, session: Session, now: float) -> tuple[tuple[list[int], int], bool]:
        rows = session.execute(
            select(OutboxEvent.id, OutboxEvent.topic, OutboxEvent.event_id)
            .where(
                OutboxEvent.settled_at.is_(None),
                OutboxEvent.published_at.is_not(None),
                OutboxEvent.id > self._seen,
            )
            .order_by(OutboxEvent.id)
            .limit(PAGE)
        ).all()
        if rows:
            self._seen = rows[-1].id
        # A row already owed waits for its turn.
        fresh = [r for r in rows if r.id not in self._owed]
        return self._judge(session, fresh, now), len(rows) == PAGE

    def _again(self, session: Session, ids: list[int], now: float) -> tuple[list[int], int]:
        # What the row is was read when it was met; only its consumers' marks are asked for.
        # A row forgotten since the pass began (more than KNOWN_ROWS owed) waits for a round.
        owed = [(i, self._owed.get(i)) for i in ids]
        rows = [_Row(i, o.topic, o.event_id) for i, o in owed if o is not None]
        return self._judge(session, rows, now)

    def _judge(self, session: Session, rows: Sequence[Any], now: float) -> tuple[list[int], int]:
        """Settle those of ``rows`` their consumers applied; the rest are owed. Returns the
        rows done with (settled now, or no longer waiting as they were: settled by another
        relay, deleted, or queued to be published again, which the next round meets) and
        how many it settled."""
        if not rows:
            return [], 0
        needs = self._needs_of(session, rows)
        applied: dict[str, set[str]] = {}
        for consumer, event_id in session.execute(
            select(ProcessedEvent.consumer, ProcessedEvent.event_id).where(
                ProcessedEvent.event_id.in_({r.event_id for r in rows})
            )
        ):
            applied.setdefault(event_id, set()).add(consumer)
        done = [r.id for r in rows if is_settled(needs[r.id], applied.get(r.event_id, set()))]
        count = 0
        if done:
            result = session.execute(
                update(OutboxEvent)
                .where(
                    OutboxEvent.id.in_(done),
                    OutboxEvent.settled_at.is_(None),
                    OutboxEvent.published_at.is_not(None),
                )
                .values(settled_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            count = int(getattr(result, "rowcount", 0) or 0)
        finished = set(done)
        if len(self._owed) > KNOWN_ROWS:  # owed for long (a consumer stopped): start again
            self._owed.clear()
            self._known.clear()
        for r in rows:
            if r.id not in finished:
                owed = self._owed.get(r.id)
                wait = OWED_FIRST_SECONDS if owed is None else min(2 * owed.wait, OWED_MOST_SECONDS)
                self._owed[r.id] = _Owed(r.topic, r.event_id, now + wait, wait)
        return done, count

    def _needs_of(self, session: Session, rows: Sequence[Any]) -> dict[int, list[frozenset[str]]]:
        # What settles a row never changes: its headers are read and judged once, not once
        # per look.
        events = self.settings.topic_events
        unknown = [r.id for r in rows if r.id not in self._known and r.topic == events]
        headers: dict[int, Any] = {}
        if unknown:
            read = select(OutboxEvent.id, OutboxEvent.headers).where(OutboxEvent.id.in_(unknown))
            headers = {row_id: value for row_id, value in session.execute(read)}
        for r in rows:
            if r.id not in self._known:
                self._known[r.id] = required(self.settings, r.topic, headers.get(r.id))
        return {r.id: self._known[r.id] for r in rows}

    def _forget(self, ids: Iterable[int]) -> None:
        for row_id in ids:
            self._known.pop(row_id, None)
            self._owed.pop(row_id, None)


def oldest_unsettled(session: Session) -> datetime | None:
    """When the first published row that is still unsettled (in outbox order) was published."""
    # Read through the index of unsettled rows (``id > 0`` keeps SQLite off the index of
    # every published row).
    return session.scalar(
        select(OutboxEvent.published_at)
        .where(
            OutboxEvent.settled_at.is_(None),
            OutboxEvent.published_at.is_not(None),
            OutboxEvent.id > 0,
        )
        .order_by(OutboxEvent.id)
        .limit(1)
    )


def meet_broker(session: Session, epoch: str) -> int | None:
    """Record that the relay publishes to the broker ``epoch``; None if it was known already.

    For a broker new to this database, every published but unsettled row is queued to be
    published again; returns how many. A database that never recorded a broker adopts the
    one it meets: it has published nothing anywhere else."""
    current = session.scalars(select(BrokerEpoch).with_for_update()).first()
    if current is not None and current.epoch == epoch:
        return None
    if current is None:
        session.add(BrokerEpoch(id=1, epoch=epoch, met_at=utcnow()))
        log.info("relay.broker_adopted", extra={"epoch": epoch})
        return 0
    # ``id > 0`` keeps SQLite on the index of unsettled rows instead of every published one.
    result = session.execute(
        update(OutboxEvent)
        .where(
            OutboxEvent.settled_at.is_(None),
            OutboxEvent.published_at.is_not(None),
            OutboxEvent.id > 0,
        )
        .values(published_at=None)
        .execution_options(synchronize_session=False)
    )
    again = int(getattr(result, "rowcount", 0) or 0)
    log.warning(
        "relay.broker_new",
        extra={"epoch": epoch, "previous": current.epoch, "republishing": again},
    )
    current.epoch, current.met_at = epoch, utcnow()
    return again
