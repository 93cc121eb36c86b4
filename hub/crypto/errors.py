"""Failures of the crypto-shredding core."""

from __future__ import annotations


class PersonErased(Exception):
    """The person's data key was erased (GDPR Art. 17): their encrypted fields are gone."""

    def __init__(self, person_id: str) -> None:
        super().__init__(f"the data key of person {person_id} was erased")
        self.person_id = person_id


class CipherError(ValueError):
    """A token or wrapped key is malformed, tampered with, or belongs to another person."""


class MasterKeyMissing(RuntimeError):
    """A data key is wrapped under a master key id that is not configured.

    A deployment fault (an old master key removed before ``hub keys rewrap``), never an
    erasure: it must fail loudly instead of showing people as erased.
    """

    def __init__(self, kid: str) -> None:
        super().__init__(f"master key {kid!r} is not configured (HUB_MASTER_KEYS)")
        self.kid = kid
