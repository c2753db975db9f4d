"""Links found in Salesforce but not in the state DB are adopted, with as few reads as needed.

A Contact whose subscriber-id field contains a subscriber the state DB has no link for is that
subscriber's link. For a subscriber created in the Contact extract's window, the extract has
such a Contact, so Salesforce is not asked. An older subscriber is looked up by id.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from include.cerkl_sync.runtime import STATE_CONN_ID
from include.cerkl_sync.state import SyncStateStore
from tests.dags import sandbox_state as sb
from tests.include.sandbox.cerkl.api_client import CerklApi
from tests.reliability import helpers


def _query_calls(env: Any) -> int:
    return sum(
        count
        for key, count in env.salesforce.counters()["by_endpoint"].items()
        if key.startswith("GET ") and key.endswith(("/query", "/queryAll"))
    )


def _state() -> SyncStateStore:
    return SyncStateStore.from_connection(STATE_CONN_ID)


def _update_contact(env: Any, contact_id: str, fields: dict[str, Any]) -> None:
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    try:
        sf.Contact.update(contact_id, fields)
    finally:
        sf.session.close()


def test_new_subscriber_adopted_from_extract(env):
    helpers.Pipeline("day-one").rest()
    unlinked = sorted(
        (c for c in helpers.live_contacts(env).values() if not c["Cerkl_Subscriber_Id__c"]),
        key=lambda c: c["Id"],
    )
    holder = unlinked[0]
    env.set_clocks(helpers.DAY_TWO + timedelta(hours=9))
    api = CerklApi(env.sandbox.cerkl_url)
    try:
        created = api.create(email="adopt.me@example.org", first_name="Adopt", last_name="Me")
    finally:
        api.session.close()
    # An email of its own keeps the Contact in scope and out of the subscriber's email match.
    _update_contact(
        env,
        holder["Id"],
        {"Cerkl_Subscriber_Id__c": str(created["id"]), "Email": "holder@example.org"},
    )
    env.set_clocks(helpers.DAY_TWO + timedelta(days=1, minutes=5))
    before = len(helpers.live_contacts(env))
    pipeline = helpers.Pipeline("day-two", day=helpers.DAY_TWO, full_sync=False)
    pipeline.until("link_new_subscribers")
    env.reset_counters()

    result = pipeline.step("link_new_subscribers")[0]

    # The extract already contains the Contact with the subscriber id, so nothing is read.
    assert _query_calls(env) == 0
    assert result["counts"].get("linked") == 1, result["counts"]
    assert result["counts"].get("created_contact", 0) == 0, result["counts"]
    assert len(helpers.live_contacts(env)) == before
    state = _state()
    try:
        links = state.get_links_by_subscriber([int(created["id"])])
    finally:
        state.dispose()
    assert links[int(created["id"])].contact_id == holder["Id"]


def test_old_subscriber_link_looked_up(env):
    helpers.Pipeline("day-one").rest()
    contact = sorted(
        (
            c
            for c in helpers.live_contacts(env).values()
            if c["Cerkl_Subscriber_Id__c"]
            and not (c["Cerkl_Unsubscribe__c"] or c["HasOptedOutOfEmail"])
        ),
        key=lambda c: c["Id"],
    )[0]
    subscriber_id = int(contact["Cerkl_Subscriber_Id__c"])
    # Before the day-two window: a new email that no subscriber has, so that only the
    # look-up by subscriber id can find the Contact.
    env.set_clocks(helpers.DAY_TWO - timedelta(minutes=30))
    _update_contact(env, contact["Id"], {"Email": "moved.before.window@example.org"})
    state = _state()
    try:
        assert state.delete_links([contact["Id"]]) == 1
    finally:
        state.dispose()
    env.set_clocks(helpers.DAY_TWO + timedelta(hours=9))
    env.cerkl.edit_subscriber(subscriber_id, first_name="Renamed")
    env.set_clocks(helpers.DAY_TWO + timedelta(days=1, minutes=5))
    before = helpers.live_contacts(env)
    pipeline = helpers.Pipeline("day-two", day=helpers.DAY_TWO, full_sync=False)
    pipeline.until("link_new_subscribers")

    result = pipeline.step("link_new_subscribers")[0]

    assert result["counts"].get("linked") == 1, result["counts"]
    assert result["counts"].get("created_contact", 0) == 0, result["counts"]
    after = helpers.live_contacts(env)
    assert len(after) == len(before)
    assert after[contact["Id"]]["AccountId"] == contact["AccountId"]
    state = _state()
    try:
        links = state.get_links_by_subscriber([subscriber_id])
    finally:
        state.dispose()
    assert links[subscriber_id].contact_id == contact["Id"]
