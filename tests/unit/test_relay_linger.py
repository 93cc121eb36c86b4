"""The relay's linger: commits that arrive while a batch goes out share the next one, and a
commit after a quiet spell is sent at once."""

from __future__ import annotations

import threading
import time
from itertools import pairwise

from hub.outbox.relay import Relay


def _relay(linger: float) -> tuple[Relay, list[float]]:
    relay = Relay(
        session_factory=None,  # type: ignore[arg-type]  # publish_batch is replaced below
        producer_factory=lambda: None,
        ensure_topics=lambda topics: None,
        broker_state=lambda: "answering",  # type: ignore[arg-type,return-value]
        batch_size=500,
        poll_interval=5.0,
        linger=linger,
    )
    starts: list[float] = []

    def publish_batch() -> int:
        starts.append(time.monotonic())
        return 1

    relay.publish_batch = publish_batch  # type: ignore[method-assign]
    return relay, starts


def _running(relay: Relay) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    return thread, stop


def _batches_for_commits(linger: float) -> list[float]:
    """When the batches began, for a commit every 5 ms during one second."""
    relay, starts = _relay(linger)
    thread, stop = _running(relay)
    try:
        until = time.monotonic() + 1.0
        while time.monotonic() < until:
            relay.wakeup.set()
            time.sleep(0.005)
    finally:
        stop.set()
        thread.join(5)
    return starts


def test_commits_arriving_faster_than_the_linger_wait_for_the_next_batch() -> None:
    starts = _batches_for_commits(linger=0.1)
    gaps = [b - a for a, b in pairwise(starts)]
    assert len(starts) >= 5
    assert len(starts) <= 12, f"{len(starts)} batches for 200 commits in 1 s"
    assert min(gaps) >= 0.095


def test_without_a_linger_every_wakeup_starts_a_batch_at_once() -> None:
    starts = _batches_for_commits(linger=0.0)
    assert len(starts) > 50, f"{len(starts)} batches for 200 commits in 1 s"


def test_a_commit_after_a_quiet_spell_goes_out_at_once() -> None:
    relay, starts = _relay(linger=0.1)
    thread, stop = _running(relay)
    try:
        time.sleep(0.3)  # the first batch (at start) is long past
        woken = time.monotonic()
        relay.wakeup.set()
        deadline = time.monotonic() + 5
        while len(starts) < 2 and time.monotonic() < deadline:
            time.sleep(0.001)
    finally:
        stop.set()
        thread.join(5)
    assert len(starts) >= 2
    # Well under the linger: it is not waited for after a quiet spell.
    assert starts[1] - woken < 0.05


def test_stopping_ends_a_linger_at_once() -> None:
    relay, _starts = _relay(linger=0.9)
    thread, stop = _running(relay)
    relay.wakeup.set()  # the relay lingers after its first batch
    time.sleep(0.05)
    began = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - began < 0.5
