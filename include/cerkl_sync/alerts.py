"""Alerts for a failed sync run, sent through Airflow notifiers.

The DAG's ``on_failure_callback`` contains one :class:`SyncFailureNotifier`, so each failed run
sends one alert per channel. Environment variables read at parse time switch the channels on,
because Variables must not be read at module level:

- ``CERKL_SYNC_ALERT_EMAIL_TO``: comma-separated addresses. E-mail goes through
  ``SmtpNotifier`` and the ``smtp_default`` connection, from ``CERKL_SYNC_ALERT_EMAIL_FROM``
  when set, else from the connection's default sender.
- ``CERKL_SYNC_ALERT_SLACK_CHANNEL``: a channel name or id. Slack messages go through
  ``SlackNotifier`` and the ``slack_default`` connection.

The alert names the DAG, the run, the failed tasks with each exception's class, and a link to
each task's log under ``[api] base_url``. It reads the run report that the last task wrote, so
it also lists the rejected records per flow, which fail a flow when they pass its thresholds.
It contains no synced email address or name: only ids, counts, exception class names and links.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from include.cerkl_sync.config import SyncConfig

log = logging.getLogger(__name__)

EMAIL_TO_ENV = "CERKL_SYNC_ALERT_EMAIL_TO"
EMAIL_FROM_ENV = "CERKL_SYNC_ALERT_EMAIL_FROM"
SLACK_CHANNEL_ENV = "CERKL_SYNC_ALERT_SLACK_CHANNEL"
SMTP_CONN_ID = "smtp_default"
SLACK_CONN_ID = "slack_default"
#: Report states of tasks that did not run because a task before them failed.
NOT_RUN_STATES = {"upstream_failed"}


def _base_url() -> str:
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback="http://localhost:8080").rstrip("/")


def task_log_url(dag_id: str, run_id: str, task_id: str, try_number: int | None = None) -> str:
    """Return the Airflow UI address of a task instance's log, under ``[api] base_url``."""
    url = (
        f"{_base_url()}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
        f"/tasks/{quote(task_id, safe='')}"
    )
    return url + (f"?try_number={try_number}" if try_number else "")


@dataclass
class FailedTask:
    """A task of the failed run and the class name of the exception it raised."""

    task_id: str
    error: str
    log_url: str


@dataclass
class RunAlert:
    """Content of one failure alert: the run, its failed tasks and its rejected records.

    :param rejected: rejected records per flow, from the run report.
    :param records: records each flow handled, from the run report, for the rejected share.
    :param report_path: the run report, or None when it was not found.
    """

    dag_id: str
    run_id: str
    reason: str | None = None
    failed_tasks: list[FailedTask] = field(default_factory=list)
    not_run_tasks: list[str] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    reject_count_threshold: int | None = None
    reject_share_threshold: float | None = None
    report_path: str | None = None

    @property
    def subject(self) -> str:
        return f"[Airflow] {self.dag_id} run failed: {self.run_id}"

    def text(self) -> str:
        """Return the alert as plain text, one item per line."""
        lines = [f"Airflow DAG {self.dag_id} failed in run {self.run_id}."]
        if self.reason:
            lines.append(f"Reason: {self.reason}.")
        if self.failed_tasks:
            lines.append("Failed tasks:")
            for task in self.failed_tasks:
                lines.append(f"- {task.task_id}: {task.error} (log: {task.log_url})")
        else:
            lines.append("No failed task was found; open the run in the Airflow UI.")
        if self.not_run_tasks:
            lines.append(
                "Not run because a task before them failed: " + ", ".join(self.not_run_tasks)
            )
        if self.rejected:
            counts = ", ".join(
                self._rejected_share(flow, count) for flow, count in sorted(self.rejected.items())
            )
            lines.append(f"Rejected records by flow: {counts}.")
            if self.reject_count_threshold is not None and self.reject_share_threshold is not None:
                lines.append(
                    "A flow fails when its rejected records reach both "
                    f"{self.reject_count_threshold} records and "
                    f"{self.reject_share_threshold:.0%} of its records. List them with "
                    "`python -m include.cerkl_sync.quarantine list`."
                )
        if self.report_path:
            lines.append(f"Run report: {self.report_path}")
        else:
            lines.append("The run report was not found.")
        return "\n".join(lines)

    def _rejected_share(self, flow: str, rejected: int) -> str:
        """Return ``flow 25 of 400 (6.2%)``, or ``flow 25`` when the report has no total."""
        records = self.records.get(flow, 0)
        if not records:
            return f"{flow} {rejected}"
        # The flow's threshold check counts at least the rejected records, as finish_flow does.
        total = max(records, rejected)
        return f"{flow} {rejected} of {total} ({rejected / total:.1%})"

    def html(self) -> str:
        """Return the alert as HTML: the text in a ``<pre>`` block, escaped."""
        return "<pre>" + html.escape(self.text(), quote=False) + "</pre>"


def _load_config() -> SyncConfig:
    """Return the sync settings from the ``cerkl_sync_config`` Variable, else the defaults.

    The alert goes out even when the Variable cannot be read, so any error here is logged and
    the defaults are used.
    """
    from include.cerkl_sync.config import SyncConfig, load_config

    try:
        return load_config()
    except Exception as exc:  # noqa: BLE001 - the alert must not fail because of the settings
        log.warning("Could not read the sync settings for the alert, using the defaults: %s", exc)
        return SyncConfig()


def read_report(dag_id: str, run_id: str, folder: str) -> tuple[dict[str, Any] | None, Path]:
    """Read the run report that the last task wrote under ``folder``.

    :return: the report, or None when it is missing or not valid JSON, and its path.
    """
    safe_run = re.sub(r"[^A-Za-z0-9_.+-]+", "_", run_id)
    path = Path(folder) / dag_id / f"{safe_run}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")), path
    except FileNotFoundError:
        log.warning(
            "Run report %s not found; the alert lists the failed task from its context", path
        )
    except (OSError, ValueError) as exc:
        log.warning("Could not read run report %s: %s", path, exc)
    return None, path


def build_alert(context: Mapping[str, Any]) -> RunAlert:
    """Build the alert of the failed run in an Airflow callback context.

    A DAG failure callback gets ``dag``, ``run_id`` and ``reason``. It also gets ``dag_run``
    and ``ti`` when the scheduler has recorded the run's last task instance. Failed tasks and their
    exception classes come from the run report. The context's ``exception``, set for task
    callbacks, names the error of its own task.
    """
    dag_run = context.get("dag_run")
    dag = context.get("dag")
    dag_id = getattr(dag, "dag_id", None) or getattr(dag_run, "dag_id", None) or "unknown DAG"
    run_id = context.get("run_id") or getattr(dag_run, "run_id", None) or "unknown run"
    config = _load_config()
    report, path = read_report(dag_id, run_id, config.resolved_report_folder())

    errors: dict[str, str] = {}
    not_run: list[str] = []
    for item in (report or {}).get("failed_tasks", []):
        if item["error"] in NOT_RUN_STATES:
            not_run.append(item["task_id"])
        else:
            errors[item["task_id"]] = item["error"]
    ti = context.get("task_instance") or context.get("ti")
    exception = context.get("exception")
    if ti is not None and isinstance(exception, BaseException):
        errors[ti.task_id] = type(exception).__name__

    rejected = {
        flow: counts["rejected"]
        for flow, counts in (report or {}).get("flows", {}).items()
        if counts.get("rejected")
    }
    return RunAlert(
        dag_id=dag_id,
        run_id=run_id,
        reason=context.get("reason"),
        failed_tasks=[
            FailedTask(task_id, error, task_log_url(dag_id, run_id, task_id))
            for task_id, error in sorted(errors.items())
        ],
        not_run_tasks=sorted(not_run),
        rejected=rejected,
        records={
            flow: int(count)
            for flow, count in (report or {}).get("flow_records", {}).items()
            if flow in rejected
        },
        reject_count_threshold=config.reject_count_threshold,
        reject_share_threshold=config.reject_share_threshold,
        report_path=str(path) if report is not None else None,
    )


class SyncFailureNotifier:
    """DAG failure callback that sends one alert through the configured Airflow notifiers.

    :param email_to: alert recipients; empty turns e-mail off.
    :param slack_channel: Slack channel; None turns Slack off.
    :param email_from: sender address; None uses the ``smtp_default`` connection's sender.
    """

    def __init__(
        self, email_to: list[str], slack_channel: str | None, email_from: str | None = None
    ) -> None:
        self.email_to = email_to
        self.slack_channel = slack_channel
        self.email_from = email_from

    def __call__(self, context: Mapping[str, Any]) -> None:
        """Send the alert on each channel; a failed channel is logged and the others still go.

        :raises RuntimeError: after trying every channel, when one of them failed.
        """
        alert = build_alert(context)
        failed: list[str] = []
        if self.email_to:
            try:
                self._send_email(alert, context)
                log.info(
                    "Sent the failure alert of run %s by e-mail to %d recipients",
                    alert.run_id,
                    len(self.email_to),
                )
            except Exception:  # noqa: BLE001 - Slack must still be tried
                log.exception("Could not send the failure alert of run %s by e-mail", alert.run_id)
                failed.append("e-mail")
        if self.slack_channel:
            try:
                self._send_slack(alert, context)
                log.info("Sent the failure alert of run %s to Slack", alert.run_id)
            except Exception:  # noqa: BLE001 - reported below
                log.exception("Could not send the failure alert of run %s to Slack", alert.run_id)
                failed.append("Slack")
        if failed:
            raise RuntimeError(
                f"The failure alert of run {alert.run_id} was not sent by {' and '.join(failed)}; "
                f"check the {SMTP_CONN_ID} and {SLACK_CONN_ID} connections."
            )

    def _send_email(self, alert: RunAlert, context: Mapping[str, Any]) -> None:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        SmtpNotifier(
            to=self.email_to,
            from_email=self.email_from or _connection_sender(),
            subject=alert.subject,
            html_content=alert.html(),
            smtp_conn_id=SMTP_CONN_ID,
        ).notify(context)

    def _send_slack(self, alert: RunAlert, context: Mapping[str, Any]) -> None:
        from airflow.providers.slack.notifications.slack import SlackNotifier

        SlackNotifier(
            slack_conn_id=SLACK_CONN_ID,
            text=f"{alert.subject}\n{alert.text()}",
            channel=self.slack_channel,
        ).notify(context)


def _connection_sender() -> str:
    """Return the ``from_email`` extra of ``smtp_default``.

    ``SmtpNotifier`` would read it too, but then renders it as a template with the context's
    DAG, which fails when that is a serialized DAG, as in ``dag.test()`` callbacks.

    :raises ValueError: when the extra is not set.
    """
    from airflow.sdk import BaseHook

    sender = BaseHook.get_connection(SMTP_CONN_ID).extra_dejson.get("from_email")
    if not sender:
        raise ValueError(
            f"No sender for alert e-mails: set {EMAIL_FROM_ENV} or the from_email extra of "
            f"the {SMTP_CONN_ID} connection."
        )
    return str(sender)


def run_failure_notifiers() -> list[SyncFailureNotifier]:
    """Return the DAG's failure callbacks from the environment: one notifier, or none when
    neither ``CERKL_SYNC_ALERT_EMAIL_TO`` nor ``CERKL_SYNC_ALERT_SLACK_CHANNEL`` is set.
    """
    email_to = [a.strip() for a in os.environ.get(EMAIL_TO_ENV, "").split(",") if a.strip()]
    slack_channel = os.environ.get(SLACK_CHANNEL_ENV, "").strip() or None
    if not email_to and not slack_channel:
        return []
    return [SyncFailureNotifier(email_to, slack_channel, os.environ.get(EMAIL_FROM_ENV) or None)]
