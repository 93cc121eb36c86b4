"""Which consumers take the short fetch wait and which the longer one of the background; the
consumer groups' names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from consumers import registry
from hub.bootstrap import Hub, bootstrap
from hub.kafka.client import consumer_group
from hub.settings import Settings


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    settings = Settings(
        data_dir=tmp_path,
        kafka_bootstrap_servers="127.0.0.1:9",
        kafka_fetch_max_wait_ms=7,
        kafka_background_fetch_max_wait_ms=230,
        kafka_max_poll_records=25,
    )
    return bootstrap(settings)


def _options_of(monkeypatch: pytest.MonkeyPatch, hub: Hub, name: str) -> dict[str, Any]:
    """What ``make_consumer`` is given for the consumer ``name``."""
    made: list[dict[str, Any]] = []
    monkeypatch.setattr(registry, "make_consumer", lambda *a, **kw: made.append(kw))
    registry.consumer_factory(name, hub)(["hub.events.v1"], None)
    (options,) = made
    return options


def _fetch_wait_of(monkeypatch: pytest.MonkeyPatch, hub: Hub, name: str) -> int:
    options = _options_of(monkeypatch, hub, name)
    assert options["max_poll_records"] == 25
    wait: int = options["fetch_max_wait_ms"]
    return wait


def test_the_inbox_on_a_referrals_way_takes_the_short_wait(
    monkeypatch: pytest.MonkeyPatch, hub: Hub
) -> None:
    assert _fetch_wait_of(monkeypatch, hub, "inbox") == 7


@pytest.mark.parametrize("name", ["router", "timeline", "deadlines"])
def test_the_background_consumers_take_their_own_wait(
    monkeypatch: pytest.MonkeyPatch, hub: Hub, name: str
) -> None:
    assert _fetch_wait_of(monkeypatch, hub, name) == 230


def test_every_consumer_is_placed() -> None:
    assert set(registry.NAMES) >= registry.BACKGROUND
    assert set(registry.NAMES) - registry.BACKGROUND == {"inbox"}


def test_the_defaults() -> None:
    settings = Settings()
    assert settings.kafka_fetch_max_wait_ms == 10
    assert settings.kafka_background_fetch_max_wait_ms == 100


def _group_of(monkeypatch: pytest.MonkeyPatch, hub: Hub, name: str) -> str:
    group: str = _options_of(monkeypatch, hub, name)["group_id"]
    return group


def test_consumer_groups_carry_the_configured_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two hubs on one Kafka cluster keep apart: each names its groups with its prefix."""
    default = bootstrap(Settings(data_dir=tmp_path, kafka_bootstrap_servers="127.0.0.1:9"))
    assert _group_of(monkeypatch, default, "timeline") == "hub.timeline"
    staging = bootstrap(
        Settings(
            data_dir=tmp_path / "staging",
            kafka_bootstrap_servers="127.0.0.1:9",
            kafka_group_prefix="staging-hub",
        )
    )
    assert _group_of(monkeypatch, staging, "timeline") == "staging-hub.timeline"
    assert consumer_group(staging.settings, "delivery.ihk-fosa") == "staging-hub.delivery.ihk-fosa"


@pytest.mark.parametrize("prefix", ["", "hub timeline", "hub/x", ".hub"])
def test_a_group_prefix_kafka_would_refuse_is_refused_at_start(prefix: str) -> None:
    with pytest.raises(ValidationError, match="kafka_group_prefix"):
        Settings(kafka_group_prefix=prefix)
