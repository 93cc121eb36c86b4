"""Per-person data keys in the database: erasure, binding to the person, master key rotation."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event, update
from sqlalchemy.orm import Session, sessionmaker

from hub.bootstrap import Hub
from hub.crypto.cipher import ERASED, FieldCipher
from hub.crypto.errors import CipherError, MasterKeyMissing, PersonErased
from hub.crypto.keystore import DbKeyStore
from hub.crypto.models import PersonKey
from hub.db import unit_of_work
from tests.hubtest import Partners

HubAndPartners = tuple[Hub, Partners]

OLD = {"k2026": os.urandom(32)}
NEW = {"k2027": os.urandom(32)}


def _store(session: Session, keys: dict[str, bytes] = OLD) -> DbKeyStore:
    return DbKeyStore(session, keys, next(iter(keys)))


def _factory(hub_and_partners: HubAndPartners) -> sessionmaker[Session]:
    return hub_and_partners[0].session_factory


@contextmanager
def key_reads(hub_and_partners: HubAndPartners) -> Iterator[list[str]]:
    """The statements reading ``person_keys`` while the block runs."""
    selects: list[str] = []
    engine = hub_and_partners[0].engine

    def count(_c: object, _cur: object, statement: str, *_: object) -> None:
        if "FROM person_keys" in statement:
            selects.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield selects
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_create_read_erase(hub_and_partners: HubAndPartners) -> None:
    factory = _factory(hub_and_partners)
    with unit_of_work(factory) as session:
        store = _store(session)
        assert store.data_key("p_ada", create=False) is None
        key = store.data_key("p_ada", create=True)
        assert key is not None and len(key) == 32
    with unit_of_work(factory) as session:
        store = _store(session)
        assert store.data_key("p_ada", create=True) == key
        assert store.data_key("p_ada", create=False) == key
        assert not store.is_erased("p_ada")
        assert store.erase("p_ada") is True
    with unit_of_work(factory) as session:
        store = _store(session)
        assert store.is_erased("p_ada")
        assert store.data_key("p_ada", create=False) is None
        with pytest.raises(PersonErased):
            store.data_key("p_ada", create=True)
        assert store.erase("p_ada") is False
        row = session.get(PersonKey, "p_ada")
        assert row is not None and row.wrapped_key is None and row.erased_at is not None


def test_erasing_someone_without_a_key_blocks_a_new_one(hub_and_partners: HubAndPartners) -> None:
    with unit_of_work(_factory(hub_and_partners)) as session:
        store = _store(session)
        assert not store.is_erased("p_never")
        assert store.erase("p_never") is False
        assert store.is_erased("p_never")
        with pytest.raises(PersonErased):
            FieldCipher(store).encrypt("p_never", "replayed event")


def test_wrapped_key_moved_to_another_person_does_not_unwrap(
    hub_and_partners: HubAndPartners,
) -> None:
    factory = _factory(hub_and_partners)
    with unit_of_work(factory) as session:
        store = _store(session)
        store.data_key("p_ada", create=True)
        store.data_key("p_bob", create=True)
    with unit_of_work(factory) as session:
        ada = session.get(PersonKey, "p_ada")
        assert ada is not None
        session.execute(
            update(PersonKey)
            .where(PersonKey.person_id == "p_bob")
            .values(wrapped_key=ada.wrapped_key, master_key_id=ada.master_key_id)
        )
    with unit_of_work(factory) as session, pytest.raises(CipherError):
        _store(session).data_key("p_bob", create=False)


def test_rotation_then_only_the_new_master_key(hub_and_partners: HubAndPartners) -> None:
    factory = _factory(hub_and_partners)
    people = [f"p_{i:03}" for i in range(7)]
    with unit_of_work(factory) as session:
        cipher = FieldCipher(_store(session))
        tokens = {p: cipher.encrypt(p, f"Name {p}") for p in people}
        cipher.keys.erase(people[0])
    with unit_of_work(factory) as session:
        store = DbKeyStore(session, {**OLD, **NEW}, "k2026")
        assert store.rewrap_all("k2027") == len(people) - 1
        assert store.rewrap_all("k2027") == 0
        with pytest.raises(ValueError, match="k2099"):
            store.rewrap_all("k2099")
    with unit_of_work(factory) as session:
        cipher = FieldCipher(_store(session, NEW))
        for p in people[1:]:
            assert cipher.decrypt(p, tokens[p]) == f"Name {p}"
        with pytest.raises(PersonErased):
            cipher.decrypt(people[0], tokens[people[0]])
        assert cipher.decrypt_fields(people[0], {"n": tokens[people[0]]}, ["n"]) == {"n": ERASED}
    with unit_of_work(factory) as session, pytest.raises(MasterKeyMissing):
        # A retired master key must fail loudly, never make people look erased.
        _store(session).data_key(people[1], create=False)


def test_erased_key_is_gone_from_the_database_file(hub_and_partners: HubAndPartners) -> None:
    hub = hub_and_partners[0]
    with unit_of_work(hub.session_factory) as session:
        store = _store(session)
        key = store.data_key("p_ada", create=True)
        store.data_key("p_bob", create=True)
    with hub.session_factory() as session:
        row = session.get(PersonKey, "p_ada")
        assert row is not None and row.wrapped_key is not None
        wrapped = row.wrapped_key
    assert key is not None
    if hub.engine.dialect.name != "sqlite":
        pytest.skip("byte scan of the database file: SQLite only")
    path = Path(hub.engine.url.database or "")
    before = _checkpointed_bytes(path)
    assert wrapped in before, "control: the scan must see the wrapped key while it exists"
    assert key not in before, "the data key must never be stored in clear"

    with unit_of_work(hub.session_factory) as session:
        assert _store(session).erase("p_ada")
    after = _checkpointed_bytes(path)
    assert wrapped not in after
    assert key not in after
    with hub.session_factory() as session:
        assert _store(session).data_key("p_bob", create=False) is not None


def _checkpointed_bytes(path: Path) -> bytes:
    conn = sqlite3.connect(path)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.close()
    assert busy == 0
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_a_key_is_read_once_per_transaction_and_forgotten_after_it(
    hub_and_partners: HubAndPartners,
) -> None:
    factory = _factory(hub_and_partners)
    with unit_of_work(factory) as session:
        key = _store(session).data_key("p_once", create=True)
    with key_reads(hub_and_partners) as selects:
        with unit_of_work(factory) as session:
            for _ in range(5):
                assert _store(session).data_key("p_once", create=True) == key
        assert len(selects) == 1, "one read for five values of one person"
        with unit_of_work(factory) as session:
            assert _store(session).data_key("p_once", create=False) == key
        assert len(selects) == 2, "a new transaction reads the key again"


def test_a_key_erased_in_the_transaction_is_not_served_from_memory(
    hub_and_partners: HubAndPartners,
) -> None:
    with unit_of_work(_factory(hub_and_partners)) as session:
        store = _store(session)
        assert store.data_key("p_gone", create=True) is not None
        assert store.erase("p_gone") is True
        assert store.data_key("p_gone", create=False) is None
        with pytest.raises(PersonErased):
            store.data_key("p_gone", create=True)


def test_a_rolled_back_key_is_not_remembered(hub_and_partners: HubAndPartners) -> None:
    factory = _factory(hub_and_partners)
    session = factory()
    try:
        assert _store(session).data_key("p_rolled", create=True) is not None
        session.rollback()
        assert _store(session).data_key("p_rolled", create=False) is None
    finally:
        session.close()


def test_a_batch_of_people_has_its_keys_read_in_one_query(
    hub_and_partners: HubAndPartners,
) -> None:
    factory = _factory(hub_and_partners)
    people = [f"p_batch{n}" for n in range(7)]
    with unit_of_work(factory) as session:
        keys = {p: _store(session).data_key(p, create=True) for p in people}
        _store(session).erase("p_batch6")
    with key_reads(hub_and_partners) as selects:
        with unit_of_work(factory) as session:
            _store(session).load_many([*people, "p_batch0", "p_nobody"])
            assert len(selects) == 1, "one query for the whole batch"
            for person in people[:6]:
                assert _store(session).data_key(person, create=False) == keys[person]
            assert len(selects) == 1, "the loaded keys are served from memory"
            # The erased and the unknown are not remembered: each still reads as it is.
            assert _store(session).data_key("p_batch6", create=False) is None
            assert _store(session).data_key("p_nobody", create=False) is None
            assert len(selects) == 3
        with unit_of_work(factory) as session:
            assert _store(session).data_key("p_batch0", create=False) == keys["p_batch0"]
        assert len(selects) == 4, "a new transaction reads the key again"
