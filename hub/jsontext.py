"""JSON text for what the hub encodes with every referral: the partner API's answer, the
event data of its outbox rows, its JSON columns (the engine's ``json_serializer``).

orjson instead of the standard library's encoder: those eight encodings of a referral cost
about 6 % of the gateway's instructions per referral with ``json.dumps`` (docs/performance.md).
The output is compact, as the answers and the event data were. Non-ASCII characters are
written as UTF-8 instead of ``\\u`` escapes, which every JSON reader takes as the same text.
Keys that are not strings are written as strings, as the standard library does.

What must hash the same from release to release keeps its own canonical encoding with the
standard library: the audit leaf (hub.audit.service) and an ``Idempotency-Key``'s request
fingerprint (hub.referrals.idempotency).
"""

from __future__ import annotations

from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def encode(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON."""
    return orjson.dumps(value, option=_OPTIONS)


def text(value: Any) -> str:
    """``value`` as compact JSON text."""
    return orjson.dumps(value, option=_OPTIONS).decode()
