"""Steps of the ``campaigns_to_segments`` flow: find the Campaigns to sync, then sync each."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from include.cerkl_sync.flows.common import (
    FlowResult,
    RunInfo,
    format_soql_datetime,
    run_in_threads,
)
from include.cerkl_sync.planning.campaigns import (
    FLOW,
    in_scope,
    plan_campaign,
    segment_external_id,
)
from include.cerkl_sync.planning.pairs import field_digest

if TYPE_CHECKING:
    from cerkl.hooks import CerklHook

    from include.cerkl_sync.salesforce_io import SalesforceClient
    from include.cerkl_sync.state import SyncStateStore

log = logging.getLogger(__name__)

CAMPAIGN_FIELDS = "Id, Name, Type, IsDeleted, SystemModstamp"


def extract_campaigns(
    run: RunInfo, *, salesforce: SalesforceClient, state: SyncStateStore
) -> list[dict[str, Any]]:
    """Return the Campaigns to sync this run.

    Those changed in the window, those whose members changed in it (removed members come
    through ``queryAll``), those with members still waiting for a link, and in a full sync
    every Campaign of a configured type or with a segment. Deleted Campaigns are included so
    that their segments can be reported as out of scope.
    """
    window = run.windows[FLOW]
    start, end = format_soql_datetime(window.start), format_soql_datetime(window.end)
    campaigns: dict[str, dict[str, Any]] = {}
    if run.full_sync:
        types = list(run.config.campaign_types)
        template = f"SELECT {CAMPAIGN_FIELDS} FROM Campaign WHERE Type IN {{values}}"
        for page in salesforce.query_in_batches(template, types):
            campaigns.update({row["Id"]: row for row in page})
    else:
        soql = (
            f"SELECT {CAMPAIGN_FIELDS} FROM Campaign "
            f"WHERE SystemModstamp > {start} AND SystemModstamp <= {end}"
        )
        for page in salesforce.iter_query_pages(soql, include_deleted=True):
            campaigns.update({row["Id"]: row for row in page})

    # The member rows carry their Campaign's fields through the parent relationship, so
    # that the Campaigns of changed members need no look-up by Id of their own. A row whose
    # parent is not returned falls back to that look-up below.
    wanted: set[str] = set()
    soql = (
        "SELECT CampaignId, Campaign.Name, Campaign.Type, Campaign.IsDeleted "
        f"FROM CampaignMember WHERE SystemModstamp > {start} AND SystemModstamp <= {end}"
    )
    for page in salesforce.iter_query_pages(soql, include_deleted=True):
        for row in page:
            campaign_id = row["CampaignId"]
            parent = row.get("Campaign")
            if isinstance(parent, dict) and campaign_id not in campaigns:
                campaigns[campaign_id] = {"Id": campaign_id, **parent}
            wanted.add(campaign_id)
    for item in state.open_work_items(FLOW):
        if item.record_type == "CampaignMember":
            wanted.add(item.record_id.split(":", 1)[0])
    if run.full_sync:
        wanted.update(state.get_segment_links())
    wanted -= set(campaigns)
    if wanted:
        template = f"SELECT {CAMPAIGN_FIELDS} FROM Campaign WHERE Id IN {{values}}"
        for page in salesforce.query_in_batches(template, sorted(wanted), include_deleted=True):
            campaigns.update({row["Id"]: row for row in page})
    result = [
        {
            "Id": c["Id"],
            "Name": c.get("Name"),
            "Type": c.get("Type"),
            "IsDeleted": bool(c.get("IsDeleted")),
        }
        for c in campaigns.values()
    ]
    log.info("Found %d Campaigns to sync", len(result))
    return sorted(result, key=lambda c: c["Id"])


def sync_segments(
    run: RunInfo,
    campaigns: Sequence[Mapping[str, Any]],
    *,
    salesforce: SalesforceClient,
    cerkl: CerklHook,
    state: SyncStateStore,
) -> FlowResult:
    """Create, rename and fill the segments of the given Campaigns; in a dry run, count only."""
    from include.cerkl_sync.state import SegmentLink

    config = run.config
    result = FlowResult(FLOW)
    links = state.get_segment_links(c["Id"] for c in campaigns)
    live = [c for c in campaigns if in_scope(c, config.campaign_types)]
    members = _members_by_campaign(salesforce, [c["Id"] for c in live])
    contact_ids = {m["ContactId"] for rows in members.values() for m in rows if m.get("ContactId")}
    # Links of unsubscribed people stay (the opt-out must keep holding), but Cerkl cannot put
    # an unsubscribe in a segment, so those members count as not linked.
    unsubscribed = field_digest("opted_out", True)
    subscriber_by_contact = {
        cid: link.subscriber_id
        for cid, link in state.get_links_by_contact(contact_ids).items()
        if link.synced_values.get("opted_out") != unsubscribed
    }

    for campaign in campaigns:
        campaign_id = campaign["Id"]
        link = links.get(campaign_id)
        segment = None
        if link is not None:
            segment = {"id": link.segment_id, "description": None}
        found = cerkl.find_segment_by_external_id(
            segment_external_id(campaign_id, config.segment_external_id_prefix)
        )
        if found is not None:
            segment = {"id": int(found["id"]), "description": found.get("description")}
        segment_members = None
        if segment is not None and in_scope(campaign, config.campaign_types):
            segment_members = {int(m["id"]) for m in cerkl.iter_segment_members(segment["id"])}
        plan = plan_campaign(
            campaign,
            segment=segment,
            members=members.get(campaign_id, []),
            segment_member_ids=segment_members,
            subscriber_by_contact=subscriber_by_contact,
            campaign_types=config.campaign_types,
            was_in_scope=bool(link and link.in_scope),
            prefix=config.segment_external_id_prefix,
        )
        result.absorb_plan(plan)
        if run.dry_run:
            for action in plan.actions:
                result.counts[action["action"]] += 1
            continue
        segment_id = segment["id"] if segment else None
        for action in plan.actions:
            kind = action["action"]
            if kind == "create_segment":
                created = cerkl.create_segment(action["description"], action["external_id"])
                segment_id = int(created["id"])
                state.save_segment_link(SegmentLink(campaign_id=campaign_id, segment_id=segment_id))
                result.counts["created_segment"] += 1
            elif kind == "rename_segment":
                cerkl.rename_segment(segment_id, action["description"])
                result.counts["renamed_segment"] += 1
            elif kind == "leave_scope":
                if segment_id is not None:
                    state.save_segment_link(
                        SegmentLink(campaign_id=campaign_id, segment_id=segment_id, in_scope=False)
                    )
                result.counts["left_scope"] += 1
                result.notes.append(
                    {
                        "kind": "campaign_left_scope",
                        "campaign_id": campaign_id,
                        "segment_id": segment_id,
                        "reason": action["reason"],
                    }
                )
        if segment_id is not None and in_scope(campaign, config.campaign_types):
            if link is None or link.segment_id != segment_id or not link.in_scope:
                state.save_segment_link(SegmentLink(campaign_id=campaign_id, segment_id=segment_id))
        _apply_members(plan.actions, segment_id, cerkl, result, config.cerkl_workers)
        state.add_work_items(
            FLOW, "pending", [(p["record_type"], p["record_id"], p["reason"]) for p in plan.pending]
        )
        linked_members = [
            f"{campaign_id}:{m['ContactId']}"
            for m in members.get(campaign_id, [])
            if m.get("ContactId") in subscriber_by_contact
        ]
        if linked_members:
            state.resolve_work_items(FLOW, "CampaignMember", linked_members)
    return result


def _apply_members(
    actions: Sequence[Mapping[str, Any]],
    segment_id: int | None,
    cerkl: CerklHook,
    result: FlowResult,
    workers: int,
) -> None:
    from cerkl.exceptions import CerklApiError, CerklAuthError, CerklNotFoundError

    for kind, func, counter in (
        ("add_member", cerkl.add_segment_member, "added_member"),
        ("remove_member", cerkl.remove_segment_member, "removed_member"),
    ):
        subscriber_ids = [a["subscriber_id"] for a in actions if a["action"] == kind]
        if not subscriber_ids:
            continue
        for subscriber_id, _, error in run_in_threads(
            lambda sid, func=func: func(segment_id, sid), subscriber_ids, workers=workers
        ):
            if error is None or (kind == "remove_member" and isinstance(error, CerklNotFoundError)):
                result.counts[counter] += 1
                continue
            if isinstance(error, CerklNotFoundError):
                # The subscriber unsubscribed since it was linked; nothing to add.
                result.counts["skipped"] += 1
                continue
            if isinstance(error, CerklAuthError) or not isinstance(error, CerklApiError):
                raise error
            result.reject(
                "subscriber",
                subscriber_id,
                f"CERKL_{kind.upper()}_FAILED: {getattr(error, 'code', None)}",
            )


def _members_by_campaign(
    salesforce: SalesforceClient, campaign_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    members: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if not campaign_ids:
        return members
    template = (
        "SELECT Id, CampaignId, ContactId, LeadId FROM CampaignMember WHERE CampaignId IN {values}"
    )
    for page in salesforce.query_in_batches(template, sorted(campaign_ids)):
        for row in page:
            members[row["CampaignId"]].append(
                {"Id": row["Id"], "ContactId": row.get("ContactId"), "LeadId": row.get("LeadId")}
            )
    return members
