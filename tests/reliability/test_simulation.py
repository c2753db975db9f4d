"""The two-way convergence simulation: a few seeded days, and its checks catching a defect."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from include.sandbox.local_airflow import run_dag
from include.sandbox.simulation import SandboxWorld, Simulation, _Snapshot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SEED = 1
DAYS = 3


@pytest.fixture(scope="module")
def world(sync_environment, sync_dag) -> SandboxWorld:
    env = sync_environment

    def run(logical_date: datetime, conf: dict[str, Any]) -> dict[str, Any] | None:
        return run_dag(sync_dag, logical_date, conf).report

    return SandboxWorld(
        salesforce_url=env.sandbox.salesforce_url,
        cerkl_url=env.sandbox.cerkl_url,
        salesforce=env.salesforce,
        cerkl=env.cerkl,
        reset=env.reset,
        run=run,
    )


def test_simulation_days_converge(world, capsys):
    simulation = Simulation(world, seed=SEED, contacts=150)
    assert [simulation.is_quiet(n) for n in range(1, DAYS + 1)] == [False, False, True]

    result = simulation.run(DAYS)

    with capsys.disabled():
        print("\n" + result.summary())
    assert result.failures == []
    assert result.days == DAYS
    assert result.quiet_days == 1
    assert result.operations > 10
    assert result.checks > 500


def test_simulation_checks_catch_disagreement(world):
    simulation = Simulation(world, seed=SEED, contacts=150)
    contact = {
        "Id": "003000000000001AAA",
        "FirstName": "Ada",
        "LastName": "Okafor",
        "Email": "ada@example.org",
        "HasOptedOutOfEmail": True,
        "Cerkl_Unsubscribe__c": False,
        "Cerkl_Subscriber_Id__c": "101",
        "IsDeleted": False,
    }
    twin = {**contact, "Id": "003000000000002AAA", "HasOptedOutOfEmail": False}
    subscriber = {"id": 101, "email": "ADA@example.org", "first_name": "Ana", "last_name": "Okafor"}
    snapshot = _Snapshot(
        contacts={contact["Id"]: contact, twin["Id"]: twin},
        subscribers={101: subscriber},
        unsubscribes={},
        segments={},
        campaigns=[{"Id": "701000000000001AAA", "Type": "Board", "IsDeleted": False}],
        members=[{"CampaignId": "701000000000001AAA", "ContactId": contact["Id"]}],
    )

    simulation._check_state(
        snapshot,
        {"conflicts": []},
        "fabricated",
        edited_both={(contact["Id"], "last_name")},
        counters={"salesforce": {"by_endpoint": {"PATCH /x": 1}}, "cerkl": {"by_endpoint": {}}},
    )

    failures = "\n".join(simulation.result.failures)
    assert "differ in first_name" in failures
    assert "edited on both sides but the report has no conflict" in failures
    assert "opted-out Contact" in failures
    assert "subscribers held by several Contacts" in failures
    assert "emails got a second Contact" in failures
    assert "segment of Campaign" in failures
    assert "a quiet day issued writes" in failures
