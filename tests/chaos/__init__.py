"""Fault-injection ("chaos") suite: ``python -m tests.chaos.run`` or ``make chaos``."""
