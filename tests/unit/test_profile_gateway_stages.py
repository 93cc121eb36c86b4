"""The gateway profile's stages still name functions the gateway calls by those names."""

from __future__ import annotations

import importlib

import pytest

from tests.benchmarks.profile_gateway import STAGES


@pytest.mark.parametrize(("module", "path"), STAGES, ids=[f"{m}:{p}" for m, p in STAGES])
def test_every_stage_of_the_gateway_profile_exists(module: str, path: str) -> None:
    owner = importlib.import_module(module)
    for name in path.split("."):
        owner = getattr(owner, name)
    assert callable(owner)
