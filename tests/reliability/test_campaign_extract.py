"""The Campaigns of changed members come with the member rows, not from a look-up by Id."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from include.cerkl_sync.runtime import STATE_CONN_ID
from include.cerkl_sync.state import SyncStateStore
from tests.dags import sandbox_state as sb
from tests.reliability import helpers


def _query_calls(env: Any) -> int:
    return sum(
        count
        for key, count in env.salesforce.counters()["by_endpoint"].items()
        if key.startswith("GET ") and key.endswith(("/query", "/queryAll"))
    )


def test_member_change_campaign_read_with_members(env):
    helpers.Pipeline("day-one").rest()
    env.set_clocks(helpers.DAY_TWO + timedelta(hours=9))
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    try:
        campaign = sf.query("SELECT Id, Name, Type FROM Campaign ORDER BY Id LIMIT 1")["records"][0]
        members = sf.query(
            f"SELECT ContactId FROM CampaignMember WHERE CampaignId = '{campaign['Id']}'"
        )["records"]
        present = {m["ContactId"] for m in members}
        outside = next(c for c in sb.contacts(sf).values() if c["Id"] not in present)
        sf.CampaignMember.create({"CampaignId": campaign["Id"], "ContactId": outside["Id"]})
    finally:
        sf.session.close()
    env.set_clocks(helpers.DAY_TWO + timedelta(days=1, minutes=5))
    # Members waiting for a link would add their Campaigns' look-up by Id.
    state = SyncStateStore.from_connection(STATE_CONN_ID)
    try:
        state.clear_work_items(flow="campaigns_to_segments")
    finally:
        state.dispose()
    pipeline = helpers.Pipeline("day-two", day=helpers.DAY_TWO, full_sync=False)
    env.reset_counters()

    found = pipeline.step("extract_campaigns")

    # One query for Campaigns changed in the window and one for changed members.
    assert _query_calls(env) == 2
    assert found == [
        {
            "Id": campaign["Id"],
            "Name": campaign["Name"],
            "Type": campaign["Type"],
            "IsDeleted": False,
        }
    ]
