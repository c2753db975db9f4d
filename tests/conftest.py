"""Shared pytest fixtures: the sandbox servers and clients of their control routes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tests.airflow_home  # noqa: F401  (sets AIRFLOW_HOME before Airflow is imported)
from include.sandbox.client import SandboxControlClient
from include.sandbox.runner import RunningSandbox, start_sandbox
from tests.include.sandbox.cerkl.api_client import CerklApi
from tests.smtp_inbox import SmtpInbox, serve_smtp_inbox


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """Both sandbox servers on free loopback ports over a fresh data folder, for the session."""
    data_dir = tmp_path_factory.mktemp("sandbox-data")
    running = start_sandbox(data_dir)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def cerkl_controls(sandbox: RunningSandbox) -> Iterator[SandboxControlClient]:
    """Control client of the Cerkl sandbox, reset (empty store, no faults) before the test."""
    assert sandbox.cerkl_root_url is not None
    client = SandboxControlClient(sandbox.cerkl_root_url)
    client.reset()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def salesforce_controls(sandbox: RunningSandbox) -> Iterator[SandboxControlClient]:
    """Control client of the Salesforce sandbox, reset before the test."""
    assert sandbox.salesforce_url is not None
    client = SandboxControlClient(sandbox.salesforce_url)
    client.reset()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def cerkl_api(sandbox: RunningSandbox, cerkl_controls: SandboxControlClient) -> Iterator[CerklApi]:
    """An authenticated test client of the Cerkl sandbox API, after a reset."""
    assert sandbox.cerkl_url is not None
    api = CerklApi(sandbox.cerkl_url)
    api.authenticate()
    try:
        yield api
    finally:
        api.session.close()


@pytest.fixture
def smtp_inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpInbox]:
    """A local SMTP server that ``smtp_default`` points at; it keeps every message."""
    yield from serve_smtp_inbox(monkeypatch)
