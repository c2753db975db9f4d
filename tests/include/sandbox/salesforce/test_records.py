"""Record writes on the store: the Email and names that CampaignMembers copy from people."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from include.sandbox.salesforce import records
from include.sandbox.salesforce.store import SalesforceStore

NOW = datetime(2026, 11, 2, 1, tzinfo=UTC)
EXISTING_MEMBERS = 300


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SalesforceStore]:
    """A store with one Campaign whose members are 300 Contacts."""
    opened = SalesforceStore(tmp_path / "salesforce.sqlite3", lambda: NOW)
    contact_ids = opened.insert_records(
        "Contact",
        [
            {"LastName": f"Member{index}", "Email": f"m{index}@example.com"}
            for index in range(EXISTING_MEMBERS)
        ],
    )
    campaign_id = opened.insert_records("Campaign", [{"Name": "Launch"}])[0]
    opened.insert_records(
        "CampaignMember",
        [{"CampaignId": campaign_id, "ContactId": contact_id} for contact_id in contact_ids],
    )
    try:
        yield opened
    finally:
        opened.connection.close()


def _member(store: SalesforceStore, member_id: str) -> dict:
    row = store.fetch_row("CampaignMember", member_id)
    assert row is not None
    return row


def _campaign_id(store: SalesforceStore) -> str:
    return store.connection.execute("SELECT Id FROM Campaign").fetchone()[0]


def test_member_create_writes_only_own_row(store: SalesforceStore) -> None:
    contact_id = records.create_record(
        store, "Contact", {"LastName": "Joiner", "Email": "joiner@example.com"}
    )
    before = store.connection.total_changes
    with records.transaction(store):
        records.create_record(
            store, "CampaignMember", {"CampaignId": _campaign_id(store), "ContactId": contact_id}
        )
    changed = store.connection.total_changes - before
    # The insert, its sequence and the copy onto the new row. Refreshing every member
    # would change all 300 existing rows as well.
    assert changed < 10
    assert store.count("CampaignMember") == EXISTING_MEMBERS + 1


def test_member_create_copies_contact_fields(store: SalesforceStore) -> None:
    contact_id = records.create_record(
        store,
        "Contact",
        {
            "FirstName": "Jo",
            "LastName": "Joiner",
            "Email": "joiner@example.com",
            "HasOptedOutOfEmail": True,
        },
    )
    member_id = records.create_record(
        store, "CampaignMember", {"CampaignId": _campaign_id(store), "ContactId": contact_id}
    )
    member = _member(store, member_id)
    assert member["Email"] == "joiner@example.com"
    assert member["FirstName"] == "Jo"
    assert member["LastName"] == "Joiner"
    assert member["HasOptedOutOfEmail"] == 1


def test_member_create_copies_lead_fields(store: SalesforceStore) -> None:
    lead_id = records.create_record(
        store,
        "Lead",
        {"FirstName": "Lee", "LastName": "Lead", "Company": "Initech", "Email": "lee@example.com"},
    )
    member_id = records.create_record(
        store, "CampaignMember", {"CampaignId": _campaign_id(store), "LeadId": lead_id}
    )
    member = _member(store, member_id)
    assert member["Email"] == "lee@example.com"
    assert member["FirstName"] == "Lee"
    assert member["LastName"] == "Lead"


def test_contact_update_refreshes_its_members(store: SalesforceStore) -> None:
    contact_id = store.connection.execute(
        "SELECT ContactId FROM CampaignMember ORDER BY _seq LIMIT 1"
    ).fetchone()[0]
    records.update_record(store, "Contact", contact_id, {"Email": "moved@example.com"})
    emails = [
        row[0]
        for row in store.connection.execute(
            "SELECT Email FROM CampaignMember WHERE ContactId = ?", (contact_id,)
        )
    ]
    assert emails == ["moved@example.com"]
    unchanged = store.connection.execute(
        "SELECT COUNT(*) FROM CampaignMember WHERE Email GLOB 'm[0-9]*@example.com'"
    ).fetchone()[0]
    assert unchanged == EXISTING_MEMBERS - 1
