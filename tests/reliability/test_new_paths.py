"""Hard cases for the Bulk API 2.0 writes, the digest-based write-back and link adoption.

Each test runs the real clients against the sandbox and checks the records both systems end
with, so a lost, repeated or wrong write shows as a wrong field value or record count.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest

from include.cerkl_sync.runtime import SALESFORCE_CONN_ID, STATE_CONN_ID
from include.cerkl_sync.salesforce_io import SalesforceClient
from include.cerkl_sync.state import SyncStateStore
from include.sandbox.generator import generate_org
from tests.dags import sandbox_state as sb
from tests.include.sandbox.cerkl.api_client import CerklApi
from tests.reliability import helpers

DAY_THREE = helpers.DAY_TWO + timedelta(days=1)
JOB_CREATE = "POST /services/data/vXX.X/jobs/ingest"
COLLECTION_UPDATE = "PATCH /services/data/vXX.X/composite/sobjects"


# -- helpers --------------------------------------------------------------------------------


def _contacts(env: Any) -> dict[str, dict[str, Any]]:
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    try:
        return {cid: c for cid, c in sb.contacts(sf).items() if not c["IsDeleted"]}
    finally:
        sf.session.close()


def _contact_fields(env: Any, fields: str) -> dict[str, dict[str, Any]]:
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    try:
        rows = sf.query_all(f"SELECT Id, {fields} FROM Contact")["records"]
    finally:
        sf.session.close()
    return {row["Id"]: row for row in rows}


def _update_contact(env: Any, contact_id: str, fields: dict[str, Any]) -> None:
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    try:
        sf.Contact.update(contact_id, fields)
    finally:
        sf.session.close()


def _subscribers(env: Any) -> dict[int, dict[str, Any]]:
    api = CerklApi(env.sandbox.cerkl_url)
    api.authenticate()
    try:
        return sb.subscribers(api)
    finally:
        api.session.close()


def _linked_contacts(env: Any, count: int) -> list[dict[str, Any]]:
    linked = [
        c
        for c in _contacts(env).values()
        if c["Cerkl_Subscriber_Id__c"]
        and not (c["Cerkl_Unsubscribe__c"] or c["HasOptedOutOfEmail"])
    ]
    return sorted(linked, key=lambda c: c["Id"])[:count]


def _category_ids() -> list[int]:
    return [c["id"] for c in generate_org(helpers.ORG_SPEC).cerkl_records("categories")]


def _run_day(run_id: str, day: datetime) -> helpers.Pipeline:
    pipeline = helpers.Pipeline(run_id, day=day, full_sync=False)
    pipeline.rest()
    return pipeline


def _at(env: Any, day: datetime, hours: int) -> None:
    env.set_clocks(day + timedelta(hours=hours))


def _after(env: Any, day: datetime) -> None:
    env.set_clocks(day + timedelta(days=1, minutes=5))


def _rerun_writes(env: Any, run_id: str, day: datetime) -> dict[str, int]:
    env.reset_counters()
    _run_day(run_id, day)
    return sb.write_calls(env.salesforce.counters())


# -- Bulk API 2.0 writes with hostile values --------------------------------------------------

HOSTILE_TEXT = [
    "Comma, inside",
    'Quote " inside',
    '"Fully quoted"',
    "Line one\nline two",
    "Line one\r\nline two",
    "Carriage\rreturn",
    "=HYPERLINK(1)",
    "+41 22",
    "-5",
    "@mention",
    "Zoë Ångström 名前 😀",
    "Tab\there",
    "Semi;colon|pipe^caret`tick",
    "n" * 80,
]


@pytest.fixture
def bulk_client(env: Any) -> SalesforceClient:
    # A threshold of 3 sends every call of more than 3 records as an ingest job.
    return SalesforceClient(SALESFORCE_CONN_ID, bulk_threshold=3, sleep=lambda seconds: None)


def test_bulk_update_keeps_hostile_values(env, bulk_client):
    contacts = sorted(_contacts(env), key=str)[: len(HOSTILE_TEXT)]
    env.salesforce.request("PUT", "/__sandbox__/bulk_ingest", {"result_order": "reversed"})
    rows = [
        {
            "Id": contact_id,
            "LastName": text,
            "Title": text,
            "Engagement_Score__c": 0.1 + position,
            "Department": None if position % 2 else "",
        }
        for position, (contact_id, text) in enumerate(zip(contacts, HOSTILE_TEXT, strict=True))
    ]
    try:
        results = bulk_client.update("Contact", rows)
    finally:
        env.salesforce.request("PUT", "/__sandbox__/bulk_ingest", {"result_order": "input"})

    assert bulk_client.api_calls[JOB_CREATE] == 1
    assert bulk_client.api_calls[COLLECTION_UPDATE] == 0
    assert [r.index for r in results] == list(range(len(rows)))
    assert [r.success for r in results] == [True] * len(rows)
    assert [r.id for r in results] == contacts
    stored = _contact_fields(env, "LastName, Title, Department, Engagement_Score__c")
    for row in rows:
        record = stored[row["Id"]]
        assert record["LastName"] == row["LastName"], row["Id"]
        assert record["Title"] == row["Title"], row["Id"]
        assert record["Engagement_Score__c"] == row["Engagement_Score__c"], row["Id"]
        assert record["Department"] is None, row["Id"]


def test_bulk_update_stores_na_text_literally(env, bulk_client):
    contacts = sorted(_contacts(env), key=str)[:4]
    rows = [{"Id": contact_id, "Title": "#N/A"} for contact_id in contacts]

    results = bulk_client.update("Contact", rows)

    # A CSV job would clear the field, so the whole call goes through sObject Collections.
    assert bulk_client.api_calls[JOB_CREATE] == 0
    assert all(r.success for r in results)
    stored = _contact_fields(env, "Title")
    assert [stored[cid]["Title"] for cid in contacts] == ["#N/A"] * 4


def test_bulk_upsert_hostile_external_ids(env, bulk_client):
    keys = ["sub,1", 'sub"2', "sub\n3", "=sub4", "SUB-ümlaut-5"]
    rows = [
        {"Cerkl_Subscriber_Id__c": key, "LastName": f"Upserted {n}"} for n, key in enumerate(keys)
    ]
    env.salesforce.request("PUT", "/__sandbox__/bulk_ingest", {"result_order": "reversed"})
    try:
        first = bulk_client.upsert("Contact", "Cerkl_Subscriber_Id__c", rows)
        again = bulk_client.upsert("Contact", "Cerkl_Subscriber_Id__c", rows)
    finally:
        env.salesforce.request("PUT", "/__sandbox__/bulk_ingest", {"result_order": "input"})

    assert bulk_client.api_calls[JOB_CREATE] == 2
    assert [r.success for r in first] == [True] * len(keys)
    assert [r.created for r in first] == [True] * len(keys)
    assert [r.created for r in again] == [False] * len(keys)
    assert [r.id for r in again] == [r.id for r in first]
    stored = _contacts(env)
    for result, key in zip(first, keys, strict=True):
        assert stored[result.id]["Cerkl_Subscriber_Id__c"] == key
        assert stored[result.id]["LastName"] == f"Upserted {keys.index(key)}"


# -- digest-based write-back over several days ------------------------------------------------


def test_hand_edited_score_restored_on_next_change(env):
    helpers.Pipeline("day-one").rest()
    (contact,) = _linked_contacts(env, 1)
    subscriber_id = int(contact["Cerkl_Subscriber_Id__c"])
    cerkl_before = _subscribers(env)[subscriber_id]
    _at(env, helpers.DAY_TWO, 10)
    _update_contact(env, contact["Id"], {"Engagement_Score__c": 999, "Interest_1__c": "Typed"})
    _after(env, helpers.DAY_TWO)
    _run_day("day-two", helpers.DAY_TWO)
    _at(env, DAY_THREE, 9)
    env.cerkl.edit_subscriber(subscriber_id, first_name="Changed")
    _after(env, DAY_THREE)

    _run_day("day-three", DAY_THREE)

    row = _contacts(env)[contact["Id"]]
    assert row["FirstName"] == "Changed"
    assert row["Engagement_Score__c"] == float(cerkl_before["engagement_score"])
    assert row["Interest_1__c"] == contact["Interest_1__c"]


def test_score_a_b_a_over_three_days(env):
    helpers.Pipeline("day-one").rest()
    (contact,) = _linked_contacts(env, 1)
    subscriber_id = int(contact["Cerkl_Subscriber_Id__c"])
    original = contact["Engagement_Score__c"]
    first, second = _category_ids()[:2]
    _at(env, helpers.DAY_TWO, 9)
    env.cerkl.edit_subscriber(
        subscriber_id,
        engagement_score=original + 7,
        interests=[{"category_id": second, "rank": 1, "score": 5}],
    )
    _after(env, helpers.DAY_TWO)
    _run_day("day-two", helpers.DAY_TWO)
    middle = _contacts(env)[contact["Id"]]
    _at(env, DAY_THREE, 9)
    env.cerkl.edit_subscriber(
        subscriber_id,
        engagement_score=original,
        interests=[{"category_id": first, "rank": 1, "score": 5}],
    )
    _after(env, DAY_THREE)

    _run_day("day-three", DAY_THREE)

    final = _contacts(env)[contact["Id"]]
    assert middle["Engagement_Score__c"] == original + 7
    assert final["Engagement_Score__c"] == original
    assert middle["Interest_1__c"] != final["Interest_1__c"]
    assert final["Interest_2__c"] is None
    assert _rerun_writes(env, "day-three-again", DAY_THREE) == {}


def test_same_day_score_edits_cerkl_wins(env):
    helpers.Pipeline("day-one").rest()
    (contact,) = _linked_contacts(env, 1)
    subscriber_id = int(contact["Cerkl_Subscriber_Id__c"])
    _at(env, helpers.DAY_TWO, 9)
    _update_contact(env, contact["Id"], {"Engagement_Score__c": 999})
    _at(env, helpers.DAY_TWO, 11)
    env.cerkl.edit_subscriber(subscriber_id, engagement_score=12.5)
    _after(env, helpers.DAY_TWO)

    _run_day("day-two", helpers.DAY_TWO)

    assert _contacts(env)[contact["Id"]]["Engagement_Score__c"] == 12.5
    assert _rerun_writes(env, "day-two-again", helpers.DAY_TWO) == {}


def test_link_without_score_digests_gains_them(env):
    helpers.Pipeline("day-one").rest()
    (contact,) = _linked_contacts(env, 1)
    subscriber_id = int(contact["Cerkl_Subscriber_Id__c"])
    state = SyncStateStore.from_connection(STATE_CONN_ID)
    try:
        link = state.get_links_by_subscriber([subscriber_id])[subscriber_id]
        kept = {
            name: digest
            for name, digest in link.synced_values.items()
            if name in ("first_name", "last_name", "email")
        }
        state.save_links([dataclasses.replace(link, synced_values=kept)])
    finally:
        state.dispose()
    _update_contact(env, contact["Id"], {"Engagement_Score__c": 999})
    _at(env, helpers.DAY_TWO, 9)
    env.cerkl.edit_subscriber(subscriber_id, last_name="Renamed")
    _after(env, helpers.DAY_TWO)

    _run_day("day-two", helpers.DAY_TWO)

    row = _contacts(env)[contact["Id"]]
    assert row["LastName"] == "Renamed"
    assert row["Engagement_Score__c"] == contact["Engagement_Score__c"]
    assert _rerun_writes(env, "day-two-again", helpers.DAY_TWO) == {}


# -- adoption of links found in Salesforce ----------------------------------------------------


def _new_subscriber(env: Any, email: str) -> int:
    _at(env, helpers.DAY_TWO, 8)
    api = CerklApi(env.sandbox.cerkl_url)
    try:
        return int(api.create(email=email, first_name="New", last_name="Person")["id"])
    finally:
        api.session.close()


def test_deleted_holder_not_adopted(env):
    helpers.Pipeline("day-one").rest()
    unlinked = sorted(
        (c for c in _contacts(env).values() if not c["Cerkl_Subscriber_Id__c"]),
        key=lambda c: c["Id"],
    )
    holder, match = unlinked[:2]
    subscriber_id = _new_subscriber(env, "deleted.holder@example.org")
    _at(env, helpers.DAY_TWO, 9)
    _update_contact(
        env, holder["Id"], {"Cerkl_Subscriber_Id__c": str(subscriber_id), "Email": "x@example.org"}
    )
    _update_contact(env, match["Id"], {"Email": "deleted.holder@example.org"})
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    try:
        sf.Contact.delete(holder["Id"])
    finally:
        sf.session.close()
    _after(env, helpers.DAY_TWO)
    contacts_before = len(_contacts(env))

    _run_day("day-two", helpers.DAY_TWO)

    after = _contacts(env)
    assert len(after) == contacts_before
    assert after[match["Id"]]["Cerkl_Subscriber_Id__c"] == str(subscriber_id)
    state = SyncStateStore.from_connection(STATE_CONN_ID)
    try:
        link = state.get_links_by_subscriber([subscriber_id]).get(subscriber_id)
    finally:
        state.dispose()
    assert link is not None
    assert link.contact_id == match["Id"]


# -- Campaigns of changed members ---------------------------------------------------------


def _segment_links() -> dict[str, Any]:
    state = SyncStateStore.from_connection(STATE_CONN_ID)
    try:
        return state.get_segment_links()
    finally:
        state.dispose()


def test_deleted_campaign_segment_out_of_scope(env):
    helpers.Pipeline("day-one").rest()
    links = _segment_links()
    campaign_id = sorted(links)[0]
    _at(env, helpers.DAY_TWO, 9)
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    try:
        sf.Campaign.delete(campaign_id)
    finally:
        sf.session.close()
    _after(env, helpers.DAY_TWO)

    pipeline = _run_day("day-two", helpers.DAY_TWO)

    found = {c["Id"]: c for c in pipeline.outputs["extract_campaigns"]}
    assert found[campaign_id]["IsDeleted"] is True
    assert _segment_links()[campaign_id].in_scope is False
    assert pipeline.outputs["sync_segments"][0]["rejected"] == []


def test_member_of_out_of_scope_campaign_ignored(env):
    helpers.Pipeline("day-one").rest()
    _at(env, helpers.DAY_TWO, 9)
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    try:
        campaign_id = sf.Campaign.create({"Name": "Spring webinar", "Type": "Webinar"})["id"]
        contact_id = sorted(_contacts(env))[0]
        sf.CampaignMember.create({"CampaignId": campaign_id, "ContactId": contact_id})
    finally:
        sf.session.close()
    _after(env, helpers.DAY_TWO)
    segments_before = len(_segment_links())

    pipeline = _run_day("day-two", helpers.DAY_TWO)

    found = {c["Id"]: c for c in pipeline.outputs["extract_campaigns"]}
    assert found[campaign_id]["Type"] == "Webinar"
    assert campaign_id not in _segment_links()
    assert len(_segment_links()) == segments_before


def test_bulk_update_of_deleted_contact(env, bulk_client):
    contacts = sorted(_contacts(env), key=str)[:5]
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    try:
        sf.Contact.delete(contacts[2])
    finally:
        sf.session.close()
    rows = [{"Id": contact_id, "Title": "After delete"} for contact_id in contacts]
    collections = SalesforceClient(SALESFORCE_CONN_ID, bulk_threshold=None).update("Contact", rows)

    results = bulk_client.update("Contact", rows)

    # The write-back skips a Contact deleted after the extract by this code, on either path.
    assert bulk_client.api_calls[JOB_CREATE] == 1
    assert [r.error_code for r in collections] == [None, None, "ENTITY_IS_DELETED", None, None]
    assert [r.error_code for r in results] == [r.error_code for r in collections]
    assert [r.success for r in results] == [True, True, False, True, True]


def test_bulk_failure_rows_with_line_breaks(env, bulk_client):
    contacts = sorted(_contacts(env), key=str)[:5]
    rows = [
        {"Id": contact_id, "LastName": f"Break\r{position}", "Email": "not-an-email"}
        for position, contact_id in enumerate(contacts)
    ]
    env.salesforce.request("PUT", "/__sandbox__/bulk_ingest", {"result_order": "reversed"})
    try:
        results = bulk_client.update("Contact", rows)
    finally:
        env.salesforce.request("PUT", "/__sandbox__/bulk_ingest", {"result_order": "input"})

    assert bulk_client.api_calls[JOB_CREATE] == 1
    assert [r.index for r in results] == list(range(5))
    assert [r.error_code for r in results] == ["INVALID_EMAIL_ADDRESS"] * 5
