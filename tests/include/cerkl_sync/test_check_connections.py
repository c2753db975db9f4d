"""``python -m include.cerkl_sync.check_connections`` against both sandbox servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from include.cerkl_sync.check_connections import (
    check_cerkl,
    check_salesforce,
    mask_secrets,
    run_checks,
)

ROOT = Path(__file__).resolve().parents[3]
CERKL_SECRET = "sandbox-client-secret"
SALESFORCE_PASSWORD = "sandbox-password"
SALESFORCE_TOKEN = "sandbox-token"


def connection_env(sandbox, *, cerkl_secret=CERKL_SECRET, salesforce_password=SALESFORCE_PASSWORD):
    cerkl = {
        "conn_type": "http",
        "host": sandbox.cerkl_url,
        "login": "sandbox-client-id",
        "password": cerkl_secret,
    }
    salesforce = {
        "conn_type": "salesforce",
        "login": "sync.user@sandbox.example",
        "password": salesforce_password,
        "extra": {"security_token": SALESFORCE_TOKEN},
    }
    return {
        "AIRFLOW_CONN_CERKL_DEFAULT": json.dumps(cerkl),
        "AIRFLOW_CONN_SALESFORCE_DEFAULT": json.dumps(salesforce),
        "CERKL_SYNC_SALESFORCE_SANDBOX_URL": sandbox.salesforce_url,
    }


def run_command(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **env_overrides}
    env.pop("PYTHONPATH", None)  # the command must find plugins/ by itself
    return subprocess.run(
        [sys.executable, "-m", "include.cerkl_sync.check_connections", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def both_sandboxes(sandbox, cerkl_controls, salesforce_controls):
    return sandbox


def test_check_connections_ok_on_sandbox(both_sandboxes):
    result = run_command(connection_env(both_sandboxes))

    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(lines) == 2
    assert lines[0].startswith("cerkl_default: OK ")
    assert lines[1].startswith("salesforce_default: OK ")


def test_check_connections_fails_on_bad_secrets(both_sandboxes):
    env = connection_env(
        both_sandboxes, cerkl_secret="wrong-cerkl-secret", salesforce_password="wrong-sf-pass"
    )

    result = run_command(env, "--verbose")

    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "cerkl_default: FAILED CerklAuthError" in result.stdout
    assert "salesforce_default: FAILED " in result.stdout
    for secret in ("wrong-cerkl-secret", "wrong-sf-pass", SALESFORCE_TOKEN):
        assert secret not in output
    assert "sync.user@sandbox.example" not in output


def test_checks_report_missing_connection(both_sandboxes, monkeypatch):
    for name, value in connection_env(both_sandboxes).items():
        monkeypatch.setenv(name, value)

    results = run_checks(
        [
            ("cerkl_default", check_cerkl),
            ("salesforce_default", check_salesforce),
            ("cerkl_absent", check_cerkl),
        ]
    )

    assert [ok for ok, _ in results] == [True, True, False]
    assert results[2][1].startswith("cerkl_absent: FAILED ")
    assert "cerkl_absent" in results[2][1].split("FAILED", 1)[1]


def test_run_checks_turns_exceptions_into_failures():
    def broken(conn_id: str) -> tuple[bool, str]:
        raise RuntimeError(f"{conn_id} exploded for someone@example.com")

    [(ok, line)] = run_checks([("x_conn", broken)])

    assert ok is False
    assert line == "x_conn: FAILED RuntimeError: x_conn exploded for <redacted>"


def test_mask_secrets_longest_first():
    message = mask_secrets("token abcdef and abc", ["abc", "abcdef"])

    assert message == "token *** and ***"
