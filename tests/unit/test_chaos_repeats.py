"""What the fault-injection run counts as a duplicate effect at a partner (docs/chaos.md)."""

from __future__ import annotations

from connectors.simulator import Delivery
from tests.chaos.harness import unrecognisable_repeat

EVENT = "3f1c2a9e-0d4b-4c7e-9a51-2b8f6d0e7c13"


def delivery(*keys: str | None) -> Delivery:
    return Delivery(EVENT, "referral.requested", "r-1", {}, idempotency_keys=list(keys))


def test_a_single_receipt_is_no_repeat() -> None:
    assert not unrecognisable_repeat(delivery(EVENT))


def test_a_resend_under_the_event_id_is_recognised_by_the_partner() -> None:
    assert not unrecognisable_repeat(delivery(EVENT, EVENT, EVENT))


def test_a_resend_under_another_key_or_none_counts_as_an_effect() -> None:
    assert unrecognisable_repeat(delivery(EVENT, "another-key"))
    assert unrecognisable_repeat(delivery(EVENT, None))
    assert unrecognisable_repeat(delivery(None, None))
