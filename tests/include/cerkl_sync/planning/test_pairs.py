"""Tests of the two-way rules for a linked pair: ``reconcile_pair`` and ``field_digest``."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import pytest

from include.cerkl_sync.planning.pairs import field_digest, reconcile_pair, values_equal
from include.cerkl_sync.records import parse_timestamp
from tests.include.cerkl_sync.planning.factories import T0, T1, T2, T3, contact, digests, subscriber

HOSTILE_NAMES = [
    "O'Brien",
    'Dwayne "The Rock"',
    "Back\\slash",
    "100% _under_",
    "Zoë",
    "Jose\u0301",
    "🎉 Party",
    "محمد",
    "שָׁלוֹם",
    "Robert'); DROP TABLE Contact;--",
]


def _reconcile(
    contact_record: dict[str, Any] | None,
    subscriber_record: dict[str, Any] | None,
    *,
    synced: dict[str, str] | None = None,
    salesforce_seen_at: str | None = T1,
    cerkl_seen_at: str | None = T1,
    rule: str = "latest_wins",
):
    return reconcile_pair(
        contact=contact_record,
        subscriber=subscriber_record,
        synced_values=digests() if synced is None else synced,
        salesforce_seen_at=parse_timestamp(salesforce_seen_at),
        cerkl_seen_at=parse_timestamp(cerkl_seen_at),
        conflict_rule=rule,
    )


def test_field_digest_is_hex_never_value() -> None:
    digest = field_digest("first_name", "Ada")

    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert "Ada" not in digest


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("ada@example.com", "  ADA@Example.COM "),
        ("ada@example.com", "Ada@example.com"),
        ("o'brien%_x@example.com", "O'BRIEN%_X@EXAMPLE.COM"),
        (None, "   "),
    ],
)
def test_field_digest_email_case_and_space_variants(left: str | None, right: str | None) -> None:
    assert field_digest("email", left) == field_digest("email", right)


@pytest.mark.parametrize(
    ("left", "right"),
    [("Ada", "  Ada "), (None, ""), (None, "   "), ("Jose\u0301", "José")],
)
def test_field_digest_equal_names(left: str | None, right: str | None) -> None:
    assert field_digest("first_name", left) == field_digest("first_name", right)


@pytest.mark.parametrize(("left", "right"), [("Ada", "ada"), ("José", "Jose"), ("a%", "a_")])
def test_field_digest_names_case_sensitive(left: str, right: str) -> None:
    assert field_digest("first_name", left) != field_digest("first_name", right)


def test_field_digest_opted_out_flags_differ() -> None:
    assert field_digest("opted_out", True) != field_digest("opted_out", False)


def test_values_equal_email_variants() -> None:
    assert values_equal("email", "Ada@Example.com", " ada@example.com")
    assert not values_equal("email", "ada@example.com", "ada@example.org")


def test_reconcile_pair_equal_sides_write_nothing() -> None:
    decision = _reconcile(contact(modstamp=T2, email="ADA@example.com "), subscriber(modified=T2))

    assert decision.to_cerkl == {}
    assert decision.to_salesforce == {}
    assert decision.conflicts == []


def test_reconcile_pair_salesforce_change_goes_to_cerkl() -> None:
    decision = _reconcile(contact(first_name="Augusta", modstamp=T2), subscriber(modified=T0))

    assert decision.to_cerkl == {"first_name": "Augusta"}
    assert decision.to_salesforce == {}
    assert decision.synced_values["first_name"] == field_digest("first_name", "Augusta")


def test_reconcile_pair_cerkl_change_goes_to_salesforce() -> None:
    decision = _reconcile(contact(modstamp=T0), subscriber(last_name="King", modified=T2))

    assert decision.to_salesforce == {"last_name": "King"}
    assert decision.to_cerkl == {}
    assert decision.synced_values["last_name"] == field_digest("last_name", "King")


def test_reconcile_pair_unchanged_contact_passed_as_none() -> None:
    decision = _reconcile(None, subscriber(email="ada.king@example.com", modified=T2))

    assert decision.to_salesforce == {"email": "ada.king@example.com"}
    assert decision.to_cerkl == {}


def test_reconcile_pair_unchanged_subscriber_passed_as_none() -> None:
    decision = _reconcile(contact(email="ada.king@example.com", modstamp=T2), None)

    assert decision.to_cerkl == {"email": "ada.king@example.com"}
    assert decision.to_salesforce == {}


def test_reconcile_pair_each_side_wins_own_field() -> None:
    decision = _reconcile(
        contact(first_name="Augusta", modstamp=T2, modified=T2),
        subscriber(last_name="King", modified=T3),
    )

    assert decision.to_cerkl == {"first_name": "Augusta"}
    assert decision.to_salesforce == {"last_name": "King"}
    assert decision.conflicts == []


@pytest.mark.parametrize(
    ("contact_modified", "subscriber_modified", "rule", "winner"),
    [
        (T3, T2, "latest_wins", "salesforce"),
        (T2, T3, "latest_wins", "cerkl"),
        (T3, T2, "cerkl_wins", "cerkl"),
        (T2, T3, "salesforce_wins", "salesforce"),
    ],
)
def test_reconcile_pair_conflict_rule_decides(
    contact_modified: str, subscriber_modified: str, rule: str, winner: str
) -> None:
    decision = _reconcile(
        contact(first_name="Augusta", modstamp=T2, modified=contact_modified),
        subscriber(first_name="Ada Augusta", modified=subscriber_modified),
        rule=rule,
    )

    if winner == "salesforce":
        assert decision.to_cerkl == {"first_name": "Augusta"}
        assert decision.to_salesforce == {}
    else:
        assert decision.to_salesforce == {"first_name": "Ada Augusta"}
        assert decision.to_cerkl == {}
    assert decision.conflicts == [{"field": "first_name", "winner": winner, "rule": rule}]


def test_reconcile_pair_latest_wins_uses_last_modified_date() -> None:
    # SystemModstamp is later on the Contact, but LastModifiedDate (a user edit) is older.
    decision = _reconcile(
        contact(first_name="Augusta", modstamp=T3, modified=T1),
        subscriber(first_name="Ada Augusta", modified=T2),
        salesforce_seen_at=T0,
        cerkl_seen_at=T0,
    )

    assert decision.to_salesforce == {"first_name": "Ada Augusta"}
    assert decision.conflicts[0]["winner"] == "cerkl"


def test_reconcile_pair_same_new_value_no_conflict() -> None:
    decision = _reconcile(
        contact(first_name="Augusta", modstamp=T2),
        subscriber(first_name="Augusta", modified=T2),
    )

    assert decision.conflicts == []
    assert decision.to_cerkl == {}
    assert decision.to_salesforce == {}
    assert decision.synced_values["first_name"] == field_digest("first_name", "Augusta")


def test_reconcile_pair_new_link_records_no_conflict() -> None:
    decision = _reconcile(
        contact(first_name="Augusta", modstamp=T2, modified=T3),
        subscriber(first_name="Ada", modified=T2),
        synced={},
        salesforce_seen_at=None,
        cerkl_seen_at=None,
    )

    assert decision.to_cerkl == {"first_name": "Augusta"}
    assert decision.conflicts == []


def test_reconcile_pair_backfilled_contact_never_overwrites() -> None:
    # A backfill run reads a Contact version older than what the last sync saw.
    decision = _reconcile(
        contact(first_name="Old", modstamp=T0, modified=T0),
        subscriber(first_name="Ada", modified=T0),
        salesforce_seen_at=T2,
        cerkl_seen_at=T2,
    )

    assert decision.to_cerkl == {}
    assert decision.to_salesforce == {}


def test_reconcile_pair_backfilled_subscriber_never_overwrites() -> None:
    decision = _reconcile(
        contact(modstamp=T0),
        subscriber(first_name="Old", modified=T1),
        salesforce_seen_at=T2,
        cerkl_seen_at=T1,
    )

    assert decision.to_salesforce == {}
    assert decision.to_cerkl == {}


def test_reconcile_pair_backfill_loses_to_newer_side() -> None:
    decision = _reconcile(
        contact(first_name="Old", modstamp=T0, modified=T0),
        subscriber(first_name="New", modified=T3),
        salesforce_seen_at=T2,
        cerkl_seen_at=T2,
    )

    assert decision.to_salesforce == {"first_name": "New"}
    assert decision.to_cerkl == {}
    assert decision.conflicts == []


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_reconcile_pair_salesforce_blank_restored_from_cerkl(blank: str | None) -> None:
    decision = _reconcile(contact(first_name=blank, modstamp=T2), subscriber(modified=T0))

    assert decision.to_cerkl == {}
    assert decision.to_salesforce == {"first_name": "Ada"}


@pytest.mark.parametrize("blank", [None, "   "])
def test_reconcile_pair_cerkl_blank_restored_from_salesforce(blank: str | None) -> None:
    decision = _reconcile(contact(modstamp=T0), subscriber(last_name=blank, modified=T2))

    assert decision.to_salesforce == {}
    assert decision.to_cerkl == {"last_name": "Lovelace"}


@pytest.mark.parametrize("blank", [None, "   "])
def test_reconcile_pair_blank_with_other_side_unread(blank: str | None) -> None:
    decision = _reconcile(contact(first_name=blank, modstamp=T2), None)

    assert decision.to_cerkl == {}
    assert decision.to_salesforce == {}


def test_reconcile_pair_conflict_blank_winner_loses() -> None:
    decision = _reconcile(
        contact(first_name=None, modstamp=T2, modified=T3),
        subscriber(first_name="Augusta", modified=T2),
    )

    assert decision.to_salesforce == {"first_name": "Augusta"}
    assert decision.to_cerkl == {}


def test_reconcile_pair_email_variant_not_a_change() -> None:
    decision = _reconcile(contact(email="  ADA@Example.com", modstamp=T2), None)

    assert decision.to_cerkl == {}


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_reconcile_pair_hostile_name_copied_verbatim(name: str) -> None:
    decision = _reconcile(contact(last_name=name, modstamp=T2), subscriber(modified=T0))

    assert decision.to_cerkl == {"last_name": name}
    assert decision.synced_values["last_name"] == field_digest("last_name", name)


def test_reconcile_pair_normalization_forms_not_a_change() -> None:
    composed = unicodedata.normalize("NFC", "Zoë Noël")
    decomposed = unicodedata.normalize("NFD", "Zoë Noël")

    decision = _reconcile(
        contact(first_name=decomposed, modstamp=T2),
        subscriber(first_name=composed, modified=T2),
        synced=digests(first_name=composed),
    )

    assert decision.to_cerkl == {}
    assert decision.to_salesforce == {}


def test_reconcile_pair_keeps_unrelated_synced_values() -> None:
    decision = _reconcile(contact(first_name="Augusta", modstamp=T2), None)

    assert decision.synced_values["opted_out"] == field_digest("opted_out", False)
    assert decision.synced_values["email"] == field_digest("email", "ada@example.com")
