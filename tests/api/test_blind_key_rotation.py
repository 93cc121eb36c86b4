"""The search index key follows a master-key rotation: after ``hub keys rewrap --to NEW`` and
with the old master key gone, a name still finds the person, and the key never lies in the
database in clear."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from hub.cli import main
from hub.crypto import blind
from hub.crypto.models import BlindIndexKey
from hub.db import unit_of_work
from hub.people.index import search
from hub.people.names import parse_query
from hub.people.service import resolve_person
from schemas.messages import PersonIn
from tests.hubtest import make_hub


def test_rewrap_takes_the_search_key_along(database_url: str, tmp_path: Path) -> None:
    old, new = (base64.b64encode(secrets.token_bytes(32)).decode() for _ in range(2))
    hub, _ = make_hub(
        database_url, tmp_path, master_keys={"k1": old, "k2": new}, master_key_id="k1"
    )
    with unit_of_work(hub.session_factory) as session:
        person = resolve_person(
            session,
            partner_id="ude",
            person=PersonIn(given_name="Łucja", family_name="Öztürk", birth_date="1994-02-11"),
        )
        wanted = person.id
    env = {
        "HUB_DATABASE_URL": hub.settings.database_url,
        "HUB_DATA_DIR": str(tmp_path),
        "HUB_MASTER_KEYS": json.dumps({"k1": old, "k2": new}),
        "HUB_MASTER_KEY_ID": "k1",
    }
    hub.engine.dispose()

    done = CliRunner().invoke(main, ["keys", "rewrap", "--to", "k2"], env=env)

    assert done.exit_code == 0, done.output
    assert "1 search index key re-wrapped under k2" in done.output
    hub, _ = make_hub(database_url, tmp_path, master_keys={"k2": new}, master_key_id="k2")
    with unit_of_work(hub.session_factory) as session:
        hits = search(session, query=parse_query("lucja ozturk"), limit=5)
        assert [h.person_id for h in hits] == [wanted]
        row = session.scalars(select(BlindIndexKey)).one()
        assert row.master_key_id == "k2"
        assert blind.index_key(session) not in bytes(row.wrapped_key)
    hub.engine.dispose()
