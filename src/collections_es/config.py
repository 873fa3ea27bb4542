"""The one settings class. Read through `get_settings()` so tests can override it."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = Field(
        default="sqlite:///var/collections.db",
        validation_alias="DATABASE_URL",
        description="sqlite:///path/to/file.db or postgresql://user:password@host:port/dbname",
    )
    clock: Literal["system", "sandbox"] = Field(default="system", validation_alias="COLLECTIONS_CLOCK")
    sandbox_start: datetime | None = Field(
        default=None,
        validation_alias="COLLECTIONS_SANDBOX_START",
        description="With COLLECTIONS_CLOCK=sandbox: the instant the sandbox clock starts at (with a zone; "
        "1970–2199), so several processes share one domain time; default: now",
    )
    api_keys_file: Path | None = Field(default=None, validation_alias="COLLECTIONS_API_KEYS_FILE")
    api_key_cache_seconds: float = Field(
        default=2.0, ge=0, le=60, validation_alias="COLLECTIONS_API_KEY_CACHE_SECONDS",
        description="How long a process remembers an active API key without asking the database; "
        "a key revoked in another process is refused within this time (0: ask on every request)",
    )
    policy_file: Path | None = Field(default=None, validation_alias="COLLECTIONS_POLICY_FILE")
    cipher_key: str | None = Field(
        default=None,
        validation_alias="COLLECTIONS_CIPHER_KEY",
        description="AES key (base64 of 16, 24 or 32 bytes; `collections-es keys cipher` makes one): "
        "events and read-model contact details are encrypted at rest",
    )
    signing_key: str | None = Field(
        default=None,
        validation_alias="COLLECTIONS_SIGNING_KEY",
        description="Ed25519 private key (base64 of 32 bytes, or PEM; `collections-es keys signing` makes one): "
        "evidence bundles' manifests are signed and GET /audit/public-key publishes the public key",
    )
    max_body_bytes: int = Field(default=256 * 1024, validation_alias="COLLECTIONS_MAX_BODY_BYTES")
    import_max_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, validation_alias="COLLECTIONS_IMPORT_MAX_BYTES",
        description="The largest CSV file an import takes (HTTP: 413 beyond it)",
    )
    import_max_lines: int = Field(
        default=100_000, ge=1, validation_alias="COLLECTIONS_IMPORT_MAX_LINES",
        description="The most data lines one import takes (beyond: an error, nothing imported)",
    )
    db_pool_size: int = Field(
        default=20, ge=4, le=500, validation_alias="COLLECTIONS_DB_POOL_SIZE",
        description="PostgreSQL connections one process opens at most, both pools together: "
        "half (rounded up) for the event store, the rest for read models and service tables",
    )
    aggregate_cache_size: int = Field(
        default=1000, ge=0, le=1_000_000, validation_alias="COLLECTIONS_AGGREGATE_CACHE_SIZE",
        description="Aggregates a process keeps in memory; a cached one is brought up to date "
        "with one query for its newer events (0: load from the store every time)",
    )
    snapshot_interval: int = Field(default=50, ge=2, validation_alias="COLLECTIONS_SNAPSHOT_INTERVAL")
    projection_poll_seconds: float = Field(default=0.5, gt=0, validation_alias="COLLECTIONS_PROJECTION_POLL_SECONDS")
    scheduler_interval_seconds: float = Field(default=30.0, gt=0, validation_alias="COLLECTIONS_SCHEDULER_INTERVAL_SECONDS")
    leader_poll_seconds: float = Field(
        default=1.0, gt=0, le=60, validation_alias="COLLECTIONS_LEADER_POLL_SECONDS",
        description="How often a standby scheduler tries the leader's lock (and the leader checks it still holds it): "
        "a standby takes over within about this long after the leader dies (ADR 0062)",
    )
    health_file: Path | None = Field(
        default=None,
        validation_alias="COLLECTIONS_HEALTH_FILE",
        description="Where a worker process (project, scheduler, notify, deliver) writes its heartbeat for "
        "`collections-es health ROLE`; default: collections-es-ROLE.health in the temporary directory",
    )
    checkpoint_interval_seconds: float = Field(
        default=3600.0, ge=0, validation_alias="COLLECTIONS_CHECKPOINT_INTERVAL_SECONDS",
        description="How often the scheduler takes a signed checkpoint of every chain's head when the log grew "
        "(needs COLLECTIONS_SIGNING_KEY); 0: only on demand",
    )
    projections: Literal["embedded", "external"] = Field(
        default="embedded",
        validation_alias="COLLECTIONS_PROJECTIONS",
        description="embedded: this process follows the log and reads catch up themselves; "
        "external: `collections-es project` workers do, and reads wait for them",
    )
    read_wait_seconds: float = Field(default=5.0, ge=0, le=60, validation_alias="COLLECTIONS_READ_WAIT_SECONDS")
    report_timezone: str = Field(default="UTC", validation_alias="COLLECTIONS_TIMEZONE")
    log_level: str | None = Field(
        default=None,
        validation_alias="COLLECTIONS_LOG_LEVEL",
        description="The lowest level logged; default INFO for serve, project, scheduler, notify and deliver, "
        "WARNING for one-shot commands",
    )
    log_format: Literal["json", "console"] | None = Field(
        default=None,
        validation_alias="COLLECTIONS_LOG_FORMAT",
        description="json (one JSON object a line) or console; default: json unless stderr is a terminal",
    )

    # Rate limits, per API process (ADR 0031)
    rate_limit_per_minute: float = Field(
        default=600, gt=0, validation_alias="COLLECTIONS_RATE_LIMIT_PER_MINUTE",
        description="Requests an API key may make a minute, sustained",
    )
    rate_limit_burst: int = Field(
        default=200, ge=0, validation_alias="COLLECTIONS_RATE_LIMIT_BURST",
        description="Requests an API key may make at once before the per-minute rate applies; 0 disables the limit",
    )
    auth_failures_per_minute: float = Field(
        default=30, gt=0, validation_alias="COLLECTIONS_AUTH_FAILURES_PER_MINUTE",
        description="Invalid tokens a client address may send a minute, sustained",
    )
    auth_failure_burst: int = Field(
        default=30, ge=0, validation_alias="COLLECTIONS_AUTH_FAILURE_BURST",
        description="Invalid tokens a client address may send at once; then 429 until it refills; 0 disables",
    )

    # The console (people's pages under /console/; ADR 0040)
    console_idle_minutes: float = Field(
        default=30, gt=0, validation_alias="COLLECTIONS_CONSOLE_IDLE_MINUTES",
        description="A console session ends after this many minutes without a request",
    )
    console_max_hours: float = Field(
        default=12, gt=0, validation_alias="COLLECTIONS_CONSOLE_MAX_HOURS",
        description="A console session ends this many hours after sign-in, however active",
    )
    console_trust_proxy: bool = Field(
        default=False, validation_alias="COLLECTIONS_CONSOLE_TRUST_PROXY",
        description="Believe X-Forwarded-Proto (set it only behind a proxy that sets that header): "
        "the session cookie is Secure when the proxy was reached over https",
    )

    # Letters and messages
    company_file: Path | None = Field(
        default=None, validation_alias="COLLECTIONS_COMPANY_FILE",
        description="TOML with the company's name, payment methods, bank accounts, legal basis (default: bundled example)",
    )
    templates_dir: Path | None = Field(
        default=None, validation_alias="COLLECTIONS_TEMPLATES_DIR",
        description="A folder whose template files replace the bundled ones of the same name",
    )
    pdf_font: Path = Field(
        default=Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"), validation_alias="COLLECTIONS_PDF_FONT"
    )
    # The customer portal (docs/portal.md; ADR 0055)
    portal_secret: str | None = Field(
        default=None, validation_alias="COLLECTIONS_PORTAL_SECRET",
        description="The key portal links are signed with (any long random text); default: a random key "
        "stored in the database on first start. Changing it revokes every link",
    )
    public_url: str | None = Field(
        default=None, validation_alias="COLLECTIONS_PUBLIC_URL",
        description="The address customers reach the service at (https://pay.example.com): portal links in "
        "messages and letters start with it; without it they carry no link",
    )
    portal_requests_per_minute: float = Field(
        default=60, gt=0, validation_alias="COLLECTIONS_PORTAL_REQUESTS_PER_MINUTE",
        description="Requests one portal link may make a minute, sustained",
    )
    portal_burst: int = Field(
        default=30, ge=0, validation_alias="COLLECTIONS_PORTAL_BURST",
        description="Requests one portal link may make at once; 0 disables the limit",
    )
    credit_hold_write_off_days: int = Field(default=365, ge=0, validation_alias="COLLECTIONS_CREDIT_HOLD_WRITE_OFF_DAYS")

    # Notifications: e-mail through SMTP, SMS through a webhook
    smtp_host: str | None = Field(default=None, validation_alias="COLLECTIONS_SMTP_HOST")
    smtp_port: int = Field(default=587, ge=1, le=65535, validation_alias="COLLECTIONS_SMTP_PORT")
    smtp_security: Literal["starttls", "ssl", "none"] = Field(default="starttls", validation_alias="COLLECTIONS_SMTP_SECURITY")
    smtp_username: str | None = Field(default=None, validation_alias="COLLECTIONS_SMTP_USERNAME")
    smtp_password: str | None = Field(default=None, validation_alias="COLLECTIONS_SMTP_PASSWORD")
    smtp_from: str = Field(default="collections@example.com", validation_alias="COLLECTIONS_SMTP_FROM")
    smtp_from_name: str | None = Field(default=None, validation_alias="COLLECTIONS_SMTP_FROM_NAME")
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, validation_alias="COLLECTIONS_SMTP_TIMEOUT_SECONDS")
    sms_webhook_url: str | None = Field(default=None, validation_alias="COLLECTIONS_SMS_WEBHOOK_URL")
    sms_webhook_token: str | None = Field(default=None, validation_alias="COLLECTIONS_SMS_WEBHOOK_TOKEN")
    notify_max_attempts: int = Field(default=5, ge=1, le=100, validation_alias="COLLECTIONS_NOTIFY_MAX_ATTEMPTS")
    notify_backoff_seconds: float = Field(default=60.0, gt=0, validation_alias="COLLECTIONS_NOTIFY_BACKOFF_SECONDS")
    notify_backoff_max_seconds: float = Field(default=3600.0, gt=0, validation_alias="COLLECTIONS_NOTIFY_BACKOFF_MAX_SECONDS")
    notify_max_age_hours: float = Field(default=72.0, gt=0, validation_alias="COLLECTIONS_NOTIFY_MAX_AGE_HOURS")
    notify_interval_seconds: float = Field(default=10.0, gt=0, validation_alias="COLLECTIONS_NOTIFY_INTERVAL_SECONDS")

    # Webhooks (ADR 0045)
    webhooks_allow_private: bool = Field(
        default=False, validation_alias="COLLECTIONS_WEBHOOKS_ALLOW_PRIVATE",
        description="true: webhook URLs may point at loopback, private and link-local addresses (tests, closed networks)",
    )
    webhooks_max_attempts: int = Field(default=8, ge=1, le=100, validation_alias="COLLECTIONS_WEBHOOKS_MAX_ATTEMPTS")
    webhooks_backoff_seconds: float = Field(default=30.0, gt=0, validation_alias="COLLECTIONS_WEBHOOKS_BACKOFF_SECONDS")
    webhooks_backoff_max_seconds: float = Field(
        default=3600.0, gt=0, validation_alias="COLLECTIONS_WEBHOOKS_BACKOFF_MAX_SECONDS"
    )
    webhooks_timeout_seconds: float = Field(default=10.0, gt=0, le=120, validation_alias="COLLECTIONS_WEBHOOKS_TIMEOUT_SECONDS")
    webhooks_lease_seconds: float = Field(default=120.0, gt=0, validation_alias="COLLECTIONS_WEBHOOKS_LEASE_SECONDS")
    webhooks_interval_seconds: float = Field(default=5.0, gt=0, validation_alias="COLLECTIONS_WEBHOOKS_INTERVAL_SECONDS")

    @field_validator("cipher_key")
    @classmethod
    def _cipher_key(cls, value: str | None) -> str | None:
        """A key is base64 of 16, 24 or 32 bytes; an empty value means none. Never echo the key."""
        if value is None or not value.strip():
            return None
        from .adapters.cipher import check_key

        check_key(value.strip())  # raises ValueError naming COLLECTIONS_CIPHER_KEY
        return value.strip()


    @field_validator("signing_key")
    @classmethod
    def _signing_key(cls, value: str | None) -> str | None:
        """Base64 of a 32-byte Ed25519 private key, or PEM; empty means none. Never echo the key."""
        if value is None or not value.strip():
            return None
        from .adapters.signing import load_private_key

        load_private_key(value)  # raises ValueError naming COLLECTIONS_SIGNING_KEY
        return value.strip()

    @field_validator("sandbox_start")
    @classmethod
    def _sandbox_start(cls, value: datetime | None) -> datetime | None:
        """An instant with a zone, bounded like every date (1970–2199)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("COLLECTIONS_SANDBOX_START needs a time zone (e.g. 2026-03-02T01:00:00Z)")
        if not datetime(1970, 1, 1, tzinfo=UTC) <= value < datetime(2200, 1, 1, tzinfo=UTC):
            raise ValueError("COLLECTIONS_SANDBOX_START must lie between 1970 and 2199")
        return value.astimezone(UTC)

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
