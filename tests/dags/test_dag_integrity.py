"""Integrity of the DAG folder: it parses without Variables, and the DAG's wiring is as documented.

Each test parses the folder afresh with ``DagBag``, because the DAG reads its settings from the
environment at parse time.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
DAG_ID = "cerkl_salesforce_sync"
PARSE_ENV = (
    "CERKL_SYNC_SCHEDULE",
    "CERKL_SYNC_TIMEZONE",
    "CERKL_SYNC_TASK_RETRIES",
    "CERKL_SYNC_RETRY_DELAY_SECONDS",
    "CERKL_SYNC_TASK_TIMEOUT_MINUTES",
    "CERKL_SYNC_ALERT_EMAIL_TO",
    "CERKL_SYNC_ALERT_SLACK_CHANNEL",
)
TASK_IDS = {
    "start_run",
    "salesforce_to_cerkl.extract_contacts",
    "salesforce_to_cerkl.plan_contact_changes",
    "salesforce_to_cerkl.apply_contact_changes",
    "cerkl_to_salesforce.extract_subscriber_changes",
    "cerkl_to_salesforce.link_new_subscribers",
    "cerkl_to_salesforce.apply_unsubscribes",
    "cerkl_to_salesforce.apply_subscriber_changes",
    "campaigns_to_segments.extract_campaigns",
    "campaigns_to_segments.sync_segments",
    "write_run_report",
}
# Tasks that call the Cerkl API. The cerkl_api pool caps how many of them run at once.
CERKL_TASK_IDS = {
    "salesforce_to_cerkl.plan_contact_changes",
    "salesforce_to_cerkl.apply_contact_changes",
    "cerkl_to_salesforce.extract_subscriber_changes",
    "cerkl_to_salesforce.link_new_subscribers",
    "cerkl_to_salesforce.apply_subscriber_changes",
    "campaigns_to_segments.sync_segments",
}


@pytest.fixture
def parse_dags(monkeypatch: pytest.MonkeyPatch):
    """Return a function that parses the DAG folder with no Variables and no DAG settings set.

    ``Variable.get`` raises during the parse, so a module-level read fails the parse.
    """
    import os

    from airflow.sdk import Variable

    for name in list(os.environ):
        if name.startswith("AIRFLOW_VAR_") or name in PARSE_ENV:
            monkeypatch.delenv(name)

    def _no_variables(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"Variable.get{args} was called while the DAG file was parsed")

    def parse(**env: str) -> Any:
        from airflow.dag_processing.dagbag import DagBag

        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with monkeypatch.context() as patch:
            patch.setattr(Variable, "get", _no_variables)
            return DagBag(dag_folder=str(DAGS_FOLDER))

    return parse


@pytest.fixture
def sync_dag_defaults(parse_dags):
    bag = parse_dags()
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]


def test_dag_folder_imports_without_errors(parse_dags):
    bag = parse_dags()
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {DAG_ID}


def test_dag_task_groups_and_task_ids(sync_dag_defaults):
    dag = sync_dag_defaults
    assert set(dag.task_ids) == TASK_IDS
    assert set(dag.task_group.children) == {
        "start_run",
        "salesforce_to_cerkl",
        "cerkl_to_salesforce",
        "campaigns_to_segments",
        "write_run_report",
    }


def test_dag_schedule_defaults_to_daily_utc(sync_dag_defaults):
    from airflow.sdk import CronDataIntervalTimetable

    timetable = sync_dag_defaults.timetable
    assert isinstance(timetable, CronDataIntervalTimetable)
    assert timetable.expression == "0 0 * * *"
    assert str(timetable.timezone) == "UTC"


def test_dag_schedule_follows_environment(parse_dags):
    bag = parse_dags(CERKL_SYNC_SCHEDULE="30 2 * * 1-5", CERKL_SYNC_TIMEZONE="Europe/Berlin")
    timetable = bag.dags[DAG_ID].timetable
    assert timetable.expression == "30 2 * * 1-5"
    assert str(timetable.timezone) == "Europe/Berlin"


def test_dag_run_settings_and_params(sync_dag_defaults):
    dag = sync_dag_defaults
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    params = dag.params.dump()
    assert params == {"dry_run": False, "full_sync": False}


def test_every_task_retries_with_backoff_and_timeout(sync_dag_defaults):
    for task in sync_dag_defaults.tasks:
        assert task.retries == 3, task.task_id
        assert task.retry_delay == timedelta(seconds=120), task.task_id
        assert task.retry_exponential_backoff, task.task_id
        assert task.max_retry_delay == timedelta(minutes=30), task.task_id
        assert task.execution_timeout == timedelta(minutes=240), task.task_id


def test_retry_settings_follow_environment(parse_dags):
    bag = parse_dags(
        CERKL_SYNC_TASK_RETRIES="5",
        CERKL_SYNC_RETRY_DELAY_SECONDS="30",
        CERKL_SYNC_TASK_TIMEOUT_MINUTES="15",
    )
    for task in bag.dags[DAG_ID].tasks:
        assert task.retries == 5, task.task_id
        assert task.retry_delay == timedelta(seconds=30), task.task_id
        assert task.execution_timeout == timedelta(minutes=15), task.task_id


def test_cerkl_tasks_use_cerkl_api_pool(sync_dag_defaults):
    for task in sync_dag_defaults.tasks:
        expected = "cerkl_api" if task.task_id in CERKL_TASK_IDS else "default_pool"
        assert task.pool == expected, task.task_id


def test_report_task_runs_when_upstream_failed(sync_dag_defaults):
    dag = sync_dag_defaults
    report = dag.get_task("write_run_report")
    assert report.trigger_rule == "all_done"
    # The report task is the only leaf, so its failure decides the run's state.
    assert [task.task_id for task in dag.leaves] == ["write_run_report"]
    assert report.get_flat_relative_ids(upstream=True) == TASK_IDS - {"write_run_report"}


def test_alerts_off_without_settings(sync_dag_defaults):
    assert not sync_dag_defaults.on_failure_callback


def test_alerts_on_from_environment(parse_dags):
    bag = parse_dags(
        CERKL_SYNC_ALERT_EMAIL_TO="ops@example.com", CERKL_SYNC_ALERT_SLACK_CHANNEL="#sync"
    )
    callbacks = bag.dags[DAG_ID].on_failure_callback
    assert len(callbacks) == 1
    assert callbacks[0].email_to == ["ops@example.com"]
    assert callbacks[0].slack_channel == "#sync"
