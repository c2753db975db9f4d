"""Settings of the Cerkl sandbox app: environment overrides and their effect on the API."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import uvicorn
from starlette.applications import Starlette

from include.sandbox.cerkl.app import CerklSandboxSettings, create_app
from include.sandbox.client import SandboxControlClient
from include.sandbox.runner import RunningSandbox

STATUS_AND_PRIVACY = {"subscriber_status": {"id": 1}, "subscriber_privacy_level": {"id": 1}}


def test_settings_from_env_override_defaults() -> None:
    settings = CerklSandboxSettings.from_env(
        {
            "CERKL_SANDBOX_CLIENT_ID": "id-from-env",
            "CERKL_SANDBOX_CLIENT_SECRET": "secret-from-env",
            "CERKL_SANDBOX_TOKEN_LIFETIME_SECONDS": "600",
        }
    )

    assert settings.client_id == "id-from-env"
    assert settings.client_secret == "secret-from-env"
    assert settings.token_lifetime_seconds == 600


def test_settings_from_empty_env_keep_defaults() -> None:
    assert CerklSandboxSettings.from_env({}) == CerklSandboxSettings()


@pytest.mark.parametrize("value", ["0", "-5", "ten"])
def test_settings_reject_bad_token_lifetime(value: str) -> None:
    with pytest.raises(ValueError, match="CERKL_SANDBOX_TOKEN_LIFETIME_SECONDS"):
        CerklSandboxSettings.from_env({"CERKL_SANDBOX_TOKEN_LIFETIME_SECONDS": value})


@contextmanager
def serve_in_thread(app: Starlette) -> Generator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yield its root URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_app_applies_custom_settings(tmp_path: Path) -> None:
    settings = CerklSandboxSettings(
        client_id="other-id",
        client_secret="other-secret",
        token_lifetime_seconds=60,
        max_create_batch=2,
        require_first_name=True,
    )
    with serve_in_thread(create_app(tmp_path, settings=settings)) as root_url:
        token = requests.post(
            f"{root_url}/v3/oauth/Token",
            auth=("other-id", "other-secret"),
            data={"grant_type": "client_credentials"},
            timeout=10,
        ).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        too_many = requests.post(
            f"{root_url}/v3/subscriber",
            json={"template": {"version": "3.0", "data": [STATUS_AND_PRIVACY] * 3}},
            headers=headers,
            timeout=10,
        )
        no_first_name = requests.post(
            f"{root_url}/v3/subscriber",
            json={
                "template": {
                    "version": "3.0",
                    "data": [{"email": "a@example.org", **STATUS_AND_PRIVACY}],
                }
            },
            headers=headers,
            timeout=10,
        )
        requests.post(f"{root_url}/__sandbox__/clock/advance", json={"seconds": 61}, timeout=10)
        expired = requests.get(f"{root_url}/v3/subscriber", headers=headers, timeout=10)

    assert token["expires_in"] == 60
    assert too_many.status_code == 400
    assert too_many.json()["error"]["code"] == "TOO_MANY_OBJECTS"
    assert no_first_name.status_code == 422
    assert "first_name" in no_first_name.json()["error"]["message"]
    assert expired.status_code == 401


def test_control_client_accepts_api_base_url(
    sandbox: RunningSandbox, cerkl_controls: SandboxControlClient
) -> None:
    client = SandboxControlClient(sandbox.cerkl_url)

    assert client.base_url == sandbox.cerkl_root_url
    assert client.counters() == {"total": 0, "by_endpoint": {}}
