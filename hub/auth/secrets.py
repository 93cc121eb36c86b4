"""Client secrets: generation and the stored hash."""

from __future__ import annotations

import hashlib
import secrets


def new_client_secret() -> str:
    """A fresh client secret with 256 bits of entropy."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The SHA-256 hex digest stored in ``oauth_clients.secret_hash``."""
    # 256 random bits make brute force hopeless, so a slow KDF buys nothing here.
    return hashlib.sha256(secret.encode()).hexdigest()
