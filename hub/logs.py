"""Structured logging: dotted event names with key/values, as JSON or as readable text.

Nothing secret may reach a log line, whatever the level: every line is scrubbed of bearer and
basic credentials, JWTs (access, ID and client-assertion tokens), ``key=value`` pairs of
sensitive names (passwords, client secrets, tokens, cookies), inline secret references
(``value:…``) and private JWK members. Libraries that log request details or SQL parameters
are held at WARNING even when the hub runs at DEBUG.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import IO, Any

from opentelemetry import trace

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

REDACTED = "[redacted]"
#: Loggers that would print URLs, headers, SQL parameters or result rows at DEBUG/INFO, and
#: Alembic its context at INFO (``hub migrate`` says itself which schema it reached).
QUIET_LOGGERS = ("kafka", "httpx", "httpcore", "hpack", "sqlalchemy", "authlib", "alembic")

_SENSITIVE = (
    r"access_token|refresh_token|id_token|client_secret|client_assertion|password|passwd"
    r"|secret|signing_secret|code_verifier|authorization|proxy-authorization|cookie|set-cookie"
    r"|token|api_key|private_key"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A JWT (access, ID, DPoP or client-assertion token), signed or not.
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    # Authorization header values.
    (re.compile(r"(?i)\b(bearer|basic|dpop)(\s+)[A-Za-z0-9._~+/=-]{6,}"), r"\1\2" + REDACTED),
    # key=value, key: value and "key": "value" for sensitive names (quoted values whole).
    (
        re.compile(
            rf"""(?i)(\b(?:{_SENSITIVE})\b["']?\s*[:=]\s*)(?:"[^"]*"|'[^']*'|[^"'\s&,;)}}]+)"""
        ),
        r"\1" + REDACTED,
    ),
    # ('key', 'value') pairs, as header lists are printed.
    (
        re.compile(rf"""(?i)(["'](?:{_SENSITIVE})["']\s*,\s*b?)(?:"[^"]*"|'[^']*')"""),
        r"\1" + REDACTED,
    ),
    # Our cookies (session, OIDC state, CSRF) wherever they appear.
    (re.compile(r"\b(hub_[a-z_]+=)[^;\s'\"]+"), r"\1" + REDACTED),
    # Inline secret references of connector settings.
    (re.compile(r"\bvalue:[^\s\"',}]+"), "value:" + REDACTED),
    # Private members of a JWK.
    (
        re.compile(r"""(["'])(d|p|q|dp|dq|qi|k)\1(\s*:\s*)(["'])[^"']+\4"""),
        r"\1\2\1\3\4" + REDACTED + r"\4",
    ),
)
_SENSITIVE_KEY = re.compile(rf"(?i)^(?:{_SENSITIVE})$|_(?:secret|password|token)$")


def redact(text: str) -> str:
    """The text with every credential-looking part replaced by ``[redacted]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _scrub(value: Any, key: str = "") -> Any:
    if key and _SENSITIVE_KEY.search(key) and value is not None:
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


def _trace_ids() -> dict[str, str]:
    """The current trace and span id, so a log line can be found from its trace (and back)."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def _row_free(record: logging.LogRecord) -> str | None:
    """SQLAlchemy's result rows at DEBUG, without the rows: they hold sealed personal data
    and connector settings, and SQLAlchemy shortens long values in the middle, which can cut
    a redaction marker off and leave a secret's tail behind."""
    if record.name.startswith("sqlalchemy.engine") and str(record.msg).startswith("Row "):
        return "Row " + REDACTED
    return None


class _Formatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: _scrub(v, k) for k, v in vars(record).items() if k not in _STANDARD}
        fields.update(_trace_ids())
        message = _row_free(record) or redact(record.getMessage())
        error = redact(self.formatException(record.exc_info)) if record.exc_info else None
        if self.as_json:
            doc = {
                "ts": self.formatTime(record),
                "level": record.levelname,
                "logger": record.name,
                "event": message,
                **fields,
            }
            if error:
                doc["exc"] = error
            return json.dumps(doc, default=str)
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        line = f"{self.formatTime(record)} {record.levelname:<7} {message} {extra}"
        if error:
            line += "\n" + error
        return line.rstrip()


def handler(fmt: str, stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing scrubbed lines in ``fmt`` (``json`` or ``text``) to the stream."""
    out = logging.StreamHandler(stream or sys.stderr)
    out.setFormatter(_Formatter(as_json=fmt == "json"))
    return out


def configure(level: str, fmt: str, stream: IO[str] | None = None) -> None:
    """Route every logger to stderr (or ``stream``) with the chosen format."""
    root = logging.getLogger()
    root.handlers[:] = [handler(fmt, stream)]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO, httpcore every header at DEBUG, SQLAlchemy every
    # parameter and row at DEBUG: none of it is needed to run the hub, some of it is secret.
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
