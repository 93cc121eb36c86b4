"""The audit log: appends take no lock, the sequencer signs checkpoints, and verify names the
first leaf or checkpoint that tampering broke, also when the database was rewritten to agree
with itself (then only the copy kept outside the database can tell, and does).

Two of these cases passed the hash chain this log replaced: a truncated tail with the head
rolled back to match, and a changed row with every later hash and the head recomputed.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import delete, func, select, update

from hub.audit.keys import create_key, current_signer, rewrap
from hub.audit.merkle import Frontier, leaf_hash
from hub.audit.models import AuditCheckpoint, AuditKey, AuditRecord
from hub.audit.note import Checkpoint
from hub.audit.sequencer import Sequencer
from hub.audit.service import leaf_bytes, list_records, record, record_rows
from hub.audit.verify import VerifyReport, verify
from hub.bootstrap import Hub
from hub.crypto.keystore import master_keys_from
from hub.db import unit_of_work
from tests.hubtest import make_hub

ORIGIN = "talent-hub.duisburg.de/audit"


def _append(hub: Hub, count: int, per_transaction: int = 7) -> None:
    for start in range(0, count, per_transaction):
        with unit_of_work(hub.session_factory) as session:
            for i in range(start, min(start + per_transaction, count)):
                record(
                    session,
                    actor_type="partner",
                    actor="ude",
                    action="api.call",
                    person_id=f"p_{i % 5}",
                    purpose="education",
                    details={"method": "GET", "route": "/v1/referrals/{id}", "status": 200, "i": i},
                )


def _sequencer(hub: Hub, outside: Path | None = None) -> Sequencer:
    return Sequencer(
        session_factory=hub.session_factory, origin=ORIGIN, interval=1.0, checkpoint_file=outside
    )


def _log(hub: Hub, outside: Path | None = None, *, rounds: int = 5, each: int = 10) -> None:
    """``rounds`` checkpoints of ``each`` new leaves, the file copy kept beside."""
    sequencer = _sequencer(hub, outside)
    for _ in range(rounds):
        _append(hub, each)
        assert sequencer.step().leaves == each


def _verify(hub: Hub, outside: Path | None = None, **kwargs: Any) -> VerifyReport:
    with hub.session_factory() as session:
        return verify(session, checkpoint_file=outside, batch=7, **kwargs)


def _size(hub: Hub) -> int:
    with hub.session_factory() as session:
        return int(session.scalar(select(func.max(AuditCheckpoint.tree_size))) or 0)


def _leaf(hub: Hub, index: int) -> dict[str, Any]:
    with hub.engine.connect() as conn:
        table = AuditRecord.__table__
        row = conn.execute(select(table).where(table.c.leaf_index == index)).one()
    return dict(row._mapping)


def _set(hub: Hub, index: int, **values: Any) -> None:
    with hub.engine.begin() as conn:
        conn.execute(update(AuditRecord).where(AuditRecord.leaf_index == index).values(**values))


def _rewrite_history(hub: Hub, *, new_key: bool = False) -> None:
    """What an attacker with the database and the master key can do: recompute every leaf
    hash and every checkpoint from the (altered) leaves and sign them again."""
    with unit_of_work(hub.session_factory) as session:
        if new_key:
            create_key(session, name=ORIGIN)
        verifier, private = current_signer(session, name=ORIGIN)
        rows = session.execute(select(AuditRecord.__table__).order_by(AuditRecord.leaf_index)).all()
        frontier, hashes = Frontier(), {}
        sizes = set(session.scalars(select(AuditCheckpoint.tree_size)))
        for row in rows:
            if row.leaf_index is None:
                continue
            hashed = leaf_hash(leaf_bytes(row._mapping))
            hashes[row.seq] = hashed.hex()
            frontier.append(hashed)
            if frontier.size in sizes:
                cp = Checkpoint(ORIGIN, frontier.size, frontier.root(), time=_now())
                session.execute(
                    update(AuditCheckpoint)
                    .where(AuditCheckpoint.tree_size == frontier.size)
                    .values(
                        root_hash=cp.root.hex(),
                        note=cp.sign(ORIGIN, private),
                        key_id=verifier.text(),
                        frontier=frontier.to_hex(),
                    )
                )
        for seq, hashed_hex in hashes.items():
            session.execute(
                update(AuditRecord).where(AuditRecord.seq == seq).values(leaf_hash=hashed_hex)
            )


def _roll_back_to(hub: Hub, size: int) -> None:
    """Cut the log at ``size`` leaves and make the database agree: checkpoints above it go,
    and the one at ``size`` gets its frontier back, as the sequencer would have left it."""
    with hub.engine.begin() as conn:
        conn.execute(delete(AuditRecord).where(AuditRecord.leaf_index >= size))
        conn.execute(delete(AuditCheckpoint).where(AuditCheckpoint.tree_size > size))
        hashes = conn.scalars(select(AuditRecord.leaf_hash).order_by(AuditRecord.leaf_index)).all()
        frontier = Frontier()
        for hashed in hashes:
            frontier.append(bytes.fromhex(hashed))
        conn.execute(
            update(AuditCheckpoint)
            .where(AuditCheckpoint.tree_size == size)
            .values(frontier=frontier.to_hex())
        )


def _now() -> Any:
    from hub.db import utcnow

    return utcnow()


def _first(report: VerifyReport) -> str:
    assert not report.ok
    return report.problems[0]


def test_appends_become_leaves_in_order_under_signed_checkpoints(hub_and_partners: Any) -> None:
    hub = hub_and_partners[0]
    _log(hub)
    report = _verify(hub)
    assert report.ok, report.problems
    assert (report.checked, report.checkpoints, report.waiting) == (50, 5, 0)
    with hub.session_factory() as session:
        rows = session.scalars(select(AuditRecord).order_by(AuditRecord.seq)).all()
    assert [r.leaf_index for r in rows] == list(range(50))
    assert [r.details["i"] for r in rows[:10]] == list(range(10))


def test_a_leaf_appended_since_the_last_checkpoint_waits_and_is_no_problem(
    hub_and_partners: Any,
) -> None:
    hub = hub_and_partners[0]
    _log(hub, rounds=1)
    _append(hub, 3)
    report = _verify(hub)
    assert report.ok, report.problems
    assert (report.checked, report.waiting) == (10, 3)


def test_a_changed_row_is_named(hub_and_partners: Any) -> None:
    hub = hub_and_partners[0]
    _log(hub)
    _set(hub, 17, details={"method": "GET", "route": "/v1/referrals", "status": 500})
    assert _first(_verify(hub)).startswith("leaf 17 (seq ")


def test_a_changed_row_with_its_leaf_hash_recomputed_fails_its_checkpoint(
    hub_and_partners: Any,
) -> None:
    hub = hub_and_partners[0]
    _log(hub)
    forged = _leaf(hub, 23) | {"actor": "amt"}
    _set(hub, 23, actor="amt", leaf_hash=leaf_hash(leaf_bytes(forged)).hex())
    first = _first(_verify(hub))
    assert first.startswith("checkpoint 30 (database): the leaves do not give its signed root")
    assert "a leaf in 20-29" in first


def test_a_deleted_row_is_named(hub_and_partners: Any) -> None:
    hub = hub_and_partners[0]
    _log(hub)
    with hub.engine.begin() as conn:
        conn.execute(delete(AuditRecord).where(AuditRecord.leaf_index == 18))
    assert _first(_verify(hub)).startswith("leaf 18: missing")


@pytest.mark.parametrize("pair", [(20, 30), (31, 32)], ids=["apart", "neighbours"])
def test_reordered_rows_are_named(hub_and_partners: Any, pair: tuple[int, int]) -> None:
    hub = hub_and_partners[0]
    _log(hub)
    a, b = pair
    # Swap their places in the tree, hashes and all; the unique index needs a detour.
    _set(hub, a, leaf_index=-1)
    _set(hub, b, leaf_index=a)
    _set(hub, -1, leaf_index=b)
    assert _first(_verify(hub)).startswith(f"leaf {a} (seq ")


def test_a_truncated_tail_with_the_checkpoints_rolled_back_is_caught_by_the_outside_copy(
    hub_and_partners: Any, tmp_path: Path
) -> None:
    hub = hub_and_partners[0]
    outside = tmp_path / "checkpoints.jsonl"
    _log(hub, outside)
    _roll_back_to(hub, 40)
    # The database alone agrees with itself: this is what an outside copy is for.
    assert _verify(hub).ok
    first = _first(_verify(hub, outside))
    assert first.startswith("checkpoint 50: signed in the checkpoint file, but the log has only 40")


def test_a_truncated_tail_then_new_appends_is_caught_by_the_outside_copy(
    hub_and_partners: Any, tmp_path: Path
) -> None:
    hub = hub_and_partners[0]
    outside = tmp_path / "checkpoints.jsonl"
    _log(hub, outside)
    _roll_back_to(hub, 40)
    _log(hub, rounds=1)  # the log grows to 50 again, with other leaves: not in the file
    assert _verify(hub).ok
    first = _first(_verify(hub, outside))
    assert first.startswith("checkpoint 50 (checkpoint file): the leaves do not give its signed")


@pytest.mark.parametrize("new_key", [False, True], ids=["same key", "attacker's key"])
def test_a_changed_row_with_every_hash_recomputed_and_resigned_is_caught_outside(
    hub_and_partners: Any, tmp_path: Path, new_key: bool
) -> None:
    hub = hub_and_partners[0]
    outside = tmp_path / "checkpoints.jsonl"
    _log(hub, outside)
    lines = [json.loads(x) for x in outside.read_text().splitlines()]
    published = [line["key"] for line in lines if "key" in line]
    _set(hub, 23, actor="amt")
    _rewrite_history(hub, new_key=new_key)
    assert _verify(hub).ok  # consistent in itself, signed with a key the database holds
    first = _first(_verify(hub, outside))
    if new_key:
        # Only keys from outside the database are trusted once an outside copy is given.
        assert first.startswith("checkpoint 10: signed by no known key")
    else:
        assert first.startswith("checkpoint 30 (checkpoint file): the leaves do not give")
    from hub.audit.note import VerifierKey

    pinned = _verify(hub, trusted_keys=[VerifierKey.parse(k) for k in published])
    assert pinned.ok is (not new_key)


def test_a_leaf_added_by_hand_and_an_altered_frontier_are_named(hub_and_partners: Any) -> None:
    hub = hub_and_partners[0]
    _log(hub, rounds=2)
    _append(hub, 1)
    with hub.engine.connect() as conn:
        row = conn.execute(select(AuditRecord.__table__).where(AuditRecord.seq == 21)).one()
    hashed = leaf_hash(leaf_bytes(dict(row._mapping) | {"leaf_index": 20})).hex()
    with hub.engine.begin() as conn:
        conn.execute(update(AuditRecord).where(AuditRecord.seq == 21).values(
            leaf_index=20, leaf_hash=hashed))  # fmt: skip
    assert (
        _first(_verify(hub)) == "leaf 20: numbered but under no signed checkpoint (added by hand)"
    )
    with hub.engine.begin() as conn:
        conn.execute(delete(AuditRecord).where(AuditRecord.leaf_index == 20))
        conn.execute(update(AuditCheckpoint).where(AuditCheckpoint.tree_size == 20).values(
            frontier=["11" * 32, "22" * 32]))  # fmt: skip
    assert _first(_verify(hub)) == "checkpoint 20 (database): its stored frontier was altered"


def test_a_rolled_back_append_leaves_no_leaf(hub_and_partners: Any) -> None:
    hub = hub_and_partners[0]
    _log(hub, rounds=1)
    with pytest.raises(RuntimeError), unit_of_work(hub.session_factory) as session:
        record(session, actor_type="staff", actor="s_17", action="staff.view", person_id="p_9")
        raise RuntimeError("the request failed after auditing")
    _log(hub, rounds=1)
    with hub.session_factory() as session:
        assert list_records(session, person_id="p_9") == []
    report = _verify(hub)
    assert report.ok and report.checked == 20, report.problems


def test_appenders_do_not_wait_for_each_other(hub_and_partners: Any) -> None:
    """An append while another transaction holds an uncommitted leaf commits at once (the old
    head row made it wait for the other transaction's end)."""
    hub = hub_and_partners[0]
    if hub.engine.dialect.name != "postgresql":
        pytest.skip("SQLite admits one writer at a time whatever the log does")
    holding = hub.session_factory()
    record(holding, actor_type="system", actor="hub", action="test.holding")
    holding.flush()
    took: list[float] = []

    def other() -> None:
        began = time.perf_counter()
        _append(hub, 1)
        took.append(time.perf_counter() - began)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(timeout=10)
    holding.commit()
    holding.close()
    assert took and took[0] < 2.0, took
    _sequencer(hub).step()
    assert _verify(hub).ok


@pytest.mark.parametrize(
    "details",
    [
        {"given_name": "Wei"},
        {"person": {"familyName": "Li"}},
        {"people": [{"ids": ["p_1"]}, {"Birth-Date": "2001-04-03"}]},
        {"partner_reference": "ES012345601"},
        {"refs": {"Matrikelnummer": "3012345"}},
        {"note": "called about the appointment"},
    ],
)
def test_personal_fields_are_refused_at_any_depth(
    hub_and_partners: Any, details: dict[str, Any]
) -> None:
    hub = hub_and_partners[0]
    with pytest.raises(ValueError, match="personal data"), hub.session_factory() as session:
        record(session, actor_type="system", actor="router", action="delivery.delivered",
               details=details)  # fmt: skip


def test_ids_codes_and_counts_are_accepted(hub_and_partners: Any) -> None:
    hub = hub_and_partners[0]
    with unit_of_work(hub.session_factory) as session:
        record(
            session,
            actor_type="partner",
            actor="amt",
            action="consent.withdrawn",
            person_id="p_abc",
            purpose="counselling",
            details={"referral_id": "r_1", "code": "PERMIT_GRANTED", "count": 2, "name_id": 1},
        )
    with pytest.raises(ValueError, match="actor_type"), hub.session_factory() as session:
        record(session, actor_type="admin", actor="x", action="api.call")


@pytest.mark.parametrize(
    "details",
    [
        {"route": "/v1/referrals", "method": "POST"},  # an API call's: text only
        {"zone": "Straße", "area": "Ruhr"},
        {"referrals": ("r_2", "r_1"), "count": 2, "route": "/v1/timeline"},
    ],
)
def test_details_are_stored_as_their_json_copy_with_sorted_keys(details: dict[str, Any]) -> None:
    _table, [row] = record_rows(
        actor_type="partner", actor="ude", action="api.call", details=details
    )
    copy = json.loads(json.dumps(details, sort_keys=True))
    assert row["details"] == copy
    assert list(row["details"]) == sorted(details)


def test_a_rotated_key_signs_from_then_on_and_old_checkpoints_still_verify(
    hub_and_partners: Any,
) -> None:
    hub = hub_and_partners[0]
    _log(hub, rounds=2)
    with unit_of_work(hub.session_factory) as session:
        first_key = session.scalar(select(AuditKey.id))
        create_key(session, name=ORIGIN)
    _log(hub, rounds=1)
    with hub.session_factory() as session:
        signers = session.scalars(
            select(AuditCheckpoint.key_id).order_by(AuditCheckpoint.tree_size)
        ).all()
        wrapped = session.scalars(select(AuditKey.wrapped_private_key)).all()
    assert signers[0] == signers[1] == first_key != signers[2]
    assert all(len(w) > 32 for w in wrapped)
    assert _verify(hub).ok


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", "audit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_commands_verify_prove_and_publish(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    hub, _ = make_hub(url, tmp_path)
    outside = tmp_path / "checkpoints.jsonl"
    _append(hub, 20)
    hub.engine.dispose()
    env = os.environ | {
        "HUB_DATABASE_URL": url,
        "HUB_DATA_DIR": str(tmp_path),
        "HUB_AUDIT_CHECKPOINT_FILE": str(outside),
    }
    sequenced = _cli(env, "sequence", "--once")
    assert sequenced.returncode == 0, sequenced.stderr
    assert "sequenced 20 records; tree size 20" in sequenced.stdout
    intact = _cli(env, "verify", "--checkpoints", str(outside))
    assert intact.returncode == 0, intact.stderr
    assert "audit log intact: 20 leaves, 1 signed checkpoints" in intact.stdout
    keys = _cli(env, "keys")
    assert keys.stdout.startswith(f"{ORIGIN}+"), keys.stderr
    proof = json.loads(_cli(env, "prove", "7").stdout)
    assert proof["tree_size"] == 20 and proof["key"] == keys.stdout.strip()
    shown = _cli(env, "show", "--person", "p_3", "--limit", "2")
    assert [line.count('"person_id": "p_3"') for line in shown.stdout.splitlines()] == [1, 1]

    _set(hub, 17, details={"status": 500})
    hub.engine.dispose()
    broken = _cli(env, "verify", "--checkpoints", str(outside))
    assert broken.returncode == 1
    assert broken.stdout.startswith("leaf 17 (seq 18): content does not match its leaf hash")
    missing = _cli(env, "prove", "20")
    assert missing.returncode == 1
    assert "leaf 20 is not under the newest checkpoint (size 20)" in missing.stderr


def test_the_signing_key_follows_a_master_key_rotation(database_url: str, tmp_path: Path) -> None:
    """``hub keys rewrap --to NEW`` re-wraps the audit key too: with the old master key
    removed, the sequencer still signs and the key never existed in clear in the database."""
    old, new = (base64.b64encode(secrets.token_bytes(32)).decode() for _ in range(2))
    hub, _ = make_hub(database_url, tmp_path, master_keys={"k1": old, "k2": new},
                      master_key_id="k1")  # fmt: skip
    _log(hub, rounds=1)
    with unit_of_work(hub.session_factory) as session:
        assert rewrap(session, "k2") == 1
        assert rewrap(session, "k2") == 0
        with pytest.raises(ValueError, match="k9"):
            rewrap(session, "k9")
    hub.engine.dispose()
    hub, _ = make_hub(database_url, tmp_path, master_keys={"k2": new}, master_key_id="k2")
    _log(hub, rounds=1)
    report = _verify(hub)
    assert report.ok and report.checked == 20, report.problems
    assert master_keys_from(hub.settings)[0] == {"k2": base64.b64decode(new)}
    with hub.session_factory() as session:
        wrapped = session.scalars(select(AuditKey.wrapped_private_key)).all()
        private = current_signer(session, name=ORIGIN)[1]
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    assert all(raw not in bytes(w) for w in wrapped)
