"""Email matches of unlinked Contacts come from the extracted subscribers where that suffices.

The steps run against the sandbox with real clients (see ``tests/reliability/helpers.py``).
Each plan is compared with the plan of the same Contacts when every email is looked up in
Cerkl, which is what the step did before it used the extracted subscribers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from include.cerkl_sync.batches import BatchStore
from include.cerkl_sync.config import SyncConfig
from include.cerkl_sync.flows import contacts
from include.cerkl_sync.flows.common import RunInfo
from include.cerkl_sync.flows.contacts import (
    _EmailIndex,
    _match_emails,
    subscriber_extract_is_complete,
)
from include.cerkl_sync.planning.plan import FlowPlan
from include.cerkl_sync.records import normalize_email
from include.cerkl_sync.state import SyncStateStore
from include.cerkl_sync.windows import compute_windows
from tests.dags import sandbox_state as sb
from tests.dags.conftest import SyncEnvironment, sync_environment  # noqa: F401
from tests.include.sandbox.cerkl.api_client import CerklApi
from tests.reliability import helpers

LOOKUP_KEY = "GET subscriber"


@pytest.fixture
def env(sync_environment: SyncEnvironment) -> Iterator[SyncEnvironment]:  # noqa: F811
    """The sandbox with the generated org, an empty state DB and no faults."""
    helpers.seed_org(sync_environment)
    try:
        yield sync_environment
    finally:
        sync_environment.cerkl.clear_faults()


def _extract(run_id: str, *, full_sync: bool) -> helpers.Pipeline:
    pipeline = helpers.Pipeline(run_id, full_sync=full_sync)
    pipeline.step("extract_contacts")
    pipeline.step("extract_subscriber_changes")
    return pipeline


def _plan(env: SyncEnvironment, pipeline: helpers.Pipeline) -> tuple[dict[str, Any], int]:
    """Run the plan step and return its output and its ``GET subscriber`` request count."""
    env.reset_counters()
    output = pipeline.step("plan_contact_changes")
    return output, env.cerkl.counters()["by_endpoint"].get(LOOKUP_KEY, 0)


def _plan_looking_up_every_email(
    env: SyncEnvironment, pipeline: helpers.Pipeline
) -> tuple[dict[str, Any], int]:
    """Plan the same Contacts with no extracted subscribers and a one-day window.

    Nothing is then known in advance, so the step looks up every unlinked Contact's email.
    """
    run = pipeline.run
    daily = replace(
        run,
        full_sync=False,
        windows={
            flow: replace(window, start=window.end - timedelta(days=1), full_sync=False)
            for flow, window in run.windows.items()
        },
    )
    env.reset_counters()
    clients = helpers.build_clients(daily)
    try:
        output = contacts.plan_contact_changes(
            daily,
            pipeline.outputs["extract_contacts"]["batches"],
            [],
            cerkl=clients.cerkl,
            state=clients.state,
            batches=clients.batches,
        )
    finally:
        clients.close()
    return output, env.cerkl.counters()["by_endpoint"].get(LOOKUP_KEY, 0)


def _plans(output: dict[str, Any]) -> list[FlowPlan]:
    return [FlowPlan.from_dict(data) for data in BatchStore.iter_records(output["plans"])]


def _summary(output: dict[str, Any]) -> dict[str, list[Any]]:
    """Return a plan's actions, skips, pending and rejected records in a stable order.

    ``cerkl_seen_at`` is left out, because without extracted subscribers no link action
    has a subscriber modification time to record.
    """
    summary: dict[str, list[Any]] = {"actions": [], "skipped": [], "pending": [], "rejected": []}
    for plan in _plans(output):
        summary["actions"] += [
            {key: value for key, value in action.items() if key != "cerkl_seen_at"}
            for action in plan.actions
        ]
        summary["skipped"] += plan.skipped
        summary["pending"] += plan.pending
        summary["rejected"] += plan.rejected
    return {
        name: sorted(items, key=lambda item: json.dumps(item, sort_keys=True, default=str))
        for name, items in summary.items()
    }


def _actions_of(output: dict[str, Any], contact_id: str) -> list[dict[str, Any]]:
    return [a for plan in _plans(output) for a in plan.actions if a["contact_id"] == contact_id]


def _skips_of(output: dict[str, Any], contact_id: str) -> list[str]:
    return [
        s["reason"] for plan in _plans(output) for s in plan.skipped if s["record_id"] == contact_id
    ]


def _unlinked_contacts(pipeline: helpers.Pipeline) -> list[dict[str, Any]]:
    return [
        c
        for c in BatchStore.iter_records(pipeline.outputs["extract_contacts"]["batches"])
        if not c["is_deleted"] and c["subscriber_id"] is None and normalize_email(c.get("email"))
    ]


def _cerkl_records(env: SyncEnvironment) -> tuple[dict[int, Any], dict[int, Any]]:
    """Return the sandbox's subscribers and unsubscribes by id."""
    api = CerklApi(env.sandbox.cerkl_url)
    api.authenticate()
    try:
        return sb.subscribers(api), sb.unsubscribes(api)
    finally:
        api.session.close()


def _cerkl_emails(env: SyncEnvironment) -> tuple[dict[str, int], dict[str, int]]:
    """Return the subscriber ids and the unsubscribe ids of the sandbox by email."""
    subscribers, unsubscribes = _cerkl_records(env)
    return (
        {normalize_email(s["email"]): sid for sid, s in subscribers.items()},
        {normalize_email(u["email"]): uid for uid, u in unsubscribes.items()},
    )


def _change_in_window(env: SyncEnvironment) -> None:
    """Edit every unlinked Contact and half of the subscribers of their emails on the run day.

    A daily run for that day then extracts those Contacts, and half of their matching
    subscribers as changed.
    """
    env.set_clocks(helpers.RUN_DAY + timedelta(hours=10))
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    try:
        unlinked = [
            c
            for c in sb.contacts(sf).values()
            if not c["Cerkl_Subscriber_Id__c"] and c["Email"] and not c["IsDeleted"]
        ]
        for contact in unlinked:
            sf.Contact.update(contact["Id"], {"Title": "Edited on the run day"})
    finally:
        sf.session.close()
    subscriber_ids, _ = _cerkl_emails(env)
    matched = sorted(
        subscriber_ids[key]
        for key in {normalize_email(c["Email"]) for c in unlinked}
        if key in subscriber_ids
    )
    run = helpers.prepare("edit-subscribers", full_sync=False)
    clients = helpers.build_clients(run)
    try:
        for subscriber_id in matched[::2]:
            clients.cerkl.update_subscriber(subscriber_id, {"last_name": "Edited"})
    finally:
        clients.close()
    env.set_clocks(helpers.RUN_DAY + timedelta(days=1, minutes=5))


def test_full_sync_sends_no_email_look_ups(env):
    pipeline = _extract("full-index", full_sync=True)
    output, requests = _plan(env, pipeline)
    reference, reference_requests = _plan_looking_up_every_email(env, pipeline)

    unlinked = _unlinked_contacts(pipeline)
    email_of = {c["id"]: normalize_email(c["email"]) for c in unlinked}
    keys = set(email_of.values())
    subscriber_ids, _ = _cerkl_emails(env)
    linked_emails = {
        email_of[a["contact_id"]]
        for plan in _plans(output)
        for a in plan.actions
        if a["action"] in ("link", "link_and_unsubscribe")
    }
    assert len(linked_emails) >= 10
    assert linked_emails == keys & set(subscriber_ids)
    # The one request reads the subscribers modified since the window end.
    assert requests == 1
    assert reference_requests == len(keys)
    assert _summary(output) == _summary(reference)


def test_daily_run_looks_up_only_unchanged_emails(env):
    _change_in_window(env)
    pipeline = _extract("daily-index", full_sync=False)
    output, requests = _plan(env, pipeline)
    reference, reference_requests = _plan_looking_up_every_email(env, pipeline)

    changed = {
        normalize_email(s["email"])
        for s in BatchStore.iter_records(pipeline.outputs["extract_subscriber_changes"]["changed"])
    }
    keys = {normalize_email(c["email"]) for c in _unlinked_contacts(pipeline)}
    assert len(keys) >= 10
    assert 0 < len(keys & changed) < len(keys)
    assert requests == len(keys - changed)
    assert reference_requests == len(keys)
    assert _summary(output) == _summary(reference)


def test_full_sync_links_subscriber_created_after_extract(env):
    pipeline = _extract("full-late-subscriber", full_sync=True)
    subscriber_ids, unsubscribe_ids = _cerkl_emails(env)
    contact = min(
        (
            c
            for c in _unlinked_contacts(pipeline)
            if normalize_email(c["email"]) not in subscriber_ids
            and normalize_email(c["email"]) not in unsubscribe_ids
            and not c["opted_out"]
        ),
        key=lambda c: c["id"],
    )
    clients = helpers.build_clients(pipeline.run)
    try:
        created = clients.cerkl.create_subscribers([{"email": contact["email"]}])[0].subscriber
    finally:
        clients.close()
    assert created is not None

    output, _ = _plan(env, pipeline)

    actions = _actions_of(output, contact["id"])
    assert [a["action"] for a in actions] == ["link"]
    assert actions[0]["subscriber_id"] == int(created["id"])


def test_full_sync_skips_subscriber_unsubscribed_after_extract(env):
    pipeline = _extract("full-late-unsubscribe", full_sync=True)
    subscriber_ids, _ = _cerkl_emails(env)
    contact = min(
        (
            c
            for c in _unlinked_contacts(pipeline)
            if normalize_email(c["email"]) in subscriber_ids and not c["opted_out"]
        ),
        key=lambda c: c["id"],
    )
    env.cerkl.self_unsubscribe(subscriber_ids[normalize_email(contact["email"])])

    output, _ = _plan(env, pipeline)

    assert _actions_of(output, contact["id"]) == []
    assert _skips_of(output, contact["id"]) == ["SELF_UNSUBSCRIBED"]


def test_subscriber_created_after_plan_is_linked_once(env):
    pipeline = helpers.Pipeline("full-race")
    pipeline.until("apply_contact_changes")
    create = min(
        (a for plan in _plans(pipeline.outputs["plan_contact_changes"]) for a in plan.actions),
        key=lambda a: (a["action"] != "create", a["contact_id"]),
    )
    assert create["action"] == "create"
    email = create["subscriber"]["email"]
    clients = helpers.build_clients(pipeline.run)
    try:
        created = clients.cerkl.create_subscribers([{"email": email}])[0].subscriber
    finally:
        clients.close()
    assert created is not None

    pipeline.step("apply_contact_changes")

    subscribers, _ = _cerkl_records(env)
    with_email = [sid for sid, s in subscribers.items() if sb.same_email(s["email"], email)]
    assert with_email == [int(created["id"])]
    state = SyncStateStore(env.state_url)
    try:
        link = state.get_links_by_contact([create["contact_id"]])[create["contact_id"]]
    finally:
        state.dispose()
    assert link.subscriber_id == int(created["id"])
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    try:
        contact = sb.contacts(sf)[create["contact_id"]]
    finally:
        sf.session.close()
    assert contact["Cerkl_Subscriber_Id__c"] == str(created["id"])


def test_failed_look_up_rejects_contact(env):
    _change_in_window(env)
    pipeline = _extract("daily-lookup-error", full_sync=False)
    env.cerkl.add_fault(
        path=r"/subscriber$", method="GET", status=400, error_code="INVALID_FILTER", count=1
    )

    output, _ = _plan(env, pipeline)

    result = output["result"]
    rejected = [r for r in result["rejected"] if r["reason"].startswith("CERKL_LOOKUP_FAILED")]
    assert rejected
    assert {r["reason"] for r in rejected} == {"CERKL_LOOKUP_FAILED: INVALID_FILTER"}
    assert {r["record_type"] for r in rejected} == {"Contact"}
    by_id = {c["id"]: c for c in _unlinked_contacts(pipeline)}
    assert len({normalize_email(by_id[r["record_id"]]["email"]) for r in rejected}) == 1
    for item in rejected:
        assert _actions_of(output, item["record_id"]) == []
        assert _skips_of(output, item["record_id"]) == []
    planned = sum(
        len(p.actions) + len(p.skipped) + len(p.pending) + len(p.rejected) for p in _plans(output)
    )
    assert result["records"] == planned


class _RecordingLookups:
    """A stand-in for ``CerklHook.find_subscriber_by_email`` that records each email."""

    def __init__(self, found: dict[str, dict[str, Any]]) -> None:
        self.found = found
        self.emails: list[str] = []

    def find_subscriber_by_email(self, email: str) -> dict[str, Any] | None:
        self.emails.append(email)
        return self.found.get(email)


def _subscriber(subscriber_id: int, email: str) -> dict[str, Any]:
    return {"id": subscriber_id, "email": email, "first_name": "A", "last_name": "B"}


def test_shared_index_email_is_looked_up():
    index = _EmailIndex(
        by_email={"a@example.org": _subscriber(2, "a@example.org")},
        shared={"a@example.org"},
        complete=True,
    )
    cerkl = _RecordingLookups({"a@example.org": _subscriber(1, "a@example.org")})

    found, failed = _match_emails(["a@example.org"], index, cerkl=cerkl, workers=1)

    assert cerkl.emails == ["a@example.org"]
    assert found["a@example.org"]["id"] == 1
    assert failed == {}


def test_incomplete_index_looks_up_missing_emails():
    index = _EmailIndex(by_email={"a@example.org": _subscriber(1, "a@example.org")})
    cerkl = _RecordingLookups({})

    found, _ = _match_emails(["a@example.org", "b@example.org"], index, cerkl=cerkl, workers=1)

    assert cerkl.emails == ["b@example.org"]
    assert set(found) == {"a@example.org"}


def _run(*, full_sync: bool, manual: bool = False) -> RunInfo:
    config = SyncConfig()
    day = helpers.RUN_DAY
    windows = compute_windows(
        interval_start=None if manual else day,
        interval_end=None if manual else day + timedelta(days=1),
        last_window_ends={},
        now=day + timedelta(days=1, minutes=5),
        config=config,
        full_sync=full_sync,
    )
    return RunInfo(
        dag_id=helpers.DAG_ID,
        run_id="windows",
        windows=windows,
        dry_run=False,
        full_sync=full_sync,
        new_subscriber_cap=config.max_new_subscribers_per_run,
        organization_id="001000000000000AAA",
        config=config,
        started_at=day.isoformat(),
    )


@pytest.mark.parametrize("manual", [False, True])
def test_extract_complete_only_in_full_sync(manual):
    assert subscriber_extract_is_complete(_run(full_sync=True, manual=manual))
    assert not subscriber_extract_is_complete(_run(full_sync=False, manual=manual))
