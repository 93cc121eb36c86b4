"""Work promised for after the commit runs once when it commits, never when it rolls back."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from hub.db import after_commit


def test_runs_after_commit_only() -> None:
    engine = create_engine("sqlite://")
    ran: list[str] = []
    with Session(engine) as session:
        after_commit(session, lambda: ran.append("committed"))
        session.execute(text("SELECT 1"))
        assert ran == []
        session.commit()
        assert ran == ["committed"]
        session.execute(text("SELECT 1"))
        session.commit()
        assert ran == ["committed"]  # once, not on every later commit
    with Session(engine) as session:
        after_commit(session, lambda: ran.append("rolled back"))
        session.execute(text("SELECT 1"))
        session.rollback()
        session.commit()
    assert ran == ["committed"]


def test_a_savepoint_does_not_run_it() -> None:
    engine = create_engine("sqlite://")
    ran: list[int] = []
    with Session(engine) as session:
        after_commit(session, lambda: ran.append(1))
        with pytest.raises(RuntimeError), session.begin_nested():
            raise RuntimeError("a failed savepoint")
        assert ran == []
        session.commit()
    assert ran == [1]
