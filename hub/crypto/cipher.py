"""Field encryption under per-person data keys: erasing the key shreds every copy."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.crypto.errors import CipherError, PersonErased
from hub.crypto.keystore import KeyStore

log = logging.getLogger(__name__)

PREFIX = "enc:v1:"
ERASED = "[gelöscht / erased]"
NONCE_BYTES = 12
TAG_BYTES = 16
# The first plaintext byte says how to read the rest; it is inside the ciphertext, so
# authenticated, and the token format stays one for strings and whole sub-documents.
_TEXT, _JSON = b"s", b"j"
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def is_token(value: object) -> bool:
    """True if ``value`` is a token made by ``FieldCipher.encrypt``."""
    return isinstance(value, str) and value.startswith(PREFIX)


class FieldCipher:
    """Encrypts personal fields with AES-256-GCM under the person's data key.

    The person id is the associated data: a token copied onto another person's record does
    not decrypt. Random 96-bit nonces are safe for 2^32 encryptions per key, and one person's
    key encrypts a few hundred fields in a lifetime.
    """

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys
        # One AES-GCM context per key for the fields of one call (an event's fields share
        # the person's key): setting one up costs more than sealing a short field with it.
        # The cipher lives only as long as the call, and with it the key schedule.
        self._aeads: dict[bytes, AESGCM] = {}

    def encrypt(self, person_id: str, value: str) -> str:
        """A token ``enc:v1:…`` for ``value``; creates the person's data key on first use."""
        return self._seal(person_id, _TEXT + value.encode())

    def decrypt(self, person_id: str, token: str) -> str:
        """The text in ``token`` (JSON text for an encrypted sub-document)."""
        return self._open(person_id, token)[1:].decode()

    def encrypt_fields(
        self, person_id: str, data: dict[str, Any], paths: list[str]
    ) -> dict[str, Any]:
        """A copy of ``data`` with the fields at the dotted ``paths`` encrypted."""
        for path in paths:
            data = _replace(data, path.split("."), lambda v: self._encrypt_value(person_id, v))
        return data

    def decrypt_fields(
        self, person_id: str, data: dict[str, Any], paths: list[str]
    ) -> dict[str, Any]:
        """A copy of ``data`` with the fields at ``paths`` decrypted, or marked erased."""
        for path in paths:
            data = _replace(data, path.split("."), lambda v: self._decrypt_value(person_id, v))
        return data

    def _encrypt_value(self, person_id: str, value: Any) -> Any:
        if is_token(value):
            # Already encrypted: encrypting twice (a replayed event) must be a no-op.
            return value
        if isinstance(value, str):
            return self.encrypt(person_id, value)
        as_json = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return self._seal(person_id, _JSON + as_json.encode())

    def _decrypt_value(self, person_id: str, value: Any) -> Any:
        if not is_token(value):
            # Written before the field was encrypted, or by a producer that does not encrypt.
            return value
        try:
            plain = self._open(person_id, value)
        except PersonErased:
            return ERASED
        except CipherError as exc:
            # Readers (timeline, exports, dead letters) must keep working on a damaged record.
            log.warning("privacy.decrypt_failed", extra={"person_id": person_id, "error": str(exc)})
            return ERASED
        text = plain[1:].decode()
        return json.loads(text) if plain[:1] == _JSON else text

    def _seal(self, person_id: str, plaintext: bytes) -> str:
        key = self.keys.data_key(person_id, create=True)
        if key is None:
            raise PersonErased(person_id)
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._aead(key).encrypt(nonce, plaintext, person_id.encode())
        return PREFIX + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def _open(self, person_id: str, token: str) -> bytes:
        sealed = _decode_token(token)
        key = self.keys.data_key(person_id, create=False)
        if key is None:
            if self.keys.is_erased(person_id):
                raise PersonErased(person_id)
            raise CipherError("no data key for this person: the token is someone else's")
        try:
            plain = self._aead(key).decrypt(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], person_id.encode()
            )
        except InvalidTag as exc:
            raise CipherError("token tampered with, or encrypted for another person") from exc
        if plain[:1] not in (_TEXT, _JSON):
            raise CipherError("token of an unknown kind")
        return plain

    def _aead(self, key: bytes) -> AESGCM:
        aead = self._aeads.get(key)
        if aead is None:
            aead = self._aeads[key] = AESGCM(key)
        return aead


def _decode_token(token: str) -> bytes:
    body = token.removeprefix(PREFIX) if is_token(token) else ""
    if not _BASE64URL.fullmatch(body):
        raise CipherError("not an enc:v1 token")
    try:
        sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise CipherError("not an enc:v1 token") from exc
    if len(sealed) < NONCE_BYTES + TAG_BYTES + 1:
        raise CipherError("enc:v1 token too short")
    return sealed


def _replace(data: dict[str, Any], keys: list[str], change: Callable[[Any], Any]) -> dict[str, Any]:
    """A copy of ``data`` with ``change`` applied at the path; absent or None stays as is."""
    head, rest = keys[0], keys[1:]
    value = data.get(head)
    if value is None:
        return dict(data)
    if rest:
        if not isinstance(value, dict):
            return dict(data)
        return {**data, head: _replace(value, rest, change)}
    return {**data, head: change(value)}
