"""Flows that write Cerkl changes back to Contacts.

- ``unsubscribes_to_contacts``: every Cerkl unsubscribe in the window, or still unapplied,
  sets the opt-out checkbox (and ``HasOptedOutOfEmail`` when configured) on the linked
  Contact; an unsubscribe without a link is matched to a Contact by email first. The one
  exception: a Contact whose opt-out was cleared after an admin or integration unsubscribe is
  subscribed again by the Salesforce-to-Cerkl flow instead.
- ``subscriber_changes_to_contacts``: name and email changes (by the two-way rules) and the
  engagement score go to the linked Contact.
- ``interests_to_contacts``: the top five interests by rank go to the five interest fields,
  blank where there are fewer.

A write is planned only where the Contact's value differs, so the sync's own writes are not
echoed back. The Contact's value is its current one when the window's Contact extract has
the Contact. Otherwise the Contact has not changed since the last sync, and its value is the
one whose digest the link keeps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from include.cerkl_sync.planning.pairs import field_digest, reconcile_pair
from include.cerkl_sync.planning.plan import FlowPlan
from include.cerkl_sync.records import email_problem, name_problem, parse_timestamp

UNSUBSCRIBES_FLOW = "unsubscribes_to_contacts"
CHANGES_FLOW = "subscriber_changes_to_contacts"
INTERESTS_FLOW = "interests_to_contacts"
INTEREST_SLOTS = 5


def opt_out_cleared_after(
    contact: Mapping[str, Any],
    unsubscribe: Mapping[str, Any],
    synced_values: Mapping[str, str],
    salesforce_seen_at: datetime | None = None,
) -> bool:
    """Tell whether a Contact's opt-out was cleared after a Cerkl unsubscribe that allows it.

    True only when the unsubscribe was made by an admin or the integration (a person who
    unsubscribed themselves is never subscribed again), the last sync saw the Contact opted
    out, the Contact is no longer opted out, and it was modified after the unsubscribe.
    """
    if unsubscribe.get("self_unsubscribed") or contact.get("opted_out"):
        return False
    if synced_values.get("opted_out") != field_digest("opted_out", True):
        return False
    modstamp = parse_timestamp(contact.get("modstamp"))
    if salesforce_seen_at is not None and (modstamp is None or modstamp <= salesforce_seen_at):
        # Not changed since the sync saw it opted out: the cleared flags are a stale read.
        return False
    modified = parse_timestamp(contact.get("modified"))
    unsubscribed = parse_timestamp(unsubscribe.get("unsubscribed_at"))
    return modified is not None and unsubscribed is not None and modified > unsubscribed


def plan_unsubscribes_to_contacts(
    unsubscribes: Iterable[Mapping[str, Any]],
    *,
    links_by_subscriber: Mapping[int, Any],
    contacts: Mapping[str, Mapping[str, Any]],
    matches: Mapping[int, str],
    set_has_opted_out: bool,
) -> FlowPlan:
    """Plan the opt-out writes for Cerkl unsubscribes.

    :param unsubscribes: Unsubscribe records (in the window, plus the unapplied ones).
    :param links_by_subscriber: state-DB links by subscriber id.
    :param contacts: current Contact records by Id, for linked and matched Contacts.
    :param matches: subscriber id to the Contact Id chosen by email for unlinked ones.
    :param set_has_opted_out: also set ``HasOptedOutOfEmail``.
    :return: the plan: ``mark_opted_out`` actions (``link`` true when the link is new).
    """
    plan = FlowPlan(UNSUBSCRIBES_FLOW)
    for unsubscribe in unsubscribes:
        subscriber_id = int(unsubscribe["id"])
        link = links_by_subscriber.get(subscriber_id)
        contact_id = link.contact_id if link is not None else matches.get(subscriber_id)
        if contact_id is None:
            plan.skip("unsubscribe", str(subscriber_id), "NO_MATCHING_CONTACT")
            continue
        contact = contacts.get(contact_id)
        if contact is None or contact.get("is_deleted"):
            plan.skip("unsubscribe", str(subscriber_id), "CONTACT_DELETED")
            continue
        synced = link.synced_values if link is not None else {}
        seen = link.salesforce_seen_at if link is not None else None
        if opt_out_cleared_after(contact, unsubscribe, synced, seen):
            plan.skip("unsubscribe", str(subscriber_id), "OPT_OUT_CLEARED_IN_SALESFORCE")
            continue
        # A Contact already opted out by any configured checkbox keeps the opt-out on both
        # sides; setting one more checkbox would only echo the sync's own unsubscribe.
        needs_flag = not contact.get("unsubscribe_flag") and not contact.get("opted_out")
        needs_has_opted_out = set_has_opted_out and not contact.get("has_opted_out")
        if not needs_flag and not needs_has_opted_out and link is not None:
            plan.skip("unsubscribe", str(subscriber_id), "ALREADY_OPTED_OUT")
            continue
        plan.add(
            "mark_opted_out",
            subscriber_id=subscriber_id,
            contact_id=contact_id,
            unsubscribe_flag=needs_flag,
            has_opted_out=needs_has_opted_out,
            link=link is None,
        )
    return plan


def top_interests(interests: Sequence[Mapping[str, Any]]) -> list[str | None]:
    """Return the descriptions of the five best-ranked interests, padded with None."""
    ranked = sorted(
        (item for item in interests if item.get("rank") is not None),
        key=lambda item: (int(item["rank"]), str(_interest_name(item) or "")),
    )
    names = [_interest_name(item) for item in ranked[:INTEREST_SLOTS]]
    return names + [None] * (INTEREST_SLOTS - len(names))


def _interest_name(item: Mapping[str, Any]) -> str | None:
    category = item.get("category")
    if isinstance(category, Mapping):
        description = category.get("description")
    else:
        description = item.get("description")
    return str(description).strip()[:255] if description else None


def plan_subscriber_changes_to_contacts(
    subscribers: Iterable[Mapping[str, Any]],
    *,
    links_by_subscriber: Mapping[int, Any],
    contacts: Mapping[str, Mapping[str, Any]],
    changed_contact_ids: set[str],
    interests: Mapping[int, Sequence[Mapping[str, Any]]],
    conflict_rule: str,
) -> tuple[FlowPlan, FlowPlan]:
    """Plan Contact updates for subscribers changed in the window.

    :param subscribers: Subscriber records changed in the window and linked.
    :param links_by_subscriber: state-DB links by subscriber id.
    :param contacts: current Contact records by Id, for the linked Contacts that changed in
        the window (the window's Contact extract). A linked Contact absent from it has not
        changed since the last sync, so its values are compared with the link's digests
        instead of being read again.
    :param changed_contact_ids: Contacts Salesforce reported changed in the window.
    :param interests: ranked interests by subscriber id (absent: not fetched, left alone).
    :param conflict_rule: the configured conflict rule.
    :return: the ``subscriber_changes_to_contacts`` and ``interests_to_contacts`` plans, with
        ``update_contact`` actions holding record-named ``changes`` and the
        ``synced_values`` digests to keep once the update is written. An ``UNCHANGED`` skip
        carries ``synced_values`` too, so a link made before the score and interest digests
        existed gains them.
    """
    changes_plan = FlowPlan(CHANGES_FLOW)
    interests_plan = FlowPlan(INTERESTS_FLOW)
    for subscriber in subscribers:
        subscriber_id = int(subscriber["id"])
        link = links_by_subscriber.get(subscriber_id)
        if link is None:
            changes_plan.skip("subscriber", str(subscriber_id), "NOT_LINKED")
            continue
        contact = contacts.get(link.contact_id)
        if contact is not None and contact.get("is_deleted"):
            changes_plan.skip("subscriber", str(subscriber_id), "CONTACT_DELETED")
            continue
        synced = link.synced_values
        decision = reconcile_pair(
            contact=contact if link.contact_id in changed_contact_ids else None,
            subscriber=subscriber,
            synced_values=synced,
            salesforce_seen_at=link.salesforce_seen_at,
            cerkl_seen_at=link.cerkl_seen_at,
            conflict_rule=conflict_rule,
        )
        changes = {
            name: value
            for name, value in decision.to_salesforce.items()
            if _differs(name, value, contact, synced)
        }
        digests = dict(decision.synced_values)
        score = _as_score(subscriber.get("engagement_score"))
        if score is not None:
            if _differs("engagement_score", score, contact, synced):
                changes["engagement_score"] = score
            digests["engagement_score"] = field_digest("engagement_score", score)
        problem = None
        if "email" in changes:
            problem = email_problem(changes["email"])
        problem = problem or name_problem(changes.get("first_name"), changes.get("last_name"))
        if problem is not None:
            changes_plan.reject("subscriber", str(subscriber_id), problem)
        elif changes:
            changes_plan.add(
                "update_contact",
                subscriber_id=subscriber_id,
                contact_id=link.contact_id,
                changes=changes,
                synced_values=digests,
            )
        else:
            changes_plan.skip("subscriber", str(subscriber_id), "UNCHANGED")
            changes_plan.skipped[-1]["synced_values"] = digests

        ranked = interests.get(subscriber_id)
        if ranked is None:
            continue
        wanted = top_interests(ranked)
        interest_digest = {"interests": field_digest("interests", wanted)}
        if _differs("interests", wanted, contact, synced):
            interests_plan.add(
                "update_contact",
                subscriber_id=subscriber_id,
                contact_id=link.contact_id,
                changes={"interests": wanted},
                synced_values=interest_digest,
            )
        else:
            interests_plan.skip("subscriber", str(subscriber_id), "UNCHANGED")
            interests_plan.skipped[-1]["synced_values"] = interest_digest
    return changes_plan, interests_plan


#: Contact fields that only Cerkl writes, whose digests a link keeps.
CERKL_OWNED_FIELDS = ("engagement_score", "interests")


def contact_value_digests(contact: Mapping[str, Any]) -> dict[str, str]:
    """Return the digests of a Contact's Cerkl-owned values: engagement score and interests.

    A link keeps them so that a Contact that is not read again compares as having them.
    """
    return {name: field_digest(name, _contact_value(contact, name)) for name in CERKL_OWNED_FIELDS}


def _contact_value(contact: Mapping[str, Any], name: str) -> Any:
    """Return a Contact field as the sync compares it: five interest slots, a float score."""
    value = contact.get(name)
    if name == "interests":
        return list(value or [None] * INTEREST_SLOTS)
    if name == "engagement_score":
        return _as_score(value)
    return value


def _differs(
    name: str, value: object, contact: Mapping[str, Any] | None, synced: Mapping[str, str]
) -> bool:
    """Tell whether ``value`` differs from the Contact's, or from the last-synced one.

    With no current Contact record the last-synced digest is taken as the Contact's value,
    and a field never synced counts as different.
    """
    if contact is None:
        return field_digest(name, value) != synced.get(name)
    return field_digest(name, value) != field_digest(name, _contact_value(contact, name))


def _as_score(value: object) -> float | None:
    """Return an engagement score as a float, so that 10 and 10.0 digest alike."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
