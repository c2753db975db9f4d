"""Flow ``contacts_to_subscribers``: Salesforce Contacts changed in the window go to Cerkl.

Rules, per Contact:

- deleted: its link goes away; merged (``MasterRecordId`` set): the link moves to the master;
- linked: shared fields that Salesforce changed are written to the subscriber (see
  :mod:`include.cerkl_sync.planning.pairs`); an opted-out Contact's subscriber is unsubscribed;
  a subscriber that was unsubscribed by an admin or the integration is subscribed again only
  when the Contact's opt-out was cleared after that unsubscribe, and one who unsubscribed
  themselves never is;
- not linked and not opted out: an unlinked active subscriber with the same email is linked,
  otherwise a subscriber is created (up to the per-run cap; the rest wait for the next run);
- not linked and opted out: an active subscriber with the same email is linked and
  unsubscribed, because an opt-out wins;
- an email that unsubscribed in Cerkl is never subscribed from here: the Contact is left to
  the unsubscribe flow, which marks it opted out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from include.cerkl_sync.planning.pairs import field_digest, reconcile_pair
from include.cerkl_sync.planning.plan import FlowPlan
from include.cerkl_sync.records import email_problem, name_problem, normalize_email, parse_timestamp

FLOW = "contacts_to_subscribers"


def _subscriber_payload(contact: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "email": contact["email"],
        "first_name": contact.get("first_name"),
        "last_name": contact.get("last_name"),
    }


def _record_problem(contact: Mapping[str, Any]) -> str | None:
    return email_problem(contact.get("email")) or name_problem(
        contact.get("first_name"), contact.get("last_name")
    )


def plan_contacts_to_subscribers(
    contacts: Iterable[Mapping[str, Any]],
    *,
    links: Mapping[str, Any],
    subscribers: Mapping[int, Mapping[str, Any]],
    changed_subscriber_ids: set[int],
    subscribers_by_email: Mapping[str, Mapping[str, Any]],
    unsubscribes_by_id: Mapping[int, Mapping[str, Any]],
    unsubscribes_by_email: Mapping[str, Mapping[str, Any]],
    linked_subscriber_ids: set[int],
    conflict_rule: str,
    new_subscriber_cap: int,
) -> FlowPlan:
    """Plan the Cerkl writes for Contacts changed in the window.

    :param contacts: Contact records (see :mod:`include.cerkl_sync.records`).
    :param links: state-DB links by Contact Id (objects with ``subscriber_id``,
        ``synced_values``, ``salesforce_seen_at``, ``cerkl_seen_at``).
    :param subscribers: current Cerkl subscribers by id, for the linked Contacts.
    :param changed_subscriber_ids: subscribers Cerkl reported changed in the window.
    :param subscribers_by_email: active subscribers by normalized email, for unlinked Contacts.
    :param unsubscribes_by_id: Cerkl unsubscribes by id.
    :param unsubscribes_by_email: Cerkl unsubscribes by normalized email.
    :param linked_subscriber_ids: every subscriber id already linked to some Contact.
    :param conflict_rule: the configured conflict rule.
    :param new_subscriber_cap: most subscribers this plan may create; the rest become pending.
    :return: the plan, with its actions, skips, rejects, conflicts and pending records.
    """
    plan = FlowPlan(FLOW)
    claimed: set[int] = set()
    created_emails: set[str] = set()
    creates = 0
    for contact in contacts:
        first_new = len(plan.actions)
        creates += _plan_contact(
            plan,
            contact,
            links,
            subscribers,
            changed_subscriber_ids,
            subscribers_by_email,
            unsubscribes_by_id,
            unsubscribes_by_email,
            linked_subscriber_ids,
            claimed,
            created_emails,
            conflict_rule,
            can_create=creates < new_subscriber_cap,
        )
        for action in plan.actions[first_new:]:
            subscriber = subscribers.get(action.get("subscriber_id"))
            action["salesforce_seen_at"] = contact.get("modstamp")
            action["cerkl_seen_at"] = subscriber.get("modified") if subscriber else None
    return plan


def _plan_contact(
    plan: FlowPlan,
    contact: Mapping[str, Any],
    links: Mapping[str, Any],
    subscribers: Mapping[int, Mapping[str, Any]],
    changed_subscriber_ids: set[int],
    subscribers_by_email: Mapping[str, Mapping[str, Any]],
    unsubscribes_by_id: Mapping[int, Mapping[str, Any]],
    unsubscribes_by_email: Mapping[str, Mapping[str, Any]],
    linked_subscriber_ids: set[int],
    claimed: set[int],
    created_emails: set[str],
    conflict_rule: str,
    *,
    can_create: bool,
) -> int:
    """Plan one Contact; return 1 when it plans a subscriber create, else 0."""
    contact_id = contact["id"]
    link = links.get(contact_id)
    subscriber_id = link.subscriber_id if link is not None else contact.get("subscriber_id")

    if contact.get("is_deleted"):
        master = contact.get("master_record_id")
        if master and subscriber_id is not None:
            plan.add(
                "move_link", contact_id=contact_id, master_id=master, subscriber_id=subscriber_id
            )
        elif subscriber_id is not None:
            plan.add("unlink", contact_id=contact_id, subscriber_id=subscriber_id)
        else:
            plan.skip("Contact", contact_id, "DELETED_NOT_LINKED")
        return 0

    if subscriber_id is not None:
        _plan_linked(
            plan,
            contact,
            link,
            int(subscriber_id),
            subscribers,
            changed_subscriber_ids,
            unsubscribes_by_id,
            conflict_rule,
        )
        return 0

    problem = _record_problem(contact)
    if problem is not None:
        plan.reject("Contact", contact_id, problem)
        return 0
    key = normalize_email(contact["email"])
    existing = subscribers_by_email.get(key)
    if existing is not None and (
        existing["id"] in linked_subscriber_ids or existing["id"] in claimed
    ):
        # Another Contact with this email is linked to the subscriber (a duplicate Contact in
        # Salesforce); Cerkl keeps one subscriber per email, so this one has nothing to sync.
        plan.skip("Contact", contact_id, "EMAIL_LINKED_TO_OTHER_CONTACT")
        return 0
    if contact.get("opted_out"):
        if existing is not None:
            claimed.add(existing["id"])
            plan.add("link_and_unsubscribe", contact_id=contact_id, subscriber_id=existing["id"])
        else:
            plan.skip("Contact", contact_id, "OPTED_OUT_NOT_IN_CERKL")
        return 0
    if existing is not None:
        claimed.add(existing["id"])
        decision = reconcile_pair(
            contact=contact,
            subscriber=existing,
            synced_values={},
            salesforce_seen_at=None,
            cerkl_seen_at=None,
            conflict_rule=conflict_rule,
        )
        plan.add(
            "link",
            contact_id=contact_id,
            subscriber_id=existing["id"],
            changes=decision.to_cerkl,
            salesforce_changes=decision.to_salesforce,
            synced_values=decision.synced_values,
        )
        return 0
    unsubscribe = unsubscribes_by_email.get(key)
    if unsubscribe is not None:
        plan.skip(
            "Contact",
            contact_id,
            "SELF_UNSUBSCRIBED"
            if unsubscribe.get("self_unsubscribed")
            else "UNSUBSCRIBED_IN_CERKL",
        )
        plan.defer(
            "unsubscribes_to_contacts",
            "unsubscribe",
            str(unsubscribe["id"]),
            "EMAIL_UNSUBSCRIBED_IN_CERKL",
        )
        return 0
    if key in created_emails:
        # Cerkl keeps one subscriber per email. The next run finds the one created now.
        plan.pend("Contact", contact_id, "EMAIL_CREATED_FOR_OTHER_CONTACT")
        return 0
    if not can_create:
        plan.pend("Contact", contact_id, "NEW_SUBSCRIBER_CAP_REACHED")
        return 0
    created_emails.add(key)
    plan.add(
        "create",
        contact_id=contact_id,
        subscriber=_subscriber_payload(contact),
        synced_values={
            name: field_digest(name, contact.get(name))
            for name in ("first_name", "last_name", "email")
        },
    )
    return 1


def _plan_linked(
    plan: FlowPlan,
    contact: Mapping[str, Any],
    link: Any,
    subscriber_id: int,
    subscribers: Mapping[int, Mapping[str, Any]],
    changed_subscriber_ids: set[int],
    unsubscribes_by_id: Mapping[int, Mapping[str, Any]],
    conflict_rule: str,
) -> None:
    contact_id = contact["id"]
    synced = dict(link.synced_values) if link is not None else {}
    subscriber = subscribers.get(subscriber_id)
    unsubscribe = unsubscribes_by_id.get(subscriber_id)
    adopt = link is None

    if subscriber is None and unsubscribe is None:
        plan.reject(
            "Contact",
            contact_id,
            "SUBSCRIBER_NOT_FOUND: the linked subscriber id is unknown to Cerkl",
        )
        return

    if subscriber is None:
        was_opted_out = synced.get("opted_out") == field_digest("opted_out", True)
        # The Contact must have changed since the sync saw it opted out: a Contact read before
        # this run marked it opted out still shows the old, cleared flags.
        seen = link.salesforce_seen_at if link is not None else None
        cleared_after = (
            not contact.get("opted_out")
            and was_opted_out
            and (seen is None or _later(contact.get("modstamp"), seen.isoformat()))
            and _later(contact.get("modified"), unsubscribe.get("unsubscribed_at"))
        )
        if contact.get("opted_out"):
            plan.skip("Contact", contact_id, "ALREADY_UNSUBSCRIBED")
        elif unsubscribe.get("self_unsubscribed"):
            plan.skip("Contact", contact_id, "SELF_UNSUBSCRIBED")
        elif cleared_after:
            problem = _record_problem(contact)
            if problem is not None:
                plan.reject("Contact", contact_id, problem)
            else:
                plan.add(
                    "resubscribe",
                    contact_id=contact_id,
                    old_subscriber_id=subscriber_id,
                    subscriber=_subscriber_payload(contact),
                )
        else:
            plan.skip("Contact", contact_id, "UNSUBSCRIBED_IN_CERKL")
        return

    if contact.get("opted_out"):
        plan.add("unsubscribe", contact_id=contact_id, subscriber_id=subscriber_id, adopt=adopt)
        return

    subscriber_for_rule = subscriber if (subscriber_id in changed_subscriber_ids or adopt) else None
    decision = reconcile_pair(
        contact=contact,
        subscriber=subscriber_for_rule,
        synced_values=synced,
        salesforce_seen_at=None if adopt else link.salesforce_seen_at,
        cerkl_seen_at=None if adopt else link.cerkl_seen_at,
        conflict_rule=conflict_rule,
    )
    changes = {
        name: value
        for name, value in decision.to_cerkl.items()
        if not _same_as_current(name, value, subscriber)
    }
    for conflict in decision.conflicts:
        plan.conflict(contact_id=contact_id, subscriber_id=subscriber_id, **conflict)
    if changes:
        problem = None
        if "email" in changes:
            problem = email_problem(changes["email"])
        if problem is not None:
            plan.reject("Contact", contact_id, problem)
            return
        plan.add(
            "update",
            contact_id=contact_id,
            subscriber_id=subscriber_id,
            changes=changes,
            synced_values=decision.synced_values,
            adopt=adopt,
            # A link found in Salesforce but new to the state DB is reconciled here in both
            # directions; known links get their Salesforce writes from the Cerkl-side flow.
            salesforce_changes=decision.to_salesforce if adopt else {},
        )
    elif adopt:
        plan.add(
            "adopt_link",
            contact_id=contact_id,
            subscriber_id=subscriber_id,
            synced_values=decision.synced_values,
            salesforce_changes=decision.to_salesforce,
        )
    else:
        plan.skip("Contact", contact_id, "UNCHANGED")


def _same_as_current(name: str, value: object, subscriber: Mapping[str, Any]) -> bool:
    return field_digest(name, value) == field_digest(name, subscriber.get(name))


def _later(left: str | None, right: str | None) -> bool:
    left_time, right_time = parse_timestamp(left), parse_timestamp(right)
    return left_time is not None and right_time is not None and left_time > right_time
