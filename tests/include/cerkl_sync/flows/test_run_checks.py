"""Checks made before a run writes anything: the organization Account and bad settings."""

from __future__ import annotations

import json

import pytest

from include.cerkl_sync.config import ConfigError, env_int, env_schedule
from include.cerkl_sync.flows.run import check_organization_account
from include.cerkl_sync.salesforce_io import SalesforceClient
from include.cerkl_sync.salesforce_transport import build_salesforce_session
from include.sandbox.local_airflow import (
    SALESFORCE_PASSWORD,
    SALESFORCE_TOKEN,
    SALESFORCE_USERNAME,
)

ACCOUNT_18 = "001C000001aTtMaIAK"


@pytest.fixture
def salesforce(sandbox, salesforce_controls, monkeypatch):
    connection = {
        "conn_type": "salesforce",
        "login": SALESFORCE_USERNAME,
        "password": SALESFORCE_PASSWORD,
        "extra": {"security_token": SALESFORCE_TOKEN},
    }
    monkeypatch.setenv("AIRFLOW_CONN_RUN_CHECKS_SALESFORCE", json.dumps(connection))
    session = build_salesforce_session(sandbox.salesforce_url)
    yield SalesforceClient("run_checks_salesforce", session=session)
    session.close()


def test_organization_account_found_by_15_character_id(salesforce, salesforce_controls):
    salesforce_controls.seed({"Account": [{"Id": ACCOUNT_18, "Name": "Organization"}]})
    check_organization_account(salesforce, "001C000001aTtMa")
    check_organization_account(salesforce, ACCOUNT_18)


def test_missing_organization_account_names_variable(salesforce, salesforce_controls):
    salesforce_controls.seed({"Account": [{"Id": ACCOUNT_18, "Name": "Organization"}]})
    with pytest.raises(ConfigError) as raised:
        check_organization_account(salesforce, "001000000000000AAA")
    assert "cerkl_organization_id" in str(raised.value)
    assert "001000000000000AAA" in str(raised.value)


@pytest.mark.parametrize("raw", ["three", "-1", "2.5"])
def test_env_int_rejects_value_naming_variable(monkeypatch, raw):
    monkeypatch.setenv("CERKL_SYNC_TASK_RETRIES", raw)
    with pytest.raises(ConfigError) as raised:
        env_int("CERKL_SYNC_TASK_RETRIES", 3)
    assert "CERKL_SYNC_TASK_RETRIES" in str(raised.value)
    assert repr(raw) in str(raised.value)


def test_env_int_default_when_unset(monkeypatch):
    monkeypatch.delenv("CERKL_SYNC_TASK_RETRIES", raising=False)
    assert env_int("CERKL_SYNC_TASK_RETRIES", 3) == 3


def test_env_int_respects_minimum(monkeypatch):
    monkeypatch.setenv("CERKL_SYNC_TASK_TIMEOUT_MINUTES", "0")
    with pytest.raises(ConfigError):
        env_int("CERKL_SYNC_TASK_TIMEOUT_MINUTES", 240, minimum=1)


def test_env_schedule_defaults(monkeypatch):
    monkeypatch.delenv("CERKL_SYNC_SCHEDULE", raising=False)
    monkeypatch.delenv("CERKL_SYNC_TIMEZONE", raising=False)
    assert env_schedule() == ("0 0 * * *", "UTC")


@pytest.mark.parametrize(
    ("name", "value"),
    [("CERKL_SYNC_SCHEDULE", "every day"), ("CERKL_SYNC_TIMEZONE", "Mars/Base")],
)
def test_env_schedule_rejects_bad_value(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        env_schedule()
    assert name in str(raised.value)
