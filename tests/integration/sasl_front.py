"""A loopback SASL/SCRAM listener in front of the embedded broker, for the SASL tests.

The embedded broker has no SASL. This front answers as a SASL listener of Apache Kafka does
before a client is let through, then passes bytes unchanged:

- ApiVersions is relayed to the broker (a SASL listener answers it before authentication).
  kafka-python picks the SaslHandshake and SaslAuthenticate versions from that answer and
  refuses SASL to a broker that lists neither, so the front checks at start that the broker
  lists both (the embedded broker does: 17 v0-1, 36 v0-2).
- SaslHandshake names the enabled mechanisms; another mechanism gets
  UNSUPPORTED_SASL_MECHANISM and the connection is closed.
- SaslAuthenticate runs a SCRAM server exchange (``scramp``) against stored credentials:
  salt, stored key, server key and iteration count, never the password. A wrong password or
  an unknown user gets SASL_AUTHENTICATION_FAILED with a message, and the connection is
  closed.
- Any other request before authentication closes the connection, unanswered.

The Kafka wire format is written out here rather than taken from kafka-python, so that the
client under test is not checked against itself. Only the framing kafka-python uses against
a broker listing SaslHandshake v1 (SaslAuthenticate requests) is spoken; the raw tokens of
SaslHandshake v0 are not.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
from dataclasses import dataclass, field
from types import TracebackType

from scramp import ScramException, ScramMechanism
from scramp.core import ScramServer

log = logging.getLogger(__name__)

API_VERSIONS = 18
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
UNSUPPORTED_SASL_MECHANISM = 33
SASL_AUTHENTICATION_FAILED = 58
#: Apache Kafka's words for a refused SCRAM exchange (ScramSaslServer), so a log reads alike.
FAILED_MESSAGE = (
    "Authentication failed during authentication due to invalid credentials "
    "with SASL mechanism {mechanism}"
)
SCRAM = ("SCRAM-SHA-512", "SCRAM-SHA-256")
#: Apache Kafka closes a connection whose authentication failed only after
#: connection.failed.authentication.delay.ms (100 by default). Closing at once can lose the
#: answer: kafka-python 3 drops bytes that arrive in the same read as the end of the stream.
FAILED_AUTHENTICATION_DELAY = 0.1

AuthInfo = tuple[bytes, bytes, bytes, int]


# ------------------------------------------------------------------------------ wire


class Reader:
    """Reads Kafka's primitive types off one request body."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("request shorter than its fields")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int16(self) -> int:
        return int(struct.unpack(">h", self.take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    def string(self) -> str | None:
        """A nullable string with an int16 length (request header, non-flexible bodies)."""
        n = self.int16()
        return None if n < 0 else self.take(n).decode()

    def bytes32(self) -> bytes:
        return self.take(self.int32())

    def compact_bytes(self) -> bytes:
        return self.take(self.uvarint() - 1)

    def skip_tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.take(self.uvarint())


def uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def string16(value: str | None) -> bytes:
    if value is None:
        return struct.pack(">h", -1)
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def compact_string(value: str | None) -> bytes:
    if value is None:
        return uvarint(0)
    raw = value.encode()
    return uvarint(len(raw) + 1) + raw


@dataclass(frozen=True)
class Request:
    api_key: int
    version: int
    correlation_id: int
    frame: bytes
    body: Reader

    @classmethod
    def parse(cls, frame: bytes) -> Request:
        """The request header (v1, or v2 with tagged fields for flexible versions)."""
        reader = Reader(frame)
        api_key, version, correlation_id = reader.int16(), reader.int16(), reader.int32()
        reader.string()  # client_id: a nullable int16 string in header v1 and v2 alike
        if _flexible(api_key, version):
            reader.skip_tagged_fields()
        return cls(api_key, version, correlation_id, frame, reader)

    def answer(self, body: bytes) -> bytes:
        """The framed response: header v1 (tagged fields) for flexible versions, else v0."""
        header = struct.pack(">i", self.correlation_id)
        if _flexible(self.api_key, self.version) and self.api_key != API_VERSIONS:
            header += uvarint(0)
        return struct.pack(">i", len(header) + len(body)) + header + body


def _flexible(api_key: int, version: int) -> bool:
    # Only the requests the front reads itself; SaslHandshake is never flexible.
    return (api_key == SASL_AUTHENTICATE and version >= 2) or (
        api_key == API_VERSIONS and version >= 3
    )


def handshake_response(error: int, mechanisms: list[str]) -> bytes:
    body = struct.pack(">hi", error, len(mechanisms))
    return body + b"".join(string16(m) for m in mechanisms)


def authenticate_response(version: int, error: int, message: str | None, token: bytes) -> bytes:
    if version >= 2:
        body = struct.pack(">h", error) + compact_string(message) + uvarint(len(token) + 1)
    else:
        body = struct.pack(">h", error) + string16(message) + struct.pack(">i", len(token))
    body += token
    if version >= 1:
        body += struct.pack(">q", 0)  # session lifetime 0: no re-authentication asked for
    if version >= 2:
        body += uvarint(0)
    return body


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(size)


# ----------------------------------------------------------------------------- front


@dataclass
class Counts:
    """What the front saw, per client connection."""

    accepted: int = 0
    authenticated: int = 0
    failed: int = 0
    unsupported_mechanism: int = 0
    #: Connections that sent anything but ApiVersions or SASL before authenticating.
    unauthenticated: int = 0
    #: Connections the client ended before authenticating, neither refused nor hung up on:
    #: the health probe (ApiVersions only), the broker-epoch watch (it sends nothing).
    left_unauthenticated: int = 0
    users: list[str] = field(default_factory=list)


class SaslFront:
    """A SCRAM-only SASL listener on 127.0.0.1:``port`` that passes clients to ``backend``."""

    def __init__(self, *, port: int, backend: int, mechanisms: tuple[str, ...] = SCRAM) -> None:
        self.port = port
        self.backend = backend
        self.mechanisms = list(mechanisms)
        self.counts = Counts()
        self._credentials: dict[str, dict[str, AuthInfo]] = {m: {} for m in mechanisms}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sasl-front", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add_user(self, username: str, password: str) -> None:
        """Store the user's SCRAM credentials for each mechanism; the password is not kept."""
        for name, users in self._credentials.items():
            users[username] = ScramMechanism(name).make_auth_info(password)

    def start(self) -> SaslFront:
        _check_broker_lists_sasl(self.backend)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"SASL front did not listen on {self.port}")
        return self

    def close(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout=10)

    def __enter__(self) -> SaslFront:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await self._connection(reader, writer)
            finally:
                tasks.discard(task)

        server = await asyncio.start_server(handle, "127.0.0.1", self.port)
        self._ready.set()
        await self._stopped.wait()
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts.accepted += 1
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        session = Session(self)
        try:
            while session.user is None:
                request = Request.parse(await read_frame(reader))
                if request.api_key == API_VERSIONS:
                    upstream = upstream or await self._open_backend()
                    writer.write(await _relay(request, upstream))
                    await writer.drain()
                    continue
                proceed = session.step(request, writer)
                await writer.drain()
                if not proceed:
                    if session.refused:
                        await asyncio.sleep(FAILED_AUTHENTICATION_DELAY)
                    return
            upstream = upstream or await self._open_backend()
            await asyncio.gather(_pipe(reader, upstream[1]), _pipe(upstream[0], writer))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            if session.user is None and not (session.refused or session.hung_up):
                self.counts.left_unauthenticated += 1
            for w in (writer, upstream[1] if upstream else None):
                if w is not None:
                    w.close()

    async def _open_backend(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.backend)

    def credentials(self, mechanism: str, username: str) -> AuthInfo | None:
        return self._credentials[mechanism].get(username)


class Session:
    """The SASL state of one client connection: handshake, then SCRAM's two rounds."""

    def __init__(self, front: SaslFront) -> None:
        self.front = front
        self.mechanism: str | None = None
        self.username: str | None = None
        self.server: ScramServer | None = None
        self.round = 0
        #: Set once the client has proven its password.
        self.user: str | None = None
        #: Set when the client was answered with an error (not merely hung up on).
        self.refused = False
        #: Set when the client sent a request that is not let through before SASL.
        self.hung_up = False

    def step(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection is to be closed."""
        counts = self.front.counts
        if request.api_key == SASL_HANDSHAKE and self.mechanism is None:
            return self._handshake(request, writer)
        if request.api_key == SASL_AUTHENTICATE and self.mechanism is not None:
            return self._authenticate(request, writer)
        counts.unauthenticated += 1
        self.hung_up = True
        log.warning(
            "sasl_front.unauthenticated_request",
            extra={"api_key": request.api_key, "api_version": request.version},
        )
        return False

    def _handshake(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        mechanism = request.body.string() or ""
        enabled = self.front.mechanisms
        if mechanism not in enabled:
            self.front.counts.unsupported_mechanism += 1
            self.refused = True
            log.warning("sasl_front.mechanism_refused", extra={"mechanism": mechanism})
            writer.write(request.answer(handshake_response(UNSUPPORTED_SASL_MECHANISM, enabled)))
            return False
        self.mechanism = mechanism
        self.server = ScramMechanism(mechanism).make_server(self._auth_info)
        writer.write(request.answer(handshake_response(0, enabled)))
        return True

    def _auth_info(self, username: str) -> AuthInfo | None:
        assert self.mechanism is not None
        self.username = username
        return self.front.credentials(self.mechanism, username)

    def _authenticate(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        body = request.body
        token = body.compact_bytes() if request.version >= 2 else body.bytes32()
        server = self.server
        assert server is not None and self.mechanism is not None
        try:
            if self.round == 0:
                server.set_client_first(token.decode())
                answer = server.get_server_first()
            else:
                server.set_client_final(token.decode())
                answer = server.get_server_final()
        except (ScramException, UnicodeDecodeError) as exc:
            self.front.counts.failed += 1
            self.refused = True
            log.warning(
                "sasl_front.authentication_failed",
                extra={"mechanism": self.mechanism, "user": self.username, "reason": str(exc)},
            )
            message = FAILED_MESSAGE.format(mechanism=self.mechanism)
            response = authenticate_response(
                request.version, SASL_AUTHENTICATION_FAILED, message, b""
            )
            writer.write(request.answer(response))
            return False
        writer.write(
            request.answer(authenticate_response(request.version, 0, None, answer.encode()))
        )
        self.round += 1
        if self.round == 2:
            self.user = self.username
            self.front.counts.authenticated += 1
            self.front.counts.users.append(self.user or "")
            log.info(
                "sasl_front.authenticated",
                extra={"mechanism": self.mechanism, "user": self.user},
            )
        return True


async def _relay(
    request: Request, upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter]
) -> bytes:
    """Send the request to the broker unchanged and return its framed answer."""
    reader, writer = upstream
    writer.write(struct.pack(">i", len(request.frame)) + request.frame)
    await writer.drain()
    answer = await read_frame(reader)
    return struct.pack(">i", len(answer)) + answer


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def _check_broker_lists_sasl(port: int) -> None:
    """Refuse to start in front of a broker whose ApiVersions lacks SaslHandshake or
    SaslAuthenticate: kafka-python would not try SASL at all."""
    request = struct.pack(">hhi", API_VERSIONS, 0, 1) + string16("sasl-front")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("broker closed the ApiVersions connection")
            data += chunk
    body = Reader(data[8:])
    body.int16()  # error code
    listed = set()
    for _ in range(body.int32()):
        listed.add(body.int16())
        body.take(4)
    missing = {SASL_HANDSHAKE, SASL_AUTHENTICATE} - listed
    if missing:
        raise RuntimeError(f"broker lists no ApiVersions entry for {sorted(missing)}")
