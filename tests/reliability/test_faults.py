"""Cerkl and Salesforce faults during the sync's steps: retries, waits and a complete end state.

Each test seeds the same small org and runs the steps before the one under test without
faults. It then injects faults through the sandbox controls and runs that step and the rest.
Both systems must end equal to a run without faults (the ``baseline`` fixture). The clients'
retry waits are recorded and cut to 10 ms.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

import pytest

from include.cerkl_sync.salesforce_io import SalesforceApiLimitError
from include.cerkl_sync.salesforce_transport import build_salesforce_session
from tests.reliability import helpers

pytestmark = [pytest.mark.timeout(120), pytest.mark.fault_scenario]

COLLECTIONS_PATH = r"/composite/sobjects$"
UPSERT_PATH = r"/composite/sobjects/Contact/Cerkl_Subscriber_Id__c$"
API_LIMIT = 10


def _fired(client: Any) -> dict[int, int]:
    return {rule["id"]: rule["fired"] for rule in client.faults()}


def _set_cerkl_extras(monkeypatch: pytest.MonkeyPatch, **extras: Any) -> None:
    connection = json.loads(os.environ["AIRFLOW_CONN_CERKL_DEFAULT"])
    connection["extra"] = {**connection["extra"], **extras}
    monkeypatch.setenv("AIRFLOW_CONN_CERKL_DEFAULT", json.dumps(connection))


def test_baseline_rerun_reaches_same_state(env, baseline):
    pipeline = helpers.Pipeline("clean")
    pipeline.rest()
    assert helpers.end_state(env) == baseline


def test_cerkl_429_storm_waits_retry_after(env, baseline):
    pipeline = helpers.Pipeline("cerkl-429")
    pipeline.until("apply_contact_changes")
    creates = env.cerkl.add_fault(
        path=r"/v3/subscriber$",
        method="POST",
        status=429,
        error_code="RATE_LIMITED",
        retry_after=7,
        count=3,
    )
    pipeline.step("apply_contact_changes")
    assert _fired(env.cerkl)[creates] == 3
    assert pipeline.sleeps.count(7.0) == 3, pipeline.sleeps

    # Interest reads run in several threads at once, so the storm hits them in parallel.
    pipeline.until("apply_subscriber_changes")
    reads = env.cerkl.add_fault(
        path=r"/v3/subscriber/\d+/subscriber_interest$", status=429, retry_after=5, count=6
    )
    result = pipeline.step("apply_subscriber_changes")
    assert _fired(env.cerkl)[reads] == 6
    assert pipeline.sleeps.count(5.0) == 6, pipeline.sleeps
    assert all(r["rejected"] == [] for r in result)
    pipeline.rest()
    assert helpers.end_state(env) == baseline


def test_cerkl_5xx_burst_on_segments_retried(env, baseline):
    pipeline = helpers.Pipeline("cerkl-5xx")
    pipeline.until("sync_segments")
    env.reset_counters()
    create = env.cerkl.add_fault(path=r"/v3/segment$", method="POST", status=502, count=2)
    members = env.cerkl.add_fault(
        path=r"/v3/segment/\d+/subscriber$", method="POST", status=503, count=5
    )
    reads = env.cerkl.add_fault(path=r"/v3/segment", method="GET", status=500, count=3)
    pipeline.step("sync_segments")

    fired = _fired(env.cerkl)
    assert fired == {create: 2, members: 5, reads: 3}
    by_endpoint = env.cerkl.counters()["by_endpoint"]
    segments = len(baseline["segments"])
    assert by_endpoint["POST segment"] == segments + 2
    assert helpers.end_state(env) == baseline


def test_cerkl_read_timeouts_retried(env, baseline, monkeypatch):
    _set_cerkl_extras(monkeypatch, read_timeout=0.5)
    pipeline = helpers.Pipeline("cerkl-timeout")
    pipeline.until("apply_subscriber_changes")
    rule = env.cerkl.add_fault(
        path=r"/v3/subscriber/\d+/subscriber_interest$",
        action="timeout",
        delay_seconds=5,
        count=3,
    )
    result = pipeline.step("apply_subscriber_changes")

    assert _fired(env.cerkl)[rule] == 3
    interests = next(r for r in result if r["flow"] == "interests_to_contacts")
    assert interests["rejected"] == []
    pipeline.rest()
    assert helpers.end_state(env) == baseline


def test_cerkl_dropped_connections_retried(env, baseline):
    pipeline = helpers.Pipeline("cerkl-drop")
    pipeline.until("apply_contact_changes")
    rule = env.cerkl.add_fault(path=r"/v3/", action="drop", count=4)
    pipeline.step("apply_contact_changes")
    pipeline.until("sync_segments")
    second = env.cerkl.add_fault(path=r"/v3/segment", action="drop", count=4)
    pipeline.step("sync_segments")

    fired = _fired(env.cerkl)
    assert fired[rule] == 4
    assert fired[second] == 4
    assert helpers.end_state(env) == baseline


def test_cerkl_token_expiry_renews_once(env, baseline):
    pipeline = helpers.Pipeline("cerkl-token")
    pipeline.until("apply_contact_changes")
    env.reset_counters()
    # Cerkl rejects the token in the middle of the step, as after its expiry.
    rule = env.cerkl.add_fault(
        path=r"/v3/subscriber$", method="POST", status=401, error_code="INVALID_TOKEN", count=1
    )
    pipeline.step("apply_contact_changes")

    assert _fired(env.cerkl)[rule] == 1
    # One token when the step's hook starts, one after the rejection.
    assert env.cerkl.counters()["by_endpoint"].get("POST oauth/Token") == 2
    pipeline.rest()
    assert helpers.end_state(env) == baseline


@pytest.mark.parametrize(
    ("step", "path", "method"),
    [
        ("extract_contacts", r"/queryAll$", "GET"),
        ("link_new_subscribers", UPSERT_PATH, "PATCH"),
        ("apply_subscriber_changes", COLLECTIONS_PATH, "PATCH"),
    ],
)
def test_salesforce_401_logs_in_once(env, baseline, step, path, method):
    pipeline = helpers.Pipeline(f"sf-401-{step}")
    pipeline.until(step)
    env.reset_counters()
    rule = env.salesforce.add_fault(
        path=path, method=method, status=401, error_code="INVALID_SESSION_ID", count=1
    )
    pipeline.step(step)

    assert _fired(env.salesforce)[rule] == 1
    # One login when the step's client starts, one after the expiry.
    assert helpers.login_count(env.salesforce.counters()) == 2
    pipeline.rest()
    assert helpers.end_state(env) == baseline


def test_salesforce_session_expiry_between_requests(env, baseline):
    pipeline = helpers.Pipeline("sf-expire")
    pipeline.until("link_new_subscribers")
    session = build_salesforce_session()
    responses: list[str] = []
    expired_after: list[int] = []

    def expire_every_second_response(response: Any, *args: Any, **kwargs: Any) -> None:
        if "/services/data/" not in response.url:
            return
        responses.append(f"{response.request.method} {response.status_code}")
        if response.status_code < 300 and len(responses) % 2 == 0:
            env.salesforce.expire_sessions()
            expired_after.append(len(responses))

    session.hooks["response"].append(expire_every_second_response)
    env.reset_counters()
    pipeline.step("link_new_subscribers", salesforce_session=session)

    statuses = [r.split()[1] for r in responses]
    # Each expiry that another request follows costs that request one 401 and one login.
    followed = [n for n in expired_after if n < len(responses)]
    assert followed, responses
    assert statuses.count("401") == len(followed)
    assert helpers.login_count(env.salesforce.counters()) == 1 + len(followed)
    pipeline.rest()
    assert helpers.end_state(env) == baseline


def test_salesforce_5xx_and_drops_retried(env, baseline):
    pipeline = helpers.Pipeline("sf-5xx")
    pipeline.until("link_new_subscribers")
    reads = env.salesforce.add_fault(path=r"/query$", status=503, count=2)
    upsert = env.salesforce.add_fault(path=UPSERT_PATH, method="PATCH", action="drop", count=1)
    update = env.salesforce.add_fault(path=COLLECTIONS_PATH, method="PATCH", status=500, count=2)
    pipeline.step("link_new_subscribers")
    pipeline.until("apply_subscriber_changes")
    dropped = env.salesforce.add_fault(
        path=COLLECTIONS_PATH, method="PATCH", action="drop", count=2
    )
    pipeline.step("apply_subscriber_changes")

    assert _fired(env.salesforce) == {reads: 2, upsert: 1, update: 2, dropped: 2}
    # Backoff of 1 s, then 2 s, before the retries of each request.
    assert 1.0 in pipeline.sleeps
    assert 2.0 in pipeline.sleeps
    pipeline.rest()
    assert helpers.end_state(env) == baseline


def test_lock_row_faults_resend_only_failed(env, baseline):
    pipeline = helpers.Pipeline("sf-lock")
    pipeline.until("apply_subscriber_changes")
    sf = helpers.sb.salesforce_client(env.sandbox.salesforce_url)
    linked = sorted(
        c["Id"] for c in helpers.sb.contacts(sf).values() if c["Cerkl_Subscriber_Id__c"]
    )
    locked = set(linked[::2])
    env.salesforce.add_record_fault("Contact", sorted(locked), "UNABLE_TO_LOCK_ROW", times=1)
    session = build_salesforce_session()
    sent: list[list[str]] = []

    def record_update_ids(response: Any, *args: Any, **kwargs: Any) -> None:
        request = response.request
        if request.method == "PATCH" and request.url.endswith("/composite/sobjects"):
            sent.append([r["Id"] for r in json.loads(request.body)["records"]])

    session.hooks["response"].append(record_update_ids)
    pipeline.step("apply_subscriber_changes", salesforce_session=session)

    assert len(sent) == 2, sent
    first, resent = sent
    assert set(resent) == locked & set(first)
    assert 0 < len(resent) < len(first)
    # The first of the lock-retry delays (2, 5, 15 s) came before the re-send.
    assert 2.0 in pipeline.sleeps
    pipeline.rest()
    assert helpers.end_state(env) == baseline


def test_api_limit_stops_step_then_next_run_finishes(env, baseline):
    from airflow.sdk.exceptions import AirflowFailException

    from include.cerkl_sync.flows.subscribers import NEW_FLOW
    from include.cerkl_sync.runtime import task_clients
    from include.cerkl_sync.state import SyncStateStore

    pipeline = helpers.Pipeline("sf-limit")
    pipeline.until("link_new_subscribers")
    env.salesforce.set_api_limit(1000, used=1000)
    env.reset_counters()
    step = "link_new_subscribers"
    # AirflowFailException fails the task without the retries that would spend more allowance.
    with pytest.raises(AirflowFailException, match="REQUEST_LIMIT_EXCEEDED") as raised:
        with task_clients(pipeline.run.to_dict()) as clients:
            step_clients = helpers.StepClients(
                salesforce=clients.salesforce,
                cerkl=clients.cerkl,
                state=clients.state,
                batches=clients.batches,
            )
            helpers.run_step(step, pipeline.run, pipeline.arguments(step), step_clients)

    assert isinstance(raised.value.__cause__, SalesforceApiLimitError)
    assert helpers.write_count(env.salesforce.counters()) == 0
    assert helpers.write_count(env.cerkl.counters()) == 0
    state = SyncStateStore(env.state_url)
    try:
        assert state.get_window_end(NEW_FLOW) is None
    finally:
        state.dispose()

    env.salesforce.set_api_limit(100_000)
    pipeline.step(step)
    pipeline.rest()
    assert helpers.end_state(env) == baseline


def _window_ends(env: Any) -> dict[str, Any]:
    from include.cerkl_sync.config import FLOWS
    from include.cerkl_sync.state import SyncStateStore

    state = SyncStateStore(env.state_url)
    try:
        return {flow: state.get_window_end(flow) for flow in FLOWS}
    finally:
        state.dispose()


@pytest.mark.e2e
def test_api_limit_dag_run_recovers(env, baseline, sync_dag):
    from include.cerkl_sync.report import validate_report
    from include.sandbox.local_airflow import run_dag

    logical_date = helpers.RUN_DAY + timedelta(days=1)
    env.salesforce.set_api_limit(API_LIMIT)
    failed = run_dag(sync_dag, logical_date, {"full_sync": True})
    cerkl_writes = env.cerkl.counters()["by_endpoint"]

    assert failed.state == "failed", failed.task_states
    report = failed.report
    validate_report(report)
    assert report["state"] == "failed"
    errors = {task["task_id"]: task["error"] for task in report["failed_tasks"]}
    stopped = [task for task, error in errors.items() if error == "SalesforceApiLimitError"]
    assert stopped, errors
    assert set(errors.values()) <= {"SalesforceApiLimitError", "upstream_failed"}, errors
    assert all(failed.task_states[task] == "failed" for task in stopped)

    ends = _window_ends(env)
    for flow, status in report["flow_status"].items():
        if status == "completed":
            assert ends[flow] is not None, flow
        else:
            assert ends[flow] is None, flow
    assert "completed" in report["flow_status"].values()
    # A failed apply task reports its flow as incomplete, with the writes it made.
    assert "incomplete" in report["flow_status"].values()
    assert "completed" not in {report["flow_status"][f] for f in ("campaigns_to_segments",)}
    if cerkl_writes.get("POST subscriber"):
        # Subscribers were created before the Salesforce link update hit the limit.
        assert report["flow_status"]["contacts_to_subscribers"] == "incomplete"
        assert report["flows"]["contacts_to_subscribers"]["created"] > 0

    env.salesforce.set_api_limit(100_000)
    finished = run_dag(sync_dag, logical_date, {"full_sync": True})
    assert finished.state == "success", finished.task_states
    assert set(finished.report["flow_status"].values()) == {"completed"}
    assert all(end is not None for end in _window_ends(env).values())
    assert helpers.end_state(env) == baseline


def test_cerkl_faults_on_unsubscribes_and_updates(env, baseline_day_two):
    helpers.Pipeline("day-one").rest()
    helpers.change_contacts_on_day_two(env)
    pipeline = helpers.Pipeline("day-two", day=helpers.DAY_TWO, full_sync=False)
    pipeline.until("apply_contact_changes")
    env.reset_counters()
    drops = env.cerkl.add_fault(
        path=r"/v3/subscriber/\d+$", method="DELETE", action="drop", count=2
    )
    storm = env.cerkl.add_fault(
        path=r"/v3/subscriber/\d+$", method="PUT", status=429, retry_after=4, count=2
    )
    errors = env.cerkl.add_fault(path=r"/v3/subscriber/\d+$", method="PUT", status=503, count=2)
    result = pipeline.step("apply_contact_changes")

    assert _fired(env.cerkl) == {drops: 2, storm: 2, errors: 2}
    assert pipeline.sleeps.count(4.0) == 2, pipeline.sleeps
    counts = result[0]["counts"]
    assert counts.get("unsubscribed") == 3, counts
    assert counts.get("updated") == 3, counts
    assert result[0]["rejected"] == []
    pipeline.rest()
    assert helpers.end_state(env) == baseline_day_two
