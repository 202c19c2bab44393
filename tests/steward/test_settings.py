"""The console's settings are fields of :class:`mdm.config.Settings`; their
environment variables keep the names deployments set (``MDM_STEWARD_*``)."""

from __future__ import annotations

import pytest

from mdm.config import Settings

VARIABLES = {
    "MDM_STEWARD_SESSION_IDLE_MINUTES": ("steward_session_idle_minutes", "45", 45.0),
    "MDM_STEWARD_SESSION_ABSOLUTE_HOURS": ("steward_session_absolute_hours", "4", 4.0),
    "MDM_STEWARD_RESERVATION_MINUTES": ("steward_reservation_minutes", "3", 3.0),
    "MDM_STEWARD_LOGIN_MAX_FAILURES": ("steward_login_max_failures", "7", 7),
    "MDM_STEWARD_LOGIN_FAILURE_WINDOW_MINUTES": (
        "steward_login_failure_window_minutes",
        "20",
        20.0,
    ),
    "MDM_STEWARD_LOGIN_LOCK_MINUTES": ("steward_login_lock_minutes", "9", 9.0),
    "MDM_STEWARD_LOGIN_PER_IP_PER_MINUTE": ("steward_login_per_ip_per_minute", "3", 3),
    "MDM_STEWARD_COOKIE_SECURE": ("steward_cookie_secure", "true", True),
}


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    cfg = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (cfg.steward_session_idle_minutes, cfg.steward_session_absolute_hours) == (30, 8)
    assert cfg.steward_reservation_minutes == 10
    assert (cfg.steward_login_max_failures, cfg.steward_login_failure_window_minutes) == (5, 15)
    assert (cfg.steward_login_lock_minutes, cfg.steward_login_per_ip_per_minute) == (5, 20)
    assert cfg.steward_cookie_secure is False


def test_every_console_variable_keeps_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable, (_field, text, _value) in VARIABLES.items():
        monkeypatch.setenv(variable, text)
    cfg = Settings(_env_file=None)  # type: ignore[call-arg]
    assert {v: getattr(cfg, f) for v, (f, _t, _x) in VARIABLES.items()} == {
        v: x for v, (_f, _t, x) in VARIABLES.items()
    }
    console_fields = {f for f in Settings.model_fields if f.startswith("steward_")}
    assert console_fields == {f for f, _t, _x in VARIABLES.values()}
