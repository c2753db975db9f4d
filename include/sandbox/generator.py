"""Deterministic generator of sandbox orgs: Salesforce records and Cerkl records that match.

:func:`generate_org` turns an :class:`OrgSpec` into a :class:`GeneratedOrg`, whose iterators
yield plain dicts in the shapes the sandbox stores load (Salesforce API field names; Cerkl
field names of the API contract). The same spec always yields the same records, byte for
byte, because every random choice comes from a ``random.Random`` or a ``Faker`` instance
seeded from ``OrgSpec.seed``. Each record draws from its own seeded ``random.Random``, so
the iterators can run in any order, more than once, and a Contact and the subscriber it
matches agree without holding every person in memory.

``docs/sandbox-data.md`` documents every spec field, its default, and the shape of the org.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import random
import string
import unicodedata
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

# The Account every generated org contains, given as the 15-character Id that operators
# configure (``cerkl_organization_id``). Records carry the 18-character form.
ORGANIZATION_ACCOUNT_ID_15 = "001C000001aTtMa"
ORGANIZATION_ACCOUNT_NAME = "Sandbox Organization"

DEFAULT_NOW = datetime(2026, 1, 1, tzinfo=UTC)

# Categories that Cerkl subscribers can be interested in, in id order (id 1 is the first).
CATEGORY_DESCRIPTIONS: tuple[str, ...] = (
    "Events",
    "Volunteering",
    "Fundraising",
    "Board News",
    "Committee Updates",
    "Advocacy",
    "Education",
    "Health and Wellness",
    "Community",
    "Arts and Culture",
    "Sports",
    "Technology",
    "Careers",
    "Research",
    "Policy",
    "Member Benefits",
    "Scholarships",
    "Alumni",
    "Sustainability",
    "Announcements",
)

SALESFORCE_OBJECTS: tuple[str, ...] = ("Account", "Contact", "Lead", "Campaign", "CampaignMember")
CERKL_COLLECTIONS: tuple[str, ...] = (
    "categories",
    "subscribers",
    "unsubscribes",
    "interests",
    "segments",
)

EMAIL_DOMAINS: tuple[str, ...] = ("example.org", "example.com", "example.net")
# Sides of a matched pair whose records may carry a case- or space-variant email.
EMAIL_VARIANT_SIDES: tuple[str, ...] = ("salesforce", "cerkl", "both")
SUBSCRIBER_ID_START = 100_001
SEGMENT_ID_START = 501
SEGMENT_EXTERNAL_ID_PREFIX = "SF_"
# Cerkl subscriber status ids and their weights: 1 "Email Blasts & News Digests",
# 2 "News Digests Only", 3 "Email Blasts Only".
SUBSCRIBER_STATUS_WEIGHTS: tuple[tuple[int, int], ...] = ((1, 80), (2, 12), (3, 8))
CAMPAIGN_MEMBER_STATUSES: tuple[str, ...] = ("Sent", "Responded")
CAMPAIGN_STATUSES: tuple[str, ...] = ("Planned", "In Progress", "Completed")
LEAD_STATUSES: tuple[str, ...] = ("Open - Not Contacted", "Working - Contacted", "Qualified")
ACCOUNT_TYPES: tuple[str, ...] = ("Customer - Direct", "Partner", "Prospect", "Other")

_ID_SUFFIX_ALPHABET = string.ascii_uppercase + "012345"
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_BASE62_PAIR = tuple(a + b for a in _BASE62 for b in _BASE62)
_BASE62_TRIPLE = tuple(a + b for a in _BASE62 for b in _BASE62_PAIR)
_KEY_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "Lead": "00Q",
    "Campaign": "701",
    "CampaignMember": "00v",
}
# Generated Ids put "0G" where Salesforce puts the instance identifier, so they differ from
# the organization Account and from the Ids the sandbox store assigns (instance "8d").
_GENERATED_ID_POD = "0G"
_YEAR_SECONDS = 365 * 24 * 3600

# Streams of per-record random numbers; each record of a stream seeds its own generator.
_STREAM_PERSON = 1
_STREAM_CONTACT = 2
_STREAM_SUBSCRIBER = 3
_STREAM_UNSUBSCRIBE = 4
_STREAM_LEAD = 5
_STREAM_CAMPAIGN = 6
_STREAM_ACCOUNT = 7
_STREAM_SEGMENT = 8
_STREAM_MEMBERSHIP = 9
_STREAM_MEMBER_STATUS = 10
_STREAM_MANUAL_SEGMENT = 12
_STREAM_SUBSCRIBER_EMAIL = 13


def case_safe_id(id15: str) -> str:
    """Append the case-safe suffix to a 15-character Salesforce Id.

    Salesforce Ids are case-sensitive in their 15-character form. The three suffix
    characters encode, for each block of five characters, which positions hold an upper-case
    letter (bit ``i`` for position ``i``), as an index into ``A``-``Z`` then ``0``-``5``.

    :param id15: a 15-character Id.
    :return: the 18-character Id.
    :raises ValueError: when ``id15`` is not 15 letters and digits.
    """
    if len(id15) != 15 or not id15.isascii() or not id15.isalnum():
        raise ValueError(
            f"invalid 15-character Salesforce Id {id15!r}: expected 15 letters and digits"
        )
    return id15 + _suffix_char(id15[0:5]) + _suffix_char(id15[5:10]) + _suffix_char(id15[10:15])


@cache
def _suffix_char(chunk: str) -> str:
    bits = sum(1 << position for position, char in enumerate(chunk) if "A" <= char <= "Z")
    return _ID_SUFFIX_ALPHABET[bits]


ORGANIZATION_ACCOUNT_ID = case_safe_id(ORGANIZATION_ACCOUNT_ID_15)


def generated_id(sobject: str, sequence: int) -> str:
    """Build the 18-character Id of the ``sequence``-th generated record of ``sobject``.

    :param sobject: one of :data:`SALESFORCE_OBJECTS`.
    :param sequence: a number from 0 to 62**10 - 1.
    :return: the 18-character Id.
    """
    high, low = divmod(sequence, 62**5)
    id15 = _KEY_PREFIXES[sobject] + _GENERATED_ID_POD + _base62_block(high) + _base62_block(low)
    return id15 + _suffix_char(id15[0:5]) + _suffix_char(id15[5:10]) + _suffix_char(id15[10:15])


def _base62_block(value: int) -> str:
    """Write ``value`` (below 62**5) as five base-62 digits."""
    high, low = divmod(value, 62**2)
    return _BASE62_TRIPLE[high] + _BASE62_PAIR[low]


def segment_external_id(campaign_id: str) -> str:
    """Return the Cerkl segment ``external_id`` that links a segment to a Campaign."""
    return SEGMENT_EXTERNAL_ID_PREFIX + campaign_id


DEFAULT_CAMPAIGN_TYPE_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("Distribution List", 4),
    ("Committee", 2),
    ("Board", 1),
    ("Webinar", 2),
    ("Conference", 1),
    ("Email", 1),
    ("Direct Mail", 1),
)
DEFAULT_SEGMENT_CAMPAIGN_TYPES: tuple[str, ...] = ("Distribution List", "Committee", "Board")


@dataclass(frozen=True)
class OrgSpec:
    """Parameters of a generated org. Shares are fractions between 0 and 1.

    ``docs/sandbox-data.md`` describes each field and its default.
    """

    seed: int = 42
    now: datetime | None = None

    contacts: int = 1_000
    subscribers: int = 800
    accounts: int = 25
    leads: int = 50
    campaigns: int = 12

    linked_share: float = 0.5
    unlinked_one_match_share: float = 0.5
    unlinked_several_match_share: float = 0.1
    several_match_max: int = 3
    email_variant_share: float = 0.1
    email_variant_side: str = "both"

    missing_first_name_share: float = 0.03
    missing_last_name_share: float = 0.02
    non_ascii_name_share: float = 0.08
    contact_without_email_share: float = 0.02
    contact_without_account_share: float = 0.05

    opted_out_share: float = 0.05
    self_unsubscribes: int = 40
    admin_unsubscribes: int = 20
    unsubscribe_contact_share: float = 0.6
    unsubscribe_flagged_share: float = 0.5

    max_interests: int = 8

    campaign_type_weights: tuple[tuple[str, int], ...] = DEFAULT_CAMPAIGN_TYPE_WEIGHTS
    segment_campaign_types: tuple[str, ...] = DEFAULT_SEGMENT_CAMPAIGN_TYPES
    campaign_members_min: int = 0
    campaign_members_max: int = 60
    lead_member_share: float = 0.1
    synced_campaign_share: float = 0.5
    manual_segments: int = 2

    def __post_init__(self) -> None:
        for spec_field in dataclasses.fields(self):
            value = getattr(self, spec_field.name)
            if spec_field.name.endswith("_share") and not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"invalid OrgSpec.{spec_field.name}={value!r}: expected a share from 0 to 1"
                )
            if spec_field.type == "int" and spec_field.name != "seed" and value < 0:
                raise ValueError(f"invalid OrgSpec.{spec_field.name}={value!r}: expected 0 or more")
        if self.unlinked_one_match_share + self.unlinked_several_match_share > 1.0:
            raise ValueError(
                "invalid OrgSpec: unlinked_one_match_share + unlinked_several_match_share = "
                f"{self.unlinked_one_match_share + self.unlinked_several_match_share!r}; "
                "their sum must be at most 1 (the rest match no Contact)"
            )
        if self.several_match_max < 2:
            raise ValueError(
                f"invalid OrgSpec.several_match_max={self.several_match_max!r}: expected 2 or "
                "more, because several matches means at least two Contacts"
            )
        if self.campaign_members_min > self.campaign_members_max:
            raise ValueError(
                f"invalid OrgSpec: campaign_members_min={self.campaign_members_min!r} is above "
                f"campaign_members_max={self.campaign_members_max!r}"
            )
        if self.max_interests > len(CATEGORY_DESCRIPTIONS):
            raise ValueError(
                f"invalid OrgSpec.max_interests={self.max_interests!r}: expected at most "
                f"{len(CATEGORY_DESCRIPTIONS)}, the number of categories"
            )
        if self.campaigns and not any(weight > 0 for _, weight in self.campaign_type_weights):
            raise ValueError(
                "invalid OrgSpec.campaign_type_weights: give at least one type a weight above 0"
            )
        if self.email_variant_side not in EMAIL_VARIANT_SIDES:
            raise ValueError(
                f"invalid OrgSpec.email_variant_side={self.email_variant_side!r}: expected one "
                f"of {', '.join(EMAIL_VARIANT_SIDES)}"
            )
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError(
                f"invalid OrgSpec.now={self.now!r}: expected an aware datetime (tzinfo=UTC)"
            )

    @property
    def effective_now(self) -> datetime:
        """The reference time: ``now`` in UTC, or :data:`DEFAULT_NOW` when ``now`` is None."""
        return DEFAULT_NOW if self.now is None else self.now.astimezone(UTC)


@dataclass(frozen=True)
class _NamePools:
    first_ascii: tuple[str, ...]
    last_ascii: tuple[str, ...]
    # Each entry is a (first name, last name) pair from one script or locale.
    accented: tuple[tuple[str, str], ...]
    cjk: tuple[tuple[str, str], ...]
    right_to_left: tuple[tuple[str, str], ...]
    companies: tuple[str, ...]
    titles: tuple[str, ...]
    cities: tuple[str, ...]
    industries: tuple[str, ...]
    phrases: tuple[str, ...]


@cache
def _build_name_pools(seed: int) -> _NamePools:
    """Draw names, companies and phrases from Faker locales, once per seed and process."""
    from faker import Faker

    def make_faker(locale: str) -> Faker:
        faker = Faker(locale)
        faker.seed_instance(seed)
        return faker

    def distinct(values: Iterator[str], size: int) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for value in values:
            seen.setdefault(value, None)
            if len(seen) == size:
                break
        return tuple(seen)

    def pairs(locales: tuple[str, ...], per_locale: int, keep_ascii: bool) -> tuple:
        result = []
        for locale in locales:
            faker = make_faker(locale)
            found = 0
            for _ in range(per_locale * 20):
                first, last = faker.first_name(), faker.last_name()
                if keep_ascii or not (first + last).isascii():
                    result.append((first, last))
                    found += 1
                if found == per_locale:
                    break
        return tuple(result)

    english = make_faker("en_US")
    return _NamePools(
        first_ascii=distinct((n for n in iter(english.first_name, None) if n.isascii()), 400),
        last_ascii=distinct((n for n in iter(english.last_name, None) if n.isascii()), 600),
        accented=pairs(("de_DE", "fr_FR", "es_ES", "pl_PL", "cs_CZ"), 20, keep_ascii=False),
        cjk=pairs(("ja_JP", "zh_CN", "ko_KR"), 20, keep_ascii=True),
        right_to_left=pairs(("ar_AA", "he_IL"), 20, keep_ascii=True),
        companies=distinct(iter(english.company, None), 200),
        titles=distinct(iter(english.job, None), 150),
        cities=distinct(iter(english.city, None), 150),
        industries=(
            "Education",
            "Healthcare",
            "Nonprofit",
            "Technology",
            "Government",
            "Finance",
            "Manufacturing",
        ),
        phrases=distinct(iter(english.catch_phrase, None), 100),
    )


@dataclass(frozen=True)
class _Person:
    first_name: str
    last_name: str
    email: str


@dataclass(frozen=True)
class _SubscriberProfile:
    status_id: int
    engagement_score: float
    # (category id, rank, score), rank 1 first.
    interests: tuple[tuple[int, int, float], ...]
    created: datetime
    modified: datetime
    without_first_name: bool
    without_last_name: bool


def _apportion(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder first)."""
    weight_sum = sum(weights)
    exact = [total * weight / weight_sum for weight in weights]
    counts = [int(value) for value in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - counts[i]), i))
    for index in by_remainder[: total - sum(counts)]:
        counts[index] += 1
    return counts


@cache
def _ascii_fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and c.isalnum()).lower()


class GeneratedOrg:
    """A generated org: iterators of Salesforce records and Cerkl records.

    Every iterator starts afresh on each call and yields the same records in the same order.
    Salesforce records carry their ``Id`` and timestamps as aware datetimes; Cerkl records
    carry their integer ``id``. Contacts, subscribers and interests are produced one record
    at a time; the other objects are small.
    """

    def __init__(self, spec: OrgSpec) -> None:
        self.spec = spec
        self.now = spec.effective_now
        self._plan()

    # -- layout ------------------------------------------------------------------------

    def _plan(self) -> None:
        """Decide which subscriber matches which Contacts, and the order records come out in.

        Subscriber slots come in blocks: linked, unlinked with one matching Contact, unlinked
        with several, unlinked with none. Contact slots mirror the first three blocks, then
        hold Contacts without a subscriber, the first of which share an email with an
        unsubscribe. Output positions are a seeded shuffle of the slots.
        """
        spec = self.spec
        rng = random.Random(f"{spec.seed}/plan")

        linked = round(spec.subscribers * spec.linked_share)
        unlinked = spec.subscribers - linked
        one_match = round(unlinked * spec.unlinked_one_match_share)
        several_match = min(
            round(unlinked * spec.unlinked_several_match_share), unlinked - one_match
        )
        group_sizes = [rng.randint(2, spec.several_match_max) for _ in range(several_match)]

        self.linked_count = linked
        self.one_match_count = one_match
        self.several_match_count = several_match
        self.zero_match_count = unlinked - one_match - several_match
        self.matched_contact_count = linked + one_match + sum(group_sizes)
        self._matched_subscriber_end = linked + one_match + several_match
        if self.matched_contact_count > spec.contacts:
            raise ValueError(
                f"invalid OrgSpec: the subscriber shares need {self.matched_contact_count} "
                f"Contacts but contacts={spec.contacts}; raise contacts or lower "
                "subscribers, linked_share or the unlinked match shares"
            )

        # Contact slot of the first Contact of each several-match group.
        self._group_starts = array("q")
        start = linked + one_match
        for size in group_sizes:
            self._group_starts.append(start)
            start += size

        unsubscribe_total = spec.self_unsubscribes + spec.admin_unsubscribes
        self.unsubscribe_contact_count = min(
            round(unsubscribe_total * spec.unsubscribe_contact_share),
            spec.contacts - self.matched_contact_count,
        )
        kinds = [True] * spec.self_unsubscribes + [False] * spec.admin_unsubscribes
        rng.shuffle(kinds)
        self._unsubscribe_is_self = tuple(kinds)

        self._contact_slot_at = array("q", range(spec.contacts))
        rng.shuffle(self._contact_slot_at)
        self._contact_position_of = array("q", bytes(8 * spec.contacts))
        for position, slot in enumerate(self._contact_slot_at):
            self._contact_position_of[slot] = position

        self._subscriber_slot_at = array("q", range(spec.subscribers))
        rng.shuffle(self._subscriber_slot_at)
        self._subscriber_position_of = array("q", bytes(8 * spec.subscribers))
        for position, slot in enumerate(self._subscriber_slot_at):
            self._subscriber_position_of[slot] = position

        # Person numbers: subscribers first, then Contacts without a subscriber, then
        # unsubscribes without a Contact, then Leads. Each person has one email address.
        self._first_contact_only_person = spec.subscribers
        self._first_unsubscribe_only_person = (
            spec.subscribers + spec.contacts - self.matched_contact_count
        )
        self._first_lead_person = (
            self._first_unsubscribe_only_person + unsubscribe_total - self.unsubscribe_contact_count
        )

        self._campaign_types = self._plan_campaign_types(rng)

    def _plan_campaign_types(self, rng: random.Random) -> tuple[str, ...]:
        types = [name for name, weight in self.spec.campaign_type_weights if weight > 0]
        weights = [weight for _, weight in self.spec.campaign_type_weights if weight > 0]
        if not types:
            return ()
        counts = _apportion(self.spec.campaigns, weights)
        planned = [name for name, count in zip(types, counts, strict=True) for _ in range(count)]
        rng.shuffle(planned)
        return tuple(planned)

    @property
    def _pools(self) -> _NamePools:
        return _build_name_pools(self.spec.seed)

    def _record_rng(self, stream: int, index: int) -> random.Random:
        return random.Random(f"{self.spec.seed}/{stream}/{index}")

    def _timestamps(self, rng: random.Random) -> tuple[datetime, datetime]:
        """Pick a creation time in the year before ``now`` and a later modification time."""
        created_seconds = rng.randrange(_YEAR_SECONDS)
        modified_seconds = rng.randrange(created_seconds + 1)
        return (
            self.now - timedelta(seconds=created_seconds),
            self.now - timedelta(seconds=modified_seconds),
        )

    # -- people ------------------------------------------------------------------------

    def _person(self, number: int) -> _Person:
        rng = self._record_rng(_STREAM_PERSON, number)
        pools = self._pools
        if rng.random() < self.spec.non_ascii_name_share:
            kind = rng.randrange(4)
            if kind == 0:
                first, last = rng.choice(pools.accented)
            elif kind == 1:
                # Decomposed form: base letters followed by combining marks.
                first, last = rng.choice(pools.accented)
                first = unicodedata.normalize("NFD", first)
                last = unicodedata.normalize("NFD", last)
            elif kind == 2:
                first, last = rng.choice(pools.cjk)
            else:
                first, last = rng.choice(pools.right_to_left)
        else:
            first = rng.choice(pools.first_ascii)
            last = rng.choice(pools.last_ascii)

        local = ".".join(part for part in (_ascii_fold(first), _ascii_fold(last)) if part)
        email = f"{local or 'member'}.{number}@{rng.choice(EMAIL_DOMAINS)}"
        return _Person(first, last, email)

    def _contact_person_number(self, slot: int) -> tuple[int, int | None]:
        """Return the person number of a Contact slot and the subscriber slot it matches."""
        if slot < self.linked_count + self.one_match_count:
            return slot, slot
        if slot < self.matched_contact_count:
            group = bisect.bisect_right(self._group_starts, slot) - 1
            subscriber_slot = self.linked_count + self.one_match_count + group
            return subscriber_slot, subscriber_slot
        return self._first_contact_only_person + slot - self.matched_contact_count, None

    def _unsubscribe_person_number(self, index: int) -> int:
        if index < self.unsubscribe_contact_count:
            return self._first_contact_only_person + index
        return self._first_unsubscribe_only_person + index - self.unsubscribe_contact_count

    def subscriber_id(self, slot: int) -> int:
        """Return the Cerkl id of the subscriber in a layout slot."""
        return SUBSCRIBER_ID_START + self._subscriber_position_of[slot]

    def _subscriber_profile(self, slot: int) -> _SubscriberProfile:
        rng = self._record_rng(_STREAM_SUBSCRIBER, slot)
        statuses = [status for status, _ in SUBSCRIBER_STATUS_WEIGHTS]
        weights = [weight for _, weight in SUBSCRIBER_STATUS_WEIGHTS]
        status_id = rng.choices(statuses, weights)[0]
        engagement = round(rng.triangular(0.0, 100.0, 20.0), 1)
        interest_count = rng.randint(0, self.spec.max_interests)
        categories = rng.sample(range(1, len(CATEGORY_DESCRIPTIONS) + 1), interest_count)
        scores = sorted((round(rng.uniform(1.0, 100.0), 2) for _ in categories), reverse=True)
        interests = tuple(
            (category, rank, score)
            for rank, (category, score) in enumerate(zip(categories, scores, strict=True), 1)
        )
        created, modified = self._timestamps(rng)
        return _SubscriberProfile(
            status_id,
            engagement,
            interests,
            created,
            modified,
            without_first_name=rng.random() < self.spec.missing_first_name_share,
            without_last_name=rng.random() < self.spec.missing_last_name_share,
        )

    def _email_variant(self, email: str, rng: random.Random) -> str:
        """Return ``email`` with other letter case and, for half of them, surrounding spaces."""
        local, domain = email.split("@")
        variant = ".".join(part.capitalize() for part in local.split(".")) + "@"
        variant += domain.upper() if rng.random() < 0.5 else domain.capitalize()
        if rng.random() < 0.5:
            variant = " " + variant + " "
        return variant

    # -- Salesforce --------------------------------------------------------------------

    def account_ids(self) -> list[str]:
        """Return the Ids of all Accounts, the organization Account first."""
        return [ORGANIZATION_ACCOUNT_ID] + [
            generated_id("Account", index) for index in range(self.spec.accounts)
        ]

    def accounts(self) -> Iterator[dict[str, Any]]:
        """Yield the organization Account, then ``spec.accounts`` generated Accounts."""
        yield {
            "Id": ORGANIZATION_ACCOUNT_ID,
            "Name": ORGANIZATION_ACCOUNT_NAME,
            "Type": "Other",
            "Industry": "Nonprofit",
            "CreatedDate": self.now - timedelta(days=365),
            "LastModifiedDate": self.now - timedelta(days=365),
            "SystemModstamp": self.now - timedelta(days=365),
        }
        pools = self._pools
        for index in range(self.spec.accounts):
            rng = self._record_rng(_STREAM_ACCOUNT, index)
            created, modified = self._timestamps(rng)
            yield {
                "Id": generated_id("Account", index),
                "Name": rng.choice(pools.companies),
                "Type": rng.choice(ACCOUNT_TYPES),
                "Industry": rng.choice(pools.industries),
                "Phone": f"+1 555 01{rng.randrange(100):02d}",
                "CreatedDate": created,
                "LastModifiedDate": modified,
                "SystemModstamp": modified,
            }

    def contacts(self) -> Iterator[dict[str, Any]]:
        """Yield ``spec.contacts`` Contacts in Id order."""
        for position in range(self.spec.contacts):
            yield self._contact(position)

    def _contact(self, position: int) -> dict[str, Any]:
        spec = self.spec
        slot = self._contact_slot_at[position]
        person_number, subscriber_slot = self._contact_person_number(slot)
        person = self._person(person_number)
        profile = (
            self._subscriber_profile(subscriber_slot)
            if subscriber_slot is not None and subscriber_slot < self.linked_count
            else None
        )
        rng = self._record_rng(_STREAM_CONTACT, slot)
        pools = self._pools

        email: str | None = person.email
        if subscriber_slot is not None:
            is_variant = rng.random() < spec.email_variant_share
            if is_variant and spec.email_variant_side != "cerkl":
                email = self._email_variant(person.email, rng)
        elif slot >= self.matched_contact_count + self.unsubscribe_contact_count:
            if rng.random() < spec.contact_without_email_share:
                email = None

        account_id = None
        if rng.random() >= spec.contact_without_account_share:
            account_index = rng.randrange(spec.accounts + 1)
            account_id = (
                ORGANIZATION_ACCOUNT_ID
                if account_index == spec.accounts
                else generated_id("Account", account_index)
            )

        first_name: str | None = person.first_name
        if rng.random() < spec.missing_first_name_share:
            first_name = None

        flagged_unsubscribe = False
        unsubscribe_index = slot - self.matched_contact_count
        if 0 <= unsubscribe_index < self.unsubscribe_contact_count:
            flagged_unsubscribe = rng.random() < spec.unsubscribe_flagged_share

        created, modified = self._timestamps(rng)
        record: dict[str, Any] = {
            "Id": generated_id("Contact", position),
            "AccountId": account_id,
            "FirstName": first_name,
            "LastName": person.last_name,
            "Email": email,
            "Title": rng.choice(pools.titles),
            "Phone": f"+1 555 {rng.randrange(10_000):04d}",
            "MailingCity": rng.choice(pools.cities),
            "HasOptedOutOfEmail": rng.random() < spec.opted_out_share,
            "Cerkl_Subscriber_Id__c": None,
            "Cerkl_Unsubscribe__c": flagged_unsubscribe,
            "Engagement_Score__c": None,
        }
        for rank in range(1, 6):
            record[f"Interest_{rank}__c"] = None
        if profile is not None:
            record["Cerkl_Subscriber_Id__c"] = str(self.subscriber_id(subscriber_slot))
            record["Engagement_Score__c"] = profile.engagement_score
            for category, rank, _ in profile.interests[:5]:
                record[f"Interest_{rank}__c"] = CATEGORY_DESCRIPTIONS[category - 1]
        record["CreatedDate"] = created
        record["LastModifiedDate"] = modified
        record["SystemModstamp"] = modified
        return record

    def leads(self) -> Iterator[dict[str, Any]]:
        """Yield ``spec.leads`` Leads in Id order."""
        pools = self._pools
        for index in range(self.spec.leads):
            person = self._person(self._first_lead_person + index)
            rng = self._record_rng(_STREAM_LEAD, index)
            first_name: str | None = person.first_name
            if rng.random() < self.spec.missing_first_name_share:
                first_name = None
            created, modified = self._timestamps(rng)
            yield {
                "Id": generated_id("Lead", index),
                "FirstName": first_name,
                "LastName": person.last_name,
                "Company": rng.choice(pools.companies),
                "Email": person.email,
                "Status": rng.choice(LEAD_STATUSES),
                "HasOptedOutOfEmail": rng.random() < self.spec.opted_out_share,
                "CreatedDate": created,
                "LastModifiedDate": modified,
                "SystemModstamp": modified,
            }

    def campaigns(self) -> Iterator[dict[str, Any]]:
        """Yield ``spec.campaigns`` Campaigns with types in the proportions of the spec."""
        for index in range(len(self._campaign_types)):
            yield self._campaign(index)

    def _campaign(self, index: int) -> dict[str, Any]:
        campaign_type = self._campaign_types[index]
        rng = self._record_rng(_STREAM_CAMPAIGN, index)
        created, modified = self._timestamps(rng)
        status = rng.choice(CAMPAIGN_STATUSES)
        return {
            "Id": generated_id("Campaign", index),
            "Name": f"{campaign_type} {index + 1}: {rng.choice(self._pools.phrases)}"[:80],
            "Type": campaign_type,
            "Status": status,
            "IsActive": status != "Completed",
            "CreatedDate": created,
            "LastModifiedDate": modified,
            "SystemModstamp": modified,
        }

    def _campaign_membership(self, index: int) -> tuple[list[int], list[int]]:
        """Return the Contact positions and Lead indexes that are members of a Campaign."""
        spec = self.spec
        rng = self._record_rng(_STREAM_MEMBERSHIP, index)
        size = rng.randint(spec.campaign_members_min, spec.campaign_members_max)
        lead_count = min(spec.leads, round(size * spec.lead_member_share))
        contact_count = min(spec.contacts, size - lead_count)
        contacts = sorted(rng.sample(range(spec.contacts), contact_count))
        leads = sorted(rng.sample(range(spec.leads), lead_count))
        return contacts, leads

    def campaign_members(self) -> Iterator[dict[str, Any]]:
        """Yield the CampaignMembers of every Campaign, Contacts first, then Leads.

        Members are created after their Campaign and modified between then and ``now``.
        """
        sequence = 0
        for index in range(len(self._campaign_types)):
            campaign = self._campaign(index)
            campaign_id = campaign["Id"]
            contacts, leads = self._campaign_membership(index)
            rng = self._record_rng(_STREAM_MEMBER_STATUS, index)
            members = [("ContactId", generated_id("Contact", p)) for p in contacts]
            members += [("LeadId", generated_id("Lead", i)) for i in leads]
            campaign_age = int((self.now - campaign["CreatedDate"]).total_seconds())
            for reference_field, person_id in members:
                created_seconds = rng.randrange(campaign_age + 1)
                modified_seconds = rng.randrange(created_seconds + 1)
                created = self.now - timedelta(seconds=created_seconds)
                modified = self.now - timedelta(seconds=modified_seconds)
                yield {
                    "Id": generated_id("CampaignMember", sequence),
                    "CampaignId": campaign_id,
                    reference_field: person_id,
                    "Status": rng.choice(CAMPAIGN_MEMBER_STATUSES),
                    "CreatedDate": created,
                    "LastModifiedDate": modified,
                    "SystemModstamp": modified,
                }
                sequence += 1

    # -- Cerkl -------------------------------------------------------------------------

    def categories(self) -> Iterator[dict[str, Any]]:
        """Yield the fixed categories, ids from 1."""
        for index, description in enumerate(CATEGORY_DESCRIPTIONS, 1):
            yield {"id": index, "description": description}

    def subscribers(self) -> Iterator[dict[str, Any]]:
        """Yield ``spec.subscribers`` subscribers in id order."""
        spec = self.spec
        for position in range(spec.subscribers):
            slot = self._subscriber_slot_at[position]
            person = self._person(slot)
            profile = self._subscriber_profile(slot)
            email = person.email
            if spec.email_variant_side != "salesforce" and slot < self._matched_subscriber_end:
                rng = self._record_rng(_STREAM_SUBSCRIBER_EMAIL, slot)
                if rng.random() < spec.email_variant_share:
                    email = self._email_variant(person.email, rng)
            yield {
                "id": SUBSCRIBER_ID_START + position,
                "email": email,
                "first_name": None if profile.without_first_name else person.first_name,
                "last_name": None if profile.without_last_name else person.last_name,
                "subscriber_status_id": profile.status_id,
                "subscriber_privacy_level_id": 1,
                "engagement_score": profile.engagement_score,
                "date_created_utc": profile.created,
                "date_modified_utc": profile.modified,
            }

    def interests(self) -> Iterator[dict[str, Any]]:
        """Yield the ranked interests of every subscriber, in subscriber id order."""
        for position in range(self.spec.subscribers):
            profile = self._subscriber_profile(self._subscriber_slot_at[position])
            for category, rank, score in profile.interests:
                yield {
                    "subscriber_id": SUBSCRIBER_ID_START + position,
                    "category_id": category,
                    "rank": rank,
                    "score": score,
                }

    def unsubscribes(self) -> Iterator[dict[str, Any]]:
        """Yield self- and admin-unsubscribes; their ids follow the subscriber ids."""
        for index, is_self in enumerate(self._unsubscribe_is_self):
            person = self._person(self._unsubscribe_person_number(index))
            rng = self._record_rng(_STREAM_UNSUBSCRIBE, index)
            _, unsubscribed = self._timestamps(rng)
            yield {
                "id": SUBSCRIBER_ID_START + self.spec.subscribers + index,
                "email": person.email,
                "first_name": person.first_name,
                "last_name": person.last_name,
                "date_unsubscribed_utc": unsubscribed,
                "self_unsubscribed": is_self,
                "source": "subscriber" if is_self else "admin",
            }

    def segments(self) -> Iterator[dict[str, Any]]:
        """Yield segments of synced in-scope Campaigns, then manual segments.

        A synced Campaign's segment has ``external_id`` ``SF_<Campaign Id>`` and, as members,
        the subscribers linked to the Campaign's Contact members. Manual segments have no
        ``external_id``.
        """
        spec = self.spec
        segment_id = SEGMENT_ID_START
        for index, campaign_type in enumerate(self._campaign_types):
            if campaign_type not in spec.segment_campaign_types:
                continue
            rng = self._record_rng(_STREAM_SEGMENT, index)
            if rng.random() >= spec.synced_campaign_share:
                continue
            contacts, _ = self._campaign_membership(index)
            members = []
            for position in contacts:
                slot = self._contact_slot_at[position]
                if slot < self.linked_count:
                    members.append(self.subscriber_id(slot))
            campaign = self._campaign(index)
            yield {
                "id": segment_id,
                "description": campaign["Name"],
                "external_id": segment_external_id(campaign["Id"]),
                "members": sorted(members),
            }
            segment_id += 1

        for index in range(spec.manual_segments):
            rng = self._record_rng(_STREAM_MANUAL_SEGMENT, index)
            size = min(spec.subscribers, rng.randint(0, 20))
            members = rng.sample(range(spec.subscribers), size)
            yield {
                "id": segment_id,
                "description": f"Manual list {index + 1}: {rng.choice(self._pools.phrases)}",
                "external_id": None,
                "members": sorted(SUBSCRIBER_ID_START + position for position in members),
            }
            segment_id += 1

    # -- grouped access ----------------------------------------------------------------

    def salesforce_records(self, sobject: str) -> Iterator[dict[str, Any]]:
        """Yield the records of one sObject.

        :param sobject: one of :data:`SALESFORCE_OBJECTS`.
        :raises KeyError: for any other name.
        """
        iterators = {
            "Account": self.accounts,
            "Contact": self.contacts,
            "Lead": self.leads,
            "Campaign": self.campaigns,
            "CampaignMember": self.campaign_members,
        }
        if sobject not in iterators:
            raise KeyError(f"unknown sObject {sobject!r}: expected one of {SALESFORCE_OBJECTS}")
        return iterators[sobject]()

    def cerkl_records(self, collection: str) -> Iterator[dict[str, Any]]:
        """Yield the records of one Cerkl collection.

        :param collection: one of :data:`CERKL_COLLECTIONS`.
        :raises KeyError: for any other name.
        """
        iterators = {
            "categories": self.categories,
            "subscribers": self.subscribers,
            "unsubscribes": self.unsubscribes,
            "interests": self.interests,
            "segments": self.segments,
        }
        if collection not in iterators:
            raise KeyError(
                f"unknown Cerkl collection {collection!r}: expected one of {CERKL_COLLECTIONS}"
            )
        return iterators[collection]()


def generate_org(spec: OrgSpec | None = None) -> GeneratedOrg:
    """Plan a generated org for ``spec``; records are produced when iterated.

    :param spec: the parameters; None means the defaults of :class:`OrgSpec`.
    :return: the org, whose iterators yield the same records on every call.
    :raises ValueError: when the spec needs more matched Contacts than ``contacts``.
    """
    return GeneratedOrg(spec or OrgSpec())


def _parse_type_weights(text: str) -> tuple[tuple[str, int], ...]:
    pairs = []
    for item in text.split(","):
        name, separator, weight = item.partition("=")
        if not separator or not name.strip() or not weight.strip().isdigit():
            raise argparse.ArgumentTypeError(
                f"invalid campaign type weight {item!r}: expected Type=weight, for example "
                "'Distribution List=4,Webinar=1'"
            )
        pairs.append((name.strip(), int(weight)))
    return tuple(pairs)


def _parse_names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _parse_now(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"invalid --now {text!r}: expected an ISO 8601 datetime such as 2026-01-01T00:00:00Z"
        ) from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# Help text of each generator option; the default is appended.
_OPTION_HELP: dict[str, str] = {
    "seed": "seed of every random choice",
    "now": "reference time, ISO 8601; records are created in the year before it",
    "contacts": "number of Contacts",
    "subscribers": "number of Cerkl subscribers",
    "accounts": "number of Accounts besides the organization Account",
    "leads": "number of Leads",
    "campaigns": "number of Campaigns",
    "linked_share": "share of subscribers already linked to a Contact",
    "unlinked_one_match_share": "share of unlinked subscribers whose email matches one Contact",
    "unlinked_several_match_share": (
        "share of unlinked subscribers whose email matches several Contacts"
    ),
    "several_match_max": "maximum number of Contacts sharing one several-match email",
    "email_variant_share": "share of matched records whose email differs in case or spaces",
    "email_variant_side": "records that get variant emails",
    "missing_first_name_share": "share of people without a first name",
    "missing_last_name_share": "share of subscribers without a last name",
    "non_ascii_name_share": "share of people with accented, decomposed, CJK or RTL names",
    "contact_without_email_share": "share of unmatched Contacts without an email",
    "contact_without_account_share": "share of Contacts without an Account",
    "opted_out_share": "share of Contacts and Leads with HasOptedOutOfEmail",
    "self_unsubscribes": "number of unsubscribes by the person",
    "admin_unsubscribes": "number of unsubscribes by an admin",
    "unsubscribe_contact_share": "share of unsubscribes whose email belongs to a Contact",
    "unsubscribe_flagged_share": "share of those Contacts with Cerkl_Unsubscribe__c set",
    "max_interests": "maximum number of ranked interests per subscriber",
    "campaign_type_weights": "Campaign types and their weights, as Type=weight,Type=weight",
    "segment_campaign_types": "comma-separated Campaign types that have Cerkl segments",
    "campaign_members_min": "minimum number of members per Campaign",
    "campaign_members_max": "maximum number of members per Campaign",
    "lead_member_share": "share of Campaign members that are Leads",
    "synced_campaign_share": "share of segment-type Campaigns that already have a segment",
    "manual_segments": "number of segments without a Campaign",
}


def _default_text(spec_field: dataclasses.Field[Any]) -> str:
    if spec_field.name == "now":
        return DEFAULT_NOW.isoformat()
    if spec_field.name == "campaign_type_weights":
        return ",".join(f"{name}={weight}" for name, weight in DEFAULT_CAMPAIGN_TYPE_WEIGHTS)
    if spec_field.name == "segment_campaign_types":
        return ",".join(DEFAULT_SEGMENT_CAMPAIGN_TYPES)
    return str(spec_field.default)


def add_org_spec_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--option`` per :class:`OrgSpec` field, named after the field.

    Underscores become dashes (``--linked-share``). Every option defaults to None, meaning
    the field's own default, and :func:`org_spec_from_arguments` builds the spec.

    :param parser: the parser to extend; the options go into their own argument group.
    """
    group = parser.add_argument_group("generated org (see docs/sandbox-data.md)")
    for spec_field in dataclasses.fields(OrgSpec):
        option = "--" + spec_field.name.replace("_", "-")
        help_text = f"{_OPTION_HELP[spec_field.name]} (default {_default_text(spec_field)})"
        if spec_field.name == "now":
            group.add_argument(option, type=_parse_now, help=help_text)
        elif spec_field.name == "campaign_type_weights":
            group.add_argument(option, type=_parse_type_weights, help=help_text)
        elif spec_field.name == "segment_campaign_types":
            group.add_argument(option, type=_parse_names, help=help_text)
        elif spec_field.name == "email_variant_side":
            group.add_argument(option, choices=EMAIL_VARIANT_SIDES, help=help_text)
        elif spec_field.type == "float":
            group.add_argument(option, type=float, help=help_text)
        else:
            group.add_argument(option, type=int, help=help_text)


def org_spec_from_arguments(args: argparse.Namespace) -> OrgSpec:
    """Build an :class:`OrgSpec` from options added by :func:`add_org_spec_arguments`.

    :param args: parsed arguments; options left at None keep the field's default.
    :return: the spec.
    :raises ValueError: when the values make an invalid spec.
    """
    changes = {}
    for spec_field in dataclasses.fields(OrgSpec):
        value = getattr(args, spec_field.name, None)
        if value is not None:
            changes[spec_field.name] = value
    return OrgSpec(**changes)


__all__ = [
    "CATEGORY_DESCRIPTIONS",
    "CERKL_COLLECTIONS",
    "DEFAULT_NOW",
    "ORGANIZATION_ACCOUNT_ID",
    "ORGANIZATION_ACCOUNT_ID_15",
    "SALESFORCE_OBJECTS",
    "GeneratedOrg",
    "OrgSpec",
    "add_org_spec_arguments",
    "case_safe_id",
    "generate_org",
    "generated_id",
    "org_spec_from_arguments",
    "segment_external_id",
]
