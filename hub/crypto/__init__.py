"""Sealing personal data: per-person data keys wrapped by master keys, and the field cipher
every feature calls (design §9). It depends on no feature; erasure and the access report,
which call every feature, live above it in ``hub.privacy``."""
