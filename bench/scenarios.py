"""The benchmark's scenarios: the org's size and the day's changes on both sides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    """An org and one day of changes, in records. ``full_sync`` runs the first sync.

    A daily scenario starts from a synced org, where every subscriber is linked to one
    Contact and the state DB contains the links. A first-sync scenario links nothing.
    """

    name: str
    contacts: int
    subscribers: int
    full_sync: bool = False
    # Contacts changed in the day, by kind.
    new_contacts: int = 0
    renamed_contacts: int = 0
    reemailed_contacts: int = 0
    opted_out_contacts: int = 0
    other_field_contacts: int = 0
    # New subscribers in the day: matching one Contact, several Contacts, or none.
    new_subscribers_one_match: int = 0
    new_subscribers_several_match: int = 0
    new_subscribers_no_match: int = 0
    unsubscribes: int = 0
    # Subscriber changes in the day: names, engagement score, interests.
    renamed_subscribers: int = 0
    rescored_subscribers: int = 0
    interest_changes: int = 0
    # Campaigns mirrored as segments, their members, and the day's joins and leaves.
    campaigns: int = 0
    campaign_members: int = 0
    joined_members: int = 0
    left_members: int = 0

    @property
    def changed_contacts(self) -> int:
        return (
            self.new_contacts
            + self.renamed_contacts
            + self.reemailed_contacts
            + self.opted_out_contacts
            + self.other_field_contacts
        )

    @property
    def new_subscribers(self) -> int:
        return (
            self.new_subscribers_one_match
            + self.new_subscribers_several_match
            + self.new_subscribers_no_match
        )

    def scaled(self, factor: float) -> Scenario:
        """Return the scenario with every count multiplied by ``factor`` (at least 1 if set).

        :raises ValueError: when ``factor`` is not above 0.
        """
        if factor <= 0:
            raise ValueError(f"invalid scale {factor!r}: expected a number above 0, e.g. 0.1")
        if factor == 1:
            return self
        values = {}
        for spec_field in dataclasses.fields(self):
            value = getattr(self, spec_field.name)
            if isinstance(value, int) and not isinstance(value, bool) and value:
                values[spec_field.name] = max(1, round(value * factor))
        return dataclasses.replace(self, **values)


DAILY = Scenario(
    name="daily",
    contacts=100_000,
    subscribers=80_000,
    new_contacts=2_000,
    renamed_contacts=2_000,
    reemailed_contacts=2_000,
    opted_out_contacts=2_000,
    other_field_contacts=2_000,
    new_subscribers_one_match=1_250,
    new_subscribers_several_match=250,
    new_subscribers_no_match=3_500,
    unsubscribes=1_000,
    renamed_subscribers=3_000,
    rescored_subscribers=3_000,
    interest_changes=2_000,
    campaigns=20,
    campaign_members=50_000,
    joined_members=5_000,
    left_members=2_000,
)

FIRST_SYNC = Scenario(
    name="first-sync",
    contacts=200_000,
    subscribers=150_000,
    full_sync=True,
    campaigns=20,
    campaign_members=50_000,
)

SMOKE = dataclasses.replace(DAILY.scaled(0.01), name="smoke", campaigns=3)

SCENARIOS = {scenario.name: scenario for scenario in (SMOKE, DAILY, FIRST_SYNC)}
