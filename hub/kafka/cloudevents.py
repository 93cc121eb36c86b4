"""CloudEvents 1.0 Kafka protocol binding, binary mode: attributes as ``ce_`` headers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from schemas.cloudevents import CONTENT_TYPE, SPECVERSION, CloudEventAttributes

Headers = list[tuple[str, bytes]]

PREFIX = "ce_"
CONTENT_TYPE_HEADER = "content-type"
TRACEPARENT_HEADER = "traceparent"

_REQUIRED = ("specversion", "id", "source", "type", "time")
_OPTIONAL = ("subject", "dataschema", "partitionkey")
# datacontenttype travels as the plain content-type header in binary mode, never as ce_.
_KNOWN = {*_REQUIRED, *_OPTIONAL, "datacontenttype"}


class CloudEventError(ValueError):
    """Kafka headers that do not form a valid CloudEvent."""


def format_time(value: datetime) -> str:
    """Render a timestamp as RFC 3339 in UTC with a ``Z`` suffix."""
    if value.tzinfo is None:
        raise CloudEventError("time: must be timezone-aware")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def to_headers(attrs: CloudEventAttributes) -> Headers:
    """Encode event attributes as Kafka headers (binary content mode)."""
    pairs: list[tuple[str, str | None]] = [
        (PREFIX + "specversion", attrs.specversion),
        (PREFIX + "id", attrs.id),
        (PREFIX + "source", attrs.source),
        (PREFIX + "type", attrs.type),
        (PREFIX + "subject", attrs.subject),
        (PREFIX + "time", format_time(attrs.time)),
        (PREFIX + "dataschema", attrs.dataschema),
        (PREFIX + "partitionkey", attrs.partitionkey),
        *((PREFIX + name, value) for name, value in sorted(attrs.extensions.items())),
        (CONTENT_TYPE_HEADER, attrs.datacontenttype),
        (TRACEPARENT_HEADER, attrs.traceparent),
    ]
    return [(name, value.encode("utf-8")) for name, value in pairs if value is not None]


def header_value(headers: Headers | None, name: str) -> str | None:
    """Return the first header of that name decoded as UTF-8, or None."""
    for key, value in headers or ():
        if key.lower() == name.lower():
            return None if value is None else value.decode("utf-8", "replace")
    return None


def from_headers(headers: Headers | None) -> CloudEventAttributes:
    """Decode Kafka headers into event attributes, naming what is missing or invalid."""
    fields, extensions = _split(headers or [])
    for name in _REQUIRED:
        if not fields.get(name):
            raise CloudEventError(f"{PREFIX}{name}: required attribute missing")
    if fields["specversion"] != SPECVERSION:
        raise CloudEventError(f"{PREFIX}specversion: unsupported {fields['specversion']!r}")
    values: dict[str, Any] = {name: fields.get(name) for name in _REQUIRED + _OPTIONAL}
    values["time"] = _parse_time(fields["time"])
    values["datacontenttype"] = header_value(headers, CONTENT_TYPE_HEADER) or CONTENT_TYPE
    values["traceparent"] = header_value(headers, TRACEPARENT_HEADER)
    values["extensions"] = extensions
    try:
        return CloudEventAttributes(**values)
    except ValidationError as exc:
        raise CloudEventError(_describe(exc)) from exc


def _split(headers: Headers) -> tuple[dict[str, str], dict[str, str]]:
    fields: dict[str, str] = {}
    extensions: dict[str, str] = {}
    for key, raw in headers:
        name = key.lower()
        if not name.startswith(PREFIX) or raw is None:
            continue
        attr = name.removeprefix(PREFIX)
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CloudEventError(f"{name}: not UTF-8") from exc
        target = fields if attr in _KNOWN else extensions
        target.setdefault(attr, value)
    return fields, extensions


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CloudEventError(f"{PREFIX}time: not RFC 3339: {value!r}") from exc
    if parsed.tzinfo is None:
        raise CloudEventError(f"{PREFIX}time: no UTC offset: {value!r}")
    return parsed


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = first["loc"]
    if loc and loc[0] == "extensions":
        return f"{PREFIX}{loc[1] if len(loc) > 1 else ''}: invalid extension: {first['msg']}"
    return f"{PREFIX}{loc[0] if loc else '?'}: {first['msg']}"
