"""API calls of the sync's steps on small scenarios, counted by the sandbox and the clients.

Each test builds a scenario with the benchmark's harness (a synced org in the sandbox, one
day of changes) and runs the DAG's tasks in this process without latency or rate limit.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator

import pytest

from bench.run import BenchResult, main, run_benchmark
from bench.scenarios import Scenario

pytestmark = pytest.mark.timeout(300)

UPSERT = "PATCH /services/data/vXX.X/composite/sobjects/Contact/Cerkl_Subscriber_Id__c"
UPDATE = "PATCH /services/data/vXX.X/composite/sobjects"
CREATE_SUBSCRIBERS = "POST subscriber"


@pytest.fixture
def clean_environment() -> Iterator[None]:
    """Restore the environment variables that the benchmark points at its own sandbox."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _run(scenario: Scenario, tmp_path, **options) -> BenchResult:
    return run_benchmark(
        scenario, work_dir=tmp_path, latency_ms=0, cerkl_rate=None, isolate=False, **options
    )


def _task(result: BenchResult, name: str) -> dict:
    return next(task for task in result.tasks if task["name"] == name)


def test_new_subscribers_upsert_in_two_calls(tmp_path, clean_environment):
    scenario = Scenario(
        name="new-subscribers", contacts=300, subscribers=200, new_subscribers_no_match=201
    )
    # Pages of 50 subscribers: the extract gathers them into one batch, so the 201 creates
    # take two full upserts instead of one partial upsert per page.
    result = _run(scenario, tmp_path, cerkl_page_size=50)
    calls = _task(result, "link_new_subscribers")["api_calls"]["salesforce"]["by_endpoint"]
    flow = result.records["flows"]["new_subscribers_to_contacts"]
    assert flow["created_contact"] == 201
    assert calls[UPSERT] == 2
    assert UPDATE not in calls


def test_new_contacts_create_subscribers_in_three_calls(tmp_path, clean_environment, monkeypatch):
    from cerkl.hooks import CerklHook

    sizes: list[int] = []
    original = CerklHook._create_batch

    def record_batch(hook, batch, emails):
        sizes.append(len(batch))
        return original(hook, batch, emails)

    monkeypatch.setattr(CerklHook, "_create_batch", record_batch)
    scenario = Scenario(name="new-contacts", contacts=300, subscribers=200, new_contacts=201)
    result = _run(scenario, tmp_path)
    calls = _task(result, "apply_contact_changes")["api_calls"]["cerkl"]["by_endpoint"]
    flow = result.records["flows"]["contacts_to_subscribers"]
    assert flow["created"] == 201
    assert calls[CREATE_SUBSCRIBERS] == 3
    assert sorted(sizes) == [1, 100, 100]


def test_smoke_scenario_prints_summary_line(tmp_path, clean_environment, capsys, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert (
        main(["--scenario", "smoke", "--latency-ms", "0", "--cerkl-rate", "0", "--in-process"]) == 0
    )
    last = capsys.readouterr().out.strip().splitlines()[-1]
    pattern = (
        r"salesforce_calls=(\d+) minimum=(\d+) ratio=([\d.]+) cerkl_calls=(\d+) "
        r"wall_s=[\d.]+ latency_bound_s=[\d.]+ peak_rss_mb=\d+"
    )
    match = re.fullmatch(pattern, last)
    assert match is not None, last
    assert int(match.group(1)) > 0
    assert int(match.group(2)) > 0
    assert int(match.group(4)) > 0


def test_contact_updates_skip_subscriber_reread(tmp_path, clean_environment):
    scenario = Scenario(name="renamed", contacts=300, subscribers=200, renamed_contacts=30)
    result = _run(scenario, tmp_path)
    planned = _task(result, "plan_contact_changes")["api_calls"]["cerkl"]["by_endpoint"]
    applied = _task(result, "apply_contact_changes")["api_calls"]["cerkl"]["by_endpoint"]
    updated = result.records["flows"]["contacts_to_subscribers"]["updated"]
    # A few generated Contacts are opted out, so they are not updated.
    assert updated >= 25
    # The plan reads each subscriber once; the update reuses its status and privacy level.
    assert planned["GET subscriber/{id}"] == 30
    assert applied["PUT subscriber/{id}"] == updated
    assert "GET subscriber/{id}" not in applied


@pytest.mark.parametrize(("bulk_polls", "polls"), [(0, 0), (1, 2)])
def test_bulk_job_polls_follow_option(tmp_path, clean_environment, bulk_polls, polls):
    # 1,001 renamed subscribers make one Contact update of more than 1,000 records: one job.
    scenario = Scenario(
        name="bulk-update", contacts=1200, subscribers=1100, renamed_subscribers=1001
    )
    result = _run(scenario, tmp_path, bulk_polls=bulk_polls)
    calls = _task(result, "apply_subscriber_changes")["api_calls"]["salesforce"]["by_endpoint"]
    assert calls["POST /services/data/vXX.X/jobs/ingest"] == 1
    assert calls.get("GET /services/data/vXX.X/jobs/ingest/{id}", 0) == polls


def test_first_sync_writes_once_per_task_and_kind(tmp_path, clean_environment):
    # Batches of 500 records split each write step's work into several batches. The writes
    # of all batches still go out as one call per kind of write, which is one Bulk API 2.0
    # job for more than 1,000 records.
    result = _run("first-sync", tmp_path, scale=0.015, sync_config={"batch_size": 500})
    for name in ("link_new_subscribers", "apply_contact_changes", "apply_subscriber_changes"):
        task = _task(result, name)
        writes = task["work"]["writes"]
        kinds = Counter((write["kind"], write["sobject"]) for write in writes)
        assert writes and set(kinds.values()) == {1}, (name, writes)
        calls = task["api_calls"]["salesforce"]["by_endpoint"]
        jobs = calls.get("POST /services/data/vXX.X/jobs/ingest", 0)
        assert jobs == sum(1 for write in writes if write["rows"] > 1000), (name, writes)
        assert any(write["rows"] > 1000 for write in writes), (name, writes)
    flows = result.records["flows"]
    assert flows["new_subscribers_to_contacts"]["linked"] > 1000
