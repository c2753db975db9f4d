"""Tests of the Salesforce client against the Salesforce sandbox server."""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator
from urllib.parse import quote_plus

import pytest
import requests
from simple_salesforce.format import quote_soql_value

from include.cerkl_sync.salesforce_io import (
    ENDPOINT_KEY,
    MAX_REQUEST_URI_BYTES,
    SalesforceApiLimitError,
    SalesforceAuthError,
    SalesforceClient,
    SalesforceRequestError,
    SalesforceSyncError,
    SalesforceWriteOutcomeUnknownError,
    pack_in_statements,
)
from include.cerkl_sync.salesforce_transport import build_salesforce_session
from include.sandbox.client import SandboxControlClient
from include.sandbox.runner import RunningSandbox
from include.sandbox.salesforce.settings import SalesforceSandboxSettings

CONN_ID = "salesforce_sandbox_test"
SETTINGS = SalesforceSandboxSettings()
LOGIN = "POST /services/Soap/u/{version}"
QUERY = "GET /services/data/vXX.X/query"
QUERY_MORE = "GET /services/data/vXX.X/query/{id}"
QUERY_ALL = "GET /services/data/vXX.X/queryAll"
COLLECTION_CREATE = "POST /services/data/vXX.X/composite/sobjects"
COLLECTION_UPDATE = "PATCH /services/data/vXX.X/composite/sobjects"
COLLECTION_DELETE = "DELETE /services/data/vXX.X/composite/sobjects"
COLLECTION_UPSERT = "PATCH /services/data/vXX.X/composite/sobjects/Contact/Cerkl_Subscriber_Id__c"
DESCRIBE_CONTACT = "GET /services/data/vXX.X/sobjects/Contact/describe"


class Sleeps(list):
    """Sleep function for the client that records each delay instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(autouse=True)
def salesforce_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    connection = {
        "conn_type": "salesforce",
        "login": SETTINGS.username,
        "password": SETTINGS.password,
        "extra": {"security_token": SETTINGS.security_token},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(
    sandbox: RunningSandbox, salesforce_controls: SandboxControlClient, sleeps: Sleeps
) -> Iterator[Callable[..., SalesforceClient]]:
    sessions: list[requests.Session] = []

    def factory(**options: object) -> SalesforceClient:
        session = build_salesforce_session(sandbox.salesforce_url)
        sessions.append(session)
        options.setdefault("sleep", sleeps)
        return SalesforceClient(CONN_ID, session=session, **options)  # type: ignore[arg-type]

    yield factory
    for session in sessions:
        session.close()


@pytest.fixture
def client(make_client: Callable[..., SalesforceClient]) -> SalesforceClient:
    return make_client()


def sandbox_counts(controls: SandboxControlClient) -> Counter[str]:
    return Counter(controls.counters()["by_endpoint"])


def seed_contacts(controls: SandboxControlClient, count: int, **fields: object) -> list[str]:
    records = [
        {"LastName": f"Person {number}", "Email": f"person{number}@example.com", **fields}
        for number in range(count)
    ]
    return controls.seed({"Contact": records})["ids"]["Contact"]


# -- endpoint keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("get", "https://x.my.salesforce.com/services/data/v59.0/query/?q=SELECT+Id", QUERY),
        ("GET", "/services/data/v62.0/query/01g8d0000000001AAA-2000", QUERY_MORE),
        ("POST", "https://login.salesforce.com/services/Soap/u/59.0", LOGIN),
        (
            "POST",
            "https://login.salesforce.com/services/oauth2/token",
            "POST /services/oauth2/token",
        ),
        (
            "PATCH",
            "https://h.salesforce.com/services/data/v59.0/sobjects/Contact/0038d0000000001AAA",
            "PATCH /services/data/vXX.X/sobjects/Contact/{id}",
        ),
        (
            "PATCH",
            "https://h.salesforce.com/services/data/v59.0/sobjects/Contact/Ext__c/value-1",
            "PATCH /services/data/vXX.X/sobjects/Contact/Ext__c/{id}",
        ),
        (
            "PUT",
            "https://h.salesforce.com/services/data/v59.0/jobs/ingest/7508d0000000001AAA/batches",
            "PUT /services/data/vXX.X/jobs/ingest/{id}/batches",
        ),
        (
            "DELETE",
            "https://h.salesforce.com/services/data/v59.0/composite/sobjects?ids=a",
            COLLECTION_DELETE,
        ),
        (
            "GET",
            "https://h.salesforce.com/services/data/v59.0/sobjects/Contact/describe",
            DESCRIBE_CONTACT,
        ),
        (
            "GET",
            "https://h.salesforce.com/services/data/v59.0/sobjects/AccountContactRole/describe",
            "GET /services/data/vXX.X/sobjects/AccountContactRole/describe",
        ),
    ],
)
def test_endpoint_key_examples(method: str, url: str, expected: str) -> None:
    assert ENDPOINT_KEY(method, url) == expected


# -- queries ---------------------------------------------------------------------------------


def test_iter_query_pages_follows_next_records_url(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    seeded = seed_contacts(salesforce_controls, 450)

    pages = list(client.iter_query_pages("SELECT Id, Email FROM Contact", page_size=200))

    assert [len(page) for page in pages] == [200, 200, 50]
    assert {record["Id"] for page in pages for record in page} == set(seeded)
    assert all("attributes" not in record for page in pages for record in page)
    assert client.api_calls == Counter({LOGIN: 1, QUERY: 1, QUERY_MORE: 2})
    assert client.api_calls == sandbox_counts(salesforce_controls)


def test_iter_query_pages_strips_nested_attributes(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    account_id = salesforce_controls.seed({"Account": [{"Name": "Acme"}]})["ids"]["Account"][0]
    seed_contacts(salesforce_controls, 1, AccountId=account_id)

    (page,) = client.iter_query_pages("SELECT Id, Account.Name FROM Contact")

    assert page[0]["Account"] == {"Name": "Acme"}


def test_iter_query_pages_include_deleted_uses_query_all(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    seeded = seed_contacts(salesforce_controls, 3)
    client.delete(seeded[:1])

    live = [r for page in client.iter_query_pages("SELECT Id FROM Contact") for r in page]
    every = [
        record
        for page in client.iter_query_pages(
            "SELECT Id, IsDeleted FROM Contact", include_deleted=True
        )
        for record in page
    ]

    assert len(live) == 2
    assert len(every) == 3
    assert client.api_calls[QUERY_ALL] == 1


@pytest.mark.parametrize("page_size", [0, 199, 2001])
def test_iter_query_pages_rejects_bad_page_size(client: SalesforceClient, page_size: int) -> None:
    with pytest.raises(ValueError, match=f"page_size {page_size}"):
        client.iter_query_pages("SELECT Id FROM Contact", page_size=page_size)


def tricky_emails(count: int) -> list[str]:
    """Addresses with quotes, backslashes, SOQL wildcards and non-ASCII characters."""
    shapes = [
        "o'brien.{n}@example.com",
        "back\\slash{n}@example.com",
        "percent%{n}@example.com",
        "under_score{n}@example.com",
        "zoë.ångström{n}@exämple.com",
        'dq"{n}@example.com',
        "plain{n}@example.com",
    ]
    return [shapes[n % len(shapes)].format(n=n) for n in range(count)]


def minimum_statements(template: str, values: list[str], uri_prefix: str) -> int:
    """Lower bound on the statements that hold ``values``, from the encoded sizes alone."""
    head, tail = template.split("{values}")
    fixed = len(uri_prefix) + len(quote_plus(f"{head}(){tail}", safe=""))
    sizes = [len(quote_plus(quote_soql_value(value), safe="")) for value in values]
    comma = len(quote_plus(",", safe=""))
    # k statements hold n - k commas and k fixed parts: sum + comma * (n - k) + fixed * k <= k * max
    return math.ceil((sum(sizes) + comma * len(values)) / (MAX_REQUEST_URI_BYTES - fixed + comma))


def test_query_in_batches_packs_fewest_statements(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    emails = tricky_emails(3000)
    matching = emails[::10]
    seeded = salesforce_controls.seed(
        {"Contact": [{"LastName": "Match", "Email": email} for email in matching]}
    )["ids"]["Contact"]
    # Records that a wildcard or a broken escape would match, but an exact IN must not.
    salesforce_controls.seed(
        {
            "Contact": [
                {"LastName": "Decoy", "Email": "underXscore3@example.com"},
                {"LastName": "Decoy", "Email": "percentANY2@example.com"},
            ]
        }
    )
    uri_lengths: list[int] = []
    client.hook.session.hooks["response"].append(
        lambda response, *args, **kwargs: uri_lengths.append(len(response.request.path_url))
    )
    template = "SELECT Id, Email FROM Contact WHERE Email IN {values}"

    found = [record for page in client.query_in_batches(template, emails) for record in page]

    base_url = client.hook.conn.base_url + "query"
    assert client.api_calls[QUERY] == minimum_statements(template, emails, base_url + "?q=")
    assert client.api_calls[QUERY] > 1
    assert max(uri_lengths) <= MAX_REQUEST_URI_BYTES
    assert sorted(record["Id"] for record in found) == sorted(seeded)
    assert sorted(record["Email"] for record in found) == sorted(matching)
    assert client.api_calls == sandbox_counts(salesforce_controls)


def test_pack_in_statements_matches_requests_encoding() -> None:
    base_url = "https://sandbox.my.salesforce.com/services/data/v59.0/query"
    template = "SELECT Id FROM Contact WHERE Email IN {values} AND IsDeleted = false"

    statements = list(
        pack_in_statements(template, tricky_emails(2000), uri_prefix=base_url + "?q=")
    )

    lengths = [
        len(requests.Request("GET", base_url, params={"q": statement}).prepare().url)
        for statement in statements
    ]
    assert max(lengths) <= MAX_REQUEST_URI_BYTES
    # Every statement but the last is full to within one value (at most 64 bytes encoded).
    assert min(lengths[:-1]) > MAX_REQUEST_URI_BYTES - 64


def test_pack_in_statements_respects_statement_chars() -> None:
    values = [f"v{number:05d}" for number in range(1000)]

    statements = list(
        pack_in_statements(
            "SELECT Id FROM Contact WHERE Email IN {values}",
            values,
            uri_prefix="https://h/q?q=",
            max_statement_chars=1000,
        )
    )

    assert max(len(statement) for statement in statements) <= 1000
    assert sum(statement.count("'v") for statement in statements) == 1000


def test_query_in_batches_rejects_template_without_placeholder(client: SalesforceClient) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        client.query_in_batches("SELECT Id FROM Contact WHERE Email IN :emails", ["a@b.c"])


def test_query_in_batches_empty_values_makes_no_call(client: SalesforceClient) -> None:
    pages = list(client.query_in_batches("SELECT Id FROM Contact WHERE Email IN {values}", []))

    assert pages == []
    assert client.api_calls == Counter()


def test_query_in_batches_rejects_non_string_value(client: SalesforceClient) -> None:
    template = "SELECT Id FROM Contact WHERE Email IN {values}"

    with pytest.raises(ValueError, match="position 1 is a NoneType"):
        client.query_in_batches(template, ["a@example.com", None])  # type: ignore[list-item]

    assert client.api_calls == Counter()


def test_query_in_batches_rejects_overlong_value_without_echoing(client: SalesforceClient) -> None:
    secret = "x" * 4001 + "@example.com"
    template = "SELECT Id FROM Contact WHERE Email IN {values}"

    with pytest.raises(ValueError, match="position 2 has 4013 characters") as raised:
        client.query_in_batches(template, ["a@example.com", "a@example.com", secret])

    assert secret not in str(raised.value)


# -- sObject Collections writes ----------------------------------------------------------------


@pytest.mark.parametrize(("count", "calls"), [(1, 1), (200, 1), (201, 2), (401, 3)])
def test_create_sends_200_records_per_call(
    client: SalesforceClient, salesforce_controls: SandboxControlClient, count: int, calls: int
) -> None:
    records = [{"LastName": f"New {number}"} for number in range(count)]

    results = client.create("Contact", records)

    assert [result.index for result in results] == list(range(count))
    assert all(result.success and result.created for result in results)
    assert len({result.id for result in results}) == count
    assert client.api_calls[COLLECTION_CREATE] == calls
    assert client.api_calls == sandbox_counts(salesforce_controls)


def test_write_empty_input_makes_no_call(client: SalesforceClient) -> None:
    assert client.create("Contact", []) == []
    assert client.update("Contact", []) == []
    assert client.upsert("Contact", "Cerkl_Subscriber_Id__c", []) == []
    assert client.delete([]) == []
    assert client.api_calls == Counter()


def test_create_mixed_results_in_input_order(client: SalesforceClient) -> None:
    records = [
        {"LastName": "Good 0", "Email": "good0@example.com"},
        {"LastName": "Bad 1", "Email": "not-an-address"},
        {"LastName": "Good 2"},
        {"LastName": "Bad 3", "Email": "also bad"},
        {"Email": "nolastname@example.com"},
    ]

    results = client.create("Contact", records)

    assert [result.index for result in results] == [0, 1, 2, 3, 4]
    assert [result.success for result in results] == [True, False, True, False, False]
    assert [result.error_code for result in results] == [
        None,
        "INVALID_EMAIL_ADDRESS",
        None,
        "INVALID_EMAIL_ADDRESS",
        "REQUIRED_FIELD_MISSING",
    ]
    assert results[0].id is not None
    assert results[1].id is None
    assert results[1].created is None


def test_create_rejects_record_with_id(client: SalesforceClient) -> None:
    with pytest.raises(ValueError, match="position 1 has an Id"):
        client.create("Contact", [{"LastName": "A"}, {"Id": "0038d0000000001AAA"}])
    assert client.api_calls == Counter()


def test_update_rejects_record_without_id(client: SalesforceClient) -> None:
    with pytest.raises(ValueError, match="position 0 has no valid Id"):
        client.update("Contact", [{"LastName": "A"}])


def test_update_lock_fault_resends_only_locked_records(
    client: SalesforceClient, salesforce_controls: SandboxControlClient, sleeps: Sleeps
) -> None:
    ids = seed_contacts(salesforce_controls, 5)
    salesforce_controls.add_record_fault("Contact", ids[:2], "UNABLE_TO_LOCK_ROW", times=1)
    salesforce_controls.add_record_fault(
        "Contact", ids[2:3], "FIELD_CUSTOM_VALIDATION_EXCEPTION", times=3
    )

    results = client.update("Contact", [{"Id": id_, "Title": "Updated"} for id_ in ids])

    assert [result.success for result in results] == [True, True, False, True, True]
    assert results[2].error_code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert all(result.created is False for result in results if result.success)
    assert client.api_calls[COLLECTION_UPDATE] == 2
    assert sleeps == [2.0]
    remaining = {
        fault["id"]: fault["remaining"]
        for fault in salesforce_controls.request("GET", "/__sandbox__/record_faults")[
            "record_faults"
        ]
    }
    # The validation failure was sent once only: it has two of its three uses left.
    assert remaining[ids[2]] == 2
    assert remaining[ids[0]] == 0


def test_update_lock_fault_gives_up_after_delays(
    make_client: Callable[..., SalesforceClient],
    salesforce_controls: SandboxControlClient,
    sleeps: Sleeps,
) -> None:
    client = make_client(lock_retry_delays=(0.5, 1.5))
    ids = seed_contacts(salesforce_controls, 3)
    salesforce_controls.add_record_fault("Contact", ids[1:2], "UNABLE_TO_LOCK_ROW", times=10)

    results = client.update("Contact", [{"Id": id_, "Title": "Updated"} for id_ in ids])

    assert [result.success for result in results] == [True, False, True]
    assert results[1].error_code == "UNABLE_TO_LOCK_ROW"
    assert client.api_calls[COLLECTION_UPDATE] == 3
    assert sleeps == [0.5, 1.5]


def test_create_after_503_is_not_resent(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    salesforce_controls.add_fault(
        path="/composite/sobjects$",
        method="POST",
        status=503,
        error_code="SERVER_UNAVAILABLE",
        count=1,
    )
    records = [{"LastName": f"New {number}"} for number in range(3)]

    with pytest.raises(SalesforceWriteOutcomeUnknownError) as raised:
        client.create("Contact", records)

    assert raised.value.record_indices == [0, 1, 2]
    assert raised.value.status == 503
    assert client.api_calls[COLLECTION_CREATE] == 1


def test_create_after_dropped_connection_is_not_resent(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    created = client.create("Contact", [{"LastName": f"First {n}"} for n in range(200)])
    salesforce_controls.add_fault(
        path="/composite/sobjects$", method="POST", action="drop", count=1
    )

    with pytest.raises(SalesforceWriteOutcomeUnknownError) as raised:
        client.create("Contact", [{"LastName": f"Second {n}"} for n in range(201)])

    assert raised.value.record_indices == list(range(200))
    assert raised.value.partial_results == []
    assert len(created) == 200
    assert client.api_calls[COLLECTION_CREATE] == 2
    assert client.api_calls == sandbox_counts(salesforce_controls)


def test_create_rate_limited_is_retried(
    client: SalesforceClient, salesforce_controls: SandboxControlClient, sleeps: Sleeps
) -> None:
    salesforce_controls.add_fault(
        path="/composite/sobjects$",
        method="POST",
        status=429,
        error_code="RATE_LIMITED",
        retry_after=2,
        count=1,
    )

    results = client.create("Contact", [{"LastName": "Once"}])

    assert results[0].success
    assert client.api_calls[COLLECTION_CREATE] == 2
    assert sleeps == [2.0]


def test_create_rejected_request_is_known_failure(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    salesforce_controls.add_fault(
        path="/composite/sobjects$",
        method="POST",
        status=400,
        error_code="UNABLE_TO_LOCK_ROW",
        count=1,
    )

    with pytest.raises(SalesforceRequestError) as raised:
        client.create("Contact", [{"LastName": "Locked"}])

    assert not isinstance(raised.value, SalesforceWriteOutcomeUnknownError)
    assert raised.value.error_code == "UNABLE_TO_LOCK_ROW"
    assert client.api_calls[COLLECTION_CREATE] == 1


def test_update_request_lock_error_is_retried(
    client: SalesforceClient, salesforce_controls: SandboxControlClient, sleeps: Sleeps
) -> None:
    ids = seed_contacts(salesforce_controls, 1)
    salesforce_controls.add_fault(
        path="/composite/sobjects$",
        method="PATCH",
        status=400,
        error_code="UNABLE_TO_LOCK_ROW",
        count=1,
    )

    results = client.update("Contact", [{"Id": ids[0], "Title": "Updated"}])

    assert results[0].success
    assert client.api_calls[COLLECTION_UPDATE] == 2
    assert sleeps == [1.0]


def test_write_error_carries_partial_results(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    client.describe_fields("Contact")
    used = salesforce_controls.request("GET", "/__sandbox__/api_limit")["used"]
    # Room for exactly one more REST request: the first batch of 200.
    salesforce_controls.set_api_limit(used + 1, used=used)

    with pytest.raises(SalesforceApiLimitError) as raised:
        client.create("Contact", [{"LastName": f"New {n}"} for n in range(250)])

    assert [result.index for result in raised.value.partial_results] == list(range(200))
    assert all(result.success for result in raised.value.partial_results)
    assert client.api_calls[COLLECTION_CREATE] == 2


def test_update_after_503_is_retried(
    client: SalesforceClient, salesforce_controls: SandboxControlClient, sleeps: Sleeps
) -> None:
    ids = seed_contacts(salesforce_controls, 2)
    salesforce_controls.add_fault(
        path="/composite/sobjects$",
        method="PATCH",
        status=503,
        error_code="SERVER_UNAVAILABLE",
        count=1,
    )

    results = client.update("Contact", [{"Id": id_, "Title": "Updated"} for id_ in ids])

    assert all(result.success for result in results)
    assert client.api_calls[COLLECTION_UPDATE] == 2
    assert sleeps == [1.0]


def test_upsert_creates_then_updates(client: SalesforceClient) -> None:
    records = [{"Cerkl_Subscriber_Id__c": f"sub-{n}", "LastName": f"Sub {n}"} for n in range(3)]

    first = client.upsert("Contact", "Cerkl_Subscriber_Id__c", records)
    second = client.upsert("Contact", "Cerkl_Subscriber_Id__c", records)

    assert [result.created for result in first] == [True, True, True]
    assert [result.created for result in second] == [False, False, False]
    assert [result.id for result in first] == [result.id for result in second]
    assert client.api_calls[COLLECTION_UPSERT] == 2


def test_upsert_rejects_record_without_external_id(client: SalesforceClient) -> None:
    with pytest.raises(ValueError, match="position 1 has no Cerkl_Subscriber_Id__c"):
        client.upsert(
            "Contact",
            "Cerkl_Subscriber_Id__c",
            [{"Cerkl_Subscriber_Id__c": "a", "LastName": "A"}, {"LastName": "B"}],
        )


def test_delete_reports_each_id(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    ids = seed_contacts(salesforce_controls, 2)
    client.delete(ids[:1])

    results = client.delete(ids)

    assert [result.success for result in results] == [False, True]
    assert results[0].error_code == "ENTITY_IS_DELETED"
    assert results[1].id == ids[1]
    assert client.api_calls[COLLECTION_DELETE] == 2


def test_delete_rejects_non_id(client: SalesforceClient) -> None:
    with pytest.raises(ValueError, match="position 1 is not a record Id"):
        client.delete(["0038d0000000001AAA", "someone@example.com"])


# -- describe ------------------------------------------------------------------------------------


def test_describe_fields_is_cached(client: SalesforceClient) -> None:
    first = client.describe_fields("Contact")
    second = client.describe_fields("Contact")

    assert first["Email"]["type"] == "email"
    assert second == first
    assert client.api_calls[DESCRIBE_CONTACT] == 1


def test_check_fields_names_every_missing_field(client: SalesforceClient) -> None:
    with pytest.raises(SalesforceSyncError) as raised:
        client.check_fields(
            "Contact", ["Email", "Missing_One__c", "cerkl_subscriber_id__c", "Missing_Two__c"]
        )

    message = str(raised.value)
    listed = message.split(" that the sync needs")[0]
    assert "Missing_One__c, Missing_Two__c" in listed
    assert "Email" not in listed
    assert "cerkl_subscriber_id__c" not in listed
    assert "custom fields" in message


def test_check_fields_passes_when_fields_exist(client: SalesforceClient) -> None:
    client.check_fields("Contact", ["Email", "Cerkl_Subscriber_Id__c", "HasOptedOutOfEmail"])


def test_check_fields_unknown_sobject(client: SalesforceClient) -> None:
    with pytest.raises(SalesforceSyncError, match="Nonexistent__c was not found"):
        client.check_fields("Nonexistent__c", ["Name"])


# -- session expiry ------------------------------------------------------------------------------


def test_session_expiry_costs_one_login_per_call_type(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    ids = seed_contacts(salesforce_controls, 2)
    list(client.iter_query_pages("SELECT Id FROM Contact"))
    assert client.api_calls[LOGIN] == 1

    calls: list[Callable[[], object]] = [
        lambda: list(client.iter_query_pages("SELECT Id FROM Contact")),
        lambda: client.create("Contact", [{"LastName": "After expiry"}]),
        lambda: client.update("Contact", [{"Id": ids[0], "Title": "After expiry"}]),
        lambda: client.delete(ids[1:]),
        lambda: client.describe_fields("Contact"),
    ]
    for number, call in enumerate(calls, start=2):
        salesforce_controls.expire_sessions()
        call()
        assert client.api_calls[LOGIN] == number

    assert client.api_calls == sandbox_counts(salesforce_controls)


def test_session_expiry_between_pages_costs_one_login(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    seed_contacts(salesforce_controls, 450)
    pages = client.iter_query_pages("SELECT Id FROM Contact", page_size=200)

    first = next(pages)
    salesforce_controls.expire_sessions()
    rest = list(pages)

    assert len(first) + sum(len(page) for page in rest) == 450
    assert client.api_calls[LOGIN] == 2
    assert client.api_calls[QUERY_MORE] == 3


def test_session_expired_again_after_login_raises(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    salesforce_controls.add_fault(
        path="/query$", method="GET", status=401, error_code="INVALID_SESSION_ID", count=2
    )

    with pytest.raises(SalesforceAuthError, match="expired again"):
        list(client.iter_query_pages("SELECT Id FROM Contact"))

    assert client.api_calls[LOGIN] == 2
    assert client.api_calls[QUERY] == 2


def test_login_failure_raises_auth_error(
    make_client: Callable[..., SalesforceClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = {
        "conn_type": "salesforce",
        "login": SETTINGS.username,
        "password": "wrong-password",
        "extra": {"security_token": SETTINGS.security_token},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
    client = make_client()

    with pytest.raises(SalesforceAuthError, match="INVALID_LOGIN") as raised:
        client.describe_fields("Contact")

    assert "wrong-password" not in str(raised.value)
    assert client.api_calls == Counter({LOGIN: 1})


# -- limits and retries --------------------------------------------------------------------------


def test_api_limit_raises_typed_error_at_once(
    client: SalesforceClient, salesforce_controls: SandboxControlClient, sleeps: Sleeps
) -> None:
    salesforce_controls.set_api_limit(40, used=40)

    with pytest.raises(SalesforceApiLimitError, match="40/40"):
        list(client.iter_query_pages("SELECT Id FROM Contact"))

    assert client.api_calls[QUERY] == 1
    assert client.api_usage == (40, 40)
    assert sleeps == []


def test_api_usage_follows_limit_header(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    salesforce_controls.set_api_limit(1000, used=10)

    client.describe_fields("Contact")

    assert client.api_usage == (11, 1000)


def test_read_503_is_retried_with_backoff(
    client: SalesforceClient, salesforce_controls: SandboxControlClient, sleeps: Sleeps
) -> None:
    seed_contacts(salesforce_controls, 3)
    salesforce_controls.add_fault(
        path="/query$", method="GET", status=503, error_code="SERVER_UNAVAILABLE", count=2
    )

    (page,) = client.iter_query_pages("SELECT Id FROM Contact")

    assert len(page) == 3
    assert sleeps == [1.0, 2.0]
    assert client.api_calls[QUERY] == 3
    assert client.api_calls == sandbox_counts(salesforce_controls)


def test_read_503_gives_up_after_max_attempts(
    make_client: Callable[..., SalesforceClient], salesforce_controls: SandboxControlClient
) -> None:
    client = make_client(max_attempts=3)
    salesforce_controls.add_fault(path="/describe$", status=503, error_code="SERVER_UNAVAILABLE")

    with pytest.raises(SalesforceRequestError) as raised:
        client.describe_fields("Contact")

    assert raised.value.status == 503
    assert raised.value.error_code == "SERVER_UNAVAILABLE"
    assert client.api_calls[DESCRIBE_CONTACT] == 3


def test_read_dropped_connection_is_retried(
    client: SalesforceClient, salesforce_controls: SandboxControlClient, sleeps: Sleeps
) -> None:
    salesforce_controls.add_fault(path="/describe$", action="drop", count=1)

    fields = client.describe_fields("Contact")

    assert "Email" in fields
    assert sleeps == [1.0]
    assert client.api_calls == sandbox_counts(salesforce_controls)


def test_read_without_response_hides_query(
    make_client: Callable[..., SalesforceClient], salesforce_controls: SandboxControlClient
) -> None:
    client = make_client(max_attempts=2)
    salesforce_controls.add_fault(path="/query$", method="GET", action="drop")
    template = "SELECT Id FROM Contact WHERE Email IN {values}"

    with pytest.raises(SalesforceRequestError) as raised:
        list(client.query_in_batches(template, ["hidden.person@example.com"]))

    # requests can quote the URL, query string included, in its exception message, so the
    # client's error must not chain it: a traceback would print it.
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
    assert "hidden.person" not in str(raised.value)
    assert raised.value.status is None
    assert client.api_calls[QUERY] == 2


def test_read_timeout_is_retried(
    make_client: Callable[..., SalesforceClient],
    salesforce_controls: SandboxControlClient,
    sleeps: Sleeps,
) -> None:
    client = make_client(request_timeout=0.3)
    salesforce_controls.add_fault(path="/describe$", action="timeout", delay_seconds=1, count=1)

    fields = client.describe_fields("Contact")

    assert "Email" in fields
    assert sleeps == [1.0]
    assert client.api_calls[DESCRIBE_CONTACT] == 2


def test_create_timeout_is_unknown_outcome(
    make_client: Callable[..., SalesforceClient], salesforce_controls: SandboxControlClient
) -> None:
    client = make_client(request_timeout=0.3)
    salesforce_controls.add_fault(
        path="/composite/sobjects$", method="POST", action="timeout", delay_seconds=1, count=1
    )

    with pytest.raises(SalesforceWriteOutcomeUnknownError, match="ReadTimeout"):
        client.create("Contact", [{"LastName": "Slow"}])

    assert client.api_calls[COLLECTION_CREATE] == 1


def test_rate_limited_read_waits_retry_after(
    client: SalesforceClient, salesforce_controls: SandboxControlClient, sleeps: Sleeps
) -> None:
    salesforce_controls.add_fault(
        path="/describe$", status=429, error_code="RATE_LIMITED", retry_after=3, count=1
    )

    client.describe_fields("Contact")

    assert sleeps == [3.0]


def test_rejected_query_raises_with_code_only(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    with pytest.raises(SalesforceRequestError) as raised:
        list(client.iter_query_pages("SELECT Id FROM Contact WHERE Email = 'leak@example.com' AND"))

    assert raised.value.status == 400
    assert raised.value.error_code == "MALFORMED_QUERY"
    assert "leak@example.com" not in str(raised.value)
    assert client.api_calls[QUERY] == 1


# -- privacy ---------------------------------------------------------------------------------------


def test_record_values_stay_out_of_logs(
    client: SalesforceClient,
    salesforce_controls: SandboxControlClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emails = ["first.person@example.com", "o'second@example.com"]
    salesforce_controls.seed({"Contact": [{"LastName": "Known", "Email": emails[0]}]})
    salesforce_controls.add_fault(path="/query$", method="GET", status=503, count=1)
    caplog.set_level(logging.DEBUG)

    found = [
        record
        for page in client.query_in_batches(
            "SELECT Id FROM Contact WHERE Email IN {values}", emails
        )
        for record in page
    ]
    results = client.create("Contact", [{"LastName": "Secretname", "Email": "bad address"}])

    assert len(found) == 1
    assert results[0].error_code == "INVALID_EMAIL_ADDRESS"
    assert "Retrying" in caplog.text or "retrying" in caplog.text
    for value in [*emails, "first.person%40example.com", "Secretname", "bad address"]:
        assert value not in caplog.text
