"""The embedded broker and the client factories against a real Tansu process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaTimeoutError

from hub.deadletters.service import read_all
from hub.kafka.client import broker_state, ensure_topics, make_consumer, make_producer, probe
from hub.kafka.cloudevents import from_headers, to_headers
from hub.kafka.embedded import EmbeddedBroker, Supervisor
from hub.kafka.epoch import BrokerEpoch
from hub.kafka.rejoins import AssignmentWatch
from hub.settings import Settings
from schemas.cloudevents import CloudEventAttributes, EventType

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOPIC = "hub.events.v1"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as running:
        yield running


def partition_counts(bootstrap_servers: str, topics: list[str]) -> dict[str, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(topics)}
    finally:
        admin.close()


def _drain(consumer: KafkaConsumer, want: int, seconds: float) -> list[ConsumerRecord]:
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + seconds
    while len(records) < want and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
    return records


def _event(i: int) -> CloudEventAttributes:
    return CloudEventAttributes(
        id=f"evt-{i}",
        source="/partners/ude",
        type=EventType.REFERRAL_REQUESTED,
        time=datetime.now(UTC),
        partitionkey=f"person-{i % 7}",
    )


def test_ensure_topics_is_idempotent(broker: EmbeddedBroker) -> None:
    topics = {TOPIC: 3, "hub.deadletter.v1": 1}
    ensure_topics(broker.bootstrap_servers, topics)
    ensure_topics(broker.bootstrap_servers, {**topics, "hub.deliveries.ude.v1": 2})
    counts = partition_counts(broker.bootstrap_servers, [*topics, "hub.deliveries.ude.v1"])
    assert counts == {TOPIC: 3, "hub.deadletter.v1": 1, "hub.deliveries.ude.v1": 2}


def test_concurrent_ensure_topics_all_succeed(broker: EmbeddedBroker) -> None:
    topics = {f"race.{n}": 2 for n in range(5)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        calls = [pool.submit(ensure_topics, broker.bootstrap_servers, topics) for _ in range(4)]
        for call in calls:
            call.result(timeout=30)
    assert partition_counts(broker.bootstrap_servers, list(topics)) == topics


def test_the_hubs_clients_never_create_a_topic_by_asking_for_it(broker: EmbeddedBroker) -> None:
    """Only ``ensure_topics`` creates topics, with the hub's partition counts. A metadata
    request naming a missing topic (a consumer subscribed to it, a producer about to send to
    it, the dead-letter reader) must not make the broker create it with its own default."""
    consumer = make_consumer(broker.bootstrap_servers, group_id="it-missing", topics=["gone.v1"])
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # joins the group, refreshes metadata, fetches
            consumer.poll(timeout_ms=200)
    finally:
        consumer.close()
    producer = make_producer(broker.bootstrap_servers, max_block_ms=1000)
    try:
        with pytest.raises(KafkaTimeoutError):
            producer.send("unmade.v1", value=b"{}").get(timeout=5)
    finally:
        producer.close(timeout=5)
    settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers)
    assert read_all(broker.bootstrap_servers, settings) == []
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        made = set(admin.list_topics()) & {"gone.v1", "unmade.v1", settings.topic_deadletter}
    finally:
        admin.close()
    assert made == set(), f"created on the side, with the broker's partition count: {made}"


def test_the_hubs_clients_send_and_receive_without_kafka_pythons_own_metrics(
    broker: EmbeddedBroker,
) -> None:
    """kafka-python's sensors are off (they cost every small batch CPU and nothing reads
    them); sending, acknowledging, fetching and committing still work without them."""
    ensure_topics(broker.bootstrap_servers, {"quiet.v1": 1})
    producer = make_producer(broker.bootstrap_servers)
    consumer = make_consumer(broker.bootstrap_servers, group_id="it-quiet", topics=["quiet.v1"])
    try:
        assert producer.send("quiet.v1", key=b"k", value=b"{}").get(timeout=10).offset == 0
        got: list[ConsumerRecord] = []
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            got = [r for records in consumer.poll(timeout_ms=200).values() for r in records]
        assert [r.value for r in got] == [b"{}"]
        consumer.commit()
        assert producer.metrics() is None
        assert consumer.metrics() is None
    finally:
        consumer.close()
        producer.close(timeout=5)


def test_a_consumer_that_joined_before_its_topic_existed_gets_the_topic_once_made(
    broker: EmbeddedBroker,
) -> None:
    """After a broker restart the consumers may join before the relay has made their topics.
    Once a topic exists, the leader assigns its partitions, but the embedded broker answers
    with the assignment of the group's first sync (none); the watch has the member join anew."""
    consumer = make_consumer(broker.bootstrap_servers, group_id="it-late", topics=["late.v1"])
    watch = AssignmentWatch("it-late")
    watch.attach(consumer)

    def poll(seconds: float, *, watching: bool) -> set[int]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(consumer.assignment()) < 6:
            consumer.poll(timeout_ms=200)
            if watching:
                watch.check(consumer)
        return {tp.partition for tp in consumer.assignment()}

    try:
        assert poll(8, watching=False) == set()  # joined; the topic is not there
        ensure_topics(broker.bootstrap_servers, {"late.v1": 6})
        # The leader re-assigns with the new metadata; the broker hands back the old answer.
        assert poll(5, watching=False) == set()
        assert poll(20, watching=True) == set(range(6))
    finally:
        consumer.close()


def test_hundred_records_with_headers_come_back_through_a_group(broker: EmbeddedBroker) -> None:
    ensure_topics(broker.bootstrap_servers, {TOPIC: 3})
    producer = make_producer(broker.bootstrap_servers)
    try:
        for i in range(100):
            attrs = _event(i)
            key = (attrs.partitionkey or "").encode()
            producer.send(TOPIC, key=key, value=b'{"n": %d}' % i, headers=to_headers(attrs))
        producer.flush(timeout=10)
    finally:
        producer.close(timeout=5)
    consumer = make_consumer(broker.bootstrap_servers, group_id="it-read", topics=[TOPIC])
    try:
        records = _drain(consumer, want=100, seconds=30)
    finally:
        consumer.close()
    assert sorted(from_headers(r.headers).id for r in records) == sorted(
        f"evt-{i}" for i in range(100)
    )
    assert {r.partition for r in records} == {0, 1, 2}


def test_probe_sees_a_paused_broker_as_down(broker: EmbeddedBroker) -> None:
    assert probe(broker.bootstrap_servers)
    broker.pause()
    try:
        started = time.monotonic()
        assert not probe(broker.bootstrap_servers, timeout=0.5)
        assert time.monotonic() - started < 2
        # Frozen, not gone: the relay must keep its producer (the broker still holds requests).
        assert broker_state(broker.bootstrap_servers, timeout=0.5) == "silent"
    finally:
        broker.resume()
    assert probe(broker.bootstrap_servers)


def test_probe_on_a_closed_port_is_false() -> None:
    broker = EmbeddedBroker()
    assert not probe(broker.bootstrap_servers, timeout=0.5)
    assert broker_state(broker.bootstrap_servers, timeout=0.5) == "gone"
    assert not probe("not-a-server", timeout=0.5)
    assert broker_state("not-a-server", timeout=0.5) == "silent"


def test_restart_comes_back_on_the_same_port_empty(broker: EmbeddedBroker) -> None:
    ensure_topics(broker.bootstrap_servers, {"before.restart": 1})
    port, pid = broker.port, broker.pid
    broker.restart()
    assert broker.running and broker.port == port and broker.pid != pid
    assert probe(broker.bootstrap_servers)
    ensure_topics(broker.bootstrap_servers, {TOPIC: 1})
    producer = make_producer(broker.bootstrap_servers)
    try:
        assert producer.send(TOPIC, b"after").get(timeout=10).offset == 0
    finally:
        producer.close(timeout=5)


def test_a_producer_that_outlived_a_restart_costs_no_new_producer_its_records(
    broker: EmbeddedBroker,
) -> None:
    """After a crash the broker must not hand out a producer id a surviving producer holds.

    Otherwise the new producer's first records carry the same id and sequence numbers as
    the survivor's and are acknowledged as repeats without being written."""
    ensure_topics(broker.bootstrap_servers, {"warm.up": 1})
    survivor = make_producer(broker.bootstrap_servers, client_id="survivor")
    fresh = None
    try:
        survivor.send("warm.up", b"before").get(timeout=10)
        broker.restart()
        ensure_topics(broker.bootstrap_servers, {TOPIC: 1})
        # The survivor's records are under way while a new producer starts (as a relay
        # replacing a stuck producer does).
        pending = [survivor.send(TOPIC, value) for value in (b"old-1", b"old-2", b"old-3")]
        fresh = make_producer(broker.bootstrap_servers, client_id="fresh")
        for value in (b"new-1", b"new-2", b"new-3"):
            fresh.send(TOPIC, value).get(timeout=20)
        for future in pending:
            future.get(timeout=20)
    finally:
        survivor.close(timeout=5)
        if fresh is not None:
            fresh.close(timeout=5)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, enable_auto_commit=False)
    try:
        partition = TopicPartition(TOPIC, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        values = sorted(r.value for r in _drain(consumer, 6, 20))
    finally:
        consumer.close()
    assert values == [b"new-1", b"new-2", b"new-3", b"old-1", b"old-2", b"old-3"]


def test_stop_ends_the_process(tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    broker.start()
    address = broker.bootstrap_servers
    broker.stop()
    assert not broker.running and broker.pid is None
    assert not probe(address, timeout=0.5)


#: Starts a broker from a thread that ends at once, prints its pid, then waits to be killed.
_STARTS_A_BROKER = """
import threading, time
from hub.kafka.embedded import EmbeddedBroker
broker = EmbeddedBroker()
starter = threading.Thread(target=broker.start)
starter.start()
starter.join()
print(broker.pid, broker.port, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    """True while the process runs (a zombie nobody has reaped yet has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_broker_outlives_the_thread_that_started_it_but_not_the_process() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _STARTS_A_BROKER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pid, port = (int(n) for n in parent.stdout.readline().split())
        time.sleep(0.5)
        assert _alive(pid) and probe(f"127.0.0.1:{port}")
    finally:
        parent.kill()  # SIGKILL: nothing in the process gets to stop the broker
        parent.wait()
    deadline = time.monotonic() + 3
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid), "the broker outlived the process that started it"


def _killed_and_back(broker: EmbeddedBroker) -> float:
    """SIGKILL the broker's process from outside; seconds until a new one has started."""
    dead = broker.pid
    assert dead is not None
    os.kill(dead, signal.SIGKILL)
    killed = time.monotonic()
    deadline = killed + 30
    # Started: answering, and done using up the ids the dead one may have handed out.
    while not (broker.pid not in (None, dead) and broker.uptime > 0):
        assert time.monotonic() < deadline, "the supervisor did not start the broker again"
        time.sleep(0.02)
    return time.monotonic() - killed


def test_producers_that_outlived_two_deaths_of_the_broker_lose_no_records(
    broker: EmbeddedBroker,
) -> None:
    """A broker that died on its own cannot say how many producer ids it handed out; the
    one started in its place must still hand out none that a surviving producer holds,
    also after a second death (the first restart had used up ids already)."""
    supervisor = Supervisor(broker).start()
    producers: list[KafkaProducer] = []
    try:
        for generation in range(3):
            if generation:
                back = _killed_and_back(broker)
                print(f"death {generation}: a new broker answered after {back:.2f} s")
                assert back < 10
            warm_up = f"warm.up.{generation}"  # each broker starts empty
            ensure_topics(broker.bootstrap_servers, {warm_up: 1})
            producer = make_producer(broker.bootstrap_servers, client_id=f"gen-{generation}")
            producer.send(warm_up, b"hello").get(timeout=20)  # it has its producer id now
            producers.append(producer)
        ensure_topics(broker.bootstrap_servers, {TOPIC: 1})
        sent = [
            p.send(TOPIC, f"{n}-{i}".encode()) for n, p in enumerate(producers) for i in range(3)
        ]
        for future in sent:
            future.get(timeout=20)
    finally:
        supervisor.stop()
        for p in producers:
            p.close(timeout=5)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, enable_auto_commit=False)
    try:
        partition = TopicPartition(TOPIC, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        values = sorted(r.value for r in _drain(consumer, 9, 20))
    finally:
        consumer.close()
    assert values == [f"{n}-{i}".encode() for n in range(3) for i in range(3)]


def _taken(port: int) -> socket.socket:
    """A socket listening on ``port`` as soon as the dying broker's threads let go of it."""
    deadline = time.monotonic() + 0.4
    while True:
        try:
            return socket.create_server(("127.0.0.1", port))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def test_stopping_the_supervisor_gives_up_a_restart_that_cannot_succeed(
    broker: EmbeddedBroker,
) -> None:
    supervisor = Supervisor(broker).start()
    try:
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGKILL)
        # Someone else takes the port before the first restart (half a second after the
        # death): every restart fails, and is tried again later.
        with _taken(broker.port):
            time.sleep(2)
            assert not broker.running
            started = time.monotonic()
            supervisor.stop()
            assert time.monotonic() - started < 1
    finally:
        supervisor.stop()


def test_the_broker_epoch_is_asked_once_while_the_broker_lives_and_again_after_a_restart(
    broker: EmbeddedBroker,
) -> None:
    asked: list[str] = []
    epoch = BrokerEpoch(broker.bootstrap_servers, "hub.epoch.v1")
    ask = epoch._topic_id

    def counted() -> str | None:
        found = ask()
        asked.append(str(found))
        return found

    epoch._topic_id = counted  # type: ignore[method-assign]
    try:
        first = epoch()  # asks, creates the topic, asks again
        before = len(asked)
        assert [epoch() for _ in range(50)] == [first] * 50
        assert len(asked) == before  # the kept answer, no metadata request

        broker.restart()  # in memory: the new broker has a new topic id for the epoch topic
        again = epoch()
        assert again != first and len(asked) > before  # asked, not kept

        broker.kill()
        broker.start()
        assert epoch() not in (first, again)  # a killed broker is noticed the same way
    finally:
        epoch.close()
