"""No seeded email address, name, token, password or client secret leaks out of a DAG run.

A generated org is synced once with every logger at DEBUG, then a second run fails on a
Cerkl fault whose error body quotes an email address. The test reads every captured log
record (with its traceback), the task log files under ``AIRFLOW_HOME/logs``, both run
reports, the failed tasks' exception texts and the failure-alert body. The batch files do
hold emails, because they are the data being synced: the test asserts they existed during
the run and were deleted at its end.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from include.cerkl_sync import alerts
from include.cerkl_sync.batches import BatchStore
from include.sandbox import local_airflow
from include.sandbox.generator import OrgSpec, generate_org
from include.sandbox.local_airflow import run_dag
from tests.dags import sandbox_state as sb

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
ORG_NOW = datetime(2026, 8, 1, 12, 0, tzinfo=UTC)
FIRST_DAY = datetime(2026, 8, 2, tzinfo=UTC)
DEBUG_LOGGERS = (
    "",
    "urllib3",
    "requests",
    "simple_salesforce",
    "airflow.providers.http",
    "airflow.task",
    "airflow.sdk",
    "include",
    "cerkl",
)
SECRETS = (
    local_airflow.SALESFORCE_PASSWORD,
    local_airflow.SALESFORCE_TOKEN,
    local_airflow.CERKL_CLIENT_SECRET,
)


class KeepingHandler(logging.Handler):
    """Handler that keeps the formatted text of every record, traceback included."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.texts.append(self.format(record))
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is kept raw
            self.texts.append(f"{record.name} {record.msg!r} {record.args!r}")


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(record, default=lambda v: v.isoformat()))


def _seed(env) -> dict[str, set[str]]:
    org = generate_org(
        OrgSpec(seed=11, contacts=60, subscribers=40, campaigns=4, leads=5, now=ORG_NOW)
    )
    salesforce = {
        name: [_jsonable(r) for r in org.salesforce_records(name)]
        for name in ("Account", "Contact", "Lead", "Campaign", "CampaignMember")
    }
    cerkl = {
        name: [_jsonable(r) for r in org.cerkl_records(name)]
        for name in ("categories", "subscribers", "unsubscribes", "interests", "segments")
    }
    env.salesforce.seed(salesforce)
    env.cerkl.seed(cerkl)
    people = salesforce["Contact"] + salesforce["Lead"]
    emails = {str(r["Email"]).strip() for r in people if r.get("Email")}
    emails |= {str(r["email"]).strip() for r in cerkl["subscribers"] + cerkl["unsubscribes"]}
    names = {str(r[k]) for r in people for k in ("FirstName", "LastName") if r.get(k)}
    names |= {
        str(r[k])
        for r in cerkl["subscribers"] + cerkl["unsubscribes"]
        for k in ("first_name", "last_name")
        if r.get(k)
    }
    return {"emails": emails, "names": names}


# Issued tokens are not known to the test, so their usual shapes in text are searched for.
TOKEN_PATTERNS = (
    re.compile(r"Bearer\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"access_token\W{1,4}[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"<sessionId>[^<]{8,}"),
)


def _leaks(text: str, seeded: dict[str, set[str]]) -> list[str]:
    """Return the seeded values found in ``text`` (names as whole words, 4+ characters)."""
    lowered = text.lower()
    found = [e for e in seeded["emails"] if e.lower() in lowered]
    found += [s for s in SECRETS if s in text]
    found += [m.group(0)[:20] for pattern in TOKEN_PATTERNS for m in pattern.finditer(text)]
    for name in seeded["names"]:
        if len(name) >= 4 and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text):
            found.append(name)
    return found


@pytest.fixture(scope="module")
def leak_world(sync_environment, sync_dag):
    env = sync_environment
    env.reset()
    env.set_clocks(ORG_NOW)
    seeded = _seed(env)

    handler = KeepingHandler()
    previous_levels = {}
    for name in DEBUG_LOGGERS:
        logger = logging.getLogger(name)
        previous_levels[name] = logger.level
        logger.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)

    batch_snapshots: list[dict[str, Any]] = []
    original_purge = BatchStore.purge

    def snapshot_then_purge(self: BatchStore) -> int:
        files = sorted(self.run_folder.iterdir()) if self.run_folder.exists() else []
        batch_snapshots.append(
            {
                "folder": self.run_folder,
                "files": [p.name for p in files],
                "holds_email": any(_batch_holds_email(p, seeded["emails"]) for p in files),
            }
        )
        return original_purge(self)

    BatchStore.purge = snapshot_then_purge
    try:
        env.set_clocks(FIRST_DAY + timedelta(minutes=5))
        first = run_dag(sync_dag, FIRST_DAY, {"full_sync": True})

        # A failing run: every subscriber create gets a 403 whose body quotes an email.
        day = FIRST_DAY + timedelta(days=1)
        env.set_clocks(day + timedelta(hours=9))
        sf = sb.salesforce_client(env.sandbox.salesforce_url)
        sf.Contact.create(
            {"LastName": "Leakcheck", "FirstName": "Quentin", "Email": "quentin.leak@example.org"}
        )
        seeded["emails"].add("quentin.leak@example.org")
        seeded["names"].update({"Leakcheck", "Quentin"})
        env.cerkl.add_fault(
            path="subscriber$",
            method="POST",
            status=403,
            error_code="FORBIDDEN",
            message="could not create quentin.leak@example.org (Quentin Leakcheck)",
        )
        env.set_clocks(day + timedelta(days=1, minutes=5))
        failed = run_dag(sync_dag, day + timedelta(days=1), {})
    finally:
        BatchStore.purge = original_purge
        root.removeHandler(handler)
        for name, level in previous_levels.items():
            logging.getLogger(name).setLevel(level)
        env.cerkl.clear_faults()
    return {
        "env": env,
        "seeded": seeded,
        "logs": handler.texts,
        "first": first,
        "failed": failed,
        "batches": batch_snapshots,
    }


def _read_batch(path: Path) -> list[dict[str, Any]]:
    import gzip

    return json.loads(gzip.decompress(path.read_bytes()).decode("utf-8"))


def _batch_holds_email(path: Path, emails: set[str]) -> bool:
    text = json.dumps(_read_batch(path), ensure_ascii=False).lower()
    return any(e.lower() in text for e in emails)


def test_secrets_runs_end_as_expected(leak_world):
    assert leak_world["first"].state == "success", leak_world["first"].task_states
    assert leak_world["failed"].state == "failed", leak_world["failed"].task_states
    assert leak_world["failed"].report["failed_tasks"]


def test_secrets_captured_logs_hold_none(leak_world):
    logs = leak_world["logs"]
    assert len(logs) > 100, "the DEBUG capture saw too few records to mean anything"
    assert any(text.startswith("urllib3") for text in logs), "urllib3 DEBUG lines missing"
    leaks = {value for text in logs for value in _leaks(text, leak_world["seeded"])}
    assert leaks == set()


def test_secrets_task_log_files_hold_none(leak_world):
    folder = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
    leaks = {}
    for path in files:
        found = _leaks(path.read_text(encoding="utf-8", errors="replace"), leak_world["seeded"])
        if found:
            leaks[str(path.relative_to(folder))] = found
    assert leaks == {}


def test_secrets_reports_hold_none(leak_world):
    for outcome in (leak_world["first"], leak_world["failed"]):
        assert outcome.report_path is not None
        text = outcome.report_path.read_text(encoding="utf-8")
        assert _leaks(text, leak_world["seeded"]) == []


def test_secrets_exception_texts_hold_none(leak_world):
    errors = [task["error"] for task in leak_world["failed"].report["failed_tasks"]]
    assert errors
    for error in errors:
        assert _leaks(error, leak_world["seeded"]) == [], error


def test_secrets_alert_body_holds_none(leak_world):
    outcome = leak_world["failed"]
    context = {
        "dag_run": SimpleNamespace(dag_id=local_airflow.DAG_ID, run_id=outcome.run_id),
        "dag": SimpleNamespace(dag_id=local_airflow.DAG_ID),
        "run_id": outcome.run_id,
        "reason": "task_failure",
    }
    alert = alerts.build_alert(context)
    assert alert.failed_tasks, alert.text()
    assert alert.report_path is not None
    for body in (alert.subject, alert.text(), alert.html()):
        assert _leaks(body, leak_world["seeded"]) == [], body


def test_secrets_batch_files_deleted_at_run_end(leak_world):
    snapshots = leak_world["batches"]
    assert len(snapshots) == 2
    # The full sync spilled batches to files (xcom_inline_max_bytes is 4096 in the tests).
    assert snapshots[0]["files"]
    assert snapshots[0]["holds_email"] is True
    for snapshot in snapshots:
        assert not snapshot["folder"].exists(), snapshot["folder"]


def test_secrets_leak_search_finds_each_kind():
    seeded = {"emails": {"ada.okafor@example.org"}, "names": {"Okafor"}}
    text = (
        "create ADA.OKAFOR@example.org for Okafor with "
        f"{local_airflow.CERKL_CLIENT_SECRET}, Authorization: Bearer abcdefgh12345678"
    )

    found = _leaks(text, seeded)

    assert "ada.okafor@example.org" in found
    assert "Okafor" in found
    assert local_airflow.CERKL_CLIENT_SECRET in found
    assert any(item.startswith("Bearer") for item in found)
    assert _leaks("Okaforian subscriber 100001", seeded) == []


def test_no_code_disables_tls_verification():
    result = subprocess.run(
        ["git", "grep", "-n", "-I", "-E", r"verify\s*=\s*False", "--", "*.py", "*.cfg", "*.toml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    # A line that quotes the setting in a string, as a test checking for it does, is skipped.
    hits = [
        line
        for line in result.stdout.splitlines()
        if not re.search(r"[\"']verify\s*=\s*False", line)
    ]
    assert hits == []
