"""Attacks on the write spool of the three write steps, over several batches.

``link_new_subscribers``, ``apply_contact_changes`` and ``apply_subscriber_changes`` plan
one batch at a time and send their Contact writes at the end, after the last batch. These
tests run them with a ``batch_size`` of 5, so that the seeded org spans several batches.
Then they break the final send or its settling: Salesforce down, record-level failures, a
Bulk API 2.0 job whose results cannot be read, the state DB lost between settle chunks, a
kill.
After the fault a retry (or the next day's run) must reach the end state of a run without
faults, with no subscriber held by two Contacts and no record lost.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from include.cerkl_sync.flows import contacts as contact_flows
from include.cerkl_sync.flows import subscribers as subscriber_flows
from include.cerkl_sync.runtime import STATE_CONN_ID
from include.cerkl_sync.salesforce_io import SalesforceClient, SalesforceSyncError
from include.cerkl_sync.state import StateStoreUnavailableError, SyncStateStore
from include.cerkl_sync.write_spool import WriteSpool
from tests.dags import sandbox_state as sb
from tests.include.sandbox.cerkl.api_client import CerklApi
from tests.reliability import helpers
from tests.reliability.step_child import start_step_child
from tests.reliability.test_kills import _wait_for_writes
from tests.reliability.test_state_db import FailingStateStore

pytestmark = [pytest.mark.timeout(240), pytest.mark.fault_scenario]

SMALL_BATCH = 5
SPOOL_STEPS = ("link_new_subscribers", "apply_contact_changes", "apply_subscriber_changes")
#: Every Salesforce sObject Collections write and every Bulk API 2.0 ingest request.
SALESFORCE_WRITE_PATHS = r".*/(composite/sobjects|jobs/ingest).*"


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set ``batch_size`` to 5 in the ``cerkl_sync_config`` Variable."""
    settings = json.loads(os.environ.get("AIRFLOW_VAR_CERKL_SYNC_CONFIG", "{}"))
    settings["batch_size"] = SMALL_BATCH
    monkeypatch.setenv("AIRFLOW_VAR_CERKL_SYNC_CONFIG", json.dumps(settings))


@pytest.fixture
def small_settle_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the write steps settle 2 outcomes at a time, so that settling takes many calls."""

    class SmallChunkSpool(WriteSpool):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["chunk_rows"] = 2
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(subscriber_flows, "WriteSpool", SmallChunkSpool)
    monkeypatch.setattr(contact_flows, "WriteSpool", SmallChunkSpool)


@pytest.fixture
def bulk_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every Salesforce write of more than 2 records a Bulk API 2.0 job."""
    original = SalesforceClient.__init__

    def init(self: SalesforceClient, *args: Any, **kwargs: Any) -> None:
        kwargs["bulk_threshold"] = 2
        original(self, *args, **kwargs)

    monkeypatch.setattr(SalesforceClient, "__init__", init)


def _assert_one_holder_per_subscriber(env: Any) -> None:
    holders = Counter(
        c["Cerkl_Subscriber_Id__c"]
        for c in helpers.live_contacts(env).values()
        if c["Cerkl_Subscriber_Id__c"]
    )
    repeated = {sid: n for sid, n in holders.items() if n > 1}
    assert repeated == {}, f"subscribers held by more than one Contact: {repeated}"


def _assert_links_match_salesforce(env: Any) -> None:
    """Check that every saved link's Contact contains that link's subscriber id."""
    live = helpers.live_contacts(env)
    state = SyncStateStore.from_connection(STATE_CONN_ID)
    try:
        links = [link for chunk in state.iter_links() for link in chunk]
    finally:
        state.dispose()
    contact_ids = Counter(link.contact_id for link in links)
    assert [cid for cid, n in contact_ids.items() if n > 1] == []
    wrong = [
        (
            link.contact_id,
            link.subscriber_id,
            live.get(link.contact_id, {}).get("Cerkl_Subscriber_Id__c"),
        )
        for link in links
        if link.contact_id in live
        and live[link.contact_id]["Cerkl_Subscriber_Id__c"] != str(link.subscriber_id)
    ]
    assert wrong == [], f"links whose Contact holds another subscriber id: {wrong}"


def _open_items(flow: str | None = None) -> list[Any]:
    state = SyncStateStore.from_connection(STATE_CONN_ID)
    try:
        return state.open_work_items(flow)
    finally:
        state.dispose()


def _spool_step_batches(pipeline: helpers.Pipeline, step: str) -> int:
    arguments = pipeline.arguments(step)
    refs = (
        arguments.get("unlinked_refs")
        or arguments.get("plan_refs")
        or arguments.get("changed_refs")
        or []
    )
    return len(refs)


# -- several batches without faults --------------------------------------------------------


def test_small_batches_match_baseline(env, baseline, small_batches):
    pipeline = helpers.Pipeline("small-batches")
    pipeline.rest()

    assert _spool_step_batches(pipeline, "link_new_subscribers") > 1
    assert _spool_step_batches(pipeline, "apply_subscriber_changes") > 1
    assert helpers.end_state(env) == baseline
    _assert_one_holder_per_subscriber(env)
    _assert_links_match_salesforce(env)


def test_small_batches_bulk_jobs_match_baseline(env, baseline, small_batches, bulk_writes):
    pipeline = helpers.Pipeline("small-batches-bulk")
    pipeline.until("link_new_subscribers")
    env.reset_counters()

    pipeline.step("link_new_subscribers")

    jobs = env.salesforce.counters()["by_endpoint"].get("POST /services/data/vXX.X/jobs/ingest", 0)
    # One job for the creates and one for the link updates, however many batches.
    assert jobs == 2
    pipeline.rest()
    assert helpers.end_state(env) == baseline
    _assert_one_holder_per_subscriber(env)


# -- Salesforce down at the final send ------------------------------------------------------


@pytest.mark.parametrize("step", SPOOL_STEPS)
def test_salesforce_down_at_final_send_retry(env, baseline, small_batches, step):
    pipeline = helpers.Pipeline(f"sf-down-{step}")
    pipeline.until(step)
    env.salesforce.add_fault(
        path=SALESFORCE_WRITE_PATHS, status=503, error_code="SERVER_UNAVAILABLE"
    )

    with pytest.raises(SalesforceSyncError):
        pipeline.step(step)

    env.salesforce.clear_faults()
    pipeline.step(step)
    pipeline.rest()
    assert helpers.end_state(env) == baseline
    _assert_one_holder_per_subscriber(env)
    _assert_links_match_salesforce(env)


def test_bulk_results_unreadable_retry(env, baseline, small_batches, bulk_writes):
    """The link updates' job runs, but its results cannot be read: the outcome is unknown."""
    pipeline = helpers.Pipeline("bulk-results-lost")
    pipeline.until("link_new_subscribers")
    env.salesforce.add_fault(
        path=r".*/jobs/ingest/[^/]+/(successful|failed|unprocessed)Results.*",
        method="GET",
        status=500,
        error_code="UNKNOWN_EXCEPTION",
    )

    with pytest.raises(SalesforceSyncError):
        pipeline.step("link_new_subscribers")

    env.salesforce.clear_faults()
    pipeline.step("link_new_subscribers")
    pipeline.rest()
    assert helpers.end_state(env) == baseline
    _assert_one_holder_per_subscriber(env)
    _assert_links_match_salesforce(env)


# -- the state DB lost between settle chunks ------------------------------------------------


@pytest.mark.parametrize(
    ("step", "method", "fail_on_call"),
    [
        # Chunks of 2: the first chunk of created Contacts is saved, the second is not.
        ("link_new_subscribers", "save_links", 2),
        ("link_new_subscribers", "resolve_work_items", 1),
        ("apply_contact_changes", "save_links", 3),
        ("apply_subscriber_changes", "save_links", 12),
    ],
)
def test_state_db_lost_mid_settle_retry(
    env, baseline, small_batches, small_settle_chunks, step, method, fail_on_call
):
    pipeline = helpers.Pipeline(f"settle-lost-{step}-{method}")
    pipeline.until(step)
    store = SyncStateStore(env.state_url)
    failing = FailingStateStore(store, method=method, fail_on_call=fail_on_call)
    try:
        with pytest.raises(StateStoreUnavailableError):
            pipeline.step(step, state=failing)
    finally:
        store.dispose()
    assert failing.calls == fail_on_call

    pipeline.step(step)
    pipeline.rest()
    assert helpers.end_state(env) == baseline
    _assert_one_holder_per_subscriber(env)
    _assert_links_match_salesforce(env)


# -- record-level failures in a Bulk job ----------------------------------------------------


def test_record_failures_in_bulk_quarantined(env, baseline, small_batches, bulk_writes):
    """Contacts whose link update fails in the job are quarantined, and the next run links them."""
    pipeline = helpers.Pipeline("bulk-record-faults")
    pipeline.until("link_new_subscribers")
    unlinked = {
        int(s["id"]): sb.normalize_email(s.get("email"))
        for s in _records(pipeline.arguments("link_new_subscribers")["unlinked_refs"])
    }
    free = [
        c
        for c in helpers.live_contacts(env).values()
        if not c["Cerkl_Subscriber_Id__c"]
        and sb.normalize_email(c["Email"]) in set(unlinked.values())
    ]
    assert len(free) >= 3
    faulted = sorted(c["Id"] for c in free)[:3]
    env.salesforce.add_record_fault("Contact", faulted, "FIELD_CUSTOM_VALIDATION_EXCEPTION")

    result = pipeline.step("link_new_subscribers")[0]

    rejected = {r["record_id"] for r in result["rejected"]}
    faulted_emails = {sb.normalize_email(c["Email"]) for c in free if c["Id"] in faulted}
    expected = {str(sid) for sid, email in unlinked.items() if email in faulted_emails}
    assert rejected == expected
    quarantined = {
        item.record_id
        for item in _open_items("new_subscribers_to_contacts")
        if item.kind == "quarantined"
    }
    assert expected <= quarantined
    pipeline.rest()
    # The next day's run retries the quarantined subscribers and links them.
    env.set_clocks(helpers.DAY_TWO + timedelta(days=1, minutes=5))
    helpers.Pipeline("bulk-record-faults-2", day=helpers.DAY_TWO, full_sync=False).rest()
    assert helpers.end_state(env) == baseline
    _assert_one_holder_per_subscriber(env)
    _assert_links_match_salesforce(env)


def _records(refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from include.cerkl_sync.batches import BatchStore

    return list(BatchStore.iter_records(refs))


# -- the step never succeeds, and the next day's run finishes the work -----------------------


def _change_both_systems_on_day_two(env: Any) -> None:
    """Add 4 Contacts and 4 subscribers, and rename 4 linked subscribers, during day two.

    Each of the three write steps then has Salesforce writes to send in the day-two run.
    """
    env.set_clocks(helpers.DAY_TWO + timedelta(hours=10))
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    try:
        for n in range(4):
            sf.Contact.create(
                {
                    "FirstName": f"Newcontact{n}",
                    "LastName": "Daytwo",
                    "Email": f"new.contact.{n}@example.org",
                }
            )
    finally:
        sf.session.close()
    api = CerklApi(env.sandbox.cerkl_url)
    try:
        for n in range(4):
            api.create(
                email=f"new.subscriber.{n}@example.org", first_name=f"Newsub{n}", last_name="Daytwo"
            )
    finally:
        api.session.close()
    state = SyncStateStore.from_connection(STATE_CONN_ID)
    try:
        links = sorted(
            (link for chunk in state.iter_links() for link in chunk),
            key=lambda link: link.subscriber_id,
        )
    finally:
        state.dispose()
    renamed = 0
    for link in links:
        if renamed == 4:
            break
        try:
            env.cerkl.edit_subscriber(link.subscriber_id, first_name=f"Renamed{renamed}")
        except Exception:  # noqa: BLE001 - an unsubscribed subscriber cannot be edited
            continue
        renamed += 1
    assert renamed == 4
    env.set_clocks(helpers.DAY_TWO + timedelta(days=1, minutes=5))


@pytest.fixture(scope="session")
def baseline_both_changed(sync_environment, baseline, baseline_day_two) -> dict[str, Any]:
    """End state after a clean day one, :func:`_change_both_systems_on_day_two`, a clean day two."""
    helpers.seed_org(sync_environment)
    helpers.Pipeline("baseline").rest()
    _change_both_systems_on_day_two(sync_environment)
    helpers.Pipeline("baseline-both-changed", day=helpers.DAY_TWO, full_sync=False).rest()
    return helpers.end_state(sync_environment)


def _day(offset: int) -> Any:
    return helpers.DAY_TWO + timedelta(days=offset)


def _run_day(env: Any, name: str, offset: int) -> helpers.Pipeline:
    env.set_clocks(_day(offset) + timedelta(days=1, minutes=5))
    return helpers.Pipeline(name, day=_day(offset), full_sync=False)


@pytest.mark.parametrize("step", SPOOL_STEPS)
def test_failed_day_then_next_day_converges(env, baseline_both_changed, small_batches, step):
    helpers.Pipeline("day-one").rest()
    _change_both_systems_on_day_two(env)
    day_two = _run_day(env, f"failed-day-{step}", 0)
    day_two.until(step)
    env.reset_counters()
    env.salesforce.add_fault(
        path=SALESFORCE_WRITE_PATHS, status=503, error_code="SERVER_UNAVAILABLE"
    )
    # Both tries of the task fail, and the tasks downstream of it do not run.
    for _attempt in range(2):
        with pytest.raises(SalesforceSyncError):
            day_two.step(step)
    env.salesforce.clear_faults()
    assert helpers.write_count(env.salesforce.counters()) > 0

    _run_day(env, f"after-failed-{step}", 1).rest()

    assert helpers.end_state(env) == baseline_both_changed
    _assert_one_holder_per_subscriber(env)
    _assert_links_match_salesforce(env)


# -- a pending Contact whose work item is resolved before its write is sent -------------------


def test_pending_contact_survives_failed_send(
    env, baseline_both_changed, small_batches, monkeypatch
):
    """A Contact quarantined on day two, retried on day three when the final send fails.

    ``apply_contact_changes`` creates the subscriber in Cerkl and resolves the Contact's work
    item while planning, but saves the link only when the spooled update is sent. When the
    send never happens, the Contact must keep a work item or be linked by a later run.
    """
    connection = json.loads(os.environ["AIRFLOW_CONN_CERKL_DEFAULT"])
    connection["extra"] = {**connection["extra"], "create_batch_size": 1}
    monkeypatch.setenv("AIRFLOW_CONN_CERKL_DEFAULT", json.dumps(connection))
    helpers.Pipeline("day-one").rest()
    _change_both_systems_on_day_two(env)
    day_two = _run_day(env, "pending-day-two", 0)
    day_two.until("apply_contact_changes")
    # The four creates of day two are rejected, so their Contacts are quarantined.
    env.cerkl.add_fault(
        path=r"/v3/subscriber$", method="POST", status=422, error_code="INVALID_REQUEST", count=4
    )
    day_two.step("apply_contact_changes")
    env.cerkl.clear_faults()
    day_two.rest()
    quarantined = {
        item.record_id
        for item in _open_items("contacts_to_subscribers")
        if item.record_type == "Contact"
    }
    assert len(quarantined) == 4

    day_three = _run_day(env, "pending-day-three", 1)
    day_three.until("apply_contact_changes")
    env.salesforce.add_fault(
        path=SALESFORCE_WRITE_PATHS, status=503, error_code="SERVER_UNAVAILABLE"
    )
    for _attempt in range(2):
        with pytest.raises(SalesforceSyncError):
            day_three.step("apply_contact_changes")
    env.salesforce.clear_faults()
    open_after = {
        item.record_id
        for item in _open_items("contacts_to_subscribers")
        if item.record_type == "Contact"
    }
    state = SyncStateStore.from_connection(STATE_CONN_ID)
    try:
        linked = {link.contact_id for chunk in state.iter_links() for link in chunk}
    finally:
        state.dispose()
    lost = sorted(cid for cid in quarantined if cid not in open_after and cid not in linked)

    _run_day(env, "pending-day-four", 2).rest()
    assert helpers.end_state(env) == baseline_both_changed
    _assert_one_holder_per_subscriber(env)
    assert lost == [], f"Contacts with no link and no open work item after the failed send: {lost}"


# -- a kill in the middle of the final send --------------------------------------------------


@pytest.mark.parametrize(
    ("step", "kill_after"),
    [
        # The child sends through Collections: the create upsert, then the link update.
        ("link_new_subscribers", 1),
        ("link_new_subscribers", 2),
        ("apply_contact_changes", 1),
        ("apply_subscriber_changes", 1),
    ],
)
def test_killed_final_send_rerun(env, baseline, small_batches, tmp_path, step, kill_after):
    pipeline = helpers.Pipeline(f"kill-send-{step}-{kill_after}")
    pipeline.until(step)
    arguments = pipeline.arguments(step)
    env.reset_counters()
    env.salesforce.set_latency(fixed_ms=300)
    first = start_step_child(tmp_path / "first", pipeline.run, step, arguments)
    try:
        _wait_for_writes(env.salesforce, kill_after, first, tmp_path / "first" / "child.log")
    finally:
        first.kill()
        first.join(timeout=30)
    env.salesforce.set_latency(0)
    assert first.exitcode == -9

    second = start_step_child(tmp_path / "second", pipeline.run, step, arguments)
    second.join(timeout=120)
    log = (tmp_path / "second" / "child.log").read_text()
    assert second.exitcode == 0, log[-3000:]
    pipeline.outputs[step] = json.loads((tmp_path / "second" / "output.json").read_text())
    pipeline.rest()
    assert helpers.end_state(env) == baseline
    _assert_one_holder_per_subscriber(env)
    _assert_links_match_salesforce(env)


# -- dry runs -------------------------------------------------------------------------------


@pytest.mark.parametrize("step", SPOOL_STEPS)
def test_dry_run_small_batches_writes_nothing(env, small_batches, step):
    pipeline = helpers.Pipeline(f"dry-{step}")
    pipeline.until(step)
    pipeline.run = dataclasses.replace(pipeline.run, dry_run=True)
    env.reset_counters()
    links_before = _link_count()

    pipeline.step(step)

    assert helpers.write_count(env.salesforce.counters()) == 0
    assert helpers.write_count(env.cerkl.counters()) == 0
    assert _link_count() == links_before


def _link_count() -> int:
    state = SyncStateStore.from_connection(STATE_CONN_ID)
    try:
        return state.count_links()
    finally:
        state.dispose()


def test_dry_run_counts_contact_taken_by_earlier_batch(env):
    """A dry run counts a Contact that two batches' subscribers match as one link.

    The second subscriber is listed with the first one's address, as when Cerkl's pages are
    read while an address moves. The real run links the Contact to the first subscriber and
    creates a Contact for the second (see ``test_link_batches``).
    """
    helpers.Pipeline("day-one").rest()
    env.set_clocks(helpers.DAY_TWO + timedelta(hours=9))
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    try:
        sf.Contact.create({"LastName": "Shared", "Email": "shared.inbox@example.org"})
    finally:
        sf.session.close()
    api = CerklApi(env.sandbox.cerkl_url)
    try:
        first = api.create(email="shared.inbox@example.org", first_name="First", last_name="Shared")
        second = api.create(
            email="moved.inbox@example.org", first_name="Second", last_name="Shared"
        )
    finally:
        api.session.close()
    pipeline = _run_day(env, "dry-claimed", 0)
    pipeline.until("link_new_subscribers")
    unlinked = {
        r["id"]: r for r in _records(pipeline.arguments("link_new_subscribers")["unlinked_refs"])
    }
    listed_second = {**unlinked[int(second["id"])], "email": "shared.inbox@example.org"}
    pipeline.outputs["extract_subscriber_changes"]["unlinked"] = [
        {"count": 1, "records": [unlinked[int(first["id"])]]},
        {"count": 1, "records": [listed_second]},
    ]
    real_run = pipeline.run
    pipeline.run = dataclasses.replace(real_run, dry_run=True)
    dry = pipeline.step("link_new_subscribers")[0]["counts"]
    pipeline.run = real_run
    real = pipeline.step("link_new_subscribers")[0]["counts"]

    # A dry run counts actions by their plan name ("link"), a real run by their outcome.
    assert real.get("linked") == 1, real
    assert real.get("created_contact") == 1, real
    assert dry.get("link", 0) == 1, dry
    assert dry.get("create_contact", 0) == 1, dry


# -- a subscriber listed in two changed batches ---------------------------------------------


def test_changed_subscriber_in_two_batches_counted_once(env):
    helpers.Pipeline("twice-day-one").rest()
    env.set_clocks(helpers.DAY_TWO + timedelta(hours=9))
    state = SyncStateStore.from_connection(STATE_CONN_ID)
    try:
        links = [link for chunk in state.iter_links() for link in chunk]
    finally:
        state.dispose()
    for link in links:
        try:
            env.cerkl.edit_subscriber(link.subscriber_id, first_name="Twicelisted")
        except Exception:  # noqa: BLE001 - an unsubscribed subscriber cannot be edited
            continue
        break
    env.set_clocks(helpers.DAY_TWO + timedelta(days=1, minutes=5))
    pipeline = helpers.Pipeline("twice-day-two", day=helpers.DAY_TWO, full_sync=False)
    pipeline.until("apply_subscriber_changes")
    changed = _records(pipeline.outputs["extract_subscriber_changes"]["changed"])
    record = next(r for r in changed if r["id"] == link.subscriber_id)
    pipeline.outputs["extract_subscriber_changes"]["changed"] = [
        {"count": 1, "records": [record]},
        {"count": 1, "records": [dict(record)]},
    ]
    env.reset_counters()

    changes, _interests = pipeline.step("apply_subscriber_changes")

    assert helpers.live_contacts(env)[link.contact_id]["FirstName"] == "Twicelisted"
    assert changes["counts"].get("updated") == 1, changes["counts"]
    assert changes["rejected"] == []


# -- the spool alone: odd contexts, a failed job, many rows ---------------------------------


class FakeSalesforce:
    """A client whose ``update`` records each call and fails the rows whose Id is listed."""

    def __init__(self, failing: frozenset[str] = frozenset(), code: str = "BULK_JOB_FAILED"):
        self.calls: list[int] = []
        self.failing = failing
        self.code = code

    def update(self, sobject: str, rows: list[dict[str, Any]]) -> list[Any]:
        from include.cerkl_sync.salesforce_io import WriteResult

        self.calls.append(len(rows))
        return [
            WriteResult(index, False, None, None, self.code, "job failed")
            if row["Id"] in self.failing
            else WriteResult(index, True, row["Id"], False, None, None)
            for index, row in enumerate(rows)
        ]


def test_context_not_serializable_rejected_before_send():
    salesforce = FakeSalesforce()
    settled: list[Any] = []
    with pytest.raises(TypeError):
        with WriteSpool(salesforce, "update", "Contact", settle=settled.extend) as spool:
            spool.add({"Id": "0030G0000000001QAA", "FirstName": "A"}, {"n": 1})
            spool.add({"Id": "0030G0000000002QAA", "FirstName": "B"}, {"when": object()})

    # The step failed while planning, so nothing was sent and nothing settled.
    assert salesforce.calls == []
    assert settled == []


def test_context_json_round_trip_changes_types():
    """Contexts come back from the file as JSON: tuples become lists, int keys strings."""
    salesforce = FakeSalesforce()
    settled: list[Any] = []
    with WriteSpool(salesforce, "update", "Contact", settle=settled.extend) as spool:
        spool.add({"Id": "0030G0000000001QAA"}, {"pair": (1, 2), "by_id": {7: "x"}})

    context, outcome = settled[0]
    assert outcome.success
    assert context == {"pair": [1, 2], "by_id": {"7": "x"}}


def test_failed_job_rows_settle_as_failures():
    """Rows that a Failed job never ran reach ``settle`` as failures, each with its context."""
    ids = [f"0030G{n:010d}AAA" for n in range(10)]
    salesforce = FakeSalesforce(failing=frozenset(ids[3:]))
    settled: list[Any] = []
    with WriteSpool(salesforce, "update", "Contact", settle=settled.extend, chunk_rows=4) as spool:
        for n, contact_id in enumerate(ids):
            spool.add({"Id": contact_id, "FirstName": f"N{n}"}, n)
        # The same Contact twice: merged into one row, both contexts get its outcome.
        spool.add({"Id": ids[0], "LastName": "Merged"}, "again")

    assert salesforce.calls == [10]
    assert [context for context, _outcome in settled] == [*range(10), "again"]
    failures = [context for context, outcome in settled if not outcome.success]
    assert failures == list(range(3, 10))
    assert all(outcome.error_code == "BULK_JOB_FAILED" for _c, outcome in settled[3:10])
    assert settled[10][1].success


def test_many_rows_memory_bounded():
    """200,000 rows, flushed at 50,000 as the write steps do, keep Python memory bounded."""
    import tracemalloc

    salesforce = FakeSalesforce()
    settled_count = 0

    def settle(outcomes: Any) -> None:
        nonlocal settled_count
        settled_count += len(outcomes)

    tracemalloc.start()
    try:
        with WriteSpool(salesforce, "update", "Contact", settle=settle) as spool:
            for n in range(200_000):
                spool.add(
                    {
                        "Id": f"0030G{n:010d}AAA",
                        "FirstName": f"First{n}",
                        "LastName": f"Last{n}",
                        "Email": f"person.{n}@example.org",
                        "Engagement_Score__c": n % 100,
                    },
                    {"contact_id": f"0030G{n:010d}AAA", "link": {"subscriber_id": n}},
                )
                if spool.full:
                    spool.flush()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert salesforce.calls == [50_000] * 4
    assert settled_count == 200_000
    # NOTE: 150 MB is a loose bound for one flush of 50,000 rows, not a measured peak.
    assert peak < 150 * 2**20, f"peak {peak / 2**20:.0f} MB"
