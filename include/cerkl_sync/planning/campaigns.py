"""Flow ``campaigns_to_segments``: Campaigns of the configured types become Cerkl segments.

- A Campaign in scope without a segment gets one, named like the Campaign, with the
  ``external_id`` ``SF_<18-character Campaign Id>``, and every member is added.
- A renamed Campaign renames its segment.
- Members are kept equal: Contacts that joined are added, those that left are removed.
- Leads are skipped with a reason. Contacts without a subscriber are pending with a reason, so
  later runs retry them and add them once they are linked.
- Each member row ends up in exactly one place: an ``add_member`` action, a skip (a Lead, or
  already in the segment) or a pending entry.
- A Campaign that leaves scope (its type changed, or it was deleted) stops syncing. Its
  segment stays, and the report records it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from include.cerkl_sync.planning.plan import FlowPlan

FLOW = "campaigns_to_segments"


def segment_external_id(campaign_id: str, prefix: str = "SF_") -> str:
    """Return the ``external_id`` that links a segment to a Campaign."""
    return f"{prefix}{campaign_id}"


def in_scope(campaign: Mapping[str, Any], campaign_types: Iterable[str]) -> bool:
    """Tell whether a Campaign syncs: not deleted and of a configured type (case-insensitive)."""
    kind = (campaign.get("Type") or "").strip().casefold()
    return not campaign.get("IsDeleted") and kind in {t.strip().casefold() for t in campaign_types}


def plan_campaign(
    campaign: Mapping[str, Any],
    *,
    segment: Mapping[str, Any] | None,
    members: Iterable[Mapping[str, Any]],
    segment_member_ids: set[int] | None,
    subscriber_by_contact: Mapping[str, int],
    campaign_types: Iterable[str],
    was_in_scope: bool,
    prefix: str = "SF_",
) -> FlowPlan:
    """Plan the segment writes for one Campaign.

    :param campaign: the Campaign row (``Id``, ``Name``, ``Type``, ``IsDeleted``).
    :param segment: its Cerkl segment (``id``, ``description``), or None when there is none.
    :param members: current CampaignMember rows (``Id``, ``ContactId``, ``LeadId``).
    :param segment_member_ids: subscriber ids in the segment now (None when there is no segment).
    :param subscriber_by_contact: linked subscriber id by Contact Id.
    :param campaign_types: the configured in-scope types.
    :param was_in_scope: the state DB records this Campaign as syncing.
    :param prefix: the ``external_id`` prefix.
    :return: the plan: ``create_segment``, ``rename_segment``, ``add_member``,
        ``remove_member`` and ``leave_scope`` actions.
    """
    plan = FlowPlan(FLOW)
    campaign_id = campaign["Id"]
    if not in_scope(campaign, campaign_types):
        if was_in_scope or segment is not None:
            plan.add(
                "leave_scope",
                campaign_id=campaign_id,
                segment_id=segment["id"] if segment else None,
                reason="DELETED" if campaign.get("IsDeleted") else "TYPE_OUT_OF_SCOPE",
            )
        else:
            plan.skip("Campaign", campaign_id, "OUT_OF_SCOPE")
        return plan

    name = (campaign.get("Name") or campaign_id).strip()
    if segment is None:
        plan.add(
            "create_segment",
            campaign_id=campaign_id,
            description=name,
            external_id=segment_external_id(campaign_id, prefix),
        )
        current: set[int] = set()
    else:
        current = set(segment_member_ids or ())
        if (segment.get("description") or "") != name:
            plan.add(
                "rename_segment",
                campaign_id=campaign_id,
                segment_id=segment["id"],
                description=name,
            )

    wanted: set[int] = set()
    for member in members:
        member_id = member.get("Id")
        contact_id = member.get("ContactId")
        if not contact_id:
            plan.skip("CampaignMember", member_id, "LEAD_MEMBER")
            continue
        subscriber_id = subscriber_by_contact.get(contact_id)
        if subscriber_id is None:
            plan.pend("CampaignMember", f"{campaign_id}:{contact_id}", "CONTACT_NOT_LINKED")
            continue
        if subscriber_id in current:
            plan.skip("CampaignMember", member_id, "UNCHANGED")
        wanted.add(subscriber_id)

    segment_id = segment["id"] if segment is not None else None
    for subscriber_id in sorted(wanted - current):
        plan.add(
            "add_member",
            campaign_id=campaign_id,
            segment_id=segment_id,
            subscriber_id=subscriber_id,
        )
    for subscriber_id in sorted(current - wanted):
        plan.add(
            "remove_member",
            campaign_id=campaign_id,
            segment_id=segment_id,
            subscriber_id=subscriber_id,
        )
    return plan
