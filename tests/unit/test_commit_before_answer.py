"""Every route's database session commits before the response is sent.

FastAPI runs the exit code of a ``yield`` dependency after the response unless the dependency
is declared with ``scope="function"``; a session committed there could answer 202 for a
referral that a crash in between loses (the chaos suite's gateway-kill scenario showed it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from fastapi.dependencies.models import Dependant

from hub.app import create_app
from hub.auth.deps import get_session
from tests.hubtest import make_hub
from tests.security.support import app_routes


def _session_dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        if sub.call is get_session:
            yield sub
        yield from _session_dependencies(sub)


def test_every_session_dependency_commits_before_the_answer(tmp_path: Path) -> None:
    hub, _ = make_hub(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
    app = create_app(hub, kafka_check=lambda: True)
    checked = 0
    for route in app_routes(app):
        if route.dependant is not None:
            for dependency in _session_dependencies(route.dependant):
                assert dependency.scope == "function", f"{route.path} {sorted(route.methods)}"
                checked += 1
    hub.engine.dispose()
    assert checked >= 10, "the partner API's write routes use the session dependency"
