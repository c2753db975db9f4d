"""Cerkl subscriber changes reach linked Contacts without reading those Contacts again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from include.sandbox.generator import generate_org
from tests.dags import sandbox_state as sb
from tests.reliability import helpers

QUERY_KEYS = ("/query", "/queryAll")


def _linked_contacts(env: Any, count: int) -> list[dict[str, Any]]:
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    try:
        linked = [
            c
            for c in sb.contacts(sf).values()
            if c["Cerkl_Subscriber_Id__c"]
            and not c["IsDeleted"]
            and not (c["Cerkl_Unsubscribe__c"] or c["HasOptedOutOfEmail"])
        ]
    finally:
        sf.session.close()
    return sorted(linked, key=lambda c: c["Id"])[:count]


def _edit_on_day_two(env: Any, contacts: list[dict[str, Any]]) -> list[int]:
    """Rename, rescore and re-rank the interests of the subscribers of ``contacts``."""
    category = next(iter(generate_org(helpers.ORG_SPEC).cerkl_records("categories")))["id"]
    env.set_clocks(helpers.DAY_TWO + timedelta(hours=9))
    ids = [int(c["Cerkl_Subscriber_Id__c"]) for c in contacts]
    for position, subscriber_id in enumerate(ids):
        env.cerkl.edit_subscriber(
            subscriber_id,
            first_name=f"Edited{position}",
            engagement_score=70.5 + position,
            interests=[{"category_id": category, "rank": 1, "score": 9}],
        )
    env.set_clocks(helpers.DAY_TWO + timedelta(days=1, minutes=5))
    return ids


def _query_calls(env: Any) -> int:
    by_endpoint = env.salesforce.counters()["by_endpoint"]
    return sum(
        count
        for key, count in by_endpoint.items()
        if key.startswith("GET ") and key.endswith(QUERY_KEYS)
    )


def test_subscriber_changes_sent_without_contact_reads(env):
    helpers.Pipeline("day-one").rest()
    contacts = _linked_contacts(env, 3)
    ids = _edit_on_day_two(env, contacts)
    pipeline = helpers.Pipeline("day-two", day=helpers.DAY_TWO, full_sync=False)
    pipeline.until("apply_subscriber_changes")
    env.reset_counters()

    changes, interests = pipeline.step("apply_subscriber_changes")

    assert _query_calls(env) == 0
    assert changes["counts"].get("updated") == 3, changes["counts"]
    assert interests["counts"].get("updated") == 3, interests["counts"]
    assert changes["rejected"] == []
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    try:
        after = sb.contacts(sf)
    finally:
        sf.session.close()
    for position, contact in enumerate(contacts):
        row = after[contact["Id"]]
        assert row["FirstName"] == f"Edited{position}"
        assert row["Engagement_Score__c"] == 70.5 + position
        assert row["Interest_1__c"]
        assert row["Interest_2__c"] is None
        assert int(row["Cerkl_Subscriber_Id__c"]) == ids[position]


def test_subscriber_changes_rerun_writes_nothing(env):
    helpers.Pipeline("day-one").rest()
    _edit_on_day_two(env, _linked_contacts(env, 3))
    helpers.Pipeline("day-two", day=helpers.DAY_TWO, full_sync=False).rest()
    rerun = helpers.Pipeline("day-two-again", day=helpers.DAY_TWO, full_sync=False)
    rerun.until("apply_subscriber_changes")
    env.reset_counters()

    changes, interests = rerun.step("apply_subscriber_changes")

    assert sb.write_calls(env.salesforce.counters()) == {}
    assert changes["counts"].get("updated", 0) == 0, changes["counts"]
    assert interests["counts"].get("updated", 0) == 0, interests["counts"]


def test_contact_deleted_after_extract_skipped(env):
    helpers.Pipeline("day-one").rest()
    contacts = _linked_contacts(env, 2)
    _edit_on_day_two(env, contacts)
    pipeline = helpers.Pipeline("day-two", day=helpers.DAY_TWO, full_sync=False)
    pipeline.until("apply_subscriber_changes")
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    try:
        sf.Contact.delete(contacts[0]["Id"])
    finally:
        sf.session.close()

    changes, interests = pipeline.step("apply_subscriber_changes")

    assert changes["rejected"] == []
    assert interests["rejected"] == []
    assert changes["counts"].get("updated") == 1, changes["counts"]
    assert changes["counts"].get("skipped", 0) >= 1, changes["counts"]
