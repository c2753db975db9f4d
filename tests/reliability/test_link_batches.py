"""New subscribers spread over several batches are linked as if they came in one.

``link_new_subscribers`` sends the writes of all its batches at the end, so a later batch
cannot see the links that an earlier batch planned in the state DB or in Salesforce. It
remembers them instead: a subscriber listed twice is planned once, and a Contact that one
subscriber takes is not offered to another.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from include.cerkl_sync.runtime import STATE_CONN_ID
from include.cerkl_sync.state import SyncStateStore
from tests.dags import sandbox_state as sb
from tests.include.sandbox.cerkl.api_client import CerklApi
from tests.reliability import helpers


def _create_contact(env: Any, **fields: Any) -> str:
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    try:
        return sf.Contact.create(fields)["id"]
    finally:
        sf.session.close()


def _create_subscribers(env: Any, *people: tuple[str, str, str]) -> list[dict[str, Any]]:
    api = CerklApi(env.sandbox.cerkl_url)
    try:
        return [api.create(email=e, first_name=f, last_name=last) for e, f, last in people]
    finally:
        api.session.close()


def _day_two_pipeline(env: Any) -> helpers.Pipeline:
    env.set_clocks(helpers.DAY_TWO + timedelta(days=1, minutes=5))
    pipeline = helpers.Pipeline("day-two", day=helpers.DAY_TWO, full_sync=False)
    pipeline.until("link_new_subscribers")
    return pipeline


def _unlinked(pipeline: helpers.Pipeline) -> dict[int, dict[str, Any]]:
    from include.cerkl_sync.batches import BatchStore

    refs = pipeline.outputs["extract_subscriber_changes"]["unlinked"]
    return {record["id"]: record for record in BatchStore.iter_records(refs)}


def _set_unlinked_batches(pipeline: helpers.Pipeline, *batches: list[dict[str, Any]]) -> None:
    pipeline.outputs["extract_subscriber_changes"]["unlinked"] = [
        {"count": len(batch), "records": batch} for batch in batches
    ]


def _holders(contacts: dict[str, dict[str, Any]]) -> Counter[str]:
    return Counter(
        c["Cerkl_Subscriber_Id__c"] for c in contacts.values() if c["Cerkl_Subscriber_Id__c"]
    )


def test_subscriber_in_two_batches_linked_once(env):
    helpers.Pipeline("day-one").rest()
    env.set_clocks(helpers.DAY_TWO + timedelta(hours=9))
    contact = _create_contact(env, LastName="Twice", Email="listed.twice@example.org")
    (subscriber,) = _create_subscribers(env, ("listed.twice@example.org", "Listed", "Twice"))
    pipeline = _day_two_pipeline(env)
    record = _unlinked(pipeline)[int(subscriber["id"])]
    before = len(helpers.live_contacts(env))
    _set_unlinked_batches(pipeline, [record], [dict(record)])

    result = pipeline.step("link_new_subscribers")[0]

    assert result["counts"].get("linked") == 1, result["counts"]
    assert result["counts"].get("created_contact", 0) == 0, result["counts"]
    after = helpers.live_contacts(env)
    assert len(after) == before
    assert after[contact]["Cerkl_Subscriber_Id__c"] == str(subscriber["id"])
    assert _holders(after)[str(subscriber["id"])] == 1


def test_contact_taken_by_earlier_batch_not_offered(env):
    helpers.Pipeline("day-one").rest()
    env.set_clocks(helpers.DAY_TWO + timedelta(hours=9))
    contact = _create_contact(env, LastName="Shared", Email="shared.inbox@example.org")
    first, second = _create_subscribers(
        env,
        ("shared.inbox@example.org", "First", "Shared"),
        ("moved.inbox@example.org", "Second", "Shared"),
    )
    pipeline = _day_two_pipeline(env)
    unlinked = _unlinked(pipeline)
    # The second subscriber was listed with the first one's address, as when Cerkl's pages
    # are read while an address moves from one subscriber to another.
    listed_second = {**unlinked[int(second["id"])], "email": "shared.inbox@example.org"}
    _set_unlinked_batches(pipeline, [unlinked[int(first["id"])]], [listed_second])

    result = pipeline.step("link_new_subscribers")[0]

    assert result["counts"].get("linked") == 1, result["counts"]
    assert result["counts"].get("created_contact") == 1, result["counts"]
    after = helpers.live_contacts(env)
    assert after[contact]["Cerkl_Subscriber_Id__c"] == str(first["id"])
    holders = _holders(after)
    assert holders[str(first["id"])] == 1
    assert holders[str(second["id"])] == 1
    state = SyncStateStore.from_connection(STATE_CONN_ID)
    try:
        links = state.get_links_by_subscriber([int(first["id"]), int(second["id"])])
    finally:
        state.dispose()
    assert links[int(first["id"])].contact_id == contact
    assert links[int(second["id"])].contact_id != contact
