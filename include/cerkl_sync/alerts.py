"""Alerts for a failed sync run, sent through Airflow notifiers.

One alert per failed run: the DAG's ``on_failure_callback`` contains the notifiers switched on
by environment variables read at parse time (Variables must not be read at module level):

- ``CERKL_SYNC_ALERT_EMAIL_TO``: comma-separated addresses; e-mail through ``SmtpNotifier``
  and the ``smtp_default`` connection (``CERKL_SYNC_ALERT_EMAIL_FROM`` sets the sender);
- ``CERKL_SYNC_ALERT_SLACK_CHANNEL``: a channel; Slack through ``SlackNotifier`` and the
  ``slack_default`` connection.

The alert names the DAG, the run, the failed tasks with each exception's class, and a link to
each task's log built from ``[api] base_url``. It holds no synced email address or name.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

log = logging.getLogger(__name__)

EMAIL_TO_ENV = "CERKL_SYNC_ALERT_EMAIL_TO"
EMAIL_FROM_ENV = "CERKL_SYNC_ALERT_EMAIL_FROM"
SLACK_CHANNEL_ENV = "CERKL_SYNC_ALERT_SLACK_CHANNEL"


def _base_url() -> str:
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback="http://localhost:8080").rstrip("/")


def task_log_url(dag_id: str, run_id: str, task_id: str, try_number: int | None = None) -> str:
    """Return the Airflow UI address of a task instance's log."""
    url = (
        f"{_base_url()}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
        f"/tasks/{quote(task_id, safe='')}"
    )
    return url + (f"?try_number={try_number}" if try_number else "")


def failed_tasks(context: Mapping[str, Any]) -> list[dict[str, str]]:
    """Return ``{"task_id", "error", "log_url"}`` for the failed tasks of the run in context.

    The exception class comes from the context's exception for the task that triggered the
    callback, and from the run report (written by the last task) for the others.
    """
    dag_run = context.get("dag_run")
    dag_id = getattr(dag_run, "dag_id", None) or context.get("dag").dag_id
    run_id = getattr(dag_run, "run_id", "")
    failures: dict[str, str] = {}
    report = _read_report(dag_id, run_id)
    for item in (report or {}).get("failed_tasks", []):
        failures[item["task_id"]] = item["error"]
    ti = context.get("task_instance") or context.get("ti")
    exception = context.get("exception")
    if ti is not None and exception is not None:
        failures[ti.task_id] = type(exception).__name__
    return [
        {"task_id": task_id, "error": error, "log_url": task_log_url(dag_id, run_id, task_id)}
        for task_id, error in sorted(failures.items())
    ]


def _read_report(dag_id: str, run_id: str) -> dict[str, Any] | None:
    import json
    import re
    from pathlib import Path

    from include.cerkl_sync.config import SyncConfig

    folder = os.environ.get("CERKL_SYNC_REPORT_FOLDER") or SyncConfig().resolved_report_folder()
    safe_run = re.sub(r"[^A-Za-z0-9_.+-]+", "_", run_id)
    path = Path(folder) / dag_id / f"{safe_run}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def alert_text(context: Mapping[str, Any]) -> str:
    """Build the alert body: DAG, run, failed tasks with exception classes and log links."""
    dag_run = context.get("dag_run")
    dag_id = getattr(dag_run, "dag_id", None) or context.get("dag").dag_id
    run_id = getattr(dag_run, "run_id", "")
    lines = [f"Airflow DAG {dag_id} failed in run {run_id}."]
    report = _read_report(dag_id, run_id)
    if report:
        over = [
            f"{flow}: {counts.get('rejected', 0)} rejected"
            for flow, counts in report.get("flows", {}).items()
            if counts.get("rejected")
        ]
        if over:
            lines.append("Rejected records: " + "; ".join(over) + ".")
    tasks = failed_tasks(context)
    if tasks:
        lines.append("Failed tasks:")
        lines.extend(f"- {t['task_id']}: {t['error']} (log: {t['log_url']})" for t in tasks)
    else:
        lines.append(f"Reason: {context.get('reason') or 'see the run in the Airflow UI'}.")
    return "\n".join(lines)


class SyncFailureNotifier:
    """Send one alert for a failed run through the configured Airflow notifiers."""

    def __init__(self, email_to: list[str], slack_channel: str | None, email_from: str | None):
        self.email_to = email_to
        self.slack_channel = slack_channel
        self.email_from = email_from

    def __call__(self, context: Mapping[str, Any]) -> None:
        text = alert_text(context)
        dag_run = context.get("dag_run")
        dag_id = getattr(dag_run, "dag_id", "DAG")
        subject = f"[Airflow] {dag_id} run failed: {getattr(dag_run, 'run_id', '')}"
        if self.email_to:
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier

            html = "<pre>" + _escape_html(text) + "</pre>"
            SmtpNotifier(
                to=self.email_to,
                from_email=self.email_from,
                subject=subject,
                html_content=html,
                smtp_conn_id="smtp_default",
            ).notify(context)
            log.info("Sent the failure alert by e-mail to %d recipients", len(self.email_to))
        if self.slack_channel:
            from airflow.providers.slack.notifications.slack import SlackNotifier

            SlackNotifier(
                slack_conn_id="slack_default", text=f"{subject}\n{text}", channel=self.slack_channel
            ).notify(context)
            log.info("Sent the failure alert to Slack")


def _escape_html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def run_failure_notifiers() -> list[SyncFailureNotifier]:
    """Return the DAG's failure callbacks: one notifier, or none when alerts are off."""
    email_to = [a.strip() for a in os.environ.get(EMAIL_TO_ENV, "").split(",") if a.strip()]
    slack_channel = os.environ.get(SLACK_CHANNEL_ENV, "").strip() or None
    if not email_to and not slack_channel:
        return []
    return [SyncFailureNotifier(email_to, slack_channel, os.environ.get(EMAIL_FROM_ENV) or None)]
