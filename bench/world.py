"""Build a scenario's world: the seeded org, the state DB of a synced org, and the day's changes.

The org is generated and written straight into the sandbox stores. For a daily scenario the
state DB then gets a link per linked Contact and window ends at the start of the day, as if
yesterday's run had synced everything. The day's changes go through the sandbox APIs with
both sandbox clocks inside the day, so every change carries a timestamp of that day.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.scenarios import Scenario

log = logging.getLogger(__name__)

#: The day whose changes the benchmark syncs; the sandbox clocks are set around it.
DAY_START = datetime(2026, 11, 2, tzinfo=UTC)
DAY_END = DAY_START + timedelta(days=1)
ORG_NOW = DAY_START - timedelta(hours=1)
CHANGES_AT = DAY_START + timedelta(hours=1)
RUN_AT = DAY_END + timedelta(minutes=5)
SEGMENT_TYPE = "Distribution List"


@dataclass
class Population:
    """Ids of the seeded org that the day's changes pick from, in generation order."""

    linked: list[tuple[str, int]] = field(default_factory=list)
    unlinked_contacts: list[str] = field(default_factory=list)
    unlinked_emails: list[str] = field(default_factory=list)
    campaign_ids: list[str] = field(default_factory=list)
    members_by_campaign: dict[str, set[str]] = field(default_factory=dict)
    member_ids: list[str] = field(default_factory=list)


def org_spec(scenario: Scenario) -> Any:
    """Return the ``OrgSpec`` of the scenario's org, generated before the day."""
    from include.sandbox.generator import OrgSpec

    per_campaign = scenario.campaign_members // scenario.campaigns if scenario.campaigns else 0
    return OrgSpec(
        now=ORG_NOW,
        contacts=scenario.contacts,
        subscribers=scenario.subscribers,
        leads=10,
        campaigns=scenario.campaigns,
        linked_share=0.0 if scenario.full_sync else 1.0,
        campaign_type_weights=((SEGMENT_TYPE, 1),),
        campaign_members_min=per_campaign,
        campaign_members_max=per_campaign,
        lead_member_share=0.0,
        synced_campaign_share=0.0 if scenario.full_sync else 1.0,
        manual_segments=0,
        email_variant_share=0.0 if not scenario.full_sync else 0.1,
    )


def seed_org(sandbox_dir: Path, scenario: Scenario) -> tuple[dict[str, int], Population]:
    """Write the scenario's org into the stores and return the counts and the population."""
    from include.sandbox.generator import CERKL_COLLECTIONS, SALESFORCE_OBJECTS, generate_org
    from include.sandbox.seeding import seed_records

    org = generate_org(org_spec(scenario))
    population = Population()
    # Collect the population from the records on their way into the store, so that the
    # Contacts, the slowest records to generate, are generated once.
    salesforce = {sobject: org.salesforce_records(sobject) for sobject in SALESFORCE_OBJECTS}
    salesforce["Contact"] = _collect_contacts(salesforce["Contact"], population)
    salesforce["CampaignMember"] = _collect_members(salesforce["CampaignMember"], population)
    counts = seed_records(
        sandbox_dir,
        salesforce=salesforce,
        cerkl={collection: org.cerkl_records(collection) for collection in CERKL_COLLECTIONS},
        reset=True,
    )
    population.campaign_ids = sorted(population.members_by_campaign)
    return counts, population


def _collect_contacts(
    contacts: Iterator[dict[str, Any]], population: Population
) -> Iterator[dict[str, Any]]:
    for contact in contacts:
        subscriber_id = contact["Cerkl_Subscriber_Id__c"]
        if subscriber_id:
            population.linked.append((contact["Id"], int(subscriber_id)))
        elif contact["Email"] and not contact["HasOptedOutOfEmail"]:
            population.unlinked_contacts.append(contact["Id"])
            population.unlinked_emails.append(contact["Email"])
        yield contact


def _collect_members(
    members: Iterator[dict[str, Any]], population: Population
) -> Iterator[dict[str, Any]]:
    for member in members:
        if member.get("ContactId"):
            population.members_by_campaign.setdefault(member["CampaignId"], set()).add(
                member["ContactId"]
            )
            population.member_ids.append(member["Id"])
        yield member


def seed_state(state_url: str, scenario: Scenario, config: Any) -> int:
    """Fill the state DB as a synced org's: links, segment links and window ends.

    :return: the number of links written; 0 for a first-sync scenario, which starts empty.
    """
    from include.cerkl_sync.config import FLOWS
    from include.cerkl_sync.flows.common import make_link
    from include.cerkl_sync.planning.pairs import field_digest
    from include.cerkl_sync.records import contact_from_salesforce
    from include.cerkl_sync.state import SegmentLink, SyncStateStore
    from include.sandbox.generator import generate_org

    store = SyncStateStore(state_url)
    store.migrate()
    if scenario.full_sync:
        store.dispose()
        return 0
    org = generate_org(org_spec(scenario))
    modified = {int(s["id"]): s["date_modified_utc"] for s in org.subscribers()}
    links = []
    for row in org.contacts():
        if not row["Cerkl_Subscriber_Id__c"]:
            continue
        contact = contact_from_salesforce(row, config)
        synced = {
            name: field_digest(name, contact[name]) for name in ("first_name", "last_name", "email")
        }
        links.append(
            make_link(
                contact["id"],
                contact["subscriber_id"],
                synced,
                opted_out=contact["opted_out"],
                salesforce_seen_at=row["SystemModstamp"],
                cerkl_seen_at=modified.get(contact["subscriber_id"]),
            )
        )
    store.save_links(links)
    for segment in org.segments():
        external_id = segment.get("external_id") or ""
        if external_id.startswith("SF_"):
            store.save_segment_link(
                SegmentLink(campaign_id=external_id.removeprefix("SF_"), segment_id=segment["id"])
            )
    for flow in FLOWS:
        store.complete_window(flow, DAY_START)
    store.dispose()
    return len(links)


class _Picker:
    """Hands out linked pairs in order, so that each change touches different records."""

    def __init__(self, population: Population) -> None:
        self.linked = population.linked
        self.next = 0

    def take(self, count: int) -> list[tuple[str, int]]:
        if self.next + count > len(self.linked):
            raise ValueError(
                f"the scenario changes more linked pairs than the org's {len(self.linked)}: "
                "raise its subscribers or lower its changes"
            )
        taken = self.linked[self.next : self.next + count]
        self.next += count
        return taken


@contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[step] = round(time.perf_counter() - started, 1)


def apply_day_changes(
    scenario: Scenario,
    population: Population,
    *,
    salesforce: Any,
    cerkl: Any,
    controls: Any,
    timings: dict[str, float] | None = None,
) -> dict[str, int]:
    """Make the day's changes in both systems through the sandbox APIs.

    :param salesforce: a ``SalesforceClient`` on the sandbox.
    :param cerkl: a ``CerklHook`` on the sandbox.
    :param controls: ``SandboxControlClient`` of the Cerkl sandbox, for the edits a person or
        an admin makes in Cerkl (self-unsubscribes, profile, score and interest edits).
    :param timings: when given, receives the seconds each group of changes took, keyed by
        group (``contacts``, ``new_subscribers``, ...).
    :return: the number of records changed per kind.
    """
    timings = {} if timings is None else timings
    picker = _Picker(population)
    with _timed(timings, "contacts"):
        done = _change_contacts(scenario, picker, salesforce)
    with _timed(timings, "new_subscribers"):
        done["new_subscribers"] = _create_subscribers(scenario, population, salesforce, cerkl)
    with _timed(timings, "subscriber_edits"):
        done.update(_edit_subscribers(scenario, picker, controls))
    with _timed(timings, "unsubscribes"):
        for _, subscriber_id in picker.take(scenario.unsubscribes):
            controls.self_unsubscribe(subscriber_id)
    done["unsubscribes"] = scenario.unsubscribes
    with _timed(timings, "campaign_members"):
        done.update(_change_campaign_members(scenario, population, salesforce))
    return done


def _change_contacts(scenario: Scenario, picker: _Picker, salesforce: Any) -> dict[str, int]:
    done: dict[str, int] = {}

    def update_contacts(kind: str, rows: list[dict[str, Any]]) -> None:
        failed = [r for r in salesforce.update("Contact", rows) if not r.success]
        if failed:
            raise RuntimeError(f"{len(failed)} Contact updates of kind {kind} failed")
        done[kind] = len(rows)

    pairs = picker.take(scenario.renamed_contacts)
    update_contacts(
        "renamed_contacts", [{"Id": c, "LastName": f"Renamed{i}"} for i, (c, _) in enumerate(pairs)]
    )
    pairs = picker.take(scenario.reemailed_contacts)
    update_contacts(
        "reemailed_contacts",
        [{"Id": c, "Email": f"moved.{i}@bench.example.net"} for i, (c, _) in enumerate(pairs)],
    )
    pairs = picker.take(scenario.opted_out_contacts)
    update_contacts("opted_out_contacts", [{"Id": c, "HasOptedOutOfEmail": True} for c, _ in pairs])
    pairs = picker.take(scenario.other_field_contacts)
    update_contacts(
        "other_field_contacts", [{"Id": c, "Title": "Benchmark Lead"} for c, _ in pairs]
    )
    new_rows = [
        {
            "LastName": f"Newcomer{i}",
            "FirstName": "Nova",
            "Email": f"new.contact.{i}@bench.example.com",
        }
        for i in range(scenario.new_contacts)
    ]
    if new_rows:
        failed = [r for r in salesforce.create("Contact", new_rows) if not r.success]
        if failed:
            raise RuntimeError(f"{len(failed)} Contact creates failed")
    done["new_contacts"] = len(new_rows)
    return done


def _create_subscribers(
    scenario: Scenario, population: Population, salesforce: Any, cerkl: Any
) -> int:
    # A new subscriber with one match takes an unlinked Contact's address. One with several
    # matches takes an address that a second Contact, created in the day, shares.
    one = scenario.new_subscribers_one_match
    several = scenario.new_subscribers_several_match
    emails = population.unlinked_emails
    if one + several > len(emails):
        raise ValueError(
            f"the scenario needs {one + several} unlinked Contacts for matching subscribers "
            f"and the org has {len(emails)}: raise contacts or lower the matches"
        )
    duplicates = [
        {"LastName": f"Duplicate{i}", "Email": email}
        for i, email in enumerate(emails[one : one + several])
    ]
    if duplicates:
        salesforce.create("Contact", duplicates)
    records = [{"email": email, "first_name": "Sub", "last_name": "Scriber"} for email in emails]
    records = records[: one + several]
    records += [
        {"email": f"new.subscriber.{i}@bench.example.org", "first_name": "Ada", "last_name": "Nu"}
        for i in range(scenario.new_subscribers_no_match)
    ]
    created = cerkl.create_subscribers(records) if records else []
    return sum(1 for outcome in created if outcome.subscriber is not None)


def _edit_subscribers(scenario: Scenario, picker: _Picker, controls: Any) -> dict[str, int]:
    done: dict[str, int] = {}
    for i, (_, subscriber_id) in enumerate(picker.take(scenario.renamed_subscribers)):
        controls.edit_subscriber(subscriber_id, last_name=f"Edited{i}")
    done["renamed_subscribers"] = scenario.renamed_subscribers
    for i, (_, subscriber_id) in enumerate(picker.take(scenario.rescored_subscribers)):
        controls.edit_subscriber(subscriber_id, engagement_score=float(i % 100))
    done["rescored_subscribers"] = scenario.rescored_subscribers
    for i, (_, subscriber_id) in enumerate(picker.take(scenario.interest_changes)):
        interests = [
            {"category_id": 1 + i % 20, "rank": 1, "score": 90.0},
            {"category_id": 1 + (i + 7) % 20, "rank": 2, "score": 50.0},
        ]
        controls.edit_subscriber(subscriber_id, interests=interests)
    done["interest_changes"] = scenario.interest_changes
    return done


def _change_campaign_members(
    scenario: Scenario, population: Population, salesforce: Any
) -> dict[str, int]:
    campaigns = population.campaign_ids
    if not campaigns:
        return {"joined_members": 0, "left_members": 0}
    joins = []
    candidates = iter(contact_id for contact_id, _ in reversed(population.linked))
    while len(joins) < scenario.joined_members:
        contact_id = next(candidates)
        campaign_id = campaigns[len(joins) % len(campaigns)]
        if contact_id not in population.members_by_campaign[campaign_id]:
            joins.append({"CampaignId": campaign_id, "ContactId": contact_id})
    if joins:
        failed = [r for r in salesforce.create("CampaignMember", joins) if not r.success]
        if failed:
            raise RuntimeError(f"{len(failed)} CampaignMember creates failed")
    leaves = population.member_ids[: scenario.left_members]
    if leaves:
        salesforce.delete(leaves)
    return {"joined_members": len(joins), "left_members": len(leaves)}
