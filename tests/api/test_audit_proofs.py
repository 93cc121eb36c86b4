"""A record's inclusion can be checked from outside with only the verifier key: the check in
docs/architecture.md, run as printed, accepts every real proof and refuses altered ones."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hub.audit.keys import published_keys
from hub.audit.sequencer import Sequencer
from hub.audit.service import record
from hub.audit.verify import prove
from hub.db import unit_of_work

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


@pytest.fixture
def check(tmp_path: Path) -> Path:
    """The documented check, copied out of the docs as a reader would."""
    block = re.search(r"<!-- audit-check -->\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert block, "docs/architecture.md lost its audit check"
    script = tmp_path / "check.py"
    script.write_text(block.group(1))
    return script


def _run(script: Path, key: str, proof: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), key],
        input=json.dumps(proof),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_documented_check_accepts_real_proofs_and_refuses_forged_ones(
    hub_and_partners: Any, check: Path
) -> None:
    hub = hub_and_partners[0]
    sequencer = Sequencer(session_factory=hub.session_factory, origin="o.test/log", interval=1)
    for size in (1, 6, 13):
        with unit_of_work(hub.session_factory) as session:
            for i in range(size):
                record(session, actor_type="partner", actor="ude", action="api.call",
                       person_id="p_7", details={"i": i})  # fmt: skip
        sequencer.step()
    with hub.session_factory() as session:
        key = published_keys(session)[0].text()
        proofs = [prove(session, leaf_index=i) for i in range(20)]
    for proof in proofs:
        result = _run(check, key, proof)
        assert result.returncode == 0, result.stderr
        assert f"record {proof['leaf_index']} is in o.test/log, signed at size 20" in result.stdout

    proof = proofs[11]
    forged = proof | {"leaf": proof["leaf"].replace('"actor":"ude"', '"actor":"amt"')}
    assert "not in the log" in _run(check, key, forged).stderr
    moved = proof | {"leaf_index": 12}
    assert "not in the log" in _run(check, key, moved).stderr
    resized = proof | {"checkpoint": proof["checkpoint"].replace("\n20\n", "\n21\n", 1)}
    assert "InvalidSignature" in _run(check, key, resized).stderr
    other_key = "o.test/log+00000000+" + key.split("+", 2)[2]
    assert "not signed by this key" in _run(check, other_key, proof).stderr


def test_proofs_stay_right_when_the_process_remembers_another_history(
    hub_and_partners: Any,
) -> None:
    """Block roots are cached per process; a database restored to another history makes them
    wrong. Every proof is checked against the signed root and rebuilt from the leaves then."""
    from hub.audit import subtrees
    from hub.audit.merkle import leaf_hash, root_from_inclusion

    hub = hub_and_partners[0]
    sequencer = Sequencer(session_factory=hub.session_factory, origin="o.test/log", interval=1)
    with unit_of_work(hub.session_factory) as session:
        for i in range(subtrees.BLOCK * 2 + 7):
            record(session, actor_type="system", actor="hub", action="test.filled",
                   details={"i": i})  # fmt: skip
    while sequencer.step().leaves:
        pass

    def proved(leaf: int) -> bool:
        with hub.session_factory() as session:
            proof = prove(session, leaf_index=leaf)
        size = proof["tree_size"]
        root = base64.b64decode(proof["checkpoint"].split("\n")[2])
        hashed = leaf_hash(proof["leaf"].encode())
        path = [bytes.fromhex(p) for p in proof["proof"]]
        return root_from_inclusion(leaf, size, hashed, path) == root

    last = subtrees.BLOCK * 2 + 6
    assert proved(last) and proved(0)  # the second one came from cached blocks
    with hub.session_factory() as session:
        cached = subtrees.of_session(session)._blocks
    assert cached  # the proofs did use the cache
    cached[0] = leaf_hash(b"a block of another history")
    assert proved(last)
    with hub.session_factory() as session:
        assert subtrees.of_session(session)._blocks.get(0) != leaf_hash(
            b"a block of another history"
        )
