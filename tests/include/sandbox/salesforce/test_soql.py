"""SOQL contract: valid statements with their results and invalid ones with their error codes,
sent through simple-salesforce to the sandbox server."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from include.sandbox.salesforce.errors import SalesforceApiError
from include.sandbox.salesforce.soql import MAX_STATEMENT_LENGTH, compile_soql, decode_string

ALL_CONTACTS = ["Adams", "Baker", "Clark", "Dunn", "O'Brien", "Ørsted"]


@pytest.fixture(scope="module")
def seeded(salesforce_server: Any) -> dict[str, Any]:
    """A small org: 2 Accounts, 7 Contacts (one deleted), 2 Leads, 2 Campaigns, 5 members."""
    server = salesforce_server
    server.control("POST", "reset")
    acme, globex = server.seed(
        "Account",
        [{"Name": "Acme", "Industry": "Technology"}, {"Name": "Globex", "Industry": "Energy"}],
    )
    contacts = [
        {
            "LastName": "Adams",
            "FirstName": "Ann",
            "Email": "ann@acme.com",
            "AccountId": acme,
            "Engagement_Score__c": 10.5,
            "Birthdate": "1980-01-15",
            "SystemModstamp": "2024-01-01T00:00:00Z",
            "Title": "CEO",
            "MailingCity": "Berlin",
            "Cerkl_Subscriber_Id__c": "c-1",
        },
        {
            "LastName": "Baker",
            "FirstName": "Bob",
            "Email": "bob@acme.com",
            "AccountId": acme,
            "HasOptedOutOfEmail": True,
            "Engagement_Score__c": 20,
            "Birthdate": "1990-06-01",
            "SystemModstamp": "2024-01-02T00:00:00Z",
            "Title": "CTO",
            "MailingCity": "Paris",
            "Department": "Ops\tDev",
            "Cerkl_Subscriber_Id__c": "c-2",
        },
        {
            "LastName": "Clark",
            "FirstName": "Cara",
            "Email": "CARA@Globex.com",
            "AccountId": globex,
            "SystemModstamp": "2024-01-03T12:30:00Z",
            "Title": 'say "hi"',
            "MailingCity": "Berlin",
        },
        {
            "LastName": "Dunn",
            "Engagement_Score__c": 5,
            "Birthdate": "1975-12-31",
            "SystemModstamp": "2024-01-04T00:00:00Z",
            "Title": "Engineer",
            "MailingStreet": "Line1\nLine2",
            "Department": "R\\D",
        },
        {
            "LastName": "Ørsted",
            "FirstName": "Émile",
            "Email": "emile@globex.com",
            "AccountId": globex,
            "Engagement_Score__c": 30,
            "Birthdate": "1985-03-03",
            "SystemModstamp": "2024-01-05T00:00:00+02:00",
            "Title": "Sales_Rep",
            "MailingCity": "Køge",
        },
        {
            "LastName": "O'Brien",
            "FirstName": "Pat",
            "Email": "pat@acme.com",
            "AccountId": acme,
            "HasOptedOutOfEmail": True,
            "Engagement_Score__c": 15,
            "SystemModstamp": "2024-01-06T00:00:00Z",
            "Title": "100% Manager",
            "MailingCity": "Cork",
        },
        {
            "LastName": "Zed",
            "Email": "zed@acme.com",
            "IsDeleted": True,
            "SystemModstamp": "2024-01-07T00:00:00Z",
        },
    ]
    contact_ids = server.seed("Contact", contacts)
    lead_ids = server.seed(
        "Lead",
        [
            {"LastName": "Lee", "Company": "Initech", "Email": "lee@initech.com"},
            {"LastName": "Moss", "Company": "Hooli", "Email": "moss@hooli.com"},
        ],
    )
    spring, webinar = server.seed(
        "Campaign",
        [
            {"Name": "Spring Newsletter", "Type": "Email", "IsActive": True},
            {"Name": "Webinar 1", "Type": "Webinar", "IsActive": False, "Status": "Planned"},
        ],
    )
    server.seed(
        "CampaignMember",
        [
            {"CampaignId": spring, "ContactId": contact_ids[0], "Status": "Responded"},
            {"CampaignId": spring, "ContactId": contact_ids[1], "Status": "Sent"},
            {"CampaignId": webinar, "ContactId": contact_ids[2], "Status": "Sent"},
            {"CampaignId": spring, "LeadId": lead_ids[0], "Status": "Sent"},
            {"CampaignId": webinar, "ContactId": contact_ids[4], "Status": "Responded"},
        ],
    )
    return {"acme": acme, "globex": globex, "contacts": contact_ids}


@pytest.fixture(scope="module")
def client(salesforce_server: Any, seeded: dict[str, Any]) -> Salesforce:
    return salesforce_server.client()


def _value(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        value = value[part] if value is not None else None
    return value


_C = "SELECT LastName FROM Contact"

VALID_CASES: list[tuple[str, str, Any]] = [
    (f"{_C} ORDER BY LastName", "LastName", ALL_CONTACTS),
    ("select id, lastname from contact order by lastname desc", "LastName", ALL_CONTACTS[::-1]),
    ("SELECT COUNT() FROM Contact", "", 6),
    ("SELECT COUNT() FROM Account", "", 2),
    ("SELECT COUNT() FROM Lead", "", 2),
    ("SELECT COUNT() FROM CampaignMember", "", 5),
    ("SELECT COUNT() FROM Contact WHERE HasOptedOutOfEmail = true", "", 2),
    ("SELECT COUNT() FROM CampaignMember WHERE HasResponded = true", "", 2),
    ("SELECT Name FROM Account ORDER BY Name", "Name", ["Acme", "Globex"]),
    (f"{_C} WHERE Email = 'ann@acme.com'", "LastName", ["Adams"]),
    (f"{_C} WHERE Email = 'ANN@ACME.COM'", "LastName", ["Adams"]),
    (f"{_C} WHERE Email = 'cara@globex.com'", "LastName", ["Clark"]),
    (f"{_C} WHERE LastName = 'ørsted'", "LastName", ["Ørsted"]),
    (f"{_C} WHERE LastName = 'ØRSTED'", "LastName", ["Ørsted"]),
    (f"{_C} WHERE Email != 'ann@acme.com'", "LastName", ALL_CONTACTS[1:]),
    (f"{_C} WHERE Email <> 'ann@acme.com'", "LastName", ALL_CONTACTS[1:]),
    (f"{_C} WHERE Email = null", "LastName", ["Dunn"]),
    (f"{_C} WHERE Email != NULL", "LastName", ["Adams", "Baker", "Clark", "O'Brien", "Ørsted"]),
    (f"{_C} WHERE HasOptedOutOfEmail = true", "LastName", ["Baker", "O'Brien"]),
    (f"{_C} WHERE HasOptedOutOfEmail = FALSE", "LastName", ["Adams", "Clark", "Dunn", "Ørsted"]),
    (
        f"{_C} WHERE Engagement_Score__c > 10",
        "LastName",
        ["Adams", "Baker", "O'Brien", "Ørsted"],
    ),
    (f"{_C} WHERE Engagement_Score__c >= 15", "LastName", ["Baker", "O'Brien", "Ørsted"]),
    (f"{_C} WHERE Engagement_Score__c < 10", "LastName", ["Dunn"]),
    (f"{_C} WHERE Engagement_Score__c <= 10.5", "LastName", ["Adams", "Dunn"]),
    (f"{_C} WHERE Engagement_Score__c = 20", "LastName", ["Baker"]),
    (f"{_C} WHERE Engagement_Score__c IN (5, 20)", "LastName", ["Baker", "Dunn"]),
    (f"{_C} WHERE Birthdate > 1979-01-01", "LastName", ["Adams", "Baker", "Ørsted"]),
    (f"{_C} WHERE Birthdate = 1975-12-31", "LastName", ["Dunn"]),
    (f"{_C} WHERE Birthdate = null", "LastName", ["Clark", "O'Brien"]),
    (
        f"{_C} WHERE SystemModstamp > 2024-01-02T00:00:00Z",
        "LastName",
        ["Clark", "Dunn", "O'Brien", "Ørsted"],
    ),
    (
        f"{_C} WHERE SystemModstamp >= 2024-01-02T00:00:00Z",
        "LastName",
        ["Baker", "Clark", "Dunn", "O'Brien", "Ørsted"],
    ),
    (
        f"{_C} WHERE SystemModstamp > 2024-01-04T23:00:00+02:00",
        "LastName",
        ["O'Brien", "Ørsted"],
    ),
    (
        f"{_C} WHERE SystemModstamp < 2024-01-02T01:00:00.000+0000",
        "LastName",
        ["Adams", "Baker"],
    ),
    (f"{_C} WHERE SystemModstamp = 2024-01-03T12:30:00Z", "LastName", ["Clark"]),
    (
        f"{_C} WHERE SystemModstamp > 2024-01-03T14:30:00+0200",
        "LastName",
        ["Dunn", "O'Brien", "Ørsted"],
    ),
    (f"{_C} WHERE LastName IN ('Adams', 'clark')", "LastName", ["Adams", "Clark"]),
    (
        f"{_C} WHERE LastName NOT IN ('Adams', 'Baker')",
        "LastName",
        ["Clark", "Dunn", "O'Brien", "Ørsted"],
    ),
    (f"{_C} WHERE Email IN ('ann@acme.com', null)", "LastName", ["Adams", "Dunn"]),
    (
        f"{_C} WHERE MailingCity NOT IN ('Berlin')",
        "LastName",
        ["Baker", "Dunn", "O'Brien", "Ørsted"],
    ),
    (f"{_C} WHERE LastName LIKE 'A%'", "LastName", ["Adams"]),
    (f"{_C} WHERE LastName LIKE 'a%'", "LastName", ["Adams"]),
    (f"{_C} WHERE LastName LIKE '%r%'", "LastName", ["Baker", "Clark", "O'Brien", "Ørsted"]),
    (f"{_C} WHERE LastName LIKE '_aker'", "LastName", ["Baker"]),
    (f"{_C} WHERE Email LIKE '%@ACME.com'", "LastName", ["Adams", "Baker", "O'Brien"]),
    (rf"{_C} WHERE Title LIKE 'Sales\_%'", "LastName", ["Ørsted"]),
    (rf"{_C} WHERE Title LIKE '100\%%'", "LastName", ["O'Brien"]),
    (f"{_C} WHERE LastName LIKE 'ø%'", "LastName", ["Ørsted"]),
    (rf"{_C} WHERE LastName = 'O\'Brien'", "LastName", ["O'Brien"]),
    (rf"{_C} WHERE MailingStreet = 'Line1\nLine2'", "LastName", ["Dunn"]),
    (rf"{_C} WHERE Department = 'R\\D'", "LastName", ["Dunn"]),
    (rf"{_C} WHERE Department = 'Ops\tDev'", "LastName", ["Baker"]),
    (rf"{_C} WHERE LastName = '\u00d8rsted'", "LastName", ["Ørsted"]),
    (rf"{_C} WHERE Title = 'say \"hi\"'", "LastName", ["Clark"]),
    (
        f"{_C} WHERE MailingCity = 'Berlin' AND HasOptedOutOfEmail = false",
        "LastName",
        ["Adams", "Clark"],
    ),
    (f"{_C} WHERE LastName = 'Adams' OR LastName = 'Dunn'", "LastName", ["Adams", "Dunn"]),
    (f"{_C} WHERE NOT LastName = 'Adams'", "LastName", ALL_CONTACTS[1:]),
    (f"{_C} WHERE NOT Email = 'ann@acme.com'", "LastName", ALL_CONTACTS[1:]),
    (
        f"{_C} WHERE NOT (LastName = 'Adams' OR LastName = 'Baker')",
        "LastName",
        ALL_CONTACTS[2:],
    ),
    (
        f"{_C} WHERE (LastName = 'Adams' OR LastName = 'Baker') AND HasOptedOutOfEmail = true",
        "LastName",
        ["Baker"],
    ),
    (
        f"{_C} WHERE LastName = 'Adams' OR (LastName = 'Baker' AND HasOptedOutOfEmail = false)",
        "LastName",
        ["Adams"],
    ),
    (
        "SELECT LastName, Account.Name FROM Contact WHERE Account.Name = 'Acme'",
        "Account.Name",
        ["Acme", "Acme", "Acme"],
    ),
    (f"{_C} WHERE Account.Industry = 'energy'", "LastName", ["Clark", "Ørsted"]),
    (
        f"{_C} ORDER BY Account.Name NULLS LAST, LastName",
        "LastName",
        ["Adams", "Baker", "O'Brien", "Clark", "Ørsted", "Dunn"],
    ),
    (
        f"{_C} ORDER BY Account.Name NULLS FIRST, LastName",
        "LastName",
        ["Dunn", "Adams", "Baker", "O'Brien", "Clark", "Ørsted"],
    ),
    (
        f"{_C} ORDER BY Engagement_Score__c DESC",
        "LastName",
        ["Ørsted", "Baker", "O'Brien", "Adams", "Dunn", "Clark"],
    ),
    (
        f"{_C} ORDER BY Engagement_Score__c ASC",
        "LastName",
        ["Clark", "Dunn", "Adams", "O'Brien", "Baker", "Ørsted"],
    ),
    (
        f"{_C} ORDER BY Engagement_Score__c DESC NULLS FIRST",
        "LastName",
        ["Clark", "Ørsted", "Baker", "O'Brien", "Adams", "Dunn"],
    ),
    (
        f"{_C} ORDER BY Engagement_Score__c ASC NULLS LAST",
        "LastName",
        ["Dunn", "Adams", "O'Brien", "Baker", "Ørsted", "Clark"],
    ),
    (f"{_C} ORDER BY LastName LIMIT 2", "LastName", ["Adams", "Baker"]),
    (f"{_C} ORDER BY LastName LIMIT 2 OFFSET 2", "LastName", ["Clark", "Dunn"]),
    (f"{_C} ORDER BY LastName OFFSET 4", "LastName", ["O'Brien", "Ørsted"]),
    (
        f"{_C} WHERE Id IN (SELECT ContactId FROM CampaignMember WHERE Campaign.Type = 'Email')",
        "LastName",
        ["Adams", "Baker"],
    ),
    (
        f"{_C} WHERE Id NOT IN (SELECT ContactId FROM CampaignMember)",
        "LastName",
        ["Dunn", "O'Brien"],
    ),
    (
        f"{_C} WHERE Id IN (SELECT ContactId FROM CampaignMember WHERE Status = 'Responded')",
        "LastName",
        ["Adams", "Ørsted"],
    ),
    (
        "SELECT Email FROM CampaignMember "
        "WHERE CampaignId IN (SELECT Id FROM Campaign WHERE Type = 'Email')",
        "Email",
        ["ann@acme.com", "bob@acme.com", "lee@initech.com"],
    ),
    (
        "SELECT Campaign.Type FROM CampaignMember WHERE Lead.Email = 'lee@initech.com'",
        "Campaign.Type",
        ["Email"],
    ),
    (
        "SELECT Contact.Email FROM CampaignMember WHERE Contact.Email != null "
        "ORDER BY Contact.Email",
        "Contact.Email",
        ["ann@acme.com", "bob@acme.com", "CARA@Globex.com", "emile@globex.com"],
    ),
    (f"{_C} WHERE LastName = 'Zed'", "LastName", []),
    ("SELECT LastName FROM Lead WHERE Company LIKE 'Ini%'", "LastName", ["Lee"]),
    ("SELECT Name FROM Campaign WHERE IsActive = true", "Name", ["Spring Newsletter"]),
    (
        "SELECT Contact.LastName FROM Contact WHERE Contact.Email = 'bob@acme.com'",
        "LastName",
        ["Baker"],
    ),
    ("SELECT Name FROM Contact WHERE Name = 'ann adams'", "Name", ["Ann Adams"]),
    (f"{_C} WHERE Name LIKE '% Adams'", "LastName", ["Adams"]),
    (f"{_C} WHERE Cerkl_Subscriber_Id__c = 'C-2'", "LastName", ["Baker"]),
]

INVALID_CASES: list[tuple[str, str]] = [
    ("SELECT Id FROM Contact WHERE", "MALFORMED_QUERY"),
    (
        "SELECT Id FROM Contact WHERE LastName = 'a' OR LastName = 'b' AND Email = null",
        "MALFORMED_QUERY",
    ),
    ("SELECT FROM Contact", "MALFORMED_QUERY"),
    ("SELECT Id Contact", "MALFORMED_QUERY"),
    ("SELECT Id FROM Contact WHERE Name = 'x' AND", "MALFORMED_QUERY"),
    ("SELECT Foo FROM Contact", "INVALID_FIELD"),
    ("SELECT Id FROM Foo", "INVALID_TYPE"),
    (r"SELECT Id FROM Contact WHERE Email = 'a\qb'", "MALFORMED_QUERY"),
    (r"SELECT Id FROM Contact WHERE LastName = 'a\%'", "MALFORMED_QUERY"),
    (r"SELECT Id FROM Contact WHERE LastName = 'abc\'", "MALFORMED_QUERY"),
    ("SELECT Id FROM Contact WHERE SystemModstamp > '2024-01-02T00:00:00Z'", "INVALID_FIELD"),
    ("SELECT Id FROM Contact WHERE SystemModstamp > 2024-01-02 03:04:05", "MALFORMED_QUERY"),
    (
        "SELECT Id FROM Contact WHERE SystemModstamp > 2024-01-02 03:04:05.123456+00:00",
        "MALFORMED_QUERY",
    ),
    ("SELECT Id FROM Contact WHERE SystemModstamp > 2024-01-02", "INVALID_FIELD"),
    ("SELECT Id FROM Contact WHERE Email = 5", "INVALID_FIELD"),
    ("SELECT Id FROM Contact WHERE HasOptedOutOfEmail = 'true'", "INVALID_FIELD"),
    ("SELECT Id FROM Contact WHERE Foo__c = 'x'", "INVALID_FIELD"),
    ("SELECT Id FROM Contact WHERE Id = 'notanid'", "INVALID_QUERY_FILTER_OPERATOR"),
    ("SELECT Id, Id FROM Contact", "MALFORMED_QUERY"),
    ("SELECT Bogus.Name FROM Contact", "INVALID_FIELD"),
    ("SELECT Id FROM Contact LIMIT 'x'", "MALFORMED_QUERY"),
    ("SELECT Id FROM Contact OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE"),
    ("SELECT Id FROM Contact WHERE Email LIKE 5", "INVALID_FIELD"),
    ("SELECT Id FROM Contact WHERE Engagement_Score__c LIKE '5'", "INVALID_QUERY_FILTER_OPERATOR"),
    ("SELECT Id FROM Contact WHERE Id IN (SELECT LastName FROM Contact)", "MALFORMED_QUERY"),
    ("SELECT Id FROM Contact ORDER BY Foo", "INVALID_FIELD"),
    ("SELECT Id FROM Contact WHERE HasOptedOutOfEmail > true", "INVALID_QUERY_FILTER_OPERATOR"),
]


@pytest.mark.parametrize(("statement", "path", "expected"), VALID_CASES)
def test_soql_valid_statement(client: Salesforce, statement: str, path: str, expected: Any) -> None:
    if isinstance(expected, int):
        # query_all recounts totalSize from the records, so COUNT() goes through query.
        result = client.query(statement)
        assert result["totalSize"] == expected
        assert result["records"] == []
        return
    result = client.query_all(statement)
    values = [_value(record, path) for record in result["records"]]
    if "ORDER BY" in statement.upper():
        assert values == expected
    else:
        assert sorted(values, key=str) == sorted(expected, key=str)
    assert result["totalSize"] == len(expected)


@pytest.mark.parametrize(("statement", "error_code"), INVALID_CASES)
def test_soql_invalid_statement(client: Salesforce, statement: str, error_code: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        client.query(statement)
    assert caught.value.content[0]["errorCode"] == error_code


def test_soql_table_sizes() -> None:
    assert len(VALID_CASES) >= 60
    assert len(INVALID_CASES) >= 15


def test_soql_query_all_includes_deleted(client: Salesforce) -> None:
    statement = "SELECT LastName, IsDeleted FROM Contact WHERE LastName = 'Zed'"
    assert client.query_all(statement)["records"] == []
    deleted = client.query_all(statement, include_deleted=True)["records"]
    assert [record["IsDeleted"] for record in deleted] == [True]


def test_soql_relationship_record_shape(client: Salesforce, seeded: dict[str, Any]) -> None:
    records = client.query(
        "SELECT Id, Account.Name FROM Contact WHERE LastName IN ('Adams', 'Dunn') ORDER BY LastName"
    )["records"]
    adams, dunn = records
    assert adams["attributes"]["type"] == "Contact"
    assert adams["attributes"]["url"].endswith(f"/sobjects/Contact/{adams['Id']}")
    assert adams["Account"]["attributes"]["type"] == "Account"
    assert adams["Account"]["Name"] == "Acme"
    assert dunn["Account"] is None


def test_soql_datetime_output_format(client: Salesforce) -> None:
    record = client.query("SELECT SystemModstamp FROM Contact WHERE LastName = 'Ørsted'")[
        "records"
    ][0]
    assert record["SystemModstamp"] == "2024-01-04T22:00:00.000+0000"


def test_soql_fifteen_character_id_filter(client: Salesforce, seeded: dict[str, Any]) -> None:
    short_id = seeded["acme"][:15]
    records = client.query_all(f"SELECT LastName FROM Contact WHERE AccountId = '{short_id}'")
    assert sorted(r["LastName"] for r in records["records"]) == ["Adams", "Baker", "O'Brien"]


def test_soql_statement_length_limit() -> None:
    padding = " " * (MAX_STATEMENT_LENGTH - len("SELECT Id FROM Contact") + 1)
    with pytest.raises(SalesforceApiError) as caught:
        compile_soql("SELECT Id FROM Contact" + padding)
    assert caught.value.error_code == "MALFORMED_QUERY"
    compile_soql("SELECT Id FROM Contact" + padding[:-1])


def test_soql_string_escapes_decode() -> None:
    decoded = "".join(c for c, _ in decode_string(r"'\'\"\\\n\r\t\b\f\u00e9'"))
    assert decoded == "'\"\\\n\r\t\b\f\u00e9"
