"""Two-way rules for a linked Contact and subscriber.

Both directions of the sync call :func:`reconcile_pair` with the same inputs, so they agree
on which side wins each field without talking to each other: the Salesforce-to-Cerkl plan
takes the Cerkl writes, the Cerkl-to-Salesforce plan the Salesforce writes.

A side counts as changed for a field when its value differs from the value last synced (the
state DB keeps a digest of it). A side whose record is not newer than what the last sync saw
counts as unchanged, so a backfilled old day never overwrites a newer value. When both sides
changed a field and still differ, the configured conflict rule decides and a conflict is
recorded. An opt-out is not decided here: it always wins (see the flows).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from include.cerkl_sync.records import normalize_email, parse_timestamp

#: Fields kept equal in both directions, by their record names.
SHARED_FIELDS = ("first_name", "last_name", "email")


def field_digest(name: str, value: object) -> str:
    """Return the digest the state DB keeps for a synced value (never the value itself).

    Strings are compared in Unicode NFC, so a name stored precomposed on one side and with
    combining characters on the other counts as equal.
    """
    if name == "email":
        value = normalize_email(value)
    elif isinstance(value, str):
        value = value.strip() or None
    if isinstance(value, str):
        value = unicodedata.normalize("NFC", value)
    encoded = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def values_equal(name: str, left: object, right: object) -> bool:
    """Compare two field values the way the sync does: emails trimmed and case-insensitive."""
    return field_digest(name, left) == field_digest(name, right)


@dataclass
class PairDecision:
    """Writes planned for one linked pair, per field."""

    to_cerkl: dict[str, Any] = field(default_factory=dict)
    to_salesforce: dict[str, Any] = field(default_factory=dict)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    #: Digests of the values both sides hold once the writes are done.
    synced_values: dict[str, str] = field(default_factory=dict)


def _newer(candidate: str | None, seen: datetime | None) -> bool:
    when = parse_timestamp(candidate)
    if when is None:
        return False
    return seen is None or when > seen


def reconcile_pair(
    *,
    contact: Mapping[str, Any] | None,
    subscriber: Mapping[str, Any] | None,
    synced_values: Mapping[str, str],
    salesforce_seen_at: datetime | None,
    cerkl_seen_at: datetime | None,
    conflict_rule: str,
) -> PairDecision:
    """Decide the shared-field writes for one linked pair.

    :param contact: the Contact record when Salesforce reported it changed in the window,
        else None (its values are then taken to equal the last-synced ones).
    :param subscriber: the subscriber record when Cerkl reported it changed, or when it was
        read for another reason; None likewise.
    :param synced_values: field name to digest of the last-synced value; empty for a new link.
    :param salesforce_seen_at: the Contact ``SystemModstamp`` the last sync saw.
    :param cerkl_seen_at: the subscriber ``date_modified_utc`` the last sync saw.
    :param conflict_rule: ``latest_wins``, ``salesforce_wins`` or ``cerkl_wins``.
    :return: the writes for each side, the conflicts, and the digests after the writes.
    """
    decision = PairDecision(synced_values=dict(synced_values))
    contact_fresh = contact is not None and _newer(contact.get("modstamp"), salesforce_seen_at)
    subscriber_fresh = subscriber is not None and _newer(subscriber.get("modified"), cerkl_seen_at)
    for name in SHARED_FIELDS:
        baseline = synced_values.get(name)
        sf_value = contact.get(name) if contact is not None else None
        cerkl_value = subscriber.get(name) if subscriber is not None else None
        sf_changed = contact_fresh and field_digest(name, sf_value) != baseline
        cerkl_changed = subscriber_fresh and field_digest(name, cerkl_value) != baseline
        if (
            contact is not None
            and subscriber is not None
            and values_equal(name, sf_value, cerkl_value)
        ):
            decision.synced_values[name] = field_digest(name, sf_value)
            continue
        if sf_changed and not cerkl_changed:
            winner = "salesforce"
        elif cerkl_changed and not sf_changed:
            winner = "cerkl"
        elif sf_changed and cerkl_changed:
            winner = _apply_rule(conflict_rule, contact, subscriber)
            if baseline is not None:
                decision.conflicts.append({"field": name, "winner": winner, "rule": conflict_rule})
        else:
            continue
        # An empty value never blanks a filled one: the side that has a value wins instead.
        if winner == "salesforce" and _blank(sf_value) and not _blank(cerkl_value):
            winner = "cerkl" if subscriber is not None else ""
        elif winner == "cerkl" and _blank(cerkl_value) and not _blank(sf_value):
            winner = "salesforce" if contact is not None else ""
        if not winner or _blank(sf_value if winner == "salesforce" else cerkl_value):
            continue
        if winner == "salesforce":
            decision.to_cerkl[name] = sf_value
            decision.synced_values[name] = field_digest(name, sf_value)
        else:
            decision.to_salesforce[name] = cerkl_value
            decision.synced_values[name] = field_digest(name, cerkl_value)
    return decision


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _apply_rule(
    rule: str, contact: Mapping[str, Any] | None, subscriber: Mapping[str, Any] | None
) -> str:
    if rule == "salesforce_wins":
        return "salesforce"
    if rule == "cerkl_wins":
        return "cerkl"
    sf_time = parse_timestamp(contact.get("modified") if contact else None)
    cerkl_time = parse_timestamp(subscriber.get("modified") if subscriber else None)
    if cerkl_time is not None and (sf_time is None or cerkl_time > sf_time):
        return "cerkl"
    return "salesforce"
