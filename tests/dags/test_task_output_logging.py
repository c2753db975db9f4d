"""Task outputs carry records with emails and names, so no task may log its return value."""

from __future__ import annotations

from include.sandbox.local_airflow import load_dag


def test_no_task_logs_its_return_value():
    dag = load_dag()
    for task in dag.tasks:
        assert task.show_return_value_in_logs is False, task.task_id
