"""A connection whose host lacks the API's base path gets an error naming the fix."""

from __future__ import annotations

import pytest
from cerkl.exceptions import CerklConfigError
from cerkl.hooks import CerklHook

from tests.plugins.cerkl.helpers import set_connection

CLIENT_ID = "sandbox-client-id"
CLIENT_SECRET = "sandbox-client-secret"


def test_host_without_base_path_names_fix(sandbox, cerkl_controls, monkeypatch):
    root = sandbox.cerkl_url.removesuffix("/v3")
    set_connection(
        monkeypatch,
        "cerkl_no_base_path",
        {"conn_type": "http", "host": root, "login": CLIENT_ID, "password": CLIENT_SECRET},
    )
    hook = CerklHook(cerkl_conn_id="cerkl_no_base_path")
    try:
        with pytest.raises(CerklConfigError) as raised:
            hook.list_subscriber_statuses()
    finally:
        hook.close()
    message = str(raised.value)
    assert "https://api.cerkl.com/v3" in message
    assert "cerkl_no_base_path" in message
    assert CLIENT_SECRET not in message
