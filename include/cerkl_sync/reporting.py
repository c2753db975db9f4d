"""The DAG's last task: gather what the run did, write the report, clean up.

The task runs whatever happened upstream (trigger rule ``all_done``). When any task failed it
still writes the report, then fails itself: it is the DAG's only leaf, so the run is marked
failed and the failure alert fires.
"""

from __future__ import annotations

import logging
from typing import Any

from include.cerkl_sync.batches import BatchStore
from include.cerkl_sync.config import SyncConfig, parse_config
from include.cerkl_sync.report import build_report, summarize, write_report
from include.cerkl_sync.runtime import API_CALLS_KEY, ERROR_KEY, FLOWS_KEY

log = logging.getLogger(__name__)

FAILED_STATES = {"failed", "upstream_failed"}


def _task_states(ti: Any, dag_id: str, run_id: str) -> dict[str, str]:
    states = ti.get_task_states(dag_id=dag_id, run_ids=[run_id])
    if run_id in states and isinstance(states[run_id], dict):
        states = states[run_id]
    return {str(task_id): str(state) for task_id, state in states.items()}


def _config_without_run_info() -> SyncConfig:
    """Read the settings when the first task failed; fall back to the defaults if invalid."""
    from include.cerkl_sync.config import ConfigError, load_config

    try:
        return load_config()
    except ConfigError:
        log.warning("cerkl_sync_config is invalid; writing the report to the default folder")
        return SyncConfig()


def finish_run(context: Any, dag_id: str) -> str:
    """Write the run report and delete the run's batch files.

    :return: the report's path.
    :raises AirflowFailException: after writing, when any task of the run failed.
    """
    from airflow.sdk.exceptions import AirflowFailException

    ti = context["ti"]
    run_id = context["run_id"]
    task_ids = [t for t in context["dag"].task_ids if t != ti.task_id]
    run_info = ti.xcom_pull(task_ids="start_run")
    flows = ti.xcom_pull(task_ids=task_ids, key=FLOWS_KEY) or []
    calls = ti.xcom_pull(task_ids=task_ids, key=API_CALLS_KEY) or []
    errors = dict(zip(task_ids, ti.xcom_pull(task_ids=task_ids, key=ERROR_KEY) or [], strict=False))
    outputs = [{"flows": f} for f in flows if f] + [{"api_calls": c} for c in calls if c]

    states = _task_states(ti, dag_id, run_id)
    failed = [
        {"task_id": task_id, "error": errors.get(task_id) or state}
        for task_id, state in sorted(states.items())
        if task_id != ti.task_id and state in FAILED_STATES
    ]
    report = build_report(
        dag_id=dag_id,
        run_id=run_id,
        run_info=run_info,
        task_outputs=outputs,
        failed_tasks=failed,
        state="failed" if failed else "success",
    )
    config = parse_config(run_info["config"]) if run_info else _config_without_run_info()
    path = write_report(report, config.resolved_report_folder())
    for line in summarize(report).splitlines():
        log.info("%s", line)
    log.info("Run report: %s", path)

    try:
        BatchStore(run_id, inline_max_bytes=config.xcom_inline_max_bytes).purge()
    except OSError:
        log.exception("Could not delete the batch files of run %s; delete them by hand", run_id)
    if failed:
        raise AirflowFailException(
            f"Run {run_id} failed in {', '.join(t['task_id'] for t in failed)}; "
            f"report written to {path}"
        )
    return str(path)
