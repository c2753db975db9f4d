"""The sync DAG on a real CeleryExecutor deployment: separate Airflow processes, PostgreSQL,
Redis, a backfill over two days, and the failure alert sent by the dag-processor.

The deployment runs from the locked packages without Docker: the api-server, scheduler,
dag-processor and Celery worker each run as a process of their own (see ``celery_stack.py``),
against the session's sandbox. Large batches must travel through the shared batch folder.
"""

from __future__ import annotations

import email
import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from include.sandbox.generator import OrgSpec, generate_org
from include.sandbox.local_airflow import configure_environment
from tests.deployment.celery_stack import (
    POSTGRES_HOST,
    POSTGRES_PORT,
    REDIS_HOST,
    REDIS_PORT,
    CeleryStack,
    StackError,
    free_port,
    port_open,
    wait_until,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.timeout(1200),
]

DAG_ID = "cerkl_salesforce_sync"
ORG_NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
FIRST_DAY = datetime(2026, 11, 2, tzinfo=UTC)
SECOND_DAY = FIRST_DAY + timedelta(days=1)
FAILED_DAY = SECOND_DAY + timedelta(days=1)
ALERT_TO = "sync-alerts@example.com"
# Small enough that every Contact batch of the generated org goes to the shared folder.
XCOM_INLINE_MAX_BYTES = 1024


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(record, default=lambda v: v.isoformat()))


def _require_services() -> None:
    missing = []
    if not port_open(POSTGRES_HOST, POSTGRES_PORT):
        missing.append(f"PostgreSQL on {POSTGRES_HOST}:{POSTGRES_PORT} (user postgres, trust)")
    if not port_open(REDIS_HOST, REDIS_PORT):
        missing.append(f"Redis on {REDIS_HOST}:{REDIS_PORT}")
    if missing:
        pytest.skip("the Celery deployment test needs " + " and ".join(missing))


class BatchFolderWatcher:
    """Records every file that appears under a folder while a deployment runs."""

    def __init__(self, folder: Path, interval: float = 0.2) -> None:
        self.folder = folder
        self.interval = interval
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            if self.folder.exists():
                for path in self.folder.rglob("*"):
                    if path.is_file():
                        self.seen.add(str(path.relative_to(self.folder)))
            self._stop.wait(self.interval)

    def __enter__(self) -> BatchFolderWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class AlertInbox:
    """A local SMTP server (aiosmtpd) that keeps every message it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


def _message_text(message: Message) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    texts = []
    for part in parts:
        payload = part.get_payload(decode=True)
        if payload:
            texts.append(payload.decode(part.get_content_charset() or "utf-8"))
    return "\n".join(texts)


@pytest.fixture(scope="module")
def deployment(sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The sandbox with a generated org, and a running Celery deployment pointed at it."""
    _require_services()
    from include.sandbox.client import SandboxControlClient

    work_dir = tmp_path_factory.mktemp("celery-deployment")
    salesforce = SandboxControlClient(sandbox.salesforce_url)
    cerkl = SandboxControlClient(sandbox.cerkl_root_url)
    for client in (salesforce, cerkl):
        client.reset()
        client.set_clock(ORG_NOW)
    org = generate_org(
        OrgSpec(seed=11, contacts=80, subscribers=60, campaigns=4, leads=5, now=ORG_NOW)
    )
    salesforce.seed(
        {
            name: [_jsonable(r) for r in org.salesforce_records(name)]
            for name in ("Account", "Contact", "Lead", "Campaign", "CampaignMember")
        }
    )
    cerkl.seed(
        {
            name: [_jsonable(r) for r in org.cerkl_records(name)]
            for name in ("categories", "subscribers", "unsubscribes", "interests", "segments")
        }
    )

    inbox = AlertInbox()
    batch_folder = work_dir / "shared" / "batches"
    report_folder = work_dir / "shared" / "reports"
    previous = dict(os.environ)
    try:
        settings = configure_environment(
            salesforce_url=sandbox.salesforce_url,
            cerkl_url=sandbox.cerkl_url,
            state_url="unused",
            work_dir=work_dir,
            config={
                "xcom_inline_max_bytes": XCOM_INLINE_MAX_BYTES,
                "report_folder": str(report_folder),
            },
        )
    finally:
        os.environ.clear()
        os.environ.update(previous)
    settings.pop("AIRFLOW_CONN_CERKL_SYNC_STATE")
    settings.update(
        {
            "CERKL_SYNC_BATCH_STORAGE": "file://" + str(batch_folder),
            "CERKL_SYNC_TASK_RETRIES": "1",
            "CERKL_SYNC_RETRY_DELAY_SECONDS": "1",
            "CERKL_SYNC_ALERT_EMAIL_TO": ALERT_TO,
            "CERKL_SYNC_ALERT_EMAIL_FROM": "airflow@example.com",
            "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": inbox.port,
                    "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 10},
                }
            ),
        }
    )
    stack = CeleryStack(work_dir=work_dir, extra_env=settings)
    inbox_started = False
    try:
        inbox.controller.start()
        inbox_started = True
        stack.create_databases()
        stack.start()
        wait_until(
            lambda: (
                stack.check_running()
                and stack.query("SELECT 1 FROM serialized_dag WHERE dag_id = %s", (DAG_ID,))
            ),
            timeout=180,
            what="the dag-processor to serialize the DAG",
        )
        errors = stack.query("SELECT filename, stacktrace FROM import_error")
        assert errors == [], errors
        yield {
            "stack": stack,
            "salesforce": salesforce,
            "cerkl": cerkl,
            "sandbox": sandbox,
            "inbox": inbox,
            "batch_folder": batch_folder,
            "report_folder": report_folder,
        }
    finally:
        stack.stop()
        if inbox_started:
            inbox.controller.stop()
        salesforce.close()
        cerkl.close()


def _run_states(stack: CeleryStack, run_type: str) -> dict[str, str]:
    rows = stack.query(
        "SELECT run_id, state FROM dag_run WHERE dag_id = %s AND run_type = %s",
        (DAG_ID, run_type),
    )
    return {run_id: state for run_id, state in rows}


def _task_states(stack: CeleryStack, run_id: str) -> dict[str, str]:
    rows = stack.query(
        "SELECT task_id, state FROM task_instance WHERE dag_id = %s AND run_id = %s",
        (DAG_ID, run_id),
    )
    return {task_id: state for task_id, state in rows}


def _wait_for_runs(stack: CeleryStack, run_type: str, count: int, timeout: float) -> dict:
    def finished() -> dict[str, str] | None:
        stack.check_running()
        states = _run_states(stack, run_type)
        if len(states) >= count and all(s in ("success", "failed") for s in states.values()):
            return states
        return None

    try:
        return wait_until(finished, timeout=timeout, interval=2, what=f"{count} {run_type} runs")
    except StackError as exc:
        states = _run_states(stack, run_type)
        details = {run_id: _task_states(stack, run_id) for run_id in states}
        raise StackError(
            f"{exc}; runs {states}, tasks {details}\n"
            f"scheduler:\n{stack.log_tail('scheduler')}\n"
            f"worker:\n{stack.log_tail('celery worker')}"
        ) from exc


def _task_logs(stack: CeleryStack) -> str:
    return "\n".join(
        path.read_text(errors="replace") for path in (stack.home / "logs").rglob("*.log")
    )


@pytest.fixture(scope="module")
def backfill(deployment) -> dict[str, Any]:
    """Backfill two days with full syncs while watching the shared batch folder."""
    stack: CeleryStack = deployment["stack"]
    for client in (deployment["salesforce"], deployment["cerkl"]):
        client.set_clock(SECOND_DAY + timedelta(days=1, minutes=5))
    with BatchFolderWatcher(deployment["batch_folder"]) as watcher:
        stack.airflow(
            "backfill",
            "create",
            "--dag-id",
            DAG_ID,
            "--from-date",
            FIRST_DAY.date().isoformat(),
            "--to-date",
            SECOND_DAY.date().isoformat(),
            "--max-active-runs",
            "1",
            "--dag-run-conf",
            json.dumps({"full_sync": True}),
        )
        states = _wait_for_runs(stack, "backfill", 2, timeout=600)
    return {"states": states, "batch_files": watcher.seen}


def test_backfill_runs_both_days(backfill, deployment):
    stack = deployment["stack"]
    states = backfill["states"]
    assert len(states) == 2
    for run_id, state in states.items():
        assert state == "success", _task_states(stack, run_id)


def test_backfill_runs_do_not_overlap(backfill, deployment):
    rows = deployment["stack"].query(
        "SELECT start_date, end_date FROM dag_run WHERE dag_id = %s AND run_type = 'backfill' "
        "ORDER BY logical_date",
        (DAG_ID,),
    )
    [(_, first_end), (second_start, _)] = rows
    assert first_end <= second_start


def test_backfill_runs_have_reports(backfill, deployment):
    folder = deployment["report_folder"] / DAG_ID
    reports = sorted(folder.glob("*.json"))
    assert len(reports) == 2, reports
    first, second = (json.loads(path.read_text()) for path in reports)
    assert {first["run_id"], second["run_id"]} == set(backfill["states"])
    assert first["state"] == "success"
    assert first["full_sync"] is True
    assert first["flows"]["new_subscribers_to_contacts"].get("created_contact", 0) > 0
    assert second["state"] == "success"
    assert second["failed_tasks"] == []


def test_backfill_tasks_ran_on_celery_worker(backfill, deployment):
    stack = deployment["stack"]
    for run_id in backfill["states"]:
        rows = stack.query(
            "SELECT task_id, hostname, queue FROM task_instance WHERE dag_id = %s AND run_id = %s",
            (DAG_ID, run_id),
        )
        assert len(rows) == 11
        for task_id, hostname, queue in rows:
            assert hostname, task_id
            assert queue == stack.queue, task_id
    pools = stack.query(
        "SELECT DISTINCT pool FROM task_instance WHERE dag_id = %s AND task_id = %s",
        (DAG_ID, "cerkl_to_salesforce.extract_subscriber_changes"),
    )
    assert pools == [("cerkl_api",)]
    slots = stack.query("SELECT slots FROM slot_pool WHERE pool = %s", ("cerkl_api",))
    assert slots == [(4,)]


def test_backfill_batches_went_through_shared_folder(backfill, deployment):
    assert backfill["batch_files"], "no batch file appeared in the shared folder"
    assert all(name.endswith(".json.gz") for name in backfill["batch_files"])
    logs = _task_logs(deployment["stack"])
    assert "in shared storage" in logs
    assert "batch files of run" in logs


def test_backfill_cleans_shared_folder(backfill, deployment):
    left = [p for p in deployment["batch_folder"].rglob("*") if p.is_file()]
    assert left == []


def test_backfill_end_state_matches(backfill, deployment):
    from tests.dags import sandbox_state as sb
    from tests.include.sandbox.cerkl.api_client import CerklApi

    sandbox = deployment["sandbox"]
    sf = sb.salesforce_client(sandbox.salesforce_url)
    api = CerklApi(sandbox.cerkl_url)
    contacts = sb.contacts(sf)
    subscribers = sb.subscribers(api)
    assert subscribers
    linked = {
        str(c["Cerkl_Subscriber_Id__c"]): c
        for c in contacts.values()
        if c["Cerkl_Subscriber_Id__c"]
    }
    for subscriber_id, subscriber in subscribers.items():
        contact = linked.get(str(subscriber_id))
        assert contact is not None, f"subscriber {subscriber_id} has no Contact"
        assert sb.same_email(contact["Email"], subscriber["email"]), subscriber_id
    segments = sb.segments(api)
    campaigns = sf.query_all(
        "SELECT Id FROM Campaign WHERE Type IN ('Distribution List', 'Committee', 'Board')"
    )["records"]
    assert campaigns
    for campaign in campaigns:
        assert f"SF_{campaign['Id']}" in segments, campaign["Id"]


def test_failed_run_sends_one_alert(backfill, deployment):
    stack: CeleryStack = deployment["stack"]
    inbox: AlertInbox = deployment["inbox"]
    assert inbox.messages == []
    # Every Cerkl token request is rejected, so the tasks that call Cerkl fail.
    deployment["cerkl"].add_fault(path="/v3/oauth/Token", status=401, error_code="invalid_client")
    try:
        stack.airflow(
            "dags", "trigger", DAG_ID, "--logical-date", FAILED_DAY.isoformat(), "--conf", "{}"
        )
        states = _wait_for_runs(stack, "manual", 1, timeout=300)
    finally:
        deployment["cerkl"].clear_faults()
    [(run_id, state)] = states.items()
    assert state == "failed"

    # The dag-processor runs the DAG's failure callback after the scheduler marks the run.
    wait_until(lambda: inbox.messages, timeout=120, what="the failure alert e-mail")
    [message] = inbox.messages
    assert message["To"] == ALERT_TO
    assert DAG_ID in message["Subject"]
    body = _message_text(message)
    assert run_id in body
    assert "cerkl_to_salesforce.extract_subscriber_changes" in body
    assert "CerklAuthError" in body
    assert stack.base_url + f"/dags/{DAG_ID}/runs/" in body


def test_missing_services_skip_with_message(monkeypatch):
    from tests.deployment import test_celery_deployment as module

    monkeypatch.setattr(module, "port_open", lambda host, port: False)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL on 127.0.0.1:5432.*Redis"):
        _require_services()
