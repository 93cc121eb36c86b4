"""Per-partner connector settings, stored with the partner, and secret references.

Secrets never live in this config: it holds references (``env:VAR``, ``file:/path``,
``value:...``) that are resolved only when a deliverer is built, so a dump of the partner
table or a log line never carries a client secret.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from connectors.egress import DEVELOPMENT, EgressRefused, check_url

SECRET_SCHEMES = ("env:", "file:", "value:")
#: What a push delivery cannot do without: where to post, how to get a token, how to sign.
PUSH_NEEDS = ("endpoint_url", "token_endpoint", "client_id", "credential_ref", "signing_secret_ref")


class ConnectorConfig(BaseModel):
    """How the hub reaches one partner: delivery mode, endpoints, OAuth client and limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint_url: str | None = Field(None, description="The partner's webhook (push mode).")
    token_endpoint: str | None = Field(None, description="The partner's OAuth token endpoint.")
    client_id: str | None = None
    credential_ref: str | None = Field(
        None,
        description="Reference to the client secret (or private key for private_key_jwt): "
        "env:VAR, file:/path or value:...",
    )
    auth_method: Literal["client_secret_basic", "private_key_jwt"] = "client_secret_basic"
    signing_secret_ref: str | None = Field(
        None, description="Reference to the HMAC secret that signs webhook deliveries."
    )
    previous_signing_secret_ref: str | None = Field(
        None,
        description="During a rotation, reference to the secret being replaced: every push "
        "carries a signature with each secret until the partner verifies with the new one "
        "and this is removed.",
    )
    connect_timeout: float = Field(3.0, gt=0)
    read_timeout: float = Field(10.0, gt=0)
    max_response_bytes: int = Field(65536, gt=0)
    mode: Literal["push", "pull"] = "pull"

    @field_validator("endpoint_url", "token_endpoint")
    @classmethod
    def _callable_url(cls, url: str | None) -> str | None:
        # The checks every profile shares; the hub adds its profile's (connect_partner).
        if url is not None:
            try:
                check_url(url, DEVELOPMENT)
            except EgressRefused as exc:
                raise ValueError(str(exc)) from None
        return url

    @model_validator(mode="after")
    def _push_is_complete(self) -> ConnectorConfig:
        for name in ("credential_ref", "signing_secret_ref", "previous_signing_secret_ref"):
            ref = getattr(self, name)
            if ref is not None and not ref.startswith(SECRET_SCHEMES):
                raise ValueError(f"{name} must start with env:, file: or value:")
        # Without any of these every delivery would fail and be retried as transient forever.
        missing = [name for name in PUSH_NEEDS if self.mode == "push" and not getattr(self, name)]
        if missing:
            raise PydanticCustomError(
                "push_incomplete",
                "push mode needs {missing}",
                {"missing": ", ".join(missing)},
            )
        if self.previous_signing_secret_ref and not self.signing_secret_ref:
            raise ValueError("previous_signing_secret_ref needs signing_secret_ref (the new one)")
        return self

    def signing_secrets(self, *, allow_values: bool = True) -> list[str]:
        """The secrets that sign each push, the current one first (Standard Webhooks puts one
        ``v1,…`` entry per secret into ``webhook-signature``)."""
        refs = (self.signing_secret_ref, self.previous_signing_secret_ref)
        return [s for ref in refs if (s := resolve_secret(ref, allow_values=allow_values))]


def resolve_secret(ref: str | None, *, allow_values: bool = True) -> str | None:
    """The secret a reference points to; None for no reference; ValueError if unresolvable."""
    if ref is None:
        return None
    scheme, _, target = ref.partition(":")
    if scheme == "env":
        return _from_env(ref, target)
    if scheme == "file":
        return _from_file(ref, target)
    if scheme == "value":
        # Inline values are for development; production settings refuse them.
        if not allow_values:
            raise ValueError("secret reference value:… not allowed here; use env: or file:")
        if not target:
            raise ValueError("secret reference value:… is empty")
        return target
    raise ValueError(f"secret reference {_safe(ref)!r} must start with env:, file: or value:")


def _from_env(ref: str, name: str) -> str:
    value = os.environ.get(name) if name else None
    if not value:
        raise ValueError(f"secret reference {ref!r}: environment variable not set or empty")
    return value


def _from_file(ref: str, path: str) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8").strip() if path else ""
    except OSError as exc:
        raise ValueError(f"secret reference {ref!r}: cannot read file ({exc.strerror})") from None
    if not value:
        raise ValueError(f"secret reference {ref!r}: file is empty")
    return value


def _safe(ref: str) -> str:
    # An unknown scheme may be a secret pasted without a prefix: show only its start.
    return ref if len(ref) <= 8 else ref[:8] + "…"
