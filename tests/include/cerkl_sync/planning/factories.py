"""Builders of plain Contact, Subscriber, Unsubscribe and Link records for planning tests.

Each builder returns the shape :mod:`include.cerkl_sync.records` documents, with valid
defaults. Keyword arguments override single fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from include.cerkl_sync.planning.pairs import field_digest
from include.cerkl_sync.records import parse_timestamp
from include.cerkl_sync.state import Link

#: Times in increasing order, for modstamps, modification dates and seen-at values.
T0 = "2026-03-01T00:00:00+00:00"
T1 = "2026-03-02T00:00:00+00:00"
T2 = "2026-03-03T00:00:00+00:00"
T3 = "2026-03-04T00:00:00+00:00"


def contact(contact_id: str = "003000000000001AAA", **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": contact_id,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "opted_out": False,
        "unsubscribe_flag": False,
        "has_opted_out": False,
        "subscriber_id": None,
        "account_id": "001000000000001AAA",
        "created": T0,
        "modified": T2,
        "modstamp": T2,
        "is_deleted": False,
        "master_record_id": None,
        "engagement_score": None,
        "interests": [None] * 5,
    }
    record.update(fields)
    return record


def subscriber(subscriber_id: int = 101, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": subscriber_id,
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "status_id": 1,
        "privacy_level_id": 1,
        "engagement_score": None,
        "created": T0,
        "modified": T2,
    }
    record.update(fields)
    return record


def unsubscribe(subscriber_id: int = 101, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": subscriber_id,
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "unsubscribed_at": T1,
        "self_unsubscribed": False,
        "source": "admin",
    }
    record.update(fields)
    return record


def digests(
    first_name: str | None = "Ada",
    last_name: str | None = "Lovelace",
    email: str | None = "ada@example.com",
    opted_out: bool = False,
) -> dict[str, str]:
    """Return the ``synced_values`` a link stores after syncing these values."""
    return {
        "first_name": field_digest("first_name", first_name),
        "last_name": field_digest("last_name", last_name),
        "email": field_digest("email", email),
        "opted_out": field_digest("opted_out", opted_out),
    }


def link(
    contact_id: str = "003000000000001AAA",
    subscriber_id: int = 101,
    *,
    synced_values: dict[str, str] | None = None,
    salesforce_seen_at: str | None = T1,
    cerkl_seen_at: str | None = T1,
) -> Link:
    return Link(
        contact_id=contact_id,
        subscriber_id=subscriber_id,
        synced_values=digests() if synced_values is None else synced_values,
        salesforce_seen_at=_when(salesforce_seen_at),
        cerkl_seen_at=_when(cerkl_seen_at),
    )


def _when(value: str | None) -> datetime | None:
    return parse_timestamp(value)
