"""Flow ``new_subscribers_to_contacts``: unlinked Cerkl subscribers are linked to Contacts.

Each unlinked subscriber is looked up among Contacts by email, trimmed and case-insensitive:

- no Contact: a Contact is created under the configured Account, and linked;
- one Contact: linked;
- several: linked to the one whose first and last name match (case- and accent-insensitive),
  else to the oldest by ``CreatedDate`` and then ``Id``; the ambiguity goes into the report.

Contacts already linked to another subscriber are not candidates. A subscriber without a last
name gets the configured fallback, because Salesforce requires ``LastName``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from include.cerkl_sync.planning.pairs import field_digest, reconcile_pair
from include.cerkl_sync.planning.plan import FlowPlan
from include.cerkl_sync.records import (
    email_problem,
    name_problem,
    normalize_email,
    normalize_name,
)

FLOW = "new_subscribers_to_contacts"


def match_subscribers_to_contacts(
    subscribers: Sequence[Mapping[str, Any]], contacts: Sequence[Mapping[str, Any]]
) -> dict[int, dict[str, Any]]:
    """Pick the Contact for each subscriber by the matching rules.

    :param subscribers: Subscriber records.
    :param contacts: candidate Contact records (not deleted, not linked elsewhere).
    :return: subscriber id to ``{"contact_id", "candidates", "rule"}`` where ``rule`` is
        ``only_match``, ``name_match`` or ``oldest``; subscribers without a candidate are absent.
    """
    import pandas as pd

    if not subscribers or not contacts:
        return {}
    subs = pd.DataFrame(
        {
            "subscriber_id": [s["id"] for s in subscribers],
            "key": [normalize_email(s.get("email")) for s in subscribers],
            "sub_first": [normalize_name(s.get("first_name")) for s in subscribers],
            "sub_last": [normalize_name(s.get("last_name")) for s in subscribers],
        }
    )
    cands = pd.DataFrame(
        {
            "contact_id": [c["id"] for c in contacts],
            "key": [normalize_email(c.get("email")) for c in contacts],
            "first": [normalize_name(c.get("first_name")) for c in contacts],
            "last": [normalize_name(c.get("last_name")) for c in contacts],
            # ISO8601 parses each value on its own, so a fraction of a second in some values
            # and not in others is fine.
            "created": pd.to_datetime(
                [c.get("created") for c in contacts], utc=True, format="ISO8601"
            ),
        }
    ).dropna(subset=["key"])
    merged = subs.dropna(subset=["key"]).merge(cands, on="key", how="inner")
    if merged.empty:
        return {}
    merged["name_match"] = (merged["first"] == merged["sub_first"]) & (
        merged["last"] == merged["sub_last"]
    )
    merged = merged.sort_values(
        ["subscriber_id", "name_match", "created", "contact_id"],
        ascending=[True, False, True, True],
        na_position="last",
    )
    matches: dict[int, dict[str, Any]] = {}
    for subscriber_id, group in merged.groupby("subscriber_id", sort=False):
        first = group.iloc[0]
        if len(group) == 1:
            rule = "only_match"
        elif bool(first["name_match"]) and int(group["name_match"].sum()) >= 1:
            rule = "name_match"
        else:
            rule = "oldest"
        matches[int(subscriber_id)] = {
            "contact_id": str(first["contact_id"]),
            "candidates": [str(cid) for cid in group["contact_id"]],
            "rule": rule,
        }
    return matches


def plan_new_subscriber_links(
    subscribers: Iterable[Mapping[str, Any]],
    *,
    candidates: Sequence[Mapping[str, Any]],
    account_id: str,
    missing_last_name: str,
    conflict_rule: str = "latest_wins",
) -> FlowPlan:
    """Plan links and Contact creates for unlinked subscribers.

    :param subscribers: unlinked Subscriber records (new in the window or still pending).
    :param candidates: Contact records whose email matches one of them, not deleted and not
        linked to another subscriber.
    :param account_id: the Account new Contacts are created under.
    :param missing_last_name: ``LastName`` for subscribers without a last name.
    :param conflict_rule: decides which side's names win when a new link's two records differ.
    :return: the plan: ``link`` and ``create_contact`` actions, ambiguity notes, rejects.
    """
    plan = FlowPlan(FLOW)
    valid: list[Mapping[str, Any]] = []
    seen_keys: dict[str, int] = {}
    for subscriber in subscribers:
        problem = email_problem(subscriber.get("email")) or name_problem(
            subscriber.get("first_name"), subscriber.get("last_name")
        )
        if problem is not None:
            plan.reject("subscriber", str(subscriber["id"]), problem)
            continue
        key = normalize_email(subscriber["email"])
        if key in seen_keys:
            plan.reject(
                "subscriber",
                str(subscriber["id"]),
                f"DUPLICATE_EMAIL: same address as subscriber {seen_keys[key]}",
            )
            continue
        seen_keys[key] = subscriber["id"]
        valid.append(subscriber)

    matches = match_subscribers_to_contacts(valid, candidates)
    contacts_by_id = {contact["id"]: contact for contact in candidates}
    used_contacts: dict[str, int] = {}
    for subscriber in valid:
        subscriber_id = int(subscriber["id"])
        digests = {
            name: field_digest(name, subscriber.get(name))
            for name in ("first_name", "last_name", "email")
        }
        match = matches.get(subscriber_id)
        if match is not None:
            contact_id = match["contact_id"]
            if contact_id in used_contacts:
                plan.reject(
                    "subscriber",
                    str(subscriber_id),
                    f"CONTACT_ALREADY_MATCHED: Contact {contact_id} was matched to "
                    f"subscriber {used_contacts[contact_id]} in this run",
                )
                continue
            used_contacts[contact_id] = subscriber_id
            decision = reconcile_pair(
                contact=contacts_by_id[contact_id],
                subscriber=subscriber,
                synced_values={},
                salesforce_seen_at=None,
                cerkl_seen_at=None,
                conflict_rule=conflict_rule,
            )
            plan.add(
                "link",
                subscriber_id=subscriber_id,
                contact_id=contact_id,
                salesforce_seen_at=contacts_by_id[contact_id].get("modstamp"),
                cerkl_seen_at=subscriber.get("modified"),
                salesforce_changes=decision.to_salesforce,
                cerkl_changes=decision.to_cerkl,
                synced_values=decision.synced_values,
            )
            if match["rule"] != "only_match":
                plan.notes.append(
                    {
                        "kind": "ambiguous_match",
                        "subscriber_id": subscriber_id,
                        "contact_ids": match["candidates"],
                        "chosen": contact_id,
                        "rule": match["rule"],
                    }
                )
            continue
        last_name = (subscriber.get("last_name") or "").strip() or None
        contact = {
            "first_name": subscriber.get("first_name"),
            "last_name": last_name or missing_last_name,
            "email": subscriber["email"].strip(),
            "account_id": account_id,
        }
        plan.add(
            "create_contact",
            subscriber_id=subscriber_id,
            contact=contact,
            synced_values=digests,
            cerkl_seen_at=subscriber.get("modified"),
            last_name_fallback=last_name is None,
        )
    return plan
