"""Failure alerts: their content, and delivery through a local SMTP server and a local Slack API.

The alerts go through the real ``SmtpNotifier`` and ``SlackNotifier`` with the connections
``smtp_default`` and ``slack_default`` set as ``AIRFLOW_CONN_*`` environment variables. The
SMTP server is aiosmtpd. The Slack API is a small HTTP server of this module, set as the
``base_url`` extra of ``slack_default``, which the Slack SDK's ``WebClient`` posts to.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from include.cerkl_sync import alerts
from include.cerkl_sync.alerts import SyncFailureNotifier, build_alert, run_failure_notifiers
from include.cerkl_sync.report import build_report, write_report
from tests.smtp_inbox import free_port, message_text

DAG_ID = "cerkl_salesforce_sync"
RUN_ID = "scheduled__2026-11-02T00:00:00+00:00"
BASE_URL = "https://airflow.example.com"
ALERT_TO = "sync-alerts@example.com"
SLACK_TOKEN = "xoxb-test-token"
# Personal data of a synced record: none of it may reach an alert.
SYNCED_EMAIL = "ada.okafor@example.org"
SYNCED_NAME = "Okafor"


class SlackApi(BaseHTTPRequestHandler):
    """Loopback stand-in of the Slack Web API's ``chat.postMessage``."""

    requests: list[dict[str, Any]]

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.requests.append(
            {
                "path": self.path,
                "authorization": self.headers.get("Authorization"),
                "json": json.loads(body or b"{}"),
            }
        )
        payload = json.dumps({"ok": True, "channel": "C123", "ts": "1700000000.000100"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return


@pytest.fixture
def report_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A report folder set in the ``cerkl_sync_config`` Variable, and the UI base URL."""
    folder = tmp_path / "reports"
    monkeypatch.setenv(
        "AIRFLOW_VAR_CERKL_SYNC_CONFIG",
        json.dumps({"report_folder": str(folder), "reject_count_threshold": 20}),
    )
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE_URL + "/")
    return folder


@pytest.fixture
def slack_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    requests: list[dict[str, Any]] = []
    handler = type("RecordingSlackApi", (SlackApi,), {"requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_DEFAULT",
        json.dumps(
            {
                "conn_type": "slack",
                "password": SLACK_TOKEN,
                "extra": {"base_url": f"http://127.0.0.1:{server.server_port}/api/"},
            }
        ),
    )
    try:
        yield requests
    finally:
        server.shutdown()
        server.server_close()


def _write_failed_report(folder: Path, **overrides: Any) -> Path:
    report = build_report(
        dag_id=DAG_ID,
        run_id=RUN_ID,
        run_info=None,
        task_outputs=overrides.get(
            "task_outputs",
            [
                {
                    "flows": {
                        "contacts_to_subscribers": {
                            "counts": {"created": 3, "rejected": 2},
                            "rejected": [
                                {
                                    "flow": "contacts_to_subscribers",
                                    "record_type": "Contact",
                                    "record_id": "003C000000000001AAA",
                                    "reason": "INVALID_EMAIL",
                                },
                                {
                                    "flow": "contacts_to_subscribers",
                                    "record_type": "Contact",
                                    "record_id": "003C000000000002AAA",
                                    "reason": "INVALID_EMAIL",
                                },
                            ],
                            "records": 40,
                            "completed": True,
                        }
                    }
                }
            ],
        ),
        failed_tasks=overrides.get(
            "failed_tasks",
            [
                {
                    "task_id": "cerkl_to_salesforce.extract_subscriber_changes",
                    "error": "CerklAuthError",
                },
                {"task_id": "cerkl_to_salesforce.apply_unsubscribes", "error": "upstream_failed"},
            ],
        ),
        state="failed",
    )
    return write_report(report, str(folder))


def _dag_callback_context(**extra: Any) -> dict[str, Any]:
    """Context of a DAG failure callback as the dag-processor builds it without a last task."""
    from airflow.sdk import DAG

    return {
        "dag": DAG(dag_id=DAG_ID, schedule=None),
        "run_id": RUN_ID,
        "reason": "task_failure",
        **extra,
    }


def test_run_failure_notifiers_off_by_default(monkeypatch):
    monkeypatch.delenv(alerts.EMAIL_TO_ENV, raising=False)
    monkeypatch.delenv(alerts.SLACK_CHANNEL_ENV, raising=False)
    assert run_failure_notifiers() == []


def test_run_failure_notifiers_read_environment(monkeypatch):
    monkeypatch.setenv(alerts.EMAIL_TO_ENV, " ops@example.com, ,data@example.com ")
    monkeypatch.setenv(alerts.SLACK_CHANNEL_ENV, " #sync-alerts ")
    monkeypatch.setenv(alerts.EMAIL_FROM_ENV, "airflow@example.com")
    [notifier] = run_failure_notifiers()
    assert notifier.email_to == ["ops@example.com", "data@example.com"]
    assert notifier.slack_channel == "#sync-alerts"
    assert notifier.email_from == "airflow@example.com"


def test_run_failure_notifiers_slack_only(monkeypatch):
    monkeypatch.delenv(alerts.EMAIL_TO_ENV, raising=False)
    monkeypatch.setenv(alerts.SLACK_CHANNEL_ENV, "C0123456")
    [notifier] = run_failure_notifiers()
    assert notifier.email_to == []
    assert notifier.slack_channel == "C0123456"


def test_task_log_url_quotes_run_id(report_folder):
    url = alerts.task_log_url(DAG_ID, RUN_ID, "salesforce_to_cerkl.extract_contacts", 2)
    assert url == (
        f"{BASE_URL}/dags/{DAG_ID}/runs/scheduled__2026-11-02T00%3A00%3A00%2B00%3A00"
        "/tasks/salesforce_to_cerkl.extract_contacts?try_number=2"
    )


def test_build_alert_reads_report(report_folder):
    path = _write_failed_report(report_folder)
    alert = build_alert(_dag_callback_context())
    assert alert.dag_id == DAG_ID
    assert alert.run_id == RUN_ID
    assert [(t.task_id, t.error) for t in alert.failed_tasks] == [
        ("cerkl_to_salesforce.extract_subscriber_changes", "CerklAuthError")
    ]
    assert alert.not_run_tasks == ["cerkl_to_salesforce.apply_unsubscribes"]
    assert alert.rejected == {"contacts_to_subscribers": 2}
    assert alert.records == {"contacts_to_subscribers": 40}
    assert alert.report_path == str(path)


def test_alert_text_names_run_tasks_and_logs(report_folder):
    path = _write_failed_report(report_folder)
    text = build_alert(_dag_callback_context()).text()
    assert f"Airflow DAG {DAG_ID} failed in run {RUN_ID}." in text
    assert "Reason: task_failure." in text
    assert (
        "- cerkl_to_salesforce.extract_subscriber_changes: CerklAuthError (log: "
        f"{BASE_URL}/dags/{DAG_ID}/runs/" in text
    )
    assert (
        "Not run because a task before them failed: cerkl_to_salesforce.apply_unsubscribes" in text
    )
    assert "Rejected records by flow: contacts_to_subscribers 2 of 40 (5.0%)." in text
    assert f"Run report: {path}" in text


def test_alert_text_has_no_personal_data(report_folder):
    _write_failed_report(report_folder)
    text = build_alert(_dag_callback_context()).text()
    assert "@" not in text
    assert SYNCED_NAME not in text


def test_alert_without_report_uses_context(report_folder):
    ti = SimpleNamespace(task_id="salesforce_to_cerkl.extract_contacts")
    context = _dag_callback_context(ti=ti, exception=TimeoutError("read timed out"))
    alert = build_alert(context)
    assert [(t.task_id, t.error) for t in alert.failed_tasks] == [
        ("salesforce_to_cerkl.extract_contacts", "TimeoutError")
    ]
    assert alert.report_path is None
    assert "The run report was not found." in alert.text()


def test_alert_run_id_from_dag_run(report_folder):
    dag_run = SimpleNamespace(dag_id=DAG_ID, run_id=RUN_ID)
    alert = build_alert({"dag_run": dag_run, "reason": "task_failure"})
    assert alert.dag_id == DAG_ID
    assert alert.run_id == RUN_ID


def test_alert_html_escapes_text(report_folder):
    alert = alerts.RunAlert(dag_id=DAG_ID, run_id="manual__<b>&", reason=None)
    html = alert.html()
    assert html.startswith("<pre>")
    assert "manual__&lt;b&gt;&amp;" in html


def test_email_alert_delivered(report_folder, smtp_inbox):
    _write_failed_report(report_folder)
    SyncFailureNotifier([ALERT_TO], None)(_dag_callback_context())
    [message] = smtp_inbox.messages
    assert smtp_inbox.recipients == [[ALERT_TO]]
    assert message["Subject"] == f"[Airflow] {DAG_ID} run failed: {RUN_ID}"
    assert message["From"] == "airflow@example.com"
    body = message_text(message)
    assert f"failed in run {RUN_ID}" in body
    assert "cerkl_to_salesforce.extract_subscriber_changes: CerklAuthError" in body
    assert f"{BASE_URL}/dags/{DAG_ID}/runs/" in body
    assert SYNCED_EMAIL not in body


def test_email_alert_sender_override(report_folder, smtp_inbox):
    SyncFailureNotifier([ALERT_TO], None, "sync@example.com")(_dag_callback_context())
    [message] = smtp_inbox.messages
    assert message["From"] == "sync@example.com"


def test_slack_alert_delivered(report_folder, slack_api):
    _write_failed_report(report_folder)
    SyncFailureNotifier([], "#sync-alerts")(_dag_callback_context())
    [request] = slack_api
    assert request["path"] == "/api/chat.postMessage"
    assert request["authorization"] == f"Bearer {SLACK_TOKEN}"
    assert request["json"]["channel"] == "#sync-alerts"
    text = request["json"]["text"]
    assert text.startswith(f"[Airflow] {DAG_ID} run failed: {RUN_ID}\n")
    assert "cerkl_to_salesforce.extract_subscriber_changes: CerklAuthError" in text
    assert "Rejected records by flow: contacts_to_subscribers 2 of 40 (5.0%)." in text


def test_slack_sent_when_email_fails(report_folder, slack_api, monkeypatch):
    closed_port = free_port()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": closed_port,
                "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 2, "retry_limit": 0},
            }
        ),
    )
    notifier = SyncFailureNotifier([ALERT_TO], "#sync-alerts")
    with pytest.raises(RuntimeError, match="not sent by e-mail"):
        notifier(_dag_callback_context())
    assert len(slack_api) == 1


def test_reject_threshold_alert_has_counts(report_folder, smtp_inbox, tmp_path):
    from datetime import UTC, datetime

    from include.cerkl_sync.config import load_config
    from include.cerkl_sync.flows.common import FlowResult
    from include.cerkl_sync.flows.run import (
        RejectThresholdExceededError,
        finish_flow,
        prepare_run,
    )
    from include.cerkl_sync.state import SyncStateStore

    state = SyncStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    state.migrate()
    try:
        run = prepare_run(
            dag_id=DAG_ID,
            run_id=RUN_ID,
            interval_start=datetime(2026, 11, 2, tzinfo=UTC),
            interval_end=datetime(2026, 11, 3, tzinfo=UTC),
            params={},
            config=load_config(),
            organization_id="001C000001aTtMa",
            state=state,
        )
        result = FlowResult(flow="contacts_to_subscribers", records=100)
        for number in range(25):
            result.reject("Contact", f"003C0000000{number:04d}AAA", "INVALID_EMAIL")
        with pytest.raises(RejectThresholdExceededError, match="rejected 25 of 100"):
            finish_flow(run, result, state)
    finally:
        state.dispose()

    # The DAG reports the flow's result and fails the task, as its _finish step does.
    _write_failed_report(
        report_folder,
        task_outputs=[{"flows": {"contacts_to_subscribers": result.to_dict()}}],
        failed_tasks=[
            {
                "task_id": "salesforce_to_cerkl.apply_contact_changes",
                "error": "AirflowFailException",
            },
            {"task_id": "campaigns_to_segments.sync_segments", "error": "upstream_failed"},
        ],
    )
    SyncFailureNotifier([ALERT_TO], None)(_dag_callback_context())
    [message] = smtp_inbox.messages
    body = message_text(message)
    assert "salesforce_to_cerkl.apply_contact_changes: AirflowFailException" in body
    assert "Rejected records by flow: contacts_to_subscribers 25 of 100 (25.0%)." in body
    assert "reach both 20 records and 5% of its records" in body
    assert "python -m include.cerkl_sync.quarantine list" in body


def test_email_sender_missing_names_fix(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({"conn_type": "smtp", "host": "127.0.0.1"})
    )
    with pytest.raises(ValueError, match="set CERKL_SYNC_ALERT_EMAIL_FROM or the from_email"):
        alerts._connection_sender()


def test_report_folder_unwritable_names_setting(tmp_path):
    from include.cerkl_sync.config import ConfigError

    blocker = tmp_path / "reports"
    blocker.write_text("a file where the report folder should be\n", encoding="utf-8")

    with pytest.raises(ConfigError, match="report_folder") as caught:
        _write_failed_report(blocker)

    assert str(blocker) in str(caught.value)


def test_alert_text_without_flow_records(report_folder):
    # A report of an older version has no record totals: the counts alone are given.
    path = _write_failed_report(report_folder)
    report = json.loads(path.read_text())
    del report["flow_records"]
    path.write_text(json.dumps(report))
    text = build_alert(_dag_callback_context()).text()
    assert "Rejected records by flow: contacts_to_subscribers 2." in text
