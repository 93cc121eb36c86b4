"""End-to-end tests reuse the integration fixtures: a real broker and a migrated hub."""

from tests.integration.conftest import broker, running

__all__ = ["broker", "running"]
