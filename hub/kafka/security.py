"""How the hub's Kafka clients protect their connections: one place for every client.

Producers, consumers, admin clients, the dead-letter reader, the broker epoch and the
liveness probe all take their options from one ``KafkaSecurity``, so no client can talk in
plain text to a cluster the others reach over TLS.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from hub.settings import Settings

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]


@dataclass(frozen=True)
class KafkaSecurity:
    """TLS and SASL options of the hub's Kafka clients; the password never shows in a repr."""

    protocol: SecurityProtocol = "PLAINTEXT"
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    check_hostname: bool = True
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = field(default=None, repr=False)
    # Built once: loading the CA and the client key for every connection would cost a file
    # read and a key parse each time (and a changed file would half apply).
    ssl_context: ssl.SSLContext | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tls:
            object.__setattr__(self, "ssl_context", self._build_context())

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSecurity:
        """The security of the hub's clients as the settings ask for it."""
        sasl = settings.kafka_security_protocol.startswith("SASL_")
        return cls(
            protocol=settings.kafka_security_protocol,
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
            check_hostname=settings.kafka_ssl_check_hostname,
            sasl_mechanism=settings.kafka_sasl_mechanism if sasl else None,
            sasl_username=settings.kafka_sasl_username if sasl else None,
            sasl_password=settings.kafka_sasl_secret if sasl else None,
        )

    @property
    def tls(self) -> bool:
        """Whether connections are wrapped in TLS."""
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        """Whether clients authenticate with SASL after connecting."""
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for any kafka-python client (they hold the password: never log)."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context
            options["ssl_check_hostname"] = self.check_hostname
        if self.sasl:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            password = self.sasl_password
            options["sasl_plain_password"] = password.get_secret_value() if password else None
        return options

    def wrap(self, sock: socket.socket, host: str) -> socket.socket:
        """The socket as the hub's clients see it: TLS-wrapped (handshake done) when TLS is on."""
        if self.ssl_context is None:
            return sock
        return self.ssl_context.wrap_socket(sock, server_hostname=host)

    def _build_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = self.check_hostname
        if self.cafile is not None:
            context.load_verify_locations(cafile=str(self.cafile))
        else:
            context.load_default_certs()
        if self.certfile is not None:
            context.load_cert_chain(certfile=str(self.certfile), keyfile=str(self.keyfile))
        return context


#: No TLS, no SASL: the embedded broker, and a cluster on a network that protects itself.
PLAINTEXT = KafkaSecurity()
