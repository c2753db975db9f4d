"""Settings of the Salesforce sandbox read from the environment."""

from __future__ import annotations

import pytest

from include.sandbox.salesforce.settings import SalesforceSandboxSettings


def test_settings_defaults() -> None:
    settings = SalesforceSandboxSettings.from_env({})
    assert settings.username == "sync.user@sandbox.example"
    assert settings.session_idle_seconds == 7200.0
    assert settings.api_daily_max == 100_000


def test_settings_environment_overrides() -> None:
    settings = SalesforceSandboxSettings.from_env(
        {"SALESFORCE_SANDBOX_PASSWORD": "other", "SALESFORCE_SANDBOX_API_DAILY_MAX": "15000"}
    )
    assert settings.password == "other"
    assert settings.api_daily_max == 15_000


def test_settings_invalid_number() -> None:
    with pytest.raises(ValueError, match="SALESFORCE_SANDBOX_SESSION_IDLE_SECONDS"):
        SalesforceSandboxSettings.from_env({"SALESFORCE_SANDBOX_SESSION_IDLE_SECONDS": "soon"})
