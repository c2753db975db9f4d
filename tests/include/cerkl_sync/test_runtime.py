"""Which task failures skip Airflow's retries."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException
from cerkl.exceptions import CerklApiError, CerklAuthError

from include.cerkl_sync.config import ConfigError
from include.cerkl_sync.runtime import _is_retry_useless, fail_fast_on_bad_settings
from include.cerkl_sync.salesforce_io import SalesforceApiLimitError, SalesforceAuthError
from include.cerkl_sync.state import StateStoreUnavailableError


def _auth_error(path: str) -> CerklAuthError:
    return CerklAuthError(401, "INVALID_CLIENT", "rejected", method="POST", path=path)


def test_rejected_cerkl_credentials_not_retried():
    assert _is_retry_useless(_auth_error("oauth/Token"))


def test_cerkl_401_elsewhere_retried():
    assert not _is_retry_useless(_auth_error("subscriber"))


def test_salesforce_login_failure_not_retried():
    assert _is_retry_useless(SalesforceAuthError("login failed"))


def test_salesforce_api_limit_not_retried():
    assert _is_retry_useless(SalesforceApiLimitError("spent"))


def test_cerkl_server_error_retried():
    error = CerklApiError(503, None, "busy", method="GET", path="subscriber")
    assert not _is_retry_useless(error)


def test_fail_fast_turns_config_error_into_failure():
    with pytest.raises(AirflowFailException) as raised:
        with fail_fast_on_bad_settings():
            raise ConfigError("cerkl_sync_config.batch_size must be at least 1")
    assert "batch_size" in str(raised.value)


def test_fail_fast_lets_unreachable_state_db_retry():
    with pytest.raises(StateStoreUnavailableError):
        with fail_fast_on_bad_settings():
            raise StateStoreUnavailableError("Cannot connect to the state DB")
