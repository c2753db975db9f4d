"""Tests of flow new_subscribers_to_contacts: email matching and the link and create plan."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from include.cerkl_sync.planning.pairs import field_digest
from include.cerkl_sync.planning.subscribers import (
    match_subscribers_to_contacts,
    plan_new_subscriber_links,
)
from tests.include.cerkl_sync.planning.factories import T0, T1, T2, T3, contact, subscriber

ACCOUNT_ID = "001000000000001AAA"
FALLBACK = "[not provided]"


def _plan(subscribers: list[dict[str, Any]], candidates: list[dict[str, Any]], **kwargs: Any):
    return plan_new_subscriber_links(
        subscribers,
        candidates=candidates,
        account_id=ACCOUNT_ID,
        missing_last_name=FALLBACK,
        **kwargs,
    )


# match_subscribers_to_contacts


def test_match_subscribers_no_candidates_empty() -> None:
    assert match_subscribers_to_contacts([subscriber()], []) == {}
    assert match_subscribers_to_contacts([], [contact()]) == {}


def test_match_subscribers_no_email_match_absent() -> None:
    matches = match_subscribers_to_contacts([subscriber()], [contact(email="bob@example.com")])

    assert matches == {}


@pytest.mark.parametrize(
    "contact_email",
    ["ada@example.com", "ADA@EXAMPLE.COM", "  Ada@Example.com\t", "ada@EXAMPLE.com "],
)
def test_match_subscribers_email_case_space_variants(contact_email: str) -> None:
    matches = match_subscribers_to_contacts(
        [subscriber(email=" ADA@example.COM")], [contact(email=contact_email)]
    )

    assert matches[101]["contact_id"] == "003000000000001AAA"
    assert matches[101]["rule"] == "only_match"


@pytest.mark.parametrize(
    ("subscriber_email", "contact_email"),
    [
        ("a_b@example.com", "axb@example.com"),
        ("a%@example.com", "ab@example.com"),
        ("ada@example.com", "ada@example.co"),
        ("o'brien@example.com", "obrien@example.com"),
    ],
)
def test_match_subscribers_wildcard_characters_literal(
    subscriber_email: str, contact_email: str
) -> None:
    matches = match_subscribers_to_contacts(
        [subscriber(email=subscriber_email)], [contact(email=contact_email)]
    )

    assert matches == {}


@pytest.mark.parametrize(
    ("first_name", "last_name"),
    [
        ("ADA", "LOVELACE"),
        ("Ádá", "Lövelace"),
        ("A\u0301da", "Lovelace"),
        ("  ada ", "lovelace"),
    ],
)
def test_match_subscribers_name_match_wins(first_name: str, last_name: str) -> None:
    candidates = [
        contact("003000000000001AAA", first_name="Augusta", created=T0),
        contact("003000000000002AAA", first_name=first_name, last_name=last_name, created=T2),
    ]

    matches = match_subscribers_to_contacts([subscriber()], candidates)

    assert matches[101]["contact_id"] == "003000000000002AAA"
    assert matches[101]["rule"] == "name_match"
    assert sorted(matches[101]["candidates"]) == ["003000000000001AAA", "003000000000002AAA"]


def test_match_subscribers_several_name_matches_oldest() -> None:
    candidates = [
        contact("003000000000001AAA", created=T2),
        contact("003000000000002AAA", created=T1),
        contact("003000000000003AAA", first_name="Augusta", created=T0),
    ]

    matches = match_subscribers_to_contacts([subscriber()], candidates)

    assert matches[101]["contact_id"] == "003000000000002AAA"
    assert matches[101]["rule"] == "name_match"


def test_match_subscribers_no_name_match_oldest() -> None:
    candidates = [
        contact("003000000000001AAA", first_name="Bea", created=T2),
        contact("003000000000002AAA", first_name="Cy", created=T1),
        contact("003000000000003AAA", first_name="Di", created=T3),
    ]

    matches = match_subscribers_to_contacts([subscriber()], candidates)

    assert matches[101]["contact_id"] == "003000000000002AAA"
    assert matches[101]["rule"] == "oldest"


def test_match_subscribers_same_created_lowest_id() -> None:
    candidates = [
        contact("003000000000009AAA", first_name="Bea", created=T1),
        contact("003000000000002AAA", first_name="Cy", created=T1),
    ]

    matches = match_subscribers_to_contacts([subscriber()], candidates)

    assert matches[101]["contact_id"] == "003000000000002AAA"
    assert matches[101]["rule"] == "oldest"


def test_match_subscribers_mixed_timestamp_precision() -> None:
    # Salesforce CreatedDate has milliseconds, so some ISO strings carry a fraction.
    candidates = [
        contact("003000000000001AAA", first_name="Bea", created="2026-03-01T00:00:00+00:00"),
        contact("003000000000002AAA", first_name="Cy", created="2026-02-28T23:59:59.500000+00:00"),
    ]

    matches = match_subscribers_to_contacts([subscriber()], candidates)

    assert matches[101]["contact_id"] == "003000000000002AAA"


def test_match_subscribers_missing_created_sorts_last() -> None:
    candidates = [
        contact("003000000000001AAA", first_name="Bea", created=None),
        contact("003000000000002AAA", first_name="Cy", created=T3),
    ]

    matches = match_subscribers_to_contacts([subscriber()], candidates)

    assert matches[101]["contact_id"] == "003000000000002AAA"


def test_match_subscribers_without_last_name_matches() -> None:
    # A Contact record has no last name where Salesforce has the fallback value.
    candidates = [
        contact("003000000000001AAA", last_name="Lovelace", created=T0),
        contact("003000000000002AAA", last_name=None, created=T2),
    ]

    matches = match_subscribers_to_contacts([subscriber(last_name=None)], candidates)

    assert matches[101]["contact_id"] == "003000000000002AAA"
    assert matches[101]["rule"] == "name_match"


def test_match_subscribers_contact_without_email_ignored() -> None:
    matches = match_subscribers_to_contacts([subscriber()], [contact(email=None)])

    assert matches == {}


def test_match_subscribers_each_subscriber_own_email() -> None:
    subscribers = [subscriber(1, email="ada@example.com"), subscriber(2, email="bob@example.com")]
    candidates = [
        contact("003000000000001AAA", email="BOB@example.com"),
        contact("003000000000002AAA", email="ada@example.com"),
    ]

    matches = match_subscribers_to_contacts(subscribers, candidates)

    assert matches[1]["contact_id"] == "003000000000002AAA"
    assert matches[2]["contact_id"] == "003000000000001AAA"


# plan_new_subscriber_links


def test_plan_new_subscriber_no_contact_creates_contact() -> None:
    plan = _plan([subscriber(email="  Zoë@Example.com ", first_name="Zoë", last_name="Noël")], [])

    assert len(plan.actions) == 1
    action = plan.actions[0]
    assert action["action"] == "create_contact"
    assert action["subscriber_id"] == 101
    assert action["contact"] == {
        "first_name": "Zoë",
        "last_name": "Noël",
        "email": "Zoë@Example.com",
        "account_id": ACCOUNT_ID,
    }
    assert action["last_name_fallback"] is False
    assert action["cerkl_seen_at"] == T2
    assert action["synced_values"]["last_name"] == field_digest("last_name", "Noël")


@pytest.mark.parametrize("last_name", [None, "", "   "])
def test_plan_new_subscriber_missing_last_name_fallback(last_name: str | None) -> None:
    plan = _plan([subscriber(last_name=last_name)], [])

    action = plan.actions[0]
    assert action["contact"]["last_name"] == FALLBACK
    assert action["last_name_fallback"] is True
    assert action["synced_values"]["last_name"] == field_digest("last_name", None)


@pytest.mark.parametrize(
    ("first_name", "last_name"),
    [("O'Brien", 'Dwayne "The Rock"'), ("Back\\slash", "100% _x_"), ("محمد", "🎉 שָׁלוֹם")],
)
def test_plan_new_subscriber_hostile_names_verbatim(first_name: str, last_name: str) -> None:
    plan = _plan([subscriber(first_name=first_name, last_name=last_name)], [])

    assert plan.actions[0]["contact"]["first_name"] == first_name
    assert plan.actions[0]["contact"]["last_name"] == last_name


def test_plan_new_subscriber_one_contact_linked() -> None:
    plan = _plan([subscriber()], [contact(modstamp=T1)])

    assert len(plan.actions) == 1
    action = plan.actions[0]
    assert action["action"] == "link"
    assert action["contact_id"] == "003000000000001AAA"
    assert action["subscriber_id"] == 101
    assert action["salesforce_seen_at"] == T1
    assert action["cerkl_seen_at"] == T2
    assert action["salesforce_changes"] == {}
    assert action["cerkl_changes"] == {}
    assert plan.notes == []


def test_plan_new_subscriber_link_names_by_conflict_rule() -> None:
    subscribers = [subscriber(first_name="Augusta", modified=T3)]
    candidates = [contact(first_name="Ada", modified=T1, modstamp=T1)]

    latest = _plan(subscribers, candidates)
    salesforce_first = _plan(subscribers, candidates, conflict_rule="salesforce_wins")

    assert latest.actions[0]["salesforce_changes"] == {"first_name": "Augusta"}
    assert latest.actions[0]["cerkl_changes"] == {}
    assert salesforce_first.actions[0]["cerkl_changes"] == {"first_name": "Ada"}
    assert salesforce_first.actions[0]["salesforce_changes"] == {}


@pytest.mark.parametrize(
    ("candidates", "rule"),
    [
        (
            [
                contact("003000000000001AAA", first_name="Bea", created=T0),
                contact("003000000000002AAA", first_name="ADA", created=T1),
            ],
            "name_match",
        ),
        (
            [
                contact("003000000000001AAA", first_name="Bea", created=T1),
                contact("003000000000002AAA", first_name="Cy", created=T0),
            ],
            "oldest",
        ),
    ],
)
def test_plan_new_subscriber_ambiguity_noted(candidates: list[dict[str, Any]], rule: str) -> None:
    plan = _plan([subscriber()], candidates)

    assert plan.actions[0]["contact_id"] == "003000000000002AAA"
    assert len(plan.notes) == 1
    note = plan.notes[0]
    assert note["kind"] == "ambiguous_match"
    assert note["subscriber_id"] == 101
    assert note["chosen"] == "003000000000002AAA"
    assert note["rule"] == rule
    assert sorted(note["contact_ids"]) == ["003000000000001AAA", "003000000000002AAA"]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"email": "ada@"}, "INVALID_EMAIL"),
        ({"email": "ada@exa mple.com"}, "INVALID_EMAIL"),
        ({"email": '"ada"@example.com'}, "INVALID_EMAIL"),
        ({"email": None}, "MISSING_EMAIL"),
        ({"email": "x" * 69 + "@example.com"}, "EMAIL_TOO_LONG"),
        ({"first_name": "Ö" * 41}, "FIRST_NAME_TOO_LONG"),
        ({"last_name": "x" * 81}, "LAST_NAME_TOO_LONG"),
    ],
)
def test_plan_new_subscriber_bad_record_rejected(fields: dict[str, Any], code: str) -> None:
    plan = _plan([subscriber(**fields)], [contact()])

    assert plan.actions == []
    assert len(plan.rejected) == 1
    assert plan.rejected[0]["record_id"] == "101"
    assert plan.rejected[0]["reason"].startswith(code + ":")


def test_plan_new_subscriber_spaced_email_linked() -> None:
    plan = _plan([subscriber(email="  ADA@Example.com ")], [contact()])

    assert plan.rejected == []
    assert plan.actions[0]["action"] == "link"


def test_plan_new_subscriber_duplicate_email_rejected() -> None:
    plan = _plan([subscriber(1), subscriber(2, email="ADA@example.com ")], [])

    assert len(plan.actions) == 1
    assert plan.actions[0]["subscriber_id"] == 1
    assert plan.rejected[0]["record_id"] == "2"
    assert plan.rejected[0]["reason"].startswith("DUPLICATE_EMAIL:")


def test_plan_new_subscriber_every_record_accounted_once() -> None:
    subscribers = [
        subscriber(1, email="one@example.com"),  # link
        subscriber(2, email="two@example.com"),  # create
        subscriber(3, email="bad@"),  # reject
        subscriber(4, email="ONE@example.com"),  # reject: duplicate
        subscriber(5, email="many@example.com"),  # link, ambiguous
    ]
    candidates = [
        contact("003000000000001AAA", email="one@example.com"),
        contact("003000000000002AAA", email="many@example.com", created=T0),
        contact("003000000000003AAA", email="many@example.com", created=T1),
    ]

    plan = _plan(subscribers, candidates)

    placed = Counter(str(action["subscriber_id"]) for action in plan.actions)
    for outcome in plan.skipped + plan.rejected + plan.pending:
        placed[outcome["record_id"]] += 1
    assert placed == Counter(str(s["id"]) for s in subscribers)
    assert Counter(action["action"] for action in plan.actions) == {
        "link": 2,
        "create_contact": 1,
    }
