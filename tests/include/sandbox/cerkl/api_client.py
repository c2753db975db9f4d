"""Test client of the Cerkl sandbox API that sends the request envelope and bearer token."""

from __future__ import annotations

import json
from typing import Any

import requests

CLIENT_ID = "sandbox-client-id"
CLIENT_SECRET = "sandbox-client-secret"


class CerklApi:
    """Thin ``requests`` client of the sandbox's Cerkl API that sends the envelope and token."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.token: str | None = None

    def authenticate(self) -> str:
        response = self.session.post(
            f"{self.base_url}/oauth/Token",
            auth=(CLIENT_ID, CLIENT_SECRET),
            data={"grant_type": "client_credentials"},
            timeout=10,
        )
        response.raise_for_status()
        self.token = response.json()["access_token"]
        return self.token

    def call(
        self,
        method: str,
        path: str,
        *,
        data: list[Any] | None = None,
        params: dict[str, Any] | None = None,
        filters: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        if self.token is None:
            self.authenticate()
        query = dict(params or {})
        if filters is not None:
            query["filters_json"] = json.dumps(filters)
        body = {"template": {"version": "3.0", "data": data}} if data is not None else None
        kwargs.setdefault("timeout", 10)
        return self.session.request(
            method,
            f"{self.base_url}/{path}",
            json=body,
            params=query,
            headers={"Authorization": f"Bearer {self.token}"},
            **kwargs,
        )

    def create(self, **fields: Any) -> dict[str, Any]:
        """Create one subscriber (status and privacy level 1 unless given) and return it."""
        fields.setdefault("subscriber_status", {"id": 1})
        fields.setdefault("subscriber_privacy_level", {"id": 1})
        response = self.call("POST", "subscriber", data=[fields])
        assert response.status_code == 200, response.text
        return response.json()["template"]["data"][0]


def data_of(response: requests.Response) -> list[dict[str, Any]]:
    """Return ``template.data`` of an API response."""
    return response.json()["template"]["data"]


def error_code(response: requests.Response) -> str:
    """Return ``error.code`` of an API error response."""
    return response.json()["error"]["code"]
