"""Kafka plumbing: embedded broker, client factories, CloudEvents header codec."""
