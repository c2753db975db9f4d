"""Run the sync DAG in-process against the sandbox: the demo, the tests and the benchmarks.

:func:`configure_environment` points Airflow's connections at the sandbox through
environment variables (``AIRFLOW_CONN_*``, ``AIRFLOW_VAR_*``) and the transport-adapter
setting, exactly as an operator would configure a deployment; :func:`run_dag` runs one DAG run
with ``dag.test()`` on a migrated metadata DB and returns its report.

``AIRFLOW_HOME`` must be set before the first import of Airflow in the process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "cerkl_salesforce_sync"

SALESFORCE_USERNAME = "sync.user@sandbox.example"
SALESFORCE_PASSWORD = "sandbox-password"
SALESFORCE_TOKEN = "sandbox-token"
CERKL_CLIENT_ID = "sandbox-client-id"
CERKL_CLIENT_SECRET = "sandbox-client-secret"


@dataclass
class RunOutcome:
    """Outcome of one DAG run: its state, task states and report."""

    state: str
    run_id: str
    report: dict[str, Any] | None
    report_path: Path | None
    task_states: dict[str, str]


def configure_environment(
    *,
    salesforce_url: str,
    cerkl_url: str,
    state_url: str,
    work_dir: Path,
    config: dict[str, Any] | None = None,
    cerkl_extra: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Set the connections, Variables and settings the DAG reads, for the sandbox.

    :param salesforce_url: root URL of the Salesforce sandbox (the transport adapter target).
    :param cerkl_url: Cerkl sandbox base URL ending in ``/v3``.
    :param state_url: SQLAlchemy URL of the sync-state DB.
    :param work_dir: folder for batch files and reports.
    :param config: ``cerkl_sync_config`` settings on top of the defaults.
    :param cerkl_extra: extras of the ``cerkl_default`` connection.
    :return: the variables set.
    """
    settings = {"report_folder": str(work_dir / "reports"), **(config or {})}
    extra = {"requests_per_second": 200, "max_concurrent_requests": 8, **(cerkl_extra or {})}
    values = {
        "CERKL_SYNC_SALESFORCE_SANDBOX_URL": salesforce_url,
        "AIRFLOW_CONN_SALESFORCE_DEFAULT": json.dumps(
            {
                "conn_type": "salesforce",
                "login": SALESFORCE_USERNAME,
                "password": SALESFORCE_PASSWORD,
                "extra": {"security_token": SALESFORCE_TOKEN},
            }
        ),
        "AIRFLOW_CONN_CERKL_DEFAULT": json.dumps(
            {
                "conn_type": "http",
                "host": cerkl_url,
                "login": CERKL_CLIENT_ID,
                "password": CERKL_CLIENT_SECRET,
                "extra": extra,
            }
        ),
        "AIRFLOW_CONN_CERKL_SYNC_STATE": json.dumps(
            {"conn_type": "generic", "extra": {"url": state_url}}
        ),
        "CERKL_SYNC_BATCH_STORAGE": "file://" + str((work_dir / "batches").resolve()),
        "AIRFLOW_VAR_CERKL_SYNC_CONFIG": json.dumps(settings),
        "AIRFLOW_VAR_CERKL_ORGANIZATION_ID": "001C000001aTtMa",
    }
    os.environ.update(values)
    return values


def migrate_airflow_db() -> None:
    """Create or upgrade the Airflow metadata DB of ``AIRFLOW_HOME`` (SQLite unless set)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )


def load_dag() -> Any:
    """Parse the DAG file and return the DAG; raises when the file has import errors."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag.dags[DAG_ID]


def report_path_for(run_id: str) -> Path:
    """Return where the report of a run is written, from the current settings."""
    from include.cerkl_sync.config import load_config_from_environment

    folder = load_config_from_environment().resolved_report_folder()
    return Path(folder) / DAG_ID / (re.sub(r"[^A-Za-z0-9_.+-]+", "_", run_id) + ".json")


def run_dag(
    dag: Any, logical_date: datetime | None, conf: dict[str, Any] | None = None
) -> RunOutcome:
    """Run the DAG once in this process and return its outcome and report."""
    # Every param is passed: dag.test() keeps the conf of an earlier run in the DAG object.
    run_conf = {"dry_run": False, "full_sync": False, **(conf or {})}
    dag_run = dag.test(logical_date=logical_date, run_conf=run_conf)
    path = report_path_for(dag_run.run_id)
    report = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    return RunOutcome(
        state=str(dag_run.state),
        run_id=dag_run.run_id,
        report=report,
        report_path=path if path.exists() else None,
        task_states=states,
    )
