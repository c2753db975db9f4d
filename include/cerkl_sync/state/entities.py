"""Values the sync-state store reads and writes, ``value_digest``, and input validation.

The validation functions raise ``ValueError`` with a message that names the field and the
fix. They never echo a synced value, because it may be personal data.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from include.cerkl_sync.state.models import FLOW_MAX_LENGTH, REASON_MAX_LENGTH, SALESFORCE_ID_LENGTH

WORK_ITEM_KINDS = ("pending", "quarantined")

DIGEST_PATTERN = re.compile(r"^[0-9a-f]{64}$")
FLOW_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]+$")


@dataclass
class Link:
    """A link between a Salesforce Contact and a Cerkl subscriber.

    :param contact_id: 18-character Salesforce Contact Id.
    :param subscriber_id: Cerkl subscriber id.
    :param synced_values: field name -> ``value_digest`` of the value last synced. Values
        themselves are never stored, so a digest that is not 64 hex characters is rejected.
    :param salesforce_seen_at: Contact ``SystemModstamp`` at the last sync (aware datetime).
    :param cerkl_seen_at: subscriber ``date_modified_utc`` at the last sync (aware datetime).
    """

    contact_id: str
    subscriber_id: int
    synced_values: dict[str, str] = field(default_factory=dict)
    salesforce_seen_at: datetime | None = None
    cerkl_seen_at: datetime | None = None


@dataclass
class SegmentLink:
    """The Cerkl segment that mirrors a Salesforce Campaign.

    :param campaign_id: 18-character Salesforce Campaign Id.
    :param segment_id: Cerkl segment id.
    :param in_scope: False once the Campaign no longer qualifies for syncing.
    """

    campaign_id: str
    segment_id: int
    in_scope: bool = True


@dataclass
class WorkItem:
    """An open work item: a record that failed for a passing cause (``pending``) or that a run
    rejected (``quarantined``). ``attempts`` counts the adds since the item opened or was
    requeued. Which kinds a run retries is up to the flow. The store only keeps the state."""

    id: int
    flow: str
    kind: str
    record_type: str
    record_id: str
    reason: str
    attempts: int
    first_seen: datetime
    last_seen: datetime


def value_digest(value: object) -> str:
    """Return the sha256 hex digest of a normalized field value.

    Normalization makes equal values from Salesforce and Cerkl digest alike. ``None`` and a
    string that is empty after stripping digest the same. Strings are stripped and put in
    Unicode NFC form, and booleans become ``true``/``false``. Numbers with an integral value
    digest like the integer (``1``, ``1.0`` and ``Decimal("1.00")`` are equal), and other
    numbers in positional notation (``1e-07`` like ``Decimal("0.0000001")``).

    :param value: None, str, bool, int, float or Decimal.
    :return: 64 lowercase hex characters.
    :raises TypeError: for any other type.
    :raises ValueError: for NaN or infinite numbers.
    """
    return hashlib.sha256(_normalize_value(value).encode("utf-8")).hexdigest()


def _normalize_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value.strip())
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
        if not finite:
            raise ValueError(f"value_digest cannot digest the non-finite number {value!r}.")
        # repr() is the shortest string that round-trips the float, so 0.1 becomes 0.1 and
        # not the binary expansion 0.1000000000000000055...
        number = Decimal(repr(value)) if isinstance(value, float) else value
        if number == number.to_integral_value():
            return str(int(number))
        return format(number.normalize(), "f")
    raise TypeError(
        f"value_digest supports None, str, bool, int, float and Decimal, not "
        f"{type(value).__name__}. Convert the value to str first."
    )


def check_flow(flow: object) -> str:
    if not isinstance(flow, str) or not FLOW_PATTERN.fullmatch(flow) or len(flow) > FLOW_MAX_LENGTH:
        raise ValueError(
            f"Invalid flow name {flow!r}: use 1 to {FLOW_MAX_LENGTH} letters, digits, '_', '.', "
            "':' or '-'."
        )
    return flow


def check_kind(kind: object) -> str:
    if kind not in WORK_ITEM_KINDS:
        raise ValueError(f"Invalid work item kind {kind!r}: use 'pending' or 'quarantined'.")
    return str(kind)


def check_salesforce_id(value: object, name: str) -> str:
    if not isinstance(value, str) or len(value) != SALESFORCE_ID_LENGTH or not value.isalnum():
        raise ValueError(
            f"Invalid {name} {value!r}: expected an 18-character Salesforce Id. "
            "Convert 15-character Ids to the 18-character form."
        )
    return value


def check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Invalid {name} {value!r}: expected a positive integer.")
    return value


def check_subscriber_id(value: object) -> int:
    return check_positive_int(value, "subscriber_id")


def check_text(value: object, name: str, max_length: int) -> str:
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise ValueError(f"Invalid {name} {value!r}: expected 1 to {max_length} characters.")
    return value


def check_aware(value: object, name: str) -> None:
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(value).__name__}.")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} {value.isoformat()} has no time zone. Pass an aware datetime, for example "
            "one with tzinfo=UTC."
        )


def check_link(link: Link) -> None:
    check_salesforce_id(link.contact_id, "contact_id")
    check_subscriber_id(link.subscriber_id)
    for name in ("salesforce_seen_at", "cerkl_seen_at"):
        value = getattr(link, name)
        if value is not None:
            check_aware(value, name)
    if not isinstance(link.synced_values, dict):
        raise ValueError(
            f"synced_values of contact {link.contact_id} must be a dict, got "
            f"{type(link.synced_values).__name__}."
        )
    for field_name, digest in link.synced_values.items():
        if not isinstance(field_name, str) or not isinstance(digest, str):
            raise ValueError(
                f"synced_values of contact {link.contact_id} must map str to str, but field "
                f"{field_name!r} does not."
            )
        if not DIGEST_PATTERN.fullmatch(digest):
            # The value is left out of the message because it may be personal data.
            raise ValueError(
                f"synced_values[{field_name!r}] of contact {link.contact_id} is not a "
                "value_digest(). Store the digest of the value, never the value."
            )


def truncate_reason(reason: object) -> str:
    if not isinstance(reason, str):
        raise ValueError(f"reason must be a str, got {type(reason).__name__}.")
    if len(reason) <= REASON_MAX_LENGTH:
        return reason
    return reason[: REASON_MAX_LENGTH - 3] + "..."
