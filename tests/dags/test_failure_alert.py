"""The DAG's failure alert in a real run: ``dag.test()`` runs DAG callbacks in its own process.

The DAG is parsed with ``CERKL_SYNC_ALERT_EMAIL_TO`` set, the Cerkl sandbox rejects every token
request, and the alert must reach a local SMTP server (aiosmtpd) with the failed task, its
exception class and its log link.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.sandbox.local_airflow import load_dag, run_dag
from tests.smtp_inbox import message_text

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ALERT_TO = "sync-alerts@example.com"
BASE_URL = "https://airflow.example.com"
# A day that no other module runs, so that no other run has this data interval.
DAY = datetime(2026, 6, 15, tzinfo=UTC)


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
    body = message_text(message)
    assert "cerkl_to_salesforce.extract_subscriber_changes: CerklAuthError" in body
    assert f"{BASE_URL}/dags/cerkl_salesforce_sync/runs/" in body
    assert "Not run because a task before them failed:" in body
    assert f"Run report: {outcome.report_path}" in body
