"""Request body limits, enforced before the body reaches any parser."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.api.problems import PROBLEM_JSON
from hub.errors import HubError, InvalidInput, PayloadTooLarge

#: Deeper JSON has no use in this API and makes parsers recurse (RecursionError is a 500).
MAX_JSON_DEPTH = 32
#: Members of one JSON array or object; the largest legitimate list (a payload's fields) is tiny.
MAX_JSON_ITEMS = 1000
# An escape pair (so an escaped quote does not end a string), a quote, or a structural char.
_JSON_TOKENS = re.compile(rb'\\.|["\[\]{},]', re.DOTALL)


class BodyLimit:
    """Refuses bodies over ``max_bytes`` with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(scope, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        err = PayloadTooLarge(f"request body exceeds {self.max_bytes} bytes")
        await send_problem(scope, send, err)


class JsonLimit:
    """Refuses JSON bodies nested deeper than ``max_depth`` or with larger arrays/objects (422).

    Checked on the raw bytes before any parser runs; must sit inside ``BodyLimit``, which
    bounds how much is read here.
    """

    def __init__(
        self, app: ASGIApp, max_depth: int = MAX_JSON_DEPTH, max_items: int = MAX_JSON_ITEMS
    ) -> None:
        self.app = app
        self.max_depth = max_depth
        self.max_items = max_items

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _may_be_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = json_shape_problem(body, self.max_depth, self.max_items)
        if problem:
            await send_problem(scope, send, InvalidInput(problem, field="body"))
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def json_shape_problem(body: bytes, max_depth: int, max_items: int) -> str | None:
    """What makes ``body`` too deep or too wide, or None (also for invalid JSON: the parser
    answers that)."""
    # Brackets and commas counted anywhere, strings included, are at least those that count:
    # a body with no more brackets than the depth allowed and fewer commas than the members
    # allowed (every request of a partner's normal day) needs no token-by-token look.
    if body.count(b"[") + body.count(b"{") <= max_depth and body.count(b",") < max_items:
        return None
    return scan_json_shape(body, max_depth, max_items)


def scan_json_shape(body: bytes, max_depth: int, max_items: int) -> str | None:
    """:func:`json_shape_problem` token by token, strings and escapes skipped."""
    items: list[int] = []  # commas seen in each open array/object
    in_string = False
    for match in _JSON_TOKENS.finditer(body):
        token = match.group()
        if token == b'"':
            in_string = not in_string
        elif in_string or token[0] == 0x5C:  # inside a string, or an escape pair
            continue
        elif token in (b"[", b"{"):
            items.append(0)
            if len(items) > max_depth:
                return f"JSON nested deeper than {max_depth} levels"
        elif token in (b"]", b"}"):
            if not items:
                return None
            items.pop()
        elif items:  # a comma
            items[-1] += 1
            if items[-1] >= max_items:
                return f"a JSON array or object has more than {max_items} members"
    return None


def _may_be_json(scope: Scope) -> bool:
    if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
        return False
    content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")
    media = content_type.partition(";")[0].strip().lower()
    # FastAPI parses a body without a content type as JSON, too.
    return media in ("", "application/json") or (
        media.startswith("application/") and media.endswith("+json")
    )


async def send_problem(
    scope: Scope, send: Send, err: HubError, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with the error's problem document, before any route ran."""
    body = json.dumps(err.to_problem(scope["path"])).encode()
    await send(
        {
            "type": "http.response.start",
            "status": err.status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass
