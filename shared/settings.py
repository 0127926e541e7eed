"""Settings from environment variables. Every variable a deployment may set is declared here."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import keys

SERVICES = ("registry", "pledges", "shipments")


def topic_for(service: str) -> str:
    return f"{service}.events"


def database_for(service: str) -> str:
    """A service's database on a shared server: twinaid_<service>, or
    <TWINAID_DATABASE_PREFIX>_<service> (several stacks on one server, e.g. tests)."""
    return f"{os.environ.get('TWINAID_DATABASE_PREFIX') or 'twinaid'}_{service}"


class Settings(BaseSettings):
    # errors name the variable, never its value: some hold secrets (passwords, keys)
    model_config = SettingsConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        description="The service's own database (DATABASE_URL).",
    )
    database_pool_size: int = 20
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Apache Kafka: on. Tansu refuses InitProducerId, so the dev stack turns it off.
    kafka_idempotence: bool = True
    kafka_partitions: int = 4
    kafka_replication_factor: int = 1
    kafka_fetch_max_wait_ms: int = 50
    # after CONSUMER_IDLE_AFTER seconds without records a consumer's fetches wait this long
    # instead (back to the above with the next record). Apache Kafka answers a fetch as soon as
    # a record arrives, so this costs nothing there; Tansu waits out the full time, so on the
    # dev broker the first record after a quiet spell may take up to this long to arrive
    kafka_idle_fetch_max_wait_ms: int = 1000
    consumer_idle_after: float = 5.0
    # namespaces topics and consumer groups on a shared cluster (and isolates tests)
    kafka_topic_prefix: str = ""
    # A broker that authenticates its clients (docker-compose.yml: SASL_PLAINTEXT, SCRAM-SHA-512,
    # one principal per service whose ACLs allow only its own topic and what it consumes). The
    # password comes from the environment; the dev broker (Tansu) takes PLAINTEXT.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # CA bundle that signed the broker's certificate (SSL and SASL_SSL); none: the system's
    kafka_ssl_cafile: str | None = None
    # the relay wakes on NOTIFY of each commit that appends; the poll is a fallback (and how
    # often a standby replica tries for leadership, and the leader checks its lock connection)
    relay_poll_interval: float = 3.0
    relay_batch_size: int = 500
    consumer_max_retries: int = 3
    consumer_gap_grace: float = 2.0
    # consumers check every upstream event's chain link and signature against trusted_keys
    # (shared/authenticity.py); false only for a benchmark's baseline
    consumer_verify: bool = True
    # a consumed event larger than this is quarantined unread
    consumer_max_event_bytes: int = 262_144
    # {"registry": "http://127.0.0.1:8101"}: where a consumer catches up over HTTP.
    upstream_feeds: dict[str, str] = Field(default_factory=dict)
    feed_api_key: str | None = None
    auth_cache_ttl: float = 2.0
    # per API key and API process: sustained requests a second and burst; 0 turns it off
    rate_limit_per_second: float = 100.0
    rate_limit_burst: int = 200
    # how often the relay signs and logs its chain head; 0 turns checkpoints off
    checkpoint_interval: float = 60.0
    # the service's Ed25519 key (base64 raw, created on first use); none: a key per process
    signing_key_file: str | None = None
    # the pinned public keys (base64 raw Ed25519) of every service whose events or checkpoints
    # this process checks: {"registry": ["..."], ...}; never taken from a message (shared/keys.py)
    trusted_keys: dict[str, list[str]] = Field(default_factory=dict)
    # the worker's health endpoint; 0 picks a free port
    worker_health_port: int = 0
    log_level: str = "INFO"
    # /metrics (an API's, a worker's) asks for `Authorization: Bearer <token>` when given
    metrics_token: SecretStr | None = None
    # an API serves /metrics on this port of its own (its public port then answers 404 there)
    metrics_port: int | None = None
    # how far ahead of this server's clock a client's "it happened at" may lie (shared/instants.py)
    clock_skew_seconds: float = 300.0
    # CPython's young-generation GC threshold in API and worker processes (shared/runtime.py);
    # 0 leaves the collector as Python sets it (700, no freeze)
    gc_gen0_threshold: int = 10_000
    # browser origins allowed to call this API (the convoy board), e.g. ["http://127.0.0.1:8103"]
    cors_origins: list[str] = Field(default_factory=list)
    # where browsers reach each service's API: {"registry": "http://127.0.0.1:8101", ...}
    public_urls: dict[str, str] = Field(default_factory=dict)
    # Webhooks (shared/webhooks.py). A URL naming a loopback, private, link-local or otherwise
    # non-public address (or a name resolving to one) is refused, at subscription and at each
    # delivery, unless its host is listed here exactly (e.g. ["127.0.0.1"] for tests)
    webhook_allowed_hosts: list[str] = Field(default_factory=list)
    # how often the worker's dispatcher looks for events to deliver (its relay also wakes it
    # when it seals events: the poll is for retries and other replicas), and the wait per attempt
    webhook_poll_interval: float = 5.0
    webhook_timeout: float = 10.0
    # after a failed attempt the next waits base * 2^(failures - 1) seconds, at most max
    webhook_retry_base: float = 5.0
    webhook_retry_max: float = 3600.0
    # a subscription failing for this long is marked `failing` (it keeps being retried at max)
    webhook_failing_after: float = 86_400.0
    webhook_batch_size: int = Field(default=100, ge=1, le=1000)
    webhook_concurrency: int = Field(default=8, ge=1, le=100)
    # Personal data (shared/privacy.py): a person recorded only in records that ended (closed
    # convoys, closed needs and pledges, replaced contacts) is erased this many days after the
    # record ended, by the worker, which looks every `retention_interval` seconds
    personal_data_retention_days: int = Field(default=730, ge=1, le=36_500)
    retention_interval: float = Field(default=3600.0, gt=0)
    # the stored answer of an idempotent write is replayed to retries for this long, then
    # dropped by the worker (it may show people; Stripe keeps its keys 24 hours)
    idempotency_keep_hours: float = Field(default=72.0, gt=0)

    @field_validator("trusted_keys")
    @classmethod
    def _pinned_keys_are_keys(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for service, raws in value.items():
            for raw in raws:
                try:
                    keys.public_key(raw)
                except ValueError as exc:
                    reason = f"{raw!r} pinned for {service} is not a base64 Ed25519 public key"
                    raise ValueError(f"{reason} ({exc})") from None
        return value

    @model_validator(mode="after")
    def _sasl_has_credentials(self) -> Settings:
        sasl = self.kafka_security_protocol.startswith("SASL")
        if sasl and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs"
                " KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        return self

    def topic(self, service: str) -> str:
        return self.kafka_topic_prefix + topic_for(service)
