"""Tests of record normalization, the email and name checks, and record conversion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from include.cerkl_sync.config import parse_config
from include.cerkl_sync.records import (
    EMAIL_MAX,
    FIRST_NAME_MAX,
    LAST_NAME_MAX,
    contact_from_salesforce,
    email_problem,
    name_problem,
    normalize_email,
    normalize_name,
    parse_timestamp,
    subscriber_from_cerkl,
    unsubscribe_from_cerkl,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ada@example.com", "ada@example.com"),
        ("  Ada@Example.COM\t", "ada@example.com"),
        ("ADA@EXAMPLE.COM", "ada@example.com"),
        ("o'brien+news%tag_1@example.com", "o'brien+news%tag_1@example.com"),
        ("ÉLODIE@EXAMPLE.FR", "élodie@example.fr"),
        ("   ", None),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_normalize_email_trims_and_lowercases(raw: object, expected: str | None) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("José", "JOSE"),
        ("Jose\u0301", "josé"),  # combining acute accent versus precomposed
        ("  Anne   Marie ", "anne marie"),
        ("Straße", "STRASSE"),
        ("ｊｏｓｅ", "jose"),  # full-width letters fold under NFKD
        ("محمد", "محمد"),
        ("Zoë 🎉", "zoe 🎉"),
    ],
)
def test_normalize_name_folds_case_accents_spaces(left: str, right: str) -> None:
    assert normalize_name(left) == normalize_name(right)


@pytest.mark.parametrize(
    ("left", "right"),
    [("Jose", "Josh"), ("Ana", "Anna"), ("محمد", "احمد"), ("O'Brien", "OBrien")],
)
def test_normalize_name_keeps_different_names_apart(left: str, right: str) -> None:
    assert normalize_name(left) != normalize_name(right)


def test_normalize_name_non_string_is_empty() -> None:
    assert normalize_name(None) == ""
    assert normalize_name(7) == ""


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-01-02T03:04:05.000+0000", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02 03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T05:04:05+02:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (
            datetime(2024, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1))),
            datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        ),
        (datetime(2024, 1, 2, 3, 4, 5), datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (None, None),
        ("", None),
    ],
)
def test_parse_timestamp_formats_to_utc(raw: object, expected: datetime | None) -> None:
    parsed = parse_timestamp(raw)

    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() == timedelta(0)


def test_parse_timestamp_garbage_raises() -> None:
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")


@pytest.mark.parametrize(
    "address",
    [
        "ada@example.com",
        "Ada.Lovelace@Example.COM",
        "o'brien@example.com",
        "news%tag_1+x@example.com",
        "josé@exämple.com",
        "user@xn--bcher-kva.example",
        "😀@example.com",
        "a" * 60 + "@example.com",
    ],
)
def test_email_problem_accepts_valid_address(address: str) -> None:
    assert email_problem(address) is None


@pytest.mark.parametrize(
    ("address", "code"),
    [
        (None, "MISSING_EMAIL"),
        ("", "MISSING_EMAIL"),
        ("   ", "MISSING_EMAIL"),
        ("ada", "INVALID_EMAIL"),
        ("ada@", "INVALID_EMAIL"),
        ("@example.com", "INVALID_EMAIL"),
        ("ada@example", "INVALID_EMAIL"),
        ("ada@@example.com", "INVALID_EMAIL"),
        ("ada lovelace@example.com", "INVALID_EMAIL"),
        ('"quoted"@example.com', "INVALID_EMAIL"),
        ("back\\slash@example.com", "INVALID_EMAIL"),
        ("ada@exa mple.com", "INVALID_EMAIL"),
        ("ada@example.com\nBcc: x@example.com", "INVALID_EMAIL"),
        ("a" * 70 + "@example.com", "EMAIL_TOO_LONG"),
    ],
)
def test_email_problem_rejects_with_reason_code(address: str | None, code: str) -> None:
    problem = email_problem(address)

    assert problem is not None
    assert problem.startswith(code + ":")


def test_email_problem_length_limit_is_80() -> None:
    at_limit = "a" * (EMAIL_MAX - len("@example.com")) + "@example.com"
    over_limit = "a" + at_limit

    assert len(at_limit) == 80
    assert email_problem(at_limit) is None
    assert email_problem(over_limit).startswith("EMAIL_TOO_LONG:")


def test_email_problem_trims_surrounding_spaces() -> None:
    assert email_problem("  Ada@Example.com ") is None


def test_email_problem_message_omits_address() -> None:
    address = "secret.person@example"

    problem = email_problem(address)

    assert problem is not None
    assert "secret.person" not in problem


@pytest.mark.parametrize(
    ("first", "last", "code"),
    [
        ("A" * FIRST_NAME_MAX, "B" * LAST_NAME_MAX, None),
        (None, None, None),
        ("José\u0301", "محمد 🎉", None),
        ("A" * (FIRST_NAME_MAX + 1), "Lovelace", "FIRST_NAME_TOO_LONG"),
        ("Ada", "B" * (LAST_NAME_MAX + 1), "LAST_NAME_TOO_LONG"),
        ("é" * (FIRST_NAME_MAX + 1), None, "FIRST_NAME_TOO_LONG"),
        (None, "🎉" * (LAST_NAME_MAX + 1), "LAST_NAME_TOO_LONG"),
    ],
)
def test_name_problem_checks_salesforce_lengths(
    first: str | None, last: str | None, code: str | None
) -> None:
    problem = name_problem(first, last)

    if code is None:
        assert problem is None
    else:
        assert problem is not None
        assert problem.startswith(code + ":")


def test_name_problem_message_omits_name() -> None:
    problem = name_problem("Verysecretname" * 4, None)

    assert problem is not None
    assert "Verysecretname" not in problem


def _salesforce_row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "Id": "003000000000001AAA",
        "FirstName": "  Ada ",
        "LastName": "Lovelace",
        "Email": " Ada@Example.com ",
        "Cerkl_Subscriber_Id__c": "1234",
        "Cerkl_Unsubscribe__c": False,
        "HasOptedOutOfEmail": False,
        "AccountId": "001000000000001AAA",
        "CreatedDate": "2024-01-01T00:00:00.000+0000",
        "LastModifiedDate": "2024-01-02T00:00:00.000+0000",
        "SystemModstamp": "2024-01-02T00:00:01.000+0000",
        "IsDeleted": False,
        "MasterRecordId": None,
        "Engagement_Score__c": 12,
        "Interest_1__c": "Golf",
        "Interest_2__c": " ",
    }
    row.update(overrides)
    return row


def test_contact_from_salesforce_converts_fields() -> None:
    contact = contact_from_salesforce(_salesforce_row(), parse_config(None))

    assert contact["id"] == "003000000000001AAA"
    assert contact["first_name"] == "Ada"
    assert contact["email"] == "Ada@Example.com"
    assert contact["subscriber_id"] == 1234
    assert contact["opted_out"] is False
    assert contact["created"] == "2024-01-01T00:00:00+00:00"
    assert contact["modified"] == "2024-01-02T00:00:00+00:00"
    assert contact["modstamp"] == "2024-01-02T00:00:01+00:00"
    assert contact["engagement_score"] == 12.0
    assert contact["interests"] == ["Golf", None, None, None, None]


@pytest.mark.parametrize(
    ("overrides", "opted_out"),
    [
        ({"Cerkl_Unsubscribe__c": True}, True),
        ({"HasOptedOutOfEmail": True}, True),
        ({"Cerkl_Unsubscribe__c": True, "HasOptedOutOfEmail": True}, True),
        ({}, False),
    ],
)
def test_contact_from_salesforce_any_opt_out_checkbox(
    overrides: dict[str, object], opted_out: bool
) -> None:
    contact = contact_from_salesforce(_salesforce_row(**overrides), parse_config(None))

    assert contact["opted_out"] is opted_out


def test_contact_from_salesforce_configured_opt_out_fields() -> None:
    config = parse_config({"opt_out_fields": ["Cerkl_Unsubscribe__c", "Do_Not_Mail__c"]})

    flagged = contact_from_salesforce(_salesforce_row(Do_Not_Mail__c=True), config)
    has_opted_out_only = contact_from_salesforce(_salesforce_row(HasOptedOutOfEmail=True), config)

    assert flagged["opted_out"] is True
    assert has_opted_out_only["opted_out"] is False
    assert has_opted_out_only["has_opted_out"] is True


def test_contact_from_salesforce_fallback_last_name_is_none() -> None:
    contact = contact_from_salesforce(
        _salesforce_row(LastName="[not provided]"), parse_config(None)
    )

    assert contact["last_name"] is None


@pytest.mark.parametrize("raw", [None, "", "not-a-number", "12.5"])
def test_contact_from_salesforce_bad_subscriber_id(raw: object) -> None:
    contact = contact_from_salesforce(
        _salesforce_row(Cerkl_Subscriber_Id__c=raw), parse_config(None)
    )

    assert contact["subscriber_id"] is None


def test_subscriber_from_cerkl_converts_fields() -> None:
    subscriber = subscriber_from_cerkl(
        {
            "id": "77",
            "email": " Zoë@example.com ",
            "first_name": "Zoë",
            "last_name": "",
            "subscriber_status": {"id": 1, "description": "Active"},
            "subscriber_privacy_level": 2,
            "engagement_score": "3.5",
            "date_created_utc": "2024-03-01 10:00:00",
            "date_modified_utc": "2024-03-02 11:00:00",
        }
    )

    assert subscriber["id"] == 77
    assert subscriber["email"] == "Zoë@example.com"
    assert subscriber["last_name"] is None
    assert subscriber["status_id"] == 1
    assert subscriber["privacy_level_id"] == 2
    assert subscriber["engagement_score"] == 3.5
    assert subscriber["modified"] == "2024-03-02T11:00:00+00:00"


@pytest.mark.parametrize(
    ("record", "self_unsubscribed", "source"),
    [
        ({"self_unsubscribed": True}, True, "subscriber"),
        ({"self_unsubscribed": False}, False, None),
        ({"self_unsubscribed": False, "source": "admin"}, False, "admin"),
        ({}, False, None),
    ],
)
def test_unsubscribe_from_cerkl_source(
    record: dict[str, object], self_unsubscribed: bool, source: str | None
) -> None:
    unsubscribe = unsubscribe_from_cerkl(
        {"id": 9, "email": "a@example.com", "date_unsubscribed_utc": "2024-03-02 11:00:00"} | record
    )

    assert unsubscribe["id"] == 9
    assert unsubscribe["self_unsubscribed"] is self_unsubscribed
    assert unsubscribe["source"] == source
    assert unsubscribe["unsubscribed_at"] == "2024-03-02T11:00:00+00:00"
