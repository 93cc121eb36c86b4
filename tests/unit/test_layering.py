"""The package dependency direction of design §2, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "schemas": {"hub", "connectors", "consumers"},
    "connectors": {"hub", "consumers"},
    "hub": {"consumers"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_respect_the_layers(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
        if imported_packages(path) & FORBIDDEN[package]
    }
    assert offenders == {}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_sealing_every_feature_calls_depends_on_no_feature() -> None:
    """hub.crypto is the floor: keys and the field cipher, on the database and settings.

    The database includes hub.staged (rows written together), which imports nothing of ours.
    """
    allowed = ("hub.crypto", "hub.db", "hub.staged", "hub.settings", "hub.errors")
    assert not [m for m in imported_modules(ROOT / "hub" / "staged.py") if under(m, "hub")]
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in imported_modules(path) if under(m, "hub") and not under_any(m, allowed)
        )
        for path in (ROOT / "hub" / "crypto").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_entry_points_call_the_privacy_orchestration() -> None:
    """hub.privacy (erasure, retention, the access report) calls every feature, so no feature
    may call it back: only the command line, the web and API layers and itself."""
    callers = ("hub/cli/", "hub/web/", "hub/api/", "hub/runtime.py", "hub/privacy/")
    offenders = sorted(
        str(path.relative_to(ROOT))
        for package in ("hub", "consumers", "connectors", "schemas")
        for path in (ROOT / package).rglob("*.py")
        if not str(path.relative_to(ROOT)).startswith(callers)
        and any(under(m, "hub.privacy") for m in imported_modules(path))
    )
    assert offenders == []


def under_any(module: str, packages: tuple[str, ...]) -> bool:
    return any(under(module, p) for p in packages)
