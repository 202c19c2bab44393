"""The console's own settings (environment prefix ``MDM_STEWARD_``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MDM_STEWARD_", env_file=".env", extra="ignore")

    session_idle_minutes: float = Field(default=30, description="Idle time that ends a session")
    session_absolute_hours: float = Field(default=8, description="Longest life of a session")
    reservation_minutes: float = Field(
        default=10, description="How long a taken candidate stays reserved for its steward"
    )
    login_max_failures: int = Field(
        default=5, description="Failures before a username locks (existing or not)"
    )
    login_failure_window_minutes: float = Field(
        default=15, description="A username's failures are forgotten after this long without one"
    )
    login_lock_minutes: float = Field(default=5, description="How long a locked username waits")
    login_per_ip_per_minute: int = Field(default=20, description="Login attempts per address")
    cookie_secure: bool = Field(default=False, description="Send the cookie over HTTPS only")


@lru_cache(maxsize=1)
def get_console_settings() -> ConsoleSettings:
    return ConsoleSettings()
