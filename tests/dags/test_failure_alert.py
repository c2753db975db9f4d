"""The DAG's failure alert in a real run: ``dag.test()`` runs DAG callbacks in its own process.

The DAG is parsed with ``CERKL_SYNC_ALERT_EMAIL_TO`` set, the Cerkl sandbox rejects every token
request, and the alert must reach a local SMTP server (aiosmtpd) with the failed task, its
exception class and its log link.
"""

from __future__ import annotations

import email
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import pytest

from include.sandbox.local_airflow import load_dag, run_dag

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ALERT_TO = "sync-alerts@example.com"
BASE_URL = "https://airflow.example.com"
# A day that no other module runs, so that no other run has this data interval.
DAY = datetime(2026, 6, 15, tzinfo=UTC)


class SmtpInbox:
    """aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpInbox]:
    from aiosmtpd.controller import Controller

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    inbox = SmtpInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {
                    "disable_tls": True,
                    "disable_ssl": True,
                    "timeout": 10,
                    "from_email": "airflow@example.com",
                },
            }
        ),
    )
    try:
        yield inbox
    finally:
        controller.stop()


def _body(message: Message) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    return "\n".join(
        part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
        for part in parts
        if part.get_payload(decode=True)
    )


def test_failed_run_emails_alert(sync_environment, smtp_inbox, monkeypatch):
    env = sync_environment
    env.reset()
    # start_run checks that the organization Account exists before anything else.
    env.salesforce.seed({"Account": [{"Id": "001C000001aTtMaIAK", "Name": "Organization"}]})
    env.set_clocks(DAY + timedelta(days=1, minutes=5))
    env.cerkl.add_fault(path="/v3/oauth/Token", status=401, error_code="invalid_client")
    monkeypatch.setenv("CERKL_SYNC_ALERT_EMAIL_TO", ALERT_TO)
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE_URL)
    try:
        dag = load_dag()
        assert dag.on_failure_callback, "the DAG was parsed without its alert"
        outcome = run_dag(dag, DAY + timedelta(days=1))
    finally:
        env.cerkl.clear_faults()

    assert outcome.state == "failed", outcome.task_states
    assert outcome.task_states["cerkl_to_salesforce.extract_subscriber_changes"] == "failed"
    [message] = smtp_inbox.messages
    assert message["To"] == ALERT_TO
    assert message["Subject"] == f"[Airflow] cerkl_salesforce_sync run failed: {outcome.run_id}"
    body = _body(message)
    assert "cerkl_to_salesforce.extract_subscriber_changes: CerklAuthError" in body
    assert f"{BASE_URL}/dags/cerkl_salesforce_sync/runs/" in body
    assert "Not run because a task before them failed:" in body
    assert f"Run report: {outcome.report_path}" in body
