"""Field encryption under per-person data keys, with an in-memory key store."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from hub.crypto.cipher import ERASED, FieldCipher, is_token
from hub.crypto.errors import CipherError, PersonErased
from hub.crypto.keystore import KeyStore, master_keys_from
from hub.settings import Settings

ALICE = "p_alice"
BOB = "p_bob"


class MemoryKeyStore:
    """The KeyStore protocol over a dict; erased people keep a None entry."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes | None] = {}

    def data_key(self, person_id: str, *, create: bool) -> bytes | None:
        if person_id in self.keys:
            key = self.keys[person_id]
            if key is None and create:
                raise PersonErased(person_id)
            return key
        if not create:
            return None
        self.keys[person_id] = os.urandom(32)
        return self.keys[person_id]

    def erase(self, person_id: str) -> bool:
        existed = self.keys.get(person_id) is not None
        self.keys[person_id] = None
        return existed

    def is_erased(self, person_id: str) -> bool:
        return person_id in self.keys and self.keys[person_id] is None

    def rewrap_all(self, new_master_key_id: str) -> int:
        return 0


@pytest.fixture
def store() -> MemoryKeyStore:
    return MemoryKeyStore()


@pytest.fixture
def cipher(store: MemoryKeyStore) -> FieldCipher:
    keys: KeyStore = store  # the fake must satisfy the protocol the real store implements
    return FieldCipher(keys)


def _flip_last_byte(token: str) -> str:
    body = token.removeprefix("enc:v1:")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[-1] ^= 1
    return "enc:v1:" + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def test_round_trip_creates_the_key_on_first_use(
    cipher: FieldCipher, store: MemoryKeyStore
) -> None:
    token = cipher.encrypt(ALICE, "Wei")
    assert is_token(token) and "Wei" not in token
    assert ALICE in store.keys
    assert cipher.decrypt(ALICE, token) == "Wei"


def test_unicode_and_empty_text_survive(cipher: FieldCipher) -> None:
    for value in ["Çağlar Öztürk-Weiß", "李伟", "👩‍🎓", ""]:
        assert cipher.decrypt(ALICE, cipher.encrypt(ALICE, value)) == value


def test_same_value_encrypts_differently_each_time(cipher: FieldCipher) -> None:
    assert cipher.encrypt(ALICE, "Li") != cipher.encrypt(ALICE, "Li")


def test_token_is_compact_and_url_safe(cipher: FieldCipher) -> None:
    token = cipher.encrypt(ALICE, "Li")
    assert token.startswith("enc:v1:")
    assert set(token.removeprefix("enc:v1:")) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    assert len(token) < 60


def test_token_is_bound_to_its_person(cipher: FieldCipher, store: MemoryKeyStore) -> None:
    token = cipher.encrypt(ALICE, "Wei")
    store.keys[BOB] = store.keys[ALICE]  # even under the same key, the person id must match
    with pytest.raises(CipherError):
        cipher.decrypt(BOB, token)


def test_token_of_someone_without_a_key_does_not_decrypt(cipher: FieldCipher) -> None:
    token = cipher.encrypt(ALICE, "Wei")
    with pytest.raises(CipherError):
        cipher.decrypt(BOB, token)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "Wei",
        "enc:v1:",
        "enc:v1:!!!!",
        "enc:v1:AAAA",
        "enc:v2:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_malformed_tokens_raise_cipher_error(cipher: FieldCipher, bad: str) -> None:
    cipher.encrypt(ALICE, "x")
    with pytest.raises(CipherError):
        cipher.decrypt(ALICE, bad)


def test_tampered_token_raises_cipher_error(cipher: FieldCipher) -> None:
    token = cipher.encrypt(ALICE, "Wei")
    with pytest.raises(CipherError):
        cipher.decrypt(ALICE, _flip_last_byte(token))
    assert issubclass(CipherError, ValueError)


def test_erased_key_raises_person_erased(cipher: FieldCipher, store: MemoryKeyStore) -> None:
    token = cipher.encrypt(ALICE, "Wei")
    assert store.erase(ALICE)
    with pytest.raises(PersonErased):
        cipher.decrypt(ALICE, token)
    with pytest.raises(PersonErased):
        cipher.encrypt(ALICE, "a new key must not be minted")


def test_is_token() -> None:
    assert is_token("enc:v1:abc")
    assert not is_token("Wei")
    assert not is_token(None)
    assert not is_token({"enc:v1:": 1})


EVENT: dict[str, Any] = {
    "type": "residence.student",
    "person": {"given_name": "Wei", "family_name": "Li", "birth_date": None},
    "payload": {"programme": "M.Sc. Computer Engineering", "semester": "2027S", "ects": 42},
}
PATHS = ["person.given_name", "person.family_name", "person.birth_date", "payload", "x.y"]


def test_fields_round_trip_by_dotted_path(cipher: FieldCipher) -> None:
    sealed = cipher.encrypt_fields(ALICE, EVENT, PATHS)
    assert is_token(sealed["person"]["given_name"])
    assert is_token(sealed["person"]["family_name"])
    assert is_token(sealed["payload"])
    assert "Computer" not in str(sealed)
    assert sealed["person"]["birth_date"] is None
    assert sealed["type"] == "residence.student"
    assert "x" not in sealed
    assert EVENT["person"]["given_name"] == "Wei"  # the input is not mutated
    assert cipher.decrypt_fields(ALICE, sealed, PATHS) == EVENT


def test_encrypting_fields_twice_is_a_no_op(cipher: FieldCipher) -> None:
    sealed = cipher.encrypt_fields(ALICE, EVENT, PATHS)
    assert cipher.encrypt_fields(ALICE, sealed, PATHS) == sealed


def test_plain_fields_pass_through_decryption(cipher: FieldCipher) -> None:
    assert cipher.decrypt_fields(ALICE, EVENT, PATHS) == EVENT


def test_erased_fields_show_the_marker(cipher: FieldCipher, store: MemoryKeyStore) -> None:
    sealed = cipher.encrypt_fields(ALICE, EVENT, PATHS)
    store.erase(ALICE)
    shown = cipher.decrypt_fields(ALICE, sealed, PATHS)
    assert shown["person"] == {"given_name": ERASED, "family_name": ERASED, "birth_date": None}
    assert shown["payload"] == ERASED
    assert ERASED == "[gelöscht / erased]"


def test_tampered_field_shows_as_erased_not_as_error(cipher: FieldCipher) -> None:
    sealed = cipher.encrypt_fields(ALICE, EVENT, PATHS)
    sealed["person"]["given_name"] = _flip_last_byte(sealed["person"]["given_name"])
    shown = cipher.decrypt_fields(ALICE, sealed, PATHS)
    assert shown["person"]["given_name"] == ERASED
    assert shown["person"]["family_name"] == "Li"


def test_development_master_key_file_is_created_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    keys, kid = master_keys_from(settings)
    path = tmp_path / "data" / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(keys[kid]) == 32
    assert master_keys_from(settings) == (keys, kid)
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]


def test_configured_master_keys_are_decoded(tmp_path: Path) -> None:
    key = os.urandom(32)
    settings = Settings(
        data_dir=tmp_path,
        master_keys={"a": base64.b64encode(key).decode()},
        master_key_id="a",
    )
    assert master_keys_from(settings) == ({"a": key}, "a")
    assert not (tmp_path / "master.key").exists()


@pytest.mark.parametrize("value", [base64.b64encode(b"x" * 16).decode(), "not base64!"])
def test_bad_master_keys_are_refused_by_key_id(tmp_path: Path, value: str) -> None:
    ok = base64.b64encode(os.urandom(32)).decode()
    settings = Settings(
        data_dir=tmp_path, master_keys={"good": ok, "k-bad": value}, master_key_id="good"
    )
    with pytest.raises(ValueError, match="k-bad"):
        master_keys_from(settings)


def test_current_master_key_id_must_be_configured(tmp_path: Path) -> None:
    ok = base64.b64encode(os.urandom(32)).decode()
    settings = Settings(data_dir=tmp_path, master_keys={"a": ok}, master_key_id="b")
    with pytest.raises(ValueError, match="HUB_MASTER_KEY_ID"):
        master_keys_from(settings)
