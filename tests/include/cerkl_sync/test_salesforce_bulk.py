"""Tests of the Bulk API 2.0 write path of the Salesforce client against the sandbox server."""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import requests

from include.cerkl_sync.salesforce_io import (
    SalesforceClient,
    SalesforceRequestError,
    SalesforceWriteOutcomeUnknownError,
    WriteResult,
    bulk,
)
from include.cerkl_sync.salesforce_transport import build_salesforce_session
from include.sandbox.client import SandboxControlClient
from include.sandbox.runner import RunningSandbox
from include.sandbox.salesforce.ids import normalize_id
from include.sandbox.salesforce.settings import SalesforceSandboxSettings

CONN_ID = "salesforce_bulk_test"
SETTINGS = SalesforceSandboxSettings()
LOGIN = "POST /services/Soap/u/{version}"
COLLECTION_UPDATE = "PATCH /services/data/vXX.X/composite/sobjects"
COLLECTION_UPSERT = "PATCH /services/data/vXX.X/composite/sobjects/Contact/Cerkl_Subscriber_Id__c"
JOB_CREATE = "POST /services/data/vXX.X/jobs/ingest"
JOB_UPLOAD = "PUT /services/data/vXX.X/jobs/ingest/{id}/batches"
JOB_PATCH = "PATCH /services/data/vXX.X/jobs/ingest/{id}"
JOB_GET = "GET /services/data/vXX.X/jobs/ingest/{id}"
JOB_FAILED = "GET /services/data/vXX.X/jobs/ingest/{id}/failedResults"
JOB_SUCCEEDED = "GET /services/data/vXX.X/jobs/ingest/{id}/successfulResults"
JOB_UNPROCESSED = "GET /services/data/vXX.X/jobs/ingest/{id}/unprocessedrecords"
EXTERNAL_ID = "Cerkl_Subscriber_Id__c"


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


def sandbox_counts(controls: SandboxControlClient) -> Counter[str]:
    return Counter(controls.counters()["by_endpoint"])


def seed_contacts(controls: SandboxControlClient, count: int, **fields: object) -> list[str]:
    records = [
        {"LastName": f"Person {number}", "Email": f"person{number}@example.com", **fields}
        for number in range(count)
    ]
    return controls.seed({"Contact": records})["ids"]["Contact"]


def set_bulk_controls(controls: SandboxControlClient, **values: object) -> None:
    controls.request("PUT", "/__sandbox__/bulk_ingest", values)


def fetch_contacts(client: SalesforceClient, fields: str) -> dict[str, dict]:
    pages = client.iter_query_pages(f"SELECT Id, {fields} FROM Contact")
    return {record["Id"]: record for page in pages for record in page}


def comparable(results: list[WriteResult]) -> list[tuple]:
    """Return the results without ``error_message``, whose text differs between the APIs."""
    return [
        (result.index, result.success, result.id, result.created, result.error_code)
        for result in results
    ]


# -- choosing the path ----------------------------------------------------------------------


def test_update_1001_records_takes_one_job(
    make_client: Callable[..., SalesforceClient],
    salesforce_controls: SandboxControlClient,
    sleeps: Sleeps,
) -> None:
    client = make_client()
    ids = seed_contacts(salesforce_controls, 1001)

    results = client.update("Contact", [{"Id": id_, "Title": "Bulk"} for id_ in ids])

    assert [result.index for result in results] == list(range(1001))
    assert all(result.success for result in results)
    assert [result.id for result in results] == ids
    assert all(result.created is False for result in results)
    writes = client.api_calls - Counter({LOGIN: client.api_calls[LOGIN]})
    # The sandbox runs a job when it is closed, so the close response is final: no poll.
    # It counts no failed record, so the failed results are not read either.
    assert writes == Counter({JOB_CREATE: 1, JOB_UPLOAD: 1, JOB_PATCH: 1})
    assert sum(writes.values()) < math.ceil(1001 / 200)
    assert sleeps == []
    assert client.api_calls == sandbox_counts(salesforce_controls)
    titles = {record["Title"] for record in fetch_contacts(client, "Title").values()}
    assert titles == {"Bulk"}


def test_job_polls_with_growing_interval(
    make_client: Callable[..., SalesforceClient],
    salesforce_controls: SandboxControlClient,
    sleeps: Sleeps,
) -> None:
    client = make_client(bulk_threshold=2)
    ids = seed_contacts(salesforce_controls, 3)
    set_bulk_controls(salesforce_controls, in_progress_polls=3)

    results = client.update("Contact", [{"Id": id_, "Title": "Polled"} for id_ in ids])

    assert all(result.success for result in results)
    assert sleeps == [1.0, 2.0, 4.0, 8.0]
    assert client.api_calls[JOB_GET] == 4


def test_update_1000_records_uses_collections(
    make_client: Callable[..., SalesforceClient], salesforce_controls: SandboxControlClient
) -> None:
    client = make_client()
    ids = seed_contacts(salesforce_controls, 1000)

    results = client.update("Contact", [{"Id": id_, "Title": "Small"} for id_ in ids])

    assert all(result.success for result in results)
    assert client.api_calls[COLLECTION_UPDATE] == 5
    assert client.api_calls[JOB_CREATE] == 0


@pytest.mark.parametrize("threshold", [None, 0])
def test_bulk_threshold_off_uses_collections(
    make_client: Callable[..., SalesforceClient],
    salesforce_controls: SandboxControlClient,
    threshold: int | None,
) -> None:
    client = make_client(bulk_threshold=threshold)
    ids = seed_contacts(salesforce_controls, 201)

    client.update("Contact", [{"Id": id_, "Title": "Off"} for id_ in ids])

    assert client.api_calls[COLLECTION_UPDATE] == 2
    assert client.api_calls[JOB_CREATE] == 0


@pytest.mark.parametrize("threshold", [-1, True, 2.5, "10"])
def test_bulk_threshold_rejects_invalid(
    make_client: Callable[..., SalesforceClient], threshold: object
) -> None:
    with pytest.raises(ValueError, match="invalid bulk_threshold"):
        make_client(bulk_threshold=threshold)


def test_repeated_ids_use_collections(
    make_client: Callable[..., SalesforceClient], salesforce_controls: SandboxControlClient
) -> None:
    client = make_client(bulk_threshold=2)
    ids = seed_contacts(salesforce_controls, 2)
    # The same record under its 15- and 18-character Id is one key.
    records = [
        {"Id": ids[0], "Title": "A"},
        {"Id": ids[1], "Title": "B"},
        {"Id": ids[0][:15], "Title": "C"},
    ]

    results = client.update("Contact", records)

    assert [result.success for result in results] == [True, True, True]
    assert client.api_calls[COLLECTION_UPDATE] == 1
    assert client.api_calls[JOB_CREATE] == 0


@pytest.mark.parametrize("value", [{"Name": "nested"}, ["list"], "#N/A"])
def test_value_without_csv_form_uses_collections(
    make_client: Callable[..., SalesforceClient],
    salesforce_controls: SandboxControlClient,
    value: object,
) -> None:
    client = make_client(bulk_threshold=2)
    ids = seed_contacts(salesforce_controls, 3)
    records = [{"Id": id_, "Title": "Plain"} for id_ in ids]
    records[1]["Description"] = value

    client.update("Contact", records)

    assert client.api_calls[COLLECTION_UPDATE] == 1
    assert client.api_calls[JOB_CREATE] == 0


# -- results -----------------------------------------------------------------------------------


def test_failures_match_collections_results(
    make_client: Callable[..., SalesforceClient], salesforce_controls: SandboxControlClient
) -> None:
    ids = seed_contacts(salesforce_controls, 6)
    records = [
        {"Id": ids[0], "Email": "new0@example.com"},
        {"Id": ids[1], "Email": "broken"},
        {"Id": ids[2][:15], "Title": "Short Id"},
        {"Id": ids[3], "LastName": None},
        {"Id": ids[4], "Title": "x" * 200},
        {"Id": ids[5], "Title": "Fine"},
    ]
    collections = make_client(bulk_threshold=None).update("Contact", records)
    set_bulk_controls(salesforce_controls, result_order="reversed")
    client = make_client(bulk_threshold=3)

    results = client.update("Contact", records)

    assert client.api_calls[JOB_CREATE] == 1
    assert client.api_calls[JOB_FAILED] == 1
    assert client.api_calls[COLLECTION_UPDATE] == 0
    assert comparable(results) == comparable(collections)
    assert [result.error_code for result in results] == [
        None,
        "INVALID_EMAIL_ADDRESS",
        None,
        "REQUIRED_FIELD_MISSING",
        "STRING_TOO_LONG",
        None,
    ]
    assert results[2].id == ids[2]
    assert results[1].error_message


def test_none_clears_and_missing_key_keeps(
    make_client: Callable[..., SalesforceClient], salesforce_controls: SandboxControlClient
) -> None:
    client = make_client(bulk_threshold=2)
    ids = seed_contacts(salesforce_controls, 3, Title="Old title", Department="Old dept")
    records = [
        {"Id": ids[0], "Title": None, "Department": "New dept"},
        {"Id": ids[1], "Title": ""},
        {"Id": ids[2], "Department": None, "HasOptedOutOfEmail": True},
    ]

    results = client.update("Contact", records)

    assert all(result.success for result in results)
    assert client.api_calls[JOB_CREATE] == 1
    stored = fetch_contacts(client, "Title, Department, HasOptedOutOfEmail")
    assert stored[ids[0]]["Title"] is None
    assert stored[ids[0]]["Department"] == "New dept"
    assert stored[ids[1]]["Title"] is None
    assert stored[ids[1]]["Department"] == "Old dept"
    assert stored[ids[2]]["Title"] == "Old title"
    assert stored[ids[2]]["Department"] is None
    assert stored[ids[2]]["HasOptedOutOfEmail"] is True


def test_upsert_created_flags_and_ids(
    make_client: Callable[..., SalesforceClient], salesforce_controls: SandboxControlClient
) -> None:
    (existing_id,) = seed_contacts(salesforce_controls, 1, **{EXTERNAL_ID: "sub-0"})
    set_bulk_controls(salesforce_controls, result_order="reversed")
    client = make_client(bulk_threshold=3)
    records = [
        {EXTERNAL_ID: f"sub-{number}", "LastName": f"Upserted {number}"} for number in range(4)
    ]
    records.append({EXTERNAL_ID: 5, "LastName": "Numeric key", "Email": "broken"})

    results = client.upsert("Contact", EXTERNAL_ID, records)

    assert client.api_calls[JOB_CREATE] == 1
    assert client.api_calls[JOB_SUCCEEDED] == 1
    assert client.api_calls[COLLECTION_UPSERT] == 0
    assert [result.created for result in results] == [False, True, True, True, None]
    assert [result.success for result in results] == [True, True, True, True, False]
    assert results[4].error_code == "INVALID_EMAIL_ADDRESS"
    assert results[0].id == existing_id
    stored = fetch_contacts(client, EXTERNAL_ID)
    by_key = {record[EXTERNAL_ID]: record_id for record_id, record in stored.items()}
    for number in range(4):
        assert results[number].id == by_key[f"sub-{number}"]
    assert len(stored) == 4


def test_jobs_split_by_csv_size(
    make_client: Callable[..., SalesforceClient],
    salesforce_controls: SandboxControlClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bulk, "MAX_JOB_CSV_BYTES", 200)
    client = make_client(bulk_threshold=2)
    ids = seed_contacts(salesforce_controls, 9)
    records = [{"Id": id_, "Email": f"bad {number}"} for number, id_ in enumerate(ids)]
    records[4]["Email"] = "fine@example.com"

    results = client.update("Contact", records)

    # A line is an 18-character Id, a comma, an address and a newline: 7 fit in 200 bytes.
    assert client.api_calls[JOB_CREATE] == 2
    assert [result.success for result in results] == [i == 4 for i in range(9)]
    assert [result.index for result in results] == list(range(9))


# -- failures ------------------------------------------------------------------------------------


def test_failed_job_fails_every_record(
    make_client: Callable[..., SalesforceClient], salesforce_controls: SandboxControlClient
) -> None:
    client = make_client(bulk_threshold=2)
    ids = seed_contacts(salesforce_controls, 3)
    records = [{"Id": id_, "Title": "T", "Bogus__c": "x"} for id_ in ids]

    results = client.update("Contact", records)

    assert [result.success for result in results] == [False, False, False]
    assert {result.error_code for result in results} == {bulk.BULK_JOB_FAILED}
    assert all("Bogus__c" in (result.error_message or "") for result in results)
    assert client.api_calls[JOB_UNPROCESSED] == 1
    assert client.api_calls[JOB_SUCCEEDED] == 1


def test_job_past_deadline_is_aborted(
    make_client: Callable[..., SalesforceClient],
    salesforce_controls: SandboxControlClient,
    sleeps: Sleeps,
) -> None:
    client = make_client(bulk_threshold=2, bulk_job_timeout=20)
    ids = seed_contacts(salesforce_controls, 3, Title="Before")
    set_bulk_controls(salesforce_controls, in_progress_polls=100)
    records = [{"Id": id_, "Title": "Secret title"} for id_ in ids]

    with pytest.raises(SalesforceWriteOutcomeUnknownError) as raised:
        client.update("Contact", records)

    assert raised.value.record_indices == [0, 1, 2]
    assert raised.value.partial_results == []
    assert "did not finish within 20 s" in str(raised.value)
    assert "750" in str(raised.value)
    assert "Secret title" not in str(raised.value)
    assert sleeps == [1.0, 2.0, 4.0, 8.0, 5.0]
    # The close, then the abort.
    assert client.api_calls[JOB_PATCH] == 2
    stored = fetch_contacts(client, "Title")
    assert {record["Title"] for record in stored.values()} == {"Before"}


def test_unreadable_job_state_is_unknown_outcome(
    make_client: Callable[..., SalesforceClient], salesforce_controls: SandboxControlClient
) -> None:
    client = make_client(bulk_threshold=2)
    ids = seed_contacts(salesforce_controls, 5)
    set_bulk_controls(salesforce_controls, in_progress_polls=1)
    salesforce_controls.add_fault(path=r"/jobs/ingest/[^/]+$", method="GET", status=503)
    records = [{"Id": id_, "Title": "T"} for id_ in ids]

    with pytest.raises(SalesforceWriteOutcomeUnknownError) as raised:
        client.update("Contact", records)

    assert raised.value.record_indices == [0, 1, 2, 3, 4]
    assert raised.value.status == 503
    assert client.api_calls[JOB_GET] == 4
    assert client.api_calls[JOB_PATCH] == 2


def test_dropped_upload_falls_back_to_collections(
    make_client: Callable[..., SalesforceClient], salesforce_controls: SandboxControlClient
) -> None:
    client = make_client(bulk_threshold=2)
    ids = seed_contacts(salesforce_controls, 5)
    salesforce_controls.add_fault(path="/batches$", method="PUT", action="drop", count=1)

    results = client.update("Contact", [{"Id": id_, "Title": "After drop"} for id_ in ids])

    assert all(result.success for result in results)
    assert [result.id for result in results] == ids
    # The upload is not re-sent: the job is aborted and the records go through Collections.
    assert client.api_calls[JOB_UPLOAD] == 1
    assert client.api_calls[JOB_PATCH] == 1
    assert client.api_calls[JOB_GET] == 0
    assert client.api_calls[COLLECTION_UPDATE] == 1
    titles = {record["Title"] for record in fetch_contacts(client, "Title").values()}
    assert titles == {"After drop"}


def test_rejected_job_create_falls_back(
    make_client: Callable[..., SalesforceClient], salesforce_controls: SandboxControlClient
) -> None:
    client = make_client(bulk_threshold=2)
    ids = seed_contacts(salesforce_controls, 3)
    salesforce_controls.add_fault(
        path="/jobs/ingest$", method="POST", status=400, error_code="INVALIDJOB", count=1
    )

    results = client.update("Contact", [{"Id": id_, "Title": "T"} for id_ in ids])

    assert all(result.success for result in results)
    assert client.api_calls[JOB_CREATE] == 1
    assert client.api_calls[JOB_UPLOAD] == 0
    assert client.api_calls[COLLECTION_UPDATE] == 1


def test_close_503_is_retried(
    make_client: Callable[..., SalesforceClient], salesforce_controls: SandboxControlClient
) -> None:
    client = make_client(bulk_threshold=2)
    ids = seed_contacts(salesforce_controls, 3)
    salesforce_controls.add_fault(path=r"/jobs/ingest/[^/]+$", method="PATCH", count=1)

    results = client.update("Contact", [{"Id": id_, "Title": "T"} for id_ in ids])

    assert all(result.success for result in results)
    assert client.api_calls[JOB_PATCH] == 2
    assert client.api_calls[COLLECTION_UPDATE] == 0


def test_close_failure_with_open_job_falls_back(
    make_client: Callable[..., SalesforceClient], salesforce_controls: SandboxControlClient
) -> None:
    client = make_client(bulk_threshold=2, max_attempts=1)
    ids = seed_contacts(salesforce_controls, 3)
    salesforce_controls.add_fault(path=r"/jobs/ingest/[^/]+$", method="PATCH", count=1)

    results = client.update("Contact", [{"Id": id_, "Title": "T"} for id_ in ids])

    assert all(result.success for result in results)
    # The failed close, then the abort after the job was found still Open.
    assert client.api_calls[JOB_PATCH] == 2
    assert client.api_calls[JOB_GET] == 1
    assert client.api_calls[COLLECTION_UPDATE] == 1


def test_failure_keeps_earlier_job_results(
    make_client: Callable[..., SalesforceClient],
    salesforce_controls: SandboxControlClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bulk, "MAX_JOB_CSV_BYTES", 200)
    waits: list[float] = []

    def fail_second_job_poll(seconds: float) -> None:
        waits.append(seconds)
        # Each job waits 1 s and 2 s, so the third wait is the second job's first.
        if len(waits) == 3:
            salesforce_controls.add_fault(path=r"/jobs/ingest/[^/]+$", method="GET", status=500)

    client = make_client(bulk_threshold=2, max_attempts=1, sleep=fail_second_job_poll)
    ids = seed_contacts(salesforce_controls, 9)
    set_bulk_controls(salesforce_controls, in_progress_polls=1)
    records = [{"Id": id_, "Email": f"n{number}@example.com"} for number, id_ in enumerate(ids)]

    with pytest.raises(SalesforceWriteOutcomeUnknownError) as raised:
        client.update("Contact", records)

    # A line is 34 bytes and the header 9, so five records fit in the first job's 200 bytes.
    assert client.api_calls[JOB_CREATE] == 2
    assert raised.value.record_indices == [5, 6, 7, 8]
    assert [result.index for result in raised.value.partial_results] == list(range(5))
    assert all(result.success for result in raised.value.partial_results)
    assert isinstance(raised.value, SalesforceRequestError)


def test_transient_failures_resent_with_collections(
    make_client: Callable[..., SalesforceClient],
    salesforce_controls: SandboxControlClient,
    sleeps: Sleeps,
) -> None:
    client = make_client(bulk_threshold=3)
    ids = seed_contacts(salesforce_controls, 5)
    salesforce_controls.add_record_fault("Contact", ids[1:3], "UNABLE_TO_LOCK_ROW", times=1)
    salesforce_controls.add_record_fault("Contact", ids[4:], "FIELD_CUSTOM_VALIDATION_EXCEPTION")

    results = client.update("Contact", [{"Id": id_, "Title": "T"} for id_ in ids])

    assert [result.success for result in results] == [True, True, True, True, False]
    assert results[4].error_code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert sleeps == [2.0]
    assert client.api_calls[JOB_CREATE] == 1
    assert client.api_calls[COLLECTION_UPDATE] == 1


def test_many_transient_failures_resent_by_job(
    make_client: Callable[..., SalesforceClient],
    salesforce_controls: SandboxControlClient,
    sleeps: Sleeps,
) -> None:
    client = make_client(bulk_threshold=2, lock_retry_delays=(0.5, 1.5))
    ids = seed_contacts(salesforce_controls, 5)
    salesforce_controls.add_record_fault("Contact", ids[:3], "UNABLE_TO_LOCK_ROW", times=10)

    results = client.update("Contact", [{"Id": id_, "Title": "T"} for id_ in ids])

    assert [result.success for result in results] == [False, False, False, True, True]
    assert {results[i].error_code for i in range(3)} == {"UNABLE_TO_LOCK_ROW"}
    assert sleeps == [0.5, 1.5]
    assert client.api_calls[JOB_CREATE] == 3
    assert client.api_calls[COLLECTION_UPDATE] == 0


def test_expiry_mid_job_costs_one_login(
    make_client: Callable[..., SalesforceClient], salesforce_controls: SandboxControlClient
) -> None:
    expired: list[float] = []

    def expire_while_waiting(seconds: float) -> None:
        if not expired:
            salesforce_controls.expire_sessions()
        expired.append(seconds)

    client = make_client(bulk_threshold=2, sleep=expire_while_waiting)
    ids = seed_contacts(salesforce_controls, 3)
    set_bulk_controls(salesforce_controls, in_progress_polls=1)

    results = client.update("Contact", [{"Id": id_, "Title": "T"} for id_ in ids])

    assert all(result.success for result in results)
    assert expired == [1.0, 2.0]
    assert client.api_calls[LOGIN] == 2
    # The first poll got a 401 and was sent again after the new login.
    assert client.api_calls[JOB_GET] == 3
    assert client.api_calls == sandbox_counts(salesforce_controls)


def test_upload_401_costs_one_login(
    make_client: Callable[..., SalesforceClient], salesforce_controls: SandboxControlClient
) -> None:
    client = make_client(bulk_threshold=2)
    ids = seed_contacts(salesforce_controls, 3)
    salesforce_controls.add_fault(
        path="/batches$", method="PUT", status=401, error_code="INVALID_SESSION_ID", count=1
    )

    results = client.update("Contact", [{"Id": id_, "Title": "T"} for id_ in ids])

    assert all(result.success for result in results)
    assert client.api_calls[LOGIN] == 2
    assert client.api_calls[JOB_UPLOAD] == 2
    assert client.api_calls[COLLECTION_UPDATE] == 0


# -- privacy ---------------------------------------------------------------------------------------


def test_bulk_values_stay_out_of_logs(
    make_client: Callable[..., SalesforceClient],
    salesforce_controls: SandboxControlClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client(bulk_threshold=2)
    ids = seed_contacts(salesforce_controls, 3)
    set_bulk_controls(salesforce_controls, in_progress_polls=1)
    salesforce_controls.add_record_fault("Contact", ids[:1], "UNABLE_TO_LOCK_ROW", times=1)
    # The first request logs in, and in a fresh process the login sets up Airflow's logging,
    # which replaces the root logger's handlers, the capture's included. So the capture is
    # attached again after it.
    list(client.iter_query_pages("SELECT Id FROM Contact LIMIT 1"))
    if caplog.handler not in logging.getLogger().handlers:
        logging.getLogger().addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    records = [
        {"Id": ids[0], "Email": "first.secret@example.com", "Title": "Secrettitle"},
        {"Id": ids[1], "Email": "not an address"},
        {"Id": ids[2], "LastName": "Secretname"},
    ]

    results = client.update("Contact", records)
    upserts = client.upsert(
        "Contact",
        EXTERNAL_ID,
        [{EXTERNAL_ID: f"secret-key-{n}", "LastName": "Secretname"} for n in range(3)],
    )

    assert [result.success for result in results] == [True, False, True]
    assert results[1].error_code == "INVALID_EMAIL_ADDRESS"
    assert all(result.success for result in upserts)
    assert "Bulk API 2.0 job" in caplog.text
    assert "re-sending 1 records" in caplog.text
    for value in [
        "first.secret",
        "Secrettitle",
        "not an address",
        "Secretname",
        "secret-key",
    ]:
        assert value not in caplog.text


# -- encoding ----------------------------------------------------------------------------------


def test_encode_records_header_and_cells() -> None:
    records = [
        {"Id": "003000000000001AAA", "Title": None, "HasOptedOutOfEmail": True},
        {"id": "003000000000002AAA", "Department": 'R&D, "East"\nFloor 2', "Title": ""},
        {"Id": "003000000000003AAA", "Engagement_Score__c": 2.5, "NumberOfEmployees": 7},
    ]

    encoded = bulk.encode_records("update", records, "Id")

    assert encoded.header == [
        "Id",
        "Title",
        "HasOptedOutOfEmail",
        "Department",
        "Engagement_Score__c",
        "NumberOfEmployees",
    ]
    assert encoded.key_column == "Id"
    assert encoded.lines[0] == "003000000000001AAA,#N/A,true,,,\n"
    assert encoded.lines[1] == '003000000000002AAA,#N/A,,"R&D, ""East""\nFloor 2",,\n'
    assert encoded.lines[2] == "003000000000003AAA,,,,2.5,7\n"
    assert encoded.keys == ["003000000000001", "003000000000002", "003000000000003"]


def test_encode_records_rejects_repeated_name() -> None:
    with pytest.raises(bulk.NotEncodableError, match="position 0 names title twice"):
        bulk.encode_records("update", [{"Id": "003000000000001AAA", "Title": 1, "title": 2}], "Id")


def test_upsert_keys_ignore_case() -> None:
    with pytest.raises(bulk.NotEncodableError, match="position 1 repeats"):
        bulk.encode_records("upsert", [{"Ext__c": "Key"}, {"Ext__c": "KEY"}], "Ext__c")


def test_to_18_character_id_matches_sandbox() -> None:
    for record_id in ["003000000000001", "001Dn00000AbCdE", "a0BzZ0000012345", "00Q5e00000XyZzZ"]:
        assert bulk.to_18_character_id(record_id) == normalize_id(record_id)
    assert bulk.to_18_character_id("003000000000001AAA") == "003000000000001AAA"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (None, "#N/A"),
        ("", "#N/A"),
        (False, "false"),
        (0, "0"),
        (-1.25, "-1.25"),
        (0.00001, "1e-05"),
        ("#N/A", None),
        (float("inf"), None),
        (float("nan"), None),
        ({"Ext__c": "x"}, None),
    ],
)
def test_encode_value_cells(value: object, cell: str | None) -> None:
    assert bulk.encode_value(value) == cell


class _CsvResponse:
    """The parts of a ``requests.Response`` that reading job results uses."""

    def __init__(self, text: str) -> None:
        self.content = text.encode("utf-8")
        self.url = "https://example.my.salesforce.com/services/data/v59.0/jobs/ingest/750/x"
        self.status_code = 200


class _CsvRest:
    def __init__(self, text: str) -> None:
        self.text = text

    def request(self, method: str, resource: str, **kwargs: object) -> _CsvResponse:
        return _CsvResponse(self.text)


def test_short_result_row_is_request_error() -> None:
    from include.cerkl_sync.salesforce_io.bulk import IngestJob
    from include.cerkl_sync.salesforce_io.errors import SalesforceRequestError

    rest = _CsvRest('"sf__Id","sf__Error","LastName","Id"\n"003","ERR","Lee"\n')
    job = IngestJob(
        rest,  # type: ignore[arg-type]
        sobject="Contact",
        operation="update",
        external_id_field=None,
        sleep=lambda seconds: None,
        timeout=10,
    )
    job.job_id = "750000000000001AAA"

    with pytest.raises(SalesforceRequestError, match="result row 1 .* 3 columns .* 4"):
        job._result_rows("failedResults", "Id")
