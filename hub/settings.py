"""The hub's configuration: the only reader of the environment (prefix ``HUB_``)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.egress import EgressPolicy, EgressRefused, check_url

_PLAINTEXT = {"PLAINTEXT", "SASL_PLAINTEXT"}
PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "dev", "development"}


class ExternalIssuer(BaseModel):
    """An identity provider whose access tokens the API also accepts (e.g. the city's IdP)."""

    issuer: str
    jwks_url: str
    audience: str | None = None
    partner_claim: str = "azp"
    algorithms: list[str] = Field(default_factory=lambda: ["ES256", "PS256", "RS256"])
    # Trusting an IdP's signature is not trusting it for every partner: a token naming a
    # partner missing here is refused. Empty (the default) lets it speak for none.
    partners: list[str] = Field(
        default_factory=list, description="Ids of the partners this issuer's tokens may name."
    )


class Settings(BaseSettings):
    """Every ``HUB_`` setting; defaults give the embedded single-machine setup."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    profile: Literal["development", "production"] = "development"
    data_dir: Path = Path("data")
    database_url: str | None = None
    kafka_bootstrap_servers: str | None = None

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    issuer: str | None = None
    api_audience: str = "urn:talenthub:api:v1"
    access_token_ttl_seconds: int = Field(600, ge=60, le=3600)
    clock_skew_seconds: int = Field(30, ge=0, le=300)
    client_assertion_max_lifetime_seconds: int = Field(60, ge=10, le=300)
    max_body_bytes: int = Field(65_536, ge=1024)
    external_issuers: list[ExternalIssuer] = Field(default_factory=list)

    topic_events: str = "hub.events.v1"
    topic_deadletter: str = "hub.deadletter.v1"
    topic_deliveries_prefix: str = "hub.deliveries."
    topic_deliveries_suffix: str = ".v1"
    events_partitions: int = Field(6, ge=1)
    deliveries_partitions: int = Field(3, ge=1)
    kafka_session_timeout_ms: int = Field(6000, ge=1000)
    kafka_client_id: str = "talent-hub"
    # Consumer groups are <prefix>.<consumer> and <prefix>.delivery.<partner>: two hubs that
    # share a Kafka cluster (their topics renamed with HUB_TOPIC_*) need their own groups.
    kafka_group_prefix: str = Field("hub", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every Kafka client of the hub talks to the brokers."
    )
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA certificates (PEM) the brokers' certificates must chain to."
    )
    kafka_ssl_certfile: Path | None = Field(
        None, description="The hub's client certificate (PEM) for mutual TLS, e.g. user.crt."
    )
    kafka_ssl_keyfile: Path | None = Field(
        None, description="The private key (PEM) of HUB_KAFKA_SSL_CERTFILE, e.g. user.key."
    )
    kafka_ssl_check_hostname: bool = Field(
        True, description="The broker's certificate must name the host the hub connects to."
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = Field(
        None, description="The SASL password; or HUB_KAFKA_SASL_PASSWORD_FILE."
    )
    kafka_sasl_password_file: Path | None = Field(
        None, description="A file holding the SASL password, e.g. a mounted KafkaUser secret."
    )
    kafka_allow_plaintext: bool = Field(
        False, description="Let the production profile talk to Kafka without TLS."
    )

    relay_batch_size: int = Field(500, ge=1)
    relay_poll_interval_seconds: float = Field(1.0, gt=0)
    relay_linger_ms: int = Field(
        10,
        ge=0,
        le=1000,
        description="Under load, the least time between the starts of two relay batches.",
    )
    consumer_max_attempts: int = Field(5, ge=1)
    consumer_max_consecutive_deadletters: int = Field(50, ge=1)
    # A repeat of an event can arrive while its record is in a topic: at most 90 days (a dead
    # letter replayed by staff). The dedup marks must outlive that (hub/housekeeping).
    housekeeping_keep_days: int = Field(
        120, ge=91, description="Days published outbox rows and dedup marks are kept."
    )
    audit_origin: str = Field(
        "talent-hub.duisburg.de/audit",
        pattern=r"^[^\s+]+$",
        description="The audit log's name in its signed checkpoints (and its key's name).",
    )
    audit_checkpoint_seconds: float = Field(
        2.0, gt=0, le=60, description="How often the sequencer signs a checkpoint over new leaves."
    )
    audit_checkpoint_file: Path | None = Field(
        None, description="Append every signed checkpoint here too (kept apart from the database)."
    )
    topic_audit_checkpoints: str = "hub.audit.checkpoints.v1"
    topic_broker_epoch: str = Field(
        "hub.epoch.v1",
        description="An empty topic whose id tells the relay a broker that forgot its log.",
    )
    gateway_workers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Gateway worker processes; unset: one per core on PostgreSQL, 1 on SQLite.",
    )
    gateway_group_commit: int = Field(
        16,
        ge=1,
        le=256,
        description="At most this many requests' writes share one transaction and commit "
        "(group commit, per gateway process); 1: each request commits on its own.",
    )
    gateway_commit_lanes: int = Field(
        2,
        ge=1,
        le=16,
        description="Shared transactions one gateway process runs at a time (with group commit).",
    )
    forwarded_allow_ips: str | None = Field(
        None,
        description="Proxies (addresses, networks or *) whose X-Forwarded-For/-Proto the "
        "gateway believes; unset: none, the peer address is the client's.",
    )
    http_header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=300,
        description="A connection that sends no complete headers this long is closed.",
    )

    master_keys: dict[str, str] = Field(
        default_factory=dict,
        description="Master keys wrapping per-person data keys: JSON {key id: base64, 32 bytes}.",
    )
    master_key_id: str | None = Field(None, description="The master key id that wraps new keys.")
    policy_file: Path | None = Field(None, description="Route policy YAML; default: shipped.")
    # The Art. 30 record names them (hub policy record). TO BE SET by the city: the defaults
    # name the office, not a verified postal address or mailbox.
    controller_name: str = Field(
        "Stadt Duisburg, Amt für Integration und Einwanderungsservice",
        description="The controller named in the record of processing.",
    )
    controller_address: str = Field(
        "Stadt Duisburg, 47049 Duisburg (to be set)",
        description="The controller's postal address in the record of processing.",
    )
    controller_contact: str = Field(
        "International Talent Center, Stadt Duisburg (to be set)",
        description="Who answers for the controller (e-mail or phone) in the record.",
    )
    dpo_contact: str = Field(
        "Datenschutzbeauftragte(r) der Stadt Duisburg (to be set)",
        description="The data protection officer's contact in the record of processing.",
    )

    clock_time_unit_seconds: float | None = Field(
        None, gt=0, description="Compress deadline clocks: one clock day lasts this long."
    )
    deadline_scan_interval_seconds: float = Field(30.0, gt=0)
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "talent-hub@localhost"
    digest_recipients: dict[str, str] = Field(
        default_factory=dict, description="Partner id -> e-mail address of its contact."
    )

    staff_partner_id: str = Field(
        "amt", description="The partner in whose name Talent Center staff send referrals."
    )
    staff_cookie_secure: bool = Field(
        True, description="Send the staff session cookie over HTTPS only (and localhost)."
    )
    staff_oidc_issuer: str | None = Field(
        None, description="The city's OpenID Connect provider for staff login; off when unset."
    )
    staff_oidc_client_id: str | None = Field(None, description="The hub's client id there.")
    staff_oidc_client_secret: str | None = Field(
        None, description="The hub's client secret there (client_secret_basic or _post)."
    )
    client_view_enabled: bool = Field(
        True, description="Clients may follow their own case at /mein-verfahren/ (Mein Verfahren)."
    )
    client_view_url: str | None = Field(
        None,
        description="The public address of Mein Verfahren printed on invite letters; "
        "default: this gateway's own address.",
    )
    citizen_oidc_issuer: str | None = Field(
        None, description="The city's citizen login (OpenID Connect, e.g. BundID); off when unset."
    )
    citizen_oidc_client_id: str | None = Field(None, description="The portal's client id there.")
    citizen_oidc_client_secret: str | None = Field(
        None, description="The portal's client secret there (client_secret_basic or _post)."
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP endpoint for traces and metrics, e.g. a Collector."
    )
    otel_service_name: str | None = Field(
        None, description="service.name of this process; default talent-hub-<process>."
    )
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="Serve Prometheus metrics of this process here."
    )
    metrics_host: str = "127.0.0.1"
    client_assertion_token_endpoint_audience: bool = Field(
        True, description="Also accept the token endpoint URL as private_key_jwt audience (legacy)."
    )
    dpop_proof_max_age_seconds: int = Field(
        60, ge=10, le=300, description="Oldest accepted DPoP proof (its iat), plus the clock skew."
    )
    dpop_nonce_required: bool = Field(
        False, description="The token endpoint demands a server nonce in DPoP proofs (RFC 9449 §8)."
    )
    dpop_nonce_lifetime_seconds: int = Field(
        300, ge=30, le=3600, description="How long a DPoP nonce from the hub is accepted."
    )
    dpop_nonce_secret: str | None = Field(
        None, description="HMAC key of DPoP nonces, the same on every gateway; unset: per process."
    )
    rate_limit_api_per_minute: int = Field(
        1200, ge=1, description="API calls per partner per minute (token bucket, same burst)."
    )
    rate_limit_api_per_day: int = Field(500_000, ge=1, description="API calls per partner per day.")
    rate_limit_token_per_minute: int = Field(
        300, ge=1, description="Access tokens issued per OAuth client per minute."
    )
    rate_limit_auth_failures_per_minute: int = Field(
        60, ge=1, description="Failed token requests per source address and minute."
    )
    enumeration_max_not_found: int = Field(
        50, ge=1, description="Person lookups answered 404 per partner and window; then 429."
    )
    enumeration_window_seconds: int = Field(
        600, ge=10, description="The window of enumeration_max_not_found."
    )
    seed_partners: bool = True
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "text"
    # A consumer applies each poll in one transaction (consumers/runner.py).
    kafka_max_poll_records: int = Field(
        500, ge=1, le=10_000, description="Most records a consumer takes in one poll."
    )
    # The embedded broker answers a fetch only when this runs out, so every consumer hop
    # costs about this much; each idle consumer fetches once per wait (CPU in docs/operations).
    kafka_fetch_max_wait_ms: int = Field(
        10, ge=1, le=500, description="Longest a consumer's fetch waits at the broker for records."
    )
    # No partner's referral or status change waits for the router (they are routed at
    # acceptance), the timeline or the deadline consumer, so these may fetch less often
    # (docs/operations.md, "Background fetch wait").
    kafka_background_fetch_max_wait_ms: int = Field(
        100,
        ge=1,
        le=500,
        description="The fetch wait of the router, timeline and deadline consumers.",
    )
    auth_cache_seconds: float = Field(
        1.0,
        ge=0,
        le=5,
        description="How long a gateway trusts a cached token check without change notices.",
    )

    @field_validator("master_keys", "digest_recipients", mode="before")
    @classmethod
    def _parse_keys(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_addresses(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        # uvicorn takes a malformed entry as a literal host name that never matches: say so now.
        for entry in value.split(","):
            if entry.strip() != "*":
                try:
                    ipaddress.ip_network(entry.strip(), strict=False)
                except ValueError:
                    raise ValueError(f"not an address or network: {entry.strip()!r}") from None
        return value

    @field_validator("external_issuers", mode="before")
    @classmethod
    def _parse_issuers(cls, value: object) -> object:
        return json.loads(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.profile == "production":
            if not self.database_url or self.database_url.startswith("sqlite"):
                raise ValueError("production profile needs HUB_DATABASE_URL for PostgreSQL")
            if not self.kafka_bootstrap_servers:
                raise ValueError("production profile needs HUB_KAFKA_BOOTSTRAP_SERVERS")
            if not self.issuer or not self.issuer.startswith("https://"):
                raise ValueError("production profile needs an https HUB_ISSUER")
            if not self.master_keys or self.master_key_id not in self.master_keys:
                raise ValueError("production profile needs HUB_MASTER_KEYS and HUB_MASTER_KEY_ID")
            if self.clock_time_unit_seconds is not None:
                # A compressed day would run deadline clocks and retention in minutes.
                raise ValueError("production profile refuses HUB_CLOCK_TIME_UNIT_SECONDS")
            if self.kafka_security_protocol in _PLAINTEXT and not self.kafka_allow_plaintext:
                # Personal data in events would cross the network readable by anyone on it.
                raise ValueError(
                    f"production profile refuses HUB_KAFKA_SECURITY_PROTOCOL="
                    f"{self.kafka_security_protocol}: use SSL or SASL_SSL, or set "
                    "HUB_KAFKA_ALLOW_PLAINTEXT=true for a network that protects itself"
                )
            if self.dpop_nonce_required and not self.dpop_nonce_secret:
                # Per-process nonce keys would make every other gateway replica refuse them.
                raise ValueError("DPoP nonces in production need HUB_DPOP_NONCE_SECRET")
        return self

    @model_validator(mode="after")
    def _check_kafka_security(self) -> Settings:
        tls = self.kafka_security_protocol in ("SSL", "SASL_SSL")
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if self.embedded_kafka and self.kafka_security_protocol != "PLAINTEXT":
            raise ValueError(
                "the embedded broker speaks PLAINTEXT only: "
                "HUB_KAFKA_SECURITY_PROTOCOL needs HUB_KAFKA_BOOTSTRAP_SERVERS"
            )
        files = {
            "HUB_KAFKA_SSL_CAFILE": self.kafka_ssl_cafile,
            "HUB_KAFKA_SSL_CERTFILE": self.kafka_ssl_certfile,
            "HUB_KAFKA_SSL_KEYFILE": self.kafka_ssl_keyfile,
            "HUB_KAFKA_SASL_PASSWORD_FILE": self.kafka_sasl_password_file,
        }
        for name, path in files.items():
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no such file: {path}")
        if not tls and any(files[n] for n in list(files)[:3]):
            raise ValueError(
                "HUB_KAFKA_SSL_* files need HUB_KAFKA_SECURITY_PROTOCOL SSL or SASL_SSL"
            )
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError("HUB_KAFKA_SSL_CERTFILE and HUB_KAFKA_SSL_KEYFILE go together")
        if self.kafka_sasl_password is not None and self.kafka_sasl_password_file is not None:
            raise ValueError(
                "set HUB_KAFKA_SASL_PASSWORD or HUB_KAFKA_SASL_PASSWORD_FILE, not both"
            )
        if sasl:
            missing = [
                name
                for name, value in (
                    ("HUB_KAFKA_SASL_MECHANISM", self.kafka_sasl_mechanism),
                    ("HUB_KAFKA_SASL_USERNAME", self.kafka_sasl_username),
                    ("HUB_KAFKA_SASL_PASSWORD(_FILE)", self.kafka_sasl_secret),
                )
                if not value
            ]
            if missing:
                raise ValueError(
                    f"HUB_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                    + ", ".join(missing)
                )
        elif self.kafka_sasl_mechanism or self.kafka_sasl_username:
            raise ValueError(
                "HUB_KAFKA_SASL_* need HUB_KAFKA_SECURITY_PROTOCOL SASL_SSL or SASL_PLAINTEXT"
            )
        return self

    @model_validator(mode="after")
    def _check_outbound_urls(self) -> Settings:
        # SSRF: URLs the hub will call obey the profile's egress policy (resolved again per call).
        policy = EgressPolicy.for_profile(self.profile)
        urls = {
            f"external_issuers[{i}].jwks_url": issuer.jwks_url
            for i, issuer in enumerate(self.external_issuers)
        }
        urls["staff_oidc_issuer"] = self.staff_oidc_issuer or ""
        for name, url in urls.items():
            try:
                if url:
                    check_url(url, policy)
            except EgressRefused as exc:
                raise ValueError(f"{name}: {exc}") from None
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL: PostgreSQL when configured, else SQLite in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'hub.db').resolve()}"

    @property
    def resolved_issuer(self) -> str:
        """Our OAuth issuer identifier; defaults to the local gateway address."""
        return self.issuer or f"http://{self.http_host}:{self.http_port}"

    @property
    def kafka_sasl_secret(self) -> SecretStr | None:
        """The SASL password, read from its file when one is named (empty: None)."""
        if self.kafka_sasl_password_file is not None:
            text = self.kafka_sasl_password_file.read_text().strip("\r\n")
            return SecretStr(text) if text else None
        password = self.kafka_sasl_password
        return password if password is not None and password.get_secret_value() else None

    @property
    def embedded_kafka(self) -> bool:
        """True when no Kafka is configured and the hub starts its own broker."""
        return not self.kafka_bootstrap_servers

    def deliveries_topic(self, partner_id: str) -> str:
        """The topic that carries what the router routed to one partner."""
        return f"{self.topic_deliveries_prefix}{partner_id}{self.topic_deliveries_suffix}"
