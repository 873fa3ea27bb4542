"""The one settings class. Read through `get_settings()` so tests can override it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = Field(
        default="sqlite:///var/collections.db",
        validation_alias="DATABASE_URL",
        description="sqlite:///path/to/file.db or postgresql://user:password@host:port/dbname",
    )
    clock: Literal["system", "sandbox"] = Field(default="system", validation_alias="COLLECTIONS_CLOCK")
    api_keys_file: Path | None = Field(default=None, validation_alias="COLLECTIONS_API_KEYS_FILE")
    policy_file: Path | None = Field(default=None, validation_alias="COLLECTIONS_POLICY_FILE")
    cipher_key: str | None = Field(default=None, validation_alias="COLLECTIONS_CIPHER_KEY")
    max_body_bytes: int = Field(default=256 * 1024, validation_alias="COLLECTIONS_MAX_BODY_BYTES")
    snapshot_interval: int = Field(default=50, ge=2, validation_alias="COLLECTIONS_SNAPSHOT_INTERVAL")
    projection_poll_seconds: float = Field(default=0.5, gt=0, validation_alias="COLLECTIONS_PROJECTION_POLL_SECONDS")
    scheduler_interval_seconds: float = Field(default=30.0, gt=0, validation_alias="COLLECTIONS_SCHEDULER_INTERVAL_SECONDS")
    projections: Literal["embedded", "external"] = Field(
        default="embedded",
        validation_alias="COLLECTIONS_PROJECTIONS",
        description="embedded: this process follows the log and reads catch up themselves; "
        "external: `collections-es project` workers do, and reads wait for them",
    )
    read_wait_seconds: float = Field(default=5.0, ge=0, le=60, validation_alias="COLLECTIONS_READ_WAIT_SECONDS")
    report_timezone: str = Field(default="UTC", validation_alias="COLLECTIONS_TIMEZONE")
    log_level: str = Field(default="INFO", validation_alias="COLLECTIONS_LOG_LEVEL")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
