"""Tests of the sandbox org generator: determinism and what each spec field changes."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import unicodedata
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from include.sandbox.generator import (
    CATEGORY_DESCRIPTIONS,
    CERKL_COLLECTIONS,
    DEFAULT_NOW,
    ORGANIZATION_ACCOUNT_ID,
    SALESFORCE_OBJECTS,
    GeneratedOrg,
    OrgSpec,
    add_org_spec_arguments,
    case_safe_id,
    generate_org,
    org_spec_from_arguments,
)
from include.sandbox.seeding import seed_data_dir, seed_records

SMALL = OrgSpec(contacts=300, subscribers=200, accounts=5, leads=20, campaigns=8)


def dump_org(org: GeneratedOrg) -> str:
    """Serialize every record of an org, so that two orgs compare byte for byte."""
    payload: dict[str, Any] = {}
    for sobject in SALESFORCE_OBJECTS:
        payload[sobject] = list(org.salesforce_records(sobject))
    for collection in CERKL_COLLECTIONS:
        payload[collection] = list(org.cerkl_records(collection))
    return json.dumps(payload, default=str, ensure_ascii=False, sort_keys=True)


def normalized(email: str | None) -> str | None:
    return None if email is None else email.strip().lower()


def contacts_by_email(org: GeneratedOrg) -> dict[str, list[dict[str, Any]]]:
    result: dict[str, list[dict[str, Any]]] = {}
    for contact in org.contacts():
        if contact["Email"] is not None:
            result.setdefault(normalized(contact["Email"]), []).append(contact)
    return result


def match_counts(org: GeneratedOrg) -> Counter:
    """Count unlinked subscribers by how many Contacts share their email (0, 1, 2 = several)."""
    by_email = contacts_by_email(org)
    linked_ids = {
        contact["Cerkl_Subscriber_Id__c"]
        for contacts in by_email.values()
        for contact in contacts
        if contact["Cerkl_Subscriber_Id__c"]
    }
    counts: Counter = Counter()
    for subscriber in org.subscribers():
        if str(subscriber["id"]) in linked_ids:
            continue
        matches = len(by_email.get(normalized(subscriber["email"]), []))
        counts[min(matches, 2)] += 1
    return counts


def is_right_to_left(text: str) -> bool:
    return any(unicodedata.bidirectional(char) in ("R", "AL") for char in text)


def is_cjk(text: str) -> bool:
    return any(
        unicodedata.name(char, "").startswith(("CJK", "HANGUL", "HIRAGANA", "KATAKANA"))
        for char in text
    )


# -- determinism -------------------------------------------------------------------------


def test_generate_org_same_spec_is_byte_identical():
    first = dump_org(generate_org(SMALL))
    second = dump_org(generate_org(SMALL))

    assert first == second


def test_generate_org_identical_across_processes():
    script = (
        "import hashlib, json\n"
        "from include.sandbox.generator import *\n"
        "org = generate_org(OrgSpec(contacts=300, subscribers=200, accounts=5, leads=20,"
        " campaigns=8))\n"
        "payload = {n: list(org.salesforce_records(n)) for n in SALESFORCE_OBJECTS}\n"
        "payload.update({n: list(org.cerkl_records(n)) for n in CERKL_COLLECTIONS})\n"
        "text = json.dumps(payload, default=str, ensure_ascii=False, sort_keys=True)\n"
        "print(hashlib.sha256(text.encode()).hexdigest())\n"
    )
    environment = {**os.environ, "PYTHONHASHSEED": "12345"}
    output = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
        cwd=Path(__file__).resolve().parents[3],
    ).stdout.strip()

    assert output == hashlib.sha256(dump_org(generate_org(SMALL)).encode()).hexdigest()


def test_generate_org_iterators_repeat_in_any_order():
    org = generate_org(SMALL)
    subscribers_first = list(org.subscribers())
    contacts = list(org.contacts())

    assert list(org.contacts()) == contacts
    assert list(org.subscribers()) == subscribers_first


def test_generate_org_other_seed_differs():
    first = dump_org(generate_org(SMALL))
    other = dump_org(generate_org(replace(SMALL, seed=7)))

    assert first != other


def test_generate_org_sizes_follow_spec():
    org = generate_org(SMALL)

    assert len(list(org.contacts())) == 300
    assert len(list(org.subscribers())) == 200
    assert len(list(org.accounts())) == 5 + 1
    assert len(list(org.leads())) == 20
    assert len(list(org.campaigns())) == 8
    assert len(list(org.categories())) == len(CATEGORY_DESCRIPTIONS)
    assert len(list(org.unsubscribes())) == SMALL.self_unsubscribes + SMALL.admin_unsubscribes


def test_generate_org_ids_unique_and_case_safe():
    org = generate_org(SMALL)
    ids = [
        record["Id"] for sobject in SALESFORCE_OBJECTS for record in org.salesforce_records(sobject)
    ]

    assert len(ids) == len(set(ids))
    for record_id in ids:
        assert len(record_id) == 18
        assert case_safe_id(record_id[:15]) == record_id

    subscriber_ids = [subscriber["id"] for subscriber in org.subscribers()]
    unsubscribe_ids = [unsubscribe["id"] for unsubscribe in org.unsubscribes()]
    assert len(set(subscriber_ids + unsubscribe_ids)) == len(subscriber_ids) + len(unsubscribe_ids)


# -- the organization Account ------------------------------------------------------------


def test_case_safe_id_known_values():
    assert case_safe_id("001C000001aTtMa") == "001C000001aTtMaIAK"
    assert case_safe_id("003000000000000") == "003000000000000AAA"
    assert case_safe_id("ABCDEABCDEABCDE") == "ABCDEABCDEABCDE555"


def test_case_safe_id_rejects_wrong_length():
    with pytest.raises(ValueError, match="15-character"):
        case_safe_id("001C000001aTtMaIAK")


def test_organization_account_always_present():
    for spec in (SMALL, replace(SMALL, accounts=0, seed=3)):
        accounts = list(generate_org(spec).accounts())

        assert accounts[0]["Id"] == ORGANIZATION_ACCOUNT_ID
        assert ORGANIZATION_ACCOUNT_ID == "001C000001aTtMaIAK"


def test_contact_accounts_exist():
    org = generate_org(SMALL)
    account_ids = {account["Id"] for account in org.accounts()}
    contact_account_ids = {contact["AccountId"] for contact in org.contacts()}

    assert contact_account_ids - {None} <= account_ids
    assert ORGANIZATION_ACCOUNT_ID in contact_account_ids


def test_contact_without_account_share():
    none = generate_org(replace(SMALL, contact_without_account_share=0.0))
    every = generate_org(replace(SMALL, contact_without_account_share=1.0))

    assert all(contact["AccountId"] for contact in none.contacts())
    assert all(contact["AccountId"] is None for contact in every.contacts())


# -- links and matches -------------------------------------------------------------------


def test_linked_share_links_contacts_to_subscribers():
    org = generate_org(replace(SMALL, linked_share=0.25))
    subscribers = {str(s["id"]): s for s in org.subscribers()}
    linked = [c for c in org.contacts() if c["Cerkl_Subscriber_Id__c"]]

    assert len(linked) == 50
    assert len({c["Cerkl_Subscriber_Id__c"] for c in linked}) == 50
    for contact in linked:
        subscriber = subscribers[contact["Cerkl_Subscriber_Id__c"]]
        assert normalized(contact["Email"]) == normalized(subscriber["email"])
        assert contact["Engagement_Score__c"] == subscriber["engagement_score"]


def test_linked_contacts_carry_top_interests():
    org = generate_org(SMALL)
    top: dict[int, dict[int, str]] = {}
    for interest in org.interests():
        if interest["rank"] <= 5:
            description = CATEGORY_DESCRIPTIONS[interest["category_id"] - 1]
            top.setdefault(interest["subscriber_id"], {})[interest["rank"]] = description

    for contact in org.contacts():
        if not contact["Cerkl_Subscriber_Id__c"]:
            assert contact["Interest_1__c"] is None
            continue
        expected = top.get(int(contact["Cerkl_Subscriber_Id__c"]), {})
        for rank in range(1, 6):
            assert contact[f"Interest_{rank}__c"] == expected.get(rank)


def test_unlinked_match_shares_set_zero_one_several():
    spec = replace(
        SMALL,
        linked_share=0.5,
        unlinked_one_match_share=0.3,
        unlinked_several_match_share=0.2,
    )
    counts = match_counts(generate_org(spec))

    assert counts[1] == 30
    assert counts[2] == 20
    assert counts[0] == 50


def test_unlinked_match_shares_all_several():
    spec = replace(
        SMALL, contacts=500, unlinked_one_match_share=0.0, unlinked_several_match_share=1.0
    )
    counts = match_counts(generate_org(spec))

    assert counts[0] == 0
    assert counts[1] == 0
    assert counts[2] == 100


def test_several_match_max_bounds_group_size():
    spec = replace(
        SMALL, unlinked_one_match_share=0.0, unlinked_several_match_share=0.5, several_match_max=4
    )
    org = generate_org(spec)
    sizes = [len(group) for group in contacts_by_email(org).values() if len(group) > 1]

    assert len(sizes) == 50
    assert max(sizes) <= 4
    assert min(sizes) >= 2
    assert 4 in sizes


def test_generate_org_rejects_too_few_contacts():
    with pytest.raises(ValueError, match="contacts=100"):
        generate_org(replace(SMALL, contacts=100))


def test_emails_unique_per_person_on_example_domains():
    org = generate_org(replace(SMALL, unlinked_several_match_share=0.0))
    subscriber_emails = [normalized(s["email"]) for s in org.subscribers()]
    contact_emails = [normalized(c["Email"]) for c in org.contacts() if c["Email"]]
    lead_emails = [lead["Email"] for lead in org.leads()]
    unsubscribe_emails = [u["email"] for u in org.unsubscribes()]

    assert len(set(subscriber_emails)) == len(subscriber_emails)
    assert len(set(contact_emails)) == len(contact_emails)
    assert not set(lead_emails) & (set(subscriber_emails) | set(contact_emails))
    assert not set(unsubscribe_emails) & set(subscriber_emails)
    for email in subscriber_emails + contact_emails + lead_emails + unsubscribe_emails:
        assert email.rsplit("@", 1)[1] in ("example.org", "example.com", "example.net")


def test_email_variant_share_changes_case_and_spaces():
    plain = generate_org(replace(SMALL, email_variant_share=0.0))
    variants = generate_org(
        replace(SMALL, email_variant_share=1.0, email_variant_side="salesforce")
    )
    subscriber_emails = {s["email"] for s in variants.subscribers()}
    matched_variant_emails = [
        c["Email"]
        for c in variants.contacts()
        if c["Email"] and normalized(c["Email"]) in subscriber_emails
    ]

    for contact in plain.contacts():
        assert contact["Email"] is None or contact["Email"] == normalized(contact["Email"])
    for subscriber in plain.subscribers():
        assert subscriber["email"] == normalized(subscriber["email"])
    assert matched_variant_emails
    for email in matched_variant_emails:
        assert email != normalized(email)
    assert any(email != email.strip() for email in matched_variant_emails)
    assert any(email == email.strip() for email in matched_variant_emails)
    for email in subscriber_emails:
        assert email == normalized(email)


def test_email_variant_side_cerkl_changes_subscribers():
    org = generate_org(replace(SMALL, email_variant_share=1.0, email_variant_side="cerkl"))
    subscribers = list(org.subscribers())
    by_email = contacts_by_email(org)
    matched = [s for s in subscribers if normalized(s["email"]) in by_email]
    unmatched = [s for s in subscribers if normalized(s["email"]) not in by_email]

    assert len(matched) == 200 - org.zero_match_count
    for subscriber in matched:
        assert subscriber["email"] != normalized(subscriber["email"])
    for subscriber in unmatched:
        assert subscriber["email"] == normalized(subscriber["email"])
    for contact in org.contacts():
        assert contact["Email"] is None or contact["Email"] == normalized(contact["Email"])


def test_email_variant_side_both_changes_both():
    org = generate_org(replace(SMALL, email_variant_share=0.5, email_variant_side="both"))
    contact_variants = [
        c for c in org.contacts() if c["Email"] and c["Email"] != normalized(c["Email"])
    ]
    subscriber_variants = [s for s in org.subscribers() if s["email"] != normalized(s["email"])]

    assert contact_variants
    assert subscriber_variants


def test_contact_without_email_share():
    spec = replace(SMALL, contact_without_email_share=1.0)
    org = generate_org(spec)
    contacts = list(org.contacts())
    without_email = [c for c in contacts if c["Email"] is None]

    # Contacts that match a subscriber or an unsubscribe keep their email.
    assert len(without_email) == 300 - org.matched_contact_count - org.unsubscribe_contact_count
    assert not any(c["Cerkl_Subscriber_Id__c"] for c in without_email)


# -- names -------------------------------------------------------------------------------


def test_missing_first_name_share():
    none = generate_org(replace(SMALL, missing_first_name_share=0.0))
    every = generate_org(replace(SMALL, missing_first_name_share=1.0))

    assert all(c["FirstName"] for c in none.contacts())
    assert all(s["first_name"] for s in none.subscribers())
    assert all(c["FirstName"] is None for c in every.contacts())
    assert all(s["first_name"] is None for s in every.subscribers())
    assert all(lead["FirstName"] is None for lead in every.leads())


def test_missing_last_name_share_only_on_subscribers():
    every = generate_org(replace(SMALL, missing_last_name_share=1.0))

    assert all(s["last_name"] is None for s in every.subscribers())
    assert all(c["LastName"] for c in every.contacts())
    assert all(lead["LastName"] for lead in every.leads())


def test_non_ascii_name_share_zero_gives_ascii():
    org = generate_org(replace(SMALL, non_ascii_name_share=0.0))

    for contact in org.contacts():
        assert contact["LastName"].isascii()
        assert (contact["FirstName"] or "").isascii()


def test_non_ascii_name_share_covers_scripts():
    org = generate_org(replace(SMALL, non_ascii_name_share=1.0, missing_first_name_share=0.0))
    names = [c["FirstName"] + " " + c["LastName"] for c in org.contacts()]

    assert all(not name.isascii() for name in names)
    assert any(unicodedata.normalize("NFC", name) != name for name in names)
    assert any(is_cjk(name) for name in names)
    assert any(is_right_to_left(name) for name in names)
    accented = [n for n in names if unicodedata.normalize("NFC", n) == n and not is_cjk(n)]
    assert any(not is_right_to_left(name) for name in accented)
    for contact in org.contacts():
        local_part = normalized(contact["Email"]).split("@")[0] if contact["Email"] else ""
        assert local_part.isascii()


def test_matched_subscriber_has_same_name():
    org = generate_org(replace(SMALL, missing_first_name_share=0.0, missing_last_name_share=0.0))
    by_email = contacts_by_email(org)

    for subscriber in org.subscribers():
        for contact in by_email.get(normalized(subscriber["email"]), []):
            assert contact["FirstName"] == subscriber["first_name"]
            assert contact["LastName"] == subscriber["last_name"]


# -- opt-outs and unsubscribes -----------------------------------------------------------


def test_opted_out_share():
    none = generate_org(replace(SMALL, opted_out_share=0.0))
    every = generate_org(replace(SMALL, opted_out_share=1.0))

    assert not any(c["HasOptedOutOfEmail"] for c in none.contacts())
    assert all(c["HasOptedOutOfEmail"] for c in every.contacts())
    assert all(lead["HasOptedOutOfEmail"] for lead in every.leads())


def test_self_and_admin_unsubscribes():
    org = generate_org(replace(SMALL, self_unsubscribes=7, admin_unsubscribes=3))
    unsubscribes = list(org.unsubscribes())

    assert sum(1 for u in unsubscribes if u["self_unsubscribed"]) == 7
    assert sum(1 for u in unsubscribes if not u["self_unsubscribed"]) == 3
    for unsubscribe in unsubscribes:
        expected_source = "subscriber" if unsubscribe["self_unsubscribed"] else "admin"
        assert unsubscribe["source"] == expected_source
        assert unsubscribe["date_unsubscribed_utc"] <= DEFAULT_NOW


def test_unsubscribe_contact_and_flagged_shares():
    spec = replace(SMALL, unsubscribe_contact_share=1.0, unsubscribe_flagged_share=1.0)
    org = generate_org(spec)
    by_email = contacts_by_email(org)
    unsubscribes = list(org.unsubscribes())

    for unsubscribe in unsubscribes:
        contacts = by_email[unsubscribe["email"]]
        assert len(contacts) == 1
        assert contacts[0]["Cerkl_Unsubscribe__c"] is True
        assert contacts[0]["Cerkl_Subscriber_Id__c"] is None
    flagged = [c for c in org.contacts() if c["Cerkl_Unsubscribe__c"]]
    assert len(flagged) == len(unsubscribes)


def test_unsubscribe_contact_share_zero():
    org = generate_org(replace(SMALL, unsubscribe_contact_share=0.0))
    by_email = contacts_by_email(org)

    assert not any(u["email"] in by_email for u in org.unsubscribes())
    assert not any(c["Cerkl_Unsubscribe__c"] for c in org.contacts())


def test_unsubscribe_flagged_share_zero():
    org = generate_org(replace(SMALL, unsubscribe_contact_share=1.0, unsubscribe_flagged_share=0.0))

    assert not any(c["Cerkl_Unsubscribe__c"] for c in org.contacts())


# -- engagement and interests ------------------------------------------------------------


def test_interests_ranked_within_max():
    org = generate_org(replace(SMALL, max_interests=8))
    by_subscriber: dict[int, list[dict[str, Any]]] = {}
    for interest in org.interests():
        by_subscriber.setdefault(interest["subscriber_id"], []).append(interest)

    counts = Counter(len(rows) for rows in by_subscriber.values())
    assert max(counts) == 8
    assert len(by_subscriber) < 200  # some subscribers have no interests
    for rows in by_subscriber.values():
        assert [row["rank"] for row in rows] == list(range(1, len(rows) + 1))
        scores = [row["score"] for row in rows]
        assert scores == sorted(scores, reverse=True)
        assert len({row["category_id"] for row in rows}) == len(rows)
        for row in rows:
            assert 1 <= row["category_id"] <= len(CATEGORY_DESCRIPTIONS)


def test_max_interests_zero_gives_none():
    org = generate_org(replace(SMALL, max_interests=0))

    assert list(org.interests()) == []


def test_engagement_scores_in_range():
    scores = [s["engagement_score"] for s in generate_org(SMALL).subscribers()]

    assert min(scores) >= 0.0
    assert max(scores) <= 100.0
    assert len(set(scores)) > 50


# -- campaigns, members and segments -----------------------------------------------------


def test_default_campaign_type_mix():
    types = Counter(c["Type"] for c in generate_org(replace(SMALL, campaigns=12)).campaigns())

    assert types["Distribution List"] == 4
    assert types["Committee"] == 2
    assert types["Board"] == 1
    assert types["Webinar"] == 2


def test_campaign_type_weights_set_mix():
    spec = replace(SMALL, campaigns=10, campaign_type_weights=(("Board", 1), ("Webinar", 4)))
    types = Counter(c["Type"] for c in generate_org(spec).campaigns())

    assert types == Counter({"Webinar": 8, "Board": 2})


def test_campaign_member_sizes_bounded():
    spec = replace(SMALL, campaign_members_min=10, campaign_members_max=12, lead_member_share=0.0)
    org = generate_org(spec)
    sizes = Counter(member["CampaignId"] for member in org.campaign_members())

    assert len(sizes) == 8
    assert all(10 <= size <= 12 for size in sizes.values())


def test_campaign_members_reference_records():
    spec = replace(SMALL, lead_member_share=0.5, campaign_members_min=10)
    org = generate_org(spec)
    contact_ids = {c["Id"] for c in org.contacts()}
    lead_ids = {lead["Id"] for lead in org.leads()}
    campaign_ids = {c["Id"] for c in org.campaigns()}
    members = list(org.campaign_members())

    lead_members = [m for m in members if "LeadId" in m]
    assert lead_members
    for member in members:
        assert member["CampaignId"] in campaign_ids
        if "LeadId" in member:
            assert member["LeadId"] in lead_ids
            assert "ContactId" not in member
        else:
            assert member["ContactId"] in contact_ids
    pairs = [(m["CampaignId"], m.get("ContactId") or m.get("LeadId")) for m in members]
    assert len(pairs) == len(set(pairs))


def test_lead_member_share_zero_gives_contacts_only():
    org = generate_org(replace(SMALL, lead_member_share=0.0))

    assert not any("LeadId" in member for member in org.campaign_members())


def test_segments_mirror_synced_campaigns():
    spec = replace(SMALL, synced_campaign_share=1.0, manual_segments=0)
    org = generate_org(spec)
    campaigns = {c["Id"]: c for c in org.campaigns()}
    linked = {
        c["Id"]: int(c["Cerkl_Subscriber_Id__c"])
        for c in org.contacts()
        if c["Cerkl_Subscriber_Id__c"]
    }
    members_by_campaign: dict[str, set[int]] = {}
    for member in org.campaign_members():
        subscriber_id = linked.get(member.get("ContactId"))
        members_by_campaign.setdefault(member["CampaignId"], set())
        if subscriber_id is not None:
            members_by_campaign[member["CampaignId"]].add(subscriber_id)
    segments = list(org.segments())

    in_scope = [c for c in campaigns.values() if c["Type"] in spec.segment_campaign_types]
    assert len(segments) == len(in_scope)
    for segment in segments:
        campaign_id = segment["external_id"].removeprefix("SF_")
        assert campaigns[campaign_id]["Type"] in spec.segment_campaign_types
        assert segment["description"] == campaigns[campaign_id]["Name"]
        assert set(segment["members"]) == members_by_campaign[campaign_id]


def test_synced_campaign_share_zero_leaves_manual_segments():
    org = generate_org(replace(SMALL, synced_campaign_share=0.0, manual_segments=3))
    segments = list(org.segments())
    subscriber_ids = {s["id"] for s in org.subscribers()}

    assert len(segments) == 3
    for segment in segments:
        assert segment["external_id"] is None
        assert set(segment["members"]) <= subscriber_ids


# -- timestamps --------------------------------------------------------------------------


def test_timestamps_within_year_before_now():
    now = datetime(2030, 6, 1, 12, tzinfo=UTC)
    org = generate_org(replace(SMALL, now=now))

    for contact in org.contacts():
        assert now - timedelta(days=365) <= contact["CreatedDate"] <= now
        assert contact["CreatedDate"] <= contact["LastModifiedDate"] <= now
        assert contact["SystemModstamp"] >= contact["LastModifiedDate"]
    for subscriber in org.subscribers():
        assert now - timedelta(days=365) <= subscriber["date_created_utc"] <= now
        assert subscriber["date_created_utc"] <= subscriber["date_modified_utc"] <= now


def test_campaign_members_created_after_campaign():
    org = generate_org(SMALL)
    campaigns = {c["Id"]: c for c in org.campaigns()}

    for member in org.campaign_members():
        campaign = campaigns[member["CampaignId"]]
        assert campaign["CreatedDate"] <= member["CreatedDate"] <= member["LastModifiedDate"]
        assert member["SystemModstamp"] <= DEFAULT_NOW


def test_default_now_is_fixed():
    contacts = list(generate_org(SMALL).contacts())

    assert max(c["LastModifiedDate"] for c in contacts) <= DEFAULT_NOW
    assert min(c["CreatedDate"] for c in contacts) >= DEFAULT_NOW - timedelta(days=365)


# -- spec validation and command-line options --------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"linked_share": 1.5}, "linked_share=1.5"),
        ({"contacts": -1}, "contacts=-1"),
        ({"unlinked_one_match_share": 0.7, "unlinked_several_match_share": 0.4}, "at most 1"),
        ({"several_match_max": 1}, "several_match_max=1"),
        ({"campaign_members_min": 5, "campaign_members_max": 4}, "campaign_members_min=5"),
        ({"max_interests": 99}, "max_interests=99"),
        ({"now": datetime(2026, 1, 1)}, "aware datetime"),
        ({"campaign_type_weights": (("Board", 0),)}, "campaign_type_weights"),
        ({"email_variant_side": "left"}, "email_variant_side='left'"),
    ],
)
def test_org_spec_rejects_invalid_values(changes, message):
    with pytest.raises(ValueError, match=message):
        OrgSpec(**changes)


def test_org_spec_arguments_round_trip():
    parser = argparse.ArgumentParser()
    add_org_spec_arguments(parser)
    args = parser.parse_args(
        [
            "--contacts",
            "500",
            "--linked-share",
            "0.2",
            "--now",
            "2030-01-02T03:04:05Z",
            "--campaign-type-weights",
            "Board=2,Webinar=1",
            "--segment-campaign-types",
            "Board,Committee",
            "--email-variant-side",
            "cerkl",
        ]
    )
    spec = org_spec_from_arguments(args)

    assert spec.contacts == 500
    assert spec.linked_share == 0.2
    assert spec.subscribers == OrgSpec().subscribers
    assert spec.now == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert spec.campaign_type_weights == (("Board", 2), ("Webinar", 1))
    assert spec.segment_campaign_types == ("Board", "Committee")
    assert spec.email_variant_side == "cerkl"


def test_org_spec_arguments_reject_bad_weights():
    parser = argparse.ArgumentParser()
    add_org_spec_arguments(parser)

    with pytest.raises(SystemExit):
        parser.parse_args(["--campaign-type-weights", "Board"])


# -- seeding the stores ------------------------------------------------------------------


def open_stores(data_dir):
    from include.sandbox.cerkl.store import CerklStore
    from include.sandbox.salesforce.store import SalesforceStore

    def clock() -> datetime:
        return datetime.now(UTC)

    salesforce = SalesforceStore(data_dir / "salesforce.sqlite3", clock)
    cerkl = CerklStore(data_dir / "cerkl.sqlite3", clock)
    return salesforce, cerkl


def test_seed_data_dir_fills_both_stores(tmp_path):
    counts = seed_data_dir(tmp_path, SMALL)
    salesforce, cerkl = open_stores(tmp_path)
    org = generate_org(SMALL)

    assert counts["Contact"] == 300
    assert counts["subscribers"] == 200
    for sobject in SALESFORCE_OBJECTS:
        assert salesforce.count(sobject) == counts[sobject]
        assert counts[sobject] == len(list(org.salesforce_records(sobject)))
    for collection in CERKL_COLLECTIONS:
        assert cerkl.count(collection) == counts[collection]
    assert cerkl.count("segment_members") == sum(len(s["members"]) for s in org.segments())


def test_seed_data_dir_links_match_in_stores(tmp_path):
    seed_data_dir(tmp_path, SMALL)
    salesforce, cerkl = open_stores(tmp_path)
    org = generate_org(SMALL)
    linked = [c for c in org.contacts() if c["Cerkl_Subscriber_Id__c"]]

    for contact in linked[:20]:
        row = salesforce.fetch_row("Contact", contact["Id"])
        subscriber = cerkl.get_subscriber(int(contact["Cerkl_Subscriber_Id__c"]))
        assert row["Cerkl_Subscriber_Id__c"] == contact["Cerkl_Subscriber_Id__c"]
        assert normalized(row["Email"]) == normalized(subscriber["email"])
    organization = salesforce.fetch_row("Account", ORGANIZATION_ACCOUNT_ID)
    assert organization["Id"] == "001C000001aTtMaIAK"


def test_seed_data_dir_reset_replaces_org(tmp_path):
    seed_data_dir(tmp_path, SMALL)
    counts = seed_data_dir(tmp_path, replace(SMALL, contacts=250, seed=5))
    salesforce, cerkl = open_stores(tmp_path)

    assert salesforce.count("Contact") == 250
    assert counts["Contact"] == 250
    assert cerkl.count("subscribers") == 200


def test_seed_records_adds_given_records(tmp_path):
    counts = seed_records(
        tmp_path,
        salesforce={"Contact": [{"LastName": "Lee", "Email": "ann.lee@example.org"}]},
        cerkl={"subscribers": [{"email": "ann.lee@example.org", "first_name": "Ann"}]},
    )
    salesforce, cerkl = open_stores(tmp_path)

    assert counts == {"Contact": 1, "subscribers": 1}
    assert salesforce.count("Contact") == 1
    assert cerkl.count("subscribers") == 1


def test_seed_records_rejects_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="'Opportunity'"):
        seed_records(tmp_path, salesforce={"Opportunity": []})
    with pytest.raises(ValueError, match="'members'"):
        seed_records(tmp_path, cerkl={"members": []})
