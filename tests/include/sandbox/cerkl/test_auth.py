"""Authentication of the Cerkl sandbox: client credentials, bearer tokens and expiry."""

from __future__ import annotations

import requests

from include.sandbox.client import SandboxControlClient
from include.sandbox.runner import RunningSandbox

from .api_client import CLIENT_ID, CLIENT_SECRET, CerklApi, error_code


def request_token(base_url: str, **kwargs: object) -> requests.Response:
    kwargs.setdefault("auth", (CLIENT_ID, CLIENT_SECRET))
    kwargs.setdefault("data", {"grant_type": "client_credentials"})
    return requests.post(f"{base_url}/oauth/Token", timeout=10, **kwargs)


def test_token_returns_bearer_with_lifetime(sandbox: RunningSandbox) -> None:
    response = request_token(sandbox.cerkl_url)

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 43_200
    assert len(body["access_token"]) > 20


def test_token_rejects_wrong_secret(sandbox: RunningSandbox) -> None:
    response = request_token(sandbox.cerkl_url, auth=(CLIENT_ID, "guessed-secret-42"))

    assert response.status_code == 401
    assert error_code(response) == "INVALID_CLIENT"
    assert "guessed-secret-42" not in response.text


def test_token_rejects_missing_basic_auth(sandbox: RunningSandbox) -> None:
    response = request_token(sandbox.cerkl_url, auth=None)

    assert response.status_code == 401
    assert error_code(response) == "INVALID_CLIENT"


def test_token_rejects_other_grant_type(sandbox: RunningSandbox) -> None:
    response = request_token(sandbox.cerkl_url, data={"grant_type": "password"})

    assert response.status_code == 400
    assert error_code(response) == "UNSUPPORTED_GRANT_TYPE"


def test_api_rejects_missing_token(sandbox: RunningSandbox) -> None:
    response = requests.get(f"{sandbox.cerkl_url}/subscriber", timeout=10)

    assert response.status_code == 401
    assert error_code(response) == "INVALID_TOKEN"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_api_rejects_unknown_token(sandbox: RunningSandbox) -> None:
    response = requests.get(
        f"{sandbox.cerkl_url}/subscriber",
        headers={"Authorization": "Bearer not-a-token"},
        timeout=10,
    )

    assert response.status_code == 401
    assert error_code(response) == "INVALID_TOKEN"


def test_token_expires_by_sandbox_clock(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    assert cerkl_api.call("GET", "subscriber").status_code == 200

    cerkl_controls.advance_clock(43_199)
    assert cerkl_api.call("GET", "subscriber").status_code == 200

    cerkl_controls.advance_clock(2)
    response = cerkl_api.call("GET", "subscriber")
    assert response.status_code == 401
    assert error_code(response) == "INVALID_TOKEN"

    cerkl_api.authenticate()
    assert cerkl_api.call("GET", "subscriber").status_code == 200


def test_expire_tokens_control_invalidates_tokens(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    assert cerkl_api.call("GET", "subscriber").status_code == 200

    assert cerkl_controls.expire_tokens() >= 1

    response = cerkl_api.call("GET", "subscriber")
    assert response.status_code == 401
    assert error_code(response) == "INVALID_TOKEN"
