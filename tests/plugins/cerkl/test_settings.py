"""Connection parsing: the base-URL guard and the extras."""

from __future__ import annotations

import pytest
from cerkl.exceptions import CerklConfigError
from cerkl.settings import (
    DEFAULT_FIELD_NAMES,
    CerklHookSettings,
    base_url_from_connection,
)


def test_defaults_match_documented_values():
    settings = CerklHookSettings.from_extras({}, conn_id="cerkl_default")

    assert settings.page_size == 1000
    assert settings.create_batch_size == 100
    assert settings.requests_per_second == 10.0
    assert settings.max_concurrent_requests == 4
    assert settings.max_attempts == 6
    assert settings.retry_deadline_seconds == 300.0
    assert settings.token_path == "oauth/Token"
    assert settings.new_subscriber_status_id is None
    assert settings.new_subscriber_status_description == "Email Blasts & News Digests"
    assert settings.new_subscriber_privacy_level_id == 1
    assert settings.field_names == DEFAULT_FIELD_NAMES
    assert settings.timeout == (10.0, 60.0)


def test_unknown_extra_key_is_rejected_with_known_keys():
    with pytest.raises(CerklConfigError) as info:
        CerklHookSettings.from_extras({"pagesize": 10}, conn_id="cerkl_default")

    message = str(info.value)
    assert "'pagesize'" in message
    assert "page_size" in message
    assert "'headers'" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("page_size", 0),
        ("page_size", 1001),
        ("page_size", "100"),
        ("create_batch_size", -1),
        ("requests_per_second", 0),
        ("max_concurrent_requests", True),
        ("read_timeout", "slow"),
        ("retry_deadline_seconds", float("inf")),
        ("since_filter_operator", "eq"),
        ("headers", {"X-Count": 3}),
        ("field_names", {"mail": "email_address"}),
        ("verify", ""),
    ],
)
def test_invalid_extra_value_names_key(key, value):
    with pytest.raises(CerklConfigError) as info:
        CerklHookSettings.from_extras({key: value}, conn_id="cerkl_default")

    assert key in str(info.value)


def test_invalid_headers_message_hides_values():
    with pytest.raises(CerklConfigError) as info:
        CerklHookSettings.from_extras(
            {"headers": {"Authorization": "Bearer s3cr3t-value", "X-Retries": 3}}, conn_id="c"
        )

    assert "X-Retries" in str(info.value)
    assert "s3cr3t-value" not in str(info.value)


def test_field_name_overrides_merge_with_defaults():
    settings = CerklHookSettings.from_extras(
        {"field_names": {"email": "email_address"}}, conn_id="c"
    )

    assert settings.field_names["email"] == "email_address"
    assert settings.field_names["first_name"] == "first_name"


def test_backoff_max_below_initial_is_rejected():
    with pytest.raises(CerklConfigError, match="backoff_max_seconds"):
        CerklHookSettings.from_extras(
            {"backoff_initial_seconds": 5, "backoff_max_seconds": 1}, conn_id="c"
        )


def test_base_url_keeps_https_host():
    url = base_url_from_connection("http", "https://api.cerkl.com/v3/", conn_id="cerkl_default")

    assert url == "https://api.cerkl.com/v3"


def test_base_url_rejects_uri_form_conn_type():
    with pytest.raises(CerklConfigError) as info:
        base_url_from_connection("https", "api.cerkl.com", conn_id="cerkl_default")

    message = str(info.value)
    assert "conn_type 'https'" in message
    assert "AIRFLOW_CONN_CERKL_DEFAULT=" in message
    assert '"conn_type": "http"' in message
    assert '"host": "https://api.cerkl.com/v3"' in message


def test_base_url_rejects_host_without_scheme():
    with pytest.raises(CerklConfigError, match="full base URL"):
        base_url_from_connection("http", "api.cerkl.com", conn_id="cerkl_default")


def test_base_url_rejects_other_scheme():
    with pytest.raises(CerklConfigError, match="scheme 'ftp'"):
        base_url_from_connection("http", "ftp://api.cerkl.com/v3", conn_id="cerkl_default")
