"""Salesforce record Ids: 15-character case-sensitive form and the 18-character case-safe form."""

from __future__ import annotations

import string

_SUFFIX_ALPHABET = string.ascii_uppercase + "012345"
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_ID_CHARS = frozenset(string.ascii_letters + string.digits)

# Key prefixes of the objects the sandbox serves, as Salesforce assigns them.
KEY_PREFIXES: dict[str, str] = {
    "Account": "001",
    "Contact": "003",
    "Lead": "00Q",
    "Campaign": "701",
    "CampaignMember": "00v",
}
ORG_ID_PREFIX = "00D"
USER_ID_PREFIX = "005"
BULK_JOB_PREFIX = "750"
QUERY_LOCATOR_PREFIX = "01g"
# Salesforce puts the instance (pod) identifier after the key prefix. The sandbox uses a fixed one.
_POD = "8d"


def case_safe_suffix(id15: str) -> str:
    """Compute the three-character suffix that makes a 15-character Id case-insensitive.

    Each suffix character encodes, for one block of five characters, which of them are
    upper-case letters (bit i set for position i), as an index into ``A-Z0-5``.
    """
    suffix = []
    for block in range(3):
        chunk = id15[block * 5 : block * 5 + 5]
        bits = sum(1 << position for position, char in enumerate(chunk) if "A" <= char <= "Z")
        suffix.append(_SUFFIX_ALPHABET[bits])
    return "".join(suffix)


def make_id(prefix: str, sequence: int) -> str:
    """Build the 18-character Id for a key prefix and a per-object sequence number.

    :param prefix: three-character key prefix such as ``003``.
    :param sequence: a non-negative number, unique per prefix.
    :return: the 18-character Id.
    """
    digits = []
    value = sequence
    for _ in range(10):
        value, remainder = divmod(value, 62)
        digits.append(_BASE62[remainder])
    id15 = prefix + _POD + "".join(reversed(digits))
    return id15 + case_safe_suffix(id15)


def normalize_id(value: str) -> str | None:
    """Return the 18-character form of a 15- or 18-character Id, or None when it is not an Id.

    An 18-character Id is accepted when its suffix matches its first 15 characters in any
    letter case, as Salesforce accepts it.
    """
    if not isinstance(value, str) or len(value) not in (15, 18) or not set(value) <= _ID_CHARS:
        return None
    id15 = value[:15]
    suffix = case_safe_suffix(id15)
    if len(value) == 18 and value[15:].upper() != suffix:
        return None
    return id15 + suffix


def sobject_for_id(value: str) -> str | None:
    """Return the sObject name whose key prefix starts ``value``, or None."""
    for sobject, prefix in KEY_PREFIXES.items():
        if value.startswith(prefix):
            return sobject
    return None
