"""The CloudEvents Kafka binary-mode header codec."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from hub.kafka.cloudevents import CloudEventError, from_headers, header_value, to_headers
from schemas.cloudevents import CloudEventAttributes, EventType


def _attrs(**overrides: object) -> CloudEventAttributes:
    values: dict[str, object] = {
        "id": "0b6f0c1e-6f8e-4a37-9d0e-5c1f3b7f8a21",
        "source": "/partners/ude",
        "type": EventType.REFERRAL_REQUESTED,
        "time": datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=UTC),
    }
    values.update(overrides)
    return CloudEventAttributes.model_validate(values)


def _full() -> CloudEventAttributes:
    return _attrs(
        subject="ref-42",
        dataschema="https://hub.example/schemas/referral-requested-v1.json",
        partitionkey="pseud-7",
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        extensions={"correlationid": "c-1", "causationid": "c-0"},
    )


def test_round_trip_keeps_every_attribute() -> None:
    attrs = _full()
    assert from_headers(to_headers(attrs)) == attrs


def test_headers_are_plain_binary_mode_names() -> None:
    headers = dict(to_headers(_full()))
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == EventType.REFERRAL_REQUESTED.encode()
    assert headers["ce_subject"] == b"ref-42"
    assert headers["ce_partitionkey"] == b"pseud-7"
    assert headers["ce_correlationid"] == b"c-1"
    assert headers["content-type"] == b"application/json"
    assert headers["traceparent"].startswith(b"00-")
    assert "ce_traceparent" not in headers
    assert "ce_datacontenttype" not in headers


def test_optional_attributes_absent_when_unset() -> None:
    names = [name for name, _ in to_headers(_attrs())]
    for absent in ("ce_subject", "ce_dataschema", "ce_partitionkey", "traceparent"):
        assert absent not in names
    assert from_headers(to_headers(_attrs())) == _attrs()


def test_time_is_rfc3339_utc_with_z() -> None:
    berlin = timezone(timedelta(hours=1))
    attrs = _attrs(time=datetime(2025, 3, 1, 10, 30, 15, tzinfo=berlin))
    assert header_value(to_headers(attrs), "ce_time") == "2025-03-01T09:30:15Z"
    assert from_headers(to_headers(attrs)).time == attrs.time


def test_time_with_fraction_round_trips() -> None:
    headers = to_headers(_attrs())
    assert header_value(headers, "ce_time") == "2025-03-01T09:30:15.123456Z"


@pytest.mark.parametrize("missing", ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time"])
def test_missing_required_attribute_is_named(missing: str) -> None:
    headers = [(k, v) for k, v in to_headers(_attrs()) if k != missing]
    with pytest.raises(CloudEventError, match=missing):
        from_headers(headers)


def test_no_headers_at_all() -> None:
    with pytest.raises(CloudEventError, match="ce_specversion"):
        from_headers(None)


def test_wrong_specversion_is_refused() -> None:
    headers = [(k, b"0.3" if k == "ce_specversion" else v) for k, v in to_headers(_attrs())]
    with pytest.raises(CloudEventError, match="ce_specversion"):
        from_headers(headers)


@pytest.mark.parametrize("bad", [b"yesterday", b"2025-03-01T09:30:15"])
def test_malformed_or_naive_time_is_refused(bad: bytes) -> None:
    headers = [(k, bad if k == "ce_time" else v) for k, v in to_headers(_attrs())]
    with pytest.raises(CloudEventError, match="ce_time"):
        from_headers(headers)


def test_non_utf8_header_is_refused() -> None:
    headers = [(k, b"\xff\xfe" if k == "ce_id" else v) for k, v in to_headers(_attrs())]
    with pytest.raises(CloudEventError, match="ce_id"):
        from_headers(headers)


def test_unknown_ce_headers_become_extensions() -> None:
    headers = [*to_headers(_attrs()), ("ce_legalbasis", b"art6-1e"), ("x-other", b"ignored")]
    assert from_headers(headers).extensions == {"legalbasis": "art6-1e"}


def test_invalid_extension_name_is_named() -> None:
    headers = [*to_headers(_attrs()), ("ce_legal-basis", b"x")]
    with pytest.raises(CloudEventError, match="ce_legal-basis"):
        from_headers(headers)


def test_header_value_is_case_insensitive_and_first_wins() -> None:
    headers = [("Content-Type", b"application/json"), ("content-type", b"text/plain")]
    assert header_value(headers, "content-type") == "application/json"
    assert header_value(headers, "traceparent") is None
    assert header_value(None, "content-type") is None
