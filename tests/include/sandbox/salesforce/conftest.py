"""Fixtures: the Salesforce sandbox app under uvicorn in a thread, and real clients for it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
from simple_salesforce import Salesforce

from include.cerkl_sync.salesforce_transport import build_salesforce_session
from include.sandbox.salesforce.app import SalesforceSandbox, create_app
from include.sandbox.salesforce.settings import SalesforceSandboxSettings

SETTINGS = SalesforceSandboxSettings()


@dataclass
class SalesforceServer:
    """A running sandbox: its base URL, data folder and in-process state."""

    url: str
    data_dir: Path
    sandbox: SalesforceSandbox

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """Call a ``/__sandbox__/`` control route and return its JSON response."""
        response = requests.request(method, f"{self.url}/__sandbox__/{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def session(self) -> requests.Session:
        """Return a session that routes ``https://*.salesforce.com`` to this sandbox."""
        return build_salesforce_session(self.url)

    def client(self, **kwargs: Any) -> Salesforce:
        """Log in with simple-salesforce (SOAP login by default) through the adapter."""
        options: dict[str, Any] = {
            "username": SETTINGS.username,
            "password": SETTINGS.password,
            "security_token": SETTINGS.security_token,
        }
        options.update(kwargs)
        return Salesforce(session=self.session(), **options)

    def seed(self, sobject: str, records: list[dict[str, Any]]) -> list[str]:
        """Insert records straight into the store; return their Ids."""
        return self.sandbox.store.insert_records(sobject, records)


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="session")
def salesforce_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SalesforceServer]:
    """The sandbox app served by uvicorn (default HTTP parser) on a free loopback port."""
    data_dir = tmp_path_factory.mktemp("salesforce-sandbox")
    app = create_app(data_dir, settings=SETTINGS)
    sock = _free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the Salesforce sandbox did not start within 10 s")
        time.sleep(0.01)
    try:
        yield SalesforceServer(f"http://127.0.0.1:{port}", data_dir, app.state.sandbox)
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


@pytest.fixture
def sf_server(salesforce_server: SalesforceServer) -> SalesforceServer:
    """The sandbox, reset to an empty org with default controls before the test."""
    salesforce_server.control("POST", "reset")
    salesforce_server.control("DELETE", "record_faults")
    return salesforce_server


@pytest.fixture
def sf(sf_server: SalesforceServer) -> Salesforce:
    """A simple-salesforce client logged in by SOAP to an empty sandbox org."""
    return sf_server.client()
