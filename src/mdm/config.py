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
    log_level: str = "INFO"
    log_json: bool = False

    @field_validator("database_url")
    @classmethod
    def _normalize(cls, value: str) -> str:
        return normalize_database_url(value)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
