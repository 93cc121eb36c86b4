"""Checkpoints as C2SP signed notes (c2sp.org/tlog-checkpoint, c2sp.org/signed-note), Ed25519.

A checkpoint is the text

    <origin>\\n<tree size>\\n<base64 root hash>\\n[extension lines]

followed by a blank line and one signature line per key,
``— <key name> <base64(4-byte key id || signature)>``. The key id is the first four bytes of
SHA-256(name || "\\n" || 0x01 || public key); the verifier key is published as
``<name>+<key id hex>+<base64(0x01 || public key)>``. Tools built for transparency logs
(Go's golang.org/x/mod/sumdb/note, the C2SP witnesses) read both without our code.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = b"\x01"
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space
_NAME = re.compile(r"[^\s+]+")
_TIME_LINE = "time "


class NoteError(ValueError):
    """A checkpoint or key text that is malformed or whose signature does not verify."""


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key id of an Ed25519 verifier key."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public_key).digest()[:4]


def raw_public_key(private_key: Ed25519PrivateKey) -> bytes:
    """The 32-byte public key of a private key."""
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class VerifierKey:
    """A published audit key: its name, id and the raw Ed25519 public key."""

    name: str
    public_key: bytes

    @property
    def id(self) -> bytes:
        """The 4-byte key id."""
        return key_id(self.name, self.public_key)

    def text(self) -> str:
        """The verifier key in the signed-note text form."""
        encoded = base64.b64encode(ED25519 + self.public_key).decode()
        return f"{self.name}+{self.id.hex()}+{encoded}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """A verifier key from its text form; NoteError if malformed or inconsistent."""
        try:
            name, hex_id, encoded = text.strip().split("+", 2)
            raw = base64.b64decode(encoded, validate=True)
            stated = bytes.fromhex(hex_id)
        except ValueError as exc:
            raise NoteError(f"not a verifier key: {text.strip()[:60]!r}") from exc
        if not _NAME.fullmatch(name) or raw[:1] != ED25519 or len(raw) != 33:
            raise NoteError(f"not an Ed25519 verifier key: {name!r}")
        key = cls(name, raw[1:])
        if key.id != stated:
            raise NoteError(f"verifier key {name!r}: its id does not match the key")
        return key


@dataclass(frozen=True)
class Checkpoint:
    """The signed statement "the log ``origin`` had ``size`` leaves with this root at ``time``"."""

    origin: str
    size: int
    root: bytes
    time: datetime

    def body(self) -> str:
        """The note text that is signed."""
        root = base64.b64encode(self.root).decode()
        when = self.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{self.origin}\n{self.size}\n{root}\n{_TIME_LINE}{when}\n"

    def sign(self, name: str, private_key: Ed25519PrivateKey) -> str:
        """The whole signed note."""
        body = self.body()
        signature = private_key.sign(body.encode())
        blob = base64.b64encode(key_id(name, raw_public_key(private_key)) + signature).decode()
        return f"{body}\n{SIGNATURE_PREFIX}{name} {blob}\n"


def open_checkpoint(note: str, keys: list[VerifierKey]) -> tuple[Checkpoint, VerifierKey]:
    """The checkpoint in a signed note and the key that signed it; NoteError unless one of
    ``keys`` has a valid signature on it and the body is a well-formed checkpoint."""
    body, sep, signatures = note.partition("\n\n")
    if not sep or not body:
        raise NoteError("not a signed note: no blank line before the signatures")
    body += "\n"
    signer = _signer(body, signatures, keys)
    return _parse_body(body), signer


def _signer(body: str, signatures: str, keys: list[VerifierKey]) -> VerifierKey:
    by_id = {(k.name, k.id): k for k in keys}
    for line in signatures.splitlines():
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"not a signature line: {line[:60]!r}")
        name, _, blob = line.removeprefix(SIGNATURE_PREFIX).partition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except ValueError as exc:
            raise NoteError(f"signature of {name!r} is not base64") from exc
        key = by_id.get((name, raw[:4]))
        if key is None:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(key.public_key).verify(raw[4:], body.encode())
        except InvalidSignature as exc:
            raise NoteError(f"the signature of key {key.text()} does not verify") from exc
        return key
    raise NoteError("signed by no known key")


def _parse_body(body: str) -> Checkpoint:
    lines = body.split("\n")[:-1]
    if len(lines) < 3:
        raise NoteError("a checkpoint has at least origin, size and root hash")
    origin, size, root = lines[:3]
    try:
        if not size.isascii() or not size.isdigit() or (size.startswith("0") and size != "0"):
            raise ValueError(size)
        hashed = base64.b64decode(root, validate=True)
        when = next(
            (
                datetime.fromisoformat(x.removeprefix(_TIME_LINE))
                for x in lines[3:]
                if x.startswith(_TIME_LINE)
            ),
            None,
        )
    except ValueError as exc:
        raise NoteError(f"malformed checkpoint body: {exc}") from exc
    if len(hashed) != 32 or when is None:
        raise NoteError("a checkpoint needs a 32-byte root hash and a time line")
    return Checkpoint(origin=origin, size=int(size), root=hashed, time=when)
