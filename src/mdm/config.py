"""One settings object for the whole registry (environment prefix ``MDM_``).

The database URL defaults to a SQLite file in the working directory so that one
command runs the registry on a laptop; a ``postgresql://`` URL is rewritten to the
psycopg 3 driver so operators can paste the URL their platform gives them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def normalize_database_url(url: str) -> str:
    """Route plain Postgres URLs to psycopg 3; leave everything else alone."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MDM_", env_file=".env", extra="ignore")

    database_url: str = Field(default="sqlite:///mdm.db", description="SQLAlchemy URL of the store")
    db_pool_size: int = 10
    db_max_overflow: int = 20
    db_connect_timeout: int = 3
    matching_rules_dir: Path = Field(default=Path("matching_rules"))
    data_dir: Path = Field(default=Path("var"), description="Working files: rejects, checkpoints")
    secret_key: SecretStr | None = Field(
        default=None, description="Signing key for steward sessions; generated per process if unset"
    )
    api_max_body_bytes: int = Field(
        default=1024 * 1024, description="Largest request body the API accepts (413 above)"
    )
    api_auth_cache_seconds: float = Field(
        default=30.0, description="How long an authenticated API key is trusted without a query"
    )
    api_fast_reads: bool = Field(
        default=True,
        description="Dispatch shortcut for entity and xref lookups (mdm.api.fastpath)",
    )
    match_workers: int | None = Field(
        default=None,
        ge=1,
        description="Worker processes of a large train or match run (the feature pass of "
        "50,000 records or more, the golden records of 50,000 new entities or more); "
        "default one per core, at most 4; 1 keeps that work in the run's own process",
    )
    log_level: str = "INFO"
    log_json: bool = False
    # Event delivery (``mdm relay``): see docs/events.md.
    relay_max_attempts: int = Field(default=15, description="Attempts before a dead letter")
    relay_backoff_base_seconds: float = Field(
        default=1.0, description="Backoff before the 2nd attempt; doubles each attempt"
    )
    relay_backoff_max_seconds: float = Field(default=3600.0, description="Largest backoff")
    relay_http_timeout_seconds: float = Field(default=10.0, description="Webhook request timeout")
    relay_lease_seconds: float = Field(
        default=30.0, description="How long a claimed delivery is a relay's (> HTTP timeout)"
    )
    relay_batch_size: int = Field(default=200, description="Deliveries claimed per round")
    relay_concurrency: int = Field(default=16, description="Webhook requests in flight")
    relay_poll_seconds: float = Field(default=0.2, description="Idle wait between rounds")
    relay_keep_delivered_days: float = Field(
        default=7.0, description="Delivered deliveries are deleted after this long"
    )
    # Webhook destinations (docs/events.md, "Where webhooks may point"): loopback,
    # link-local, private, shared, multicast, reserved and cloud-metadata addresses
    # are refused unless an operator allows them here.
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow webhooks to any non-public address (only for closed test setups)",
    )
    webhook_allowed_networks: str = Field(
        default="",
        description="Comma-separated CIDRs webhooks may reach although not public "
        "(e.g. an agency's gateway in 10.20.0.0/16)",
    )
    # HTTP edge (docs/api.md, "Limits"; README.md, "The stewards' console")
    http_max_header_bytes: int = Field(
        default=16 * 1024,
        description="Largest request line plus headers the server reads (431 above)",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses or CIDRs of reverse proxies whose "
        "X-Forwarded-For / X-Forwarded-Proto are believed; empty: none",
    )
    # The stewards' console (README.md, "The stewards' console"): fields named
    # ``steward_*`` so their variables are ``MDM_STEWARD_*``.
    steward_session_idle_minutes: float = Field(
        default=30, description="Idle time that ends a steward's session"
    )
    steward_session_absolute_hours: float = Field(
        default=8, description="Longest life of a steward's session"
    )
    steward_reservation_minutes: float = Field(
        default=10, description="How long a taken candidate stays reserved for its steward"
    )
    steward_login_max_failures: int = Field(
        default=5, description="Failures before a username locks (existing or not)"
    )
    steward_login_failure_window_minutes: float = Field(
        default=15, description="A username's failures are forgotten after this long without one"
    )
    steward_login_lock_minutes: float = Field(
        default=5, description="How long a locked username waits"
    )
    steward_login_per_ip_per_minute: int = Field(
        default=20, description="Login attempts per client address"
    )
    steward_cookie_secure: bool = Field(
        default=False, description="Send the console's cookies over HTTPS only"
    )

    @field_validator("database_url")
    @classmethod
    def _normalize(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _webhook_networks(cls, value: str) -> str:
        from mdm.events.destinations import parse_networks

        parse_networks(value)  # a bad entry stops the process, naming the entry
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
