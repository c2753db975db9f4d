"""Fixtures of the reliability tests and the ``faults survived`` figure of the summary."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.dags.conftest import SyncEnvironment, sync_dag, sync_environment  # noqa: F401
from tests.reliability import helpers

SCENARIO_MARK = "fault_scenario"
_outcomes: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{SCENARIO_MARK}: a fault scenario counted in the 'faults survived' figure"
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if SCENARIO_MARK not in report.keywords:
        return
    if report.when == "call" or report.outcome != "passed":
        _outcomes.setdefault(report.nodeid, report.outcome)
        if report.outcome != "passed":
            _outcomes[report.nodeid] = report.outcome


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _outcomes:
        return
    survived = sum(1 for outcome in _outcomes.values() if outcome == "passed")
    terminalreporter.write_line(f"faults survived: {survived} of {len(_outcomes)} scenarios")


@pytest.fixture(scope="session")
def baseline(sync_environment: SyncEnvironment) -> dict[str, Any]:  # noqa: F811
    """End state of both systems after the steps ran once on the seeded org without faults."""
    helpers.seed_org(sync_environment)
    helpers.Pipeline("baseline").rest()
    return helpers.end_state(sync_environment)


@pytest.fixture(scope="session")
def baseline_day_two(sync_environment: SyncEnvironment) -> dict[str, Any]:  # noqa: F811
    """End state after a clean first day, Contact changes, and a clean run for the next day."""
    helpers.seed_org(sync_environment)
    helpers.Pipeline("baseline").rest()
    helpers.change_contacts_on_day_two(sync_environment)
    helpers.Pipeline("baseline-day-two", day=helpers.DAY_TWO, full_sync=False).rest()
    return helpers.end_state(sync_environment)


@pytest.fixture
def env(
    sync_environment: SyncEnvironment,  # noqa: F811
    baseline: dict[str, Any],
    baseline_day_two: dict[str, Any],
) -> Iterator[SyncEnvironment]:
    """The sandbox with the seeded org and an empty state DB, faults cleared afterwards.

    The baselines come first because computing them runs the sync on the sandbox.
    """
    helpers.seed_org(sync_environment)
    try:
        yield sync_environment
    finally:
        for client in (sync_environment.salesforce, sync_environment.cerkl):
            client.clear_faults()
            client.set_latency(0)
        sync_environment.salesforce.set_api_limit(100_000)
