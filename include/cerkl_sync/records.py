"""Plain-dict records that pass between the sync's tasks, and the checks made on them.

Extract steps turn Salesforce and Cerkl responses into these shapes; planning functions take and
return them; they travel through XCom as JSON. Timestamps are ISO 8601 strings in UTC.

- Contact: ``id``, ``first_name``, ``last_name``, ``email``, ``opted_out`` (any configured
  opt-out checkbox set), ``unsubscribe_flag``, ``has_opted_out``, ``subscriber_id`` (int or
  None), ``account_id``, ``created``, ``modified`` (``LastModifiedDate``), ``modstamp``
  (``SystemModstamp``), ``is_deleted``, ``master_record_id``, ``engagement_score``,
  ``interests`` (five strings or None).
- Subscriber: ``id``, ``email``, ``first_name``, ``last_name``, ``status_id``,
  ``privacy_level_id``, ``engagement_score``, ``created``, ``modified``.
- Unsubscribe: ``id``, ``email``, ``first_name``, ``last_name``, ``unsubscribed_at``,
  ``self_unsubscribed``, ``source``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from include.cerkl_sync.config import SyncConfig

#: Salesforce field lengths the sync writes (standard Contact field sizes).
FIRST_NAME_MAX = 40
LAST_NAME_MAX = 80
EMAIL_MAX = 80
TEXT_FIELD_MAX = 255


def normalize_email(value: object) -> str | None:
    """Return the matching key of an email address: trimmed and lower-cased, or None."""
    if not isinstance(value, str):
        return None
    key = value.strip().lower()
    return key or None


def normalize_name(value: object) -> str:
    """Return a name folded for comparison: accents and case removed, spaces collapsed."""
    if not isinstance(value, str):
        return ""
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def parse_timestamp(value: object) -> datetime | None:
    """Parse a Salesforce or Cerkl timestamp into an aware UTC datetime.

    Accepts ``2024-01-02T03:04:05.000+0000`` (Salesforce), ``2024-01-02 03:04:05`` (Cerkl, UTC
    without a zone) and ISO 8601 with an offset.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(str(value).strip().replace(" ", "T", 1))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _clean(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def contact_from_salesforce(record: Mapping[str, Any], config: SyncConfig) -> dict[str, Any]:
    """Turn one Contact row of a SOQL result into a Contact record."""
    fields = config.contact_fields
    raw_subscriber = record.get(fields.subscriber_id)
    subscriber_id: int | None
    try:
        subscriber_id = (
            int(str(raw_subscriber).strip()) if raw_subscriber not in (None, "") else None
        )
    except ValueError:
        subscriber_id = None
    opted_out = any(bool(record.get(name)) for name in config.opt_out_fields)
    score = record.get(fields.engagement_score)
    last_name = _clean(record.get(fields.last_name))
    if last_name == config.missing_last_name:
        # The fallback means "no last name", so it is never copied to Cerkl.
        last_name = None
    return {
        "id": record["Id"],
        "first_name": _clean(record.get(fields.first_name)),
        "last_name": last_name,
        "email": _clean(record.get(fields.email)),
        "opted_out": opted_out,
        "unsubscribe_flag": bool(record.get(fields.unsubscribe)),
        "has_opted_out": bool(record.get(fields.has_opted_out)),
        "subscriber_id": subscriber_id,
        "subscriber_id_raw": _clean(raw_subscriber),
        "account_id": record.get("AccountId"),
        "created": iso(parse_timestamp(record.get("CreatedDate"))),
        "modified": iso(parse_timestamp(record.get("LastModifiedDate"))),
        "modstamp": iso(parse_timestamp(record.get("SystemModstamp"))),
        "is_deleted": bool(record.get("IsDeleted")),
        "master_record_id": record.get("MasterRecordId"),
        "engagement_score": float(score) if score is not None else None,
        "interests": [_clean(record.get(name)) for name in fields.interests],
    }


def subscriber_from_cerkl(record: Mapping[str, Any]) -> dict[str, Any]:
    """Turn one Cerkl subscriber object into a Subscriber record."""
    status = record.get("subscriber_status")
    privacy = record.get("subscriber_privacy_level")
    score = record.get("engagement_score")
    return {
        "id": int(record["id"]),
        "email": _clean(record.get("email")),
        "first_name": _clean(record.get("first_name")),
        "last_name": _clean(record.get("last_name")),
        "status_id": status.get("id") if isinstance(status, Mapping) else status,
        "privacy_level_id": privacy.get("id") if isinstance(privacy, Mapping) else privacy,
        "engagement_score": float(score) if score is not None else None,
        "created": iso(parse_timestamp(record.get("date_created_utc"))),
        "modified": iso(parse_timestamp(record.get("date_modified_utc"))),
    }


def unsubscribe_from_cerkl(record: Mapping[str, Any]) -> dict[str, Any]:
    """Turn one Cerkl unsubscribe object into an Unsubscribe record."""
    return {
        "id": int(record["id"]),
        "email": _clean(record.get("email")),
        "first_name": _clean(record.get("first_name")),
        "last_name": _clean(record.get("last_name")),
        "unsubscribed_at": iso(parse_timestamp(record.get("date_unsubscribed_utc"))),
        "self_unsubscribed": bool(record.get("self_unsubscribed")),
        "source": record.get("source")
        or ("subscriber" if record.get("self_unsubscribed") else None),
    }


def email_problem(value: str | None) -> str | None:
    """Check an address before it is written to either system.

    The rule: the address must pass ``email-validator``'s syntax check (RFC 5321/5322 with
    internationalized domain names; no DNS look-up) and fit Salesforce's 80-character Email
    field. Surrounding spaces are ignored, because matching trims them too. Returns a reason code
    with a short explanation, or None when the address is valid.
    """
    from email_validator import EmailNotValidError, validate_email

    value = value.strip() if value is not None else None
    if not value:
        return "MISSING_EMAIL: the record has no email address"
    if len(value) > EMAIL_MAX:
        return f"EMAIL_TOO_LONG: {len(value)} characters, Salesforce allows {EMAIL_MAX}"
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return "INVALID_EMAIL: the address fails the syntax check"
    return None


def name_problem(first_name: str | None, last_name: str | None) -> str | None:
    """Check names against Salesforce's Contact field lengths; None when they fit."""
    if first_name is not None and len(first_name) > FIRST_NAME_MAX:
        return (
            f"FIRST_NAME_TOO_LONG: {len(first_name)} characters, Salesforce allows {FIRST_NAME_MAX}"
        )
    if last_name is not None and len(last_name) > LAST_NAME_MAX:
        return f"LAST_NAME_TOO_LONG: {len(last_name)} characters, Salesforce allows {LAST_NAME_MAX}"
    return None
