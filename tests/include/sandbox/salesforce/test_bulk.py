"""Bulk API 2.0 contract: ingest jobs and query jobs through simple-salesforce's bulk2."""

from __future__ import annotations

import csv
import io
from typing import Any

import requests
from simple_salesforce import Salesforce


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_bulk2_insert_with_failures(sf: Salesforce) -> None:
    records = [
        {"LastName": "Bulk1", "Email": "b1@example.com"},
        {"LastName": "Bulk2", "Email": "broken"},
        {"LastName": "Bulk3", "Email": "b3@example.com"},
    ]
    (result,) = sf.bulk2.Contact.insert(records=records, wait=0.05)
    assert result["numberRecordsProcessed"] == 3
    assert result["numberRecordsFailed"] == 1
    assert result["numberRecordsTotal"] == 3

    successes = _rows(sf.bulk2.Contact.get_successful_records(result["job_id"]))
    assert [row["LastName"] for row in successes] == ["Bulk1", "Bulk3"]
    assert all(row["sf__Created"] == "true" for row in successes)
    assert all(row["sf__Id"].startswith("003") for row in successes)

    failures = _rows(sf.bulk2.Contact.get_failed_records(result["job_id"]))
    assert [row["LastName"] for row in failures] == ["Bulk2"]
    assert failures[0]["sf__Error"].startswith("INVALID_EMAIL_ADDRESS:")
    assert _rows(sf.bulk2.Contact.get_unprocessed_records(result["job_id"])) == []
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 2


def test_bulk2_upsert_and_null_value(sf: Salesforce) -> None:
    sf.Contact.create({"LastName": "Old", "Title": "Keep", "Cerkl_Subscriber_Id__c": "e-1"})
    records = [
        {"Cerkl_Subscriber_Id__c": "e-1", "LastName": "Renamed", "Title": "#N/A"},
        {"Cerkl_Subscriber_Id__c": "e-2", "LastName": "New", "Title": ""},
    ]
    (result,) = sf.bulk2.Contact.upsert(
        records=records, external_id_field="Cerkl_Subscriber_Id__c", wait=0.05
    )
    assert result["numberRecordsFailed"] == 0
    successes = _rows(sf.bulk2.Contact.get_successful_records(result["job_id"]))
    assert [row["sf__Created"] for row in successes] == ["false", "true"]
    renamed = sf.Contact.get_by_custom_id("Cerkl_Subscriber_Id__c", "e-1")
    assert renamed["LastName"] == "Renamed"
    assert renamed["Title"] is None


def test_bulk2_delete(sf: Salesforce) -> None:
    ids = [sf.Contact.create({"LastName": f"D{index}"})["id"] for index in range(3)]
    (result,) = sf.bulk2.Contact.delete(
        records=[{"Id": record_id} for record_id in ids[:2]], wait=0.05
    )
    assert result["numberRecordsProcessed"] == 2
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 1


def test_bulk2_query_pages(sf: Salesforce, sf_server: Any) -> None:
    sf_server.seed(
        "Contact",
        [
            {"LastName": f"Q{index:03d}", "HasOptedOutOfEmail": index % 2 == 0}
            for index in range(25)
        ],
    )
    pages = list(
        sf.bulk2.Contact.query(
            "SELECT LastName, HasOptedOutOfEmail FROM Contact ORDER BY LastName",
            max_records=10,
            wait=0.05,
        )
    )
    assert len(pages) == 3
    rows = [row for page in pages for row in _rows(page)]
    assert [row["LastName"] for row in rows] == [f"Q{index:03d}" for index in range(25)]
    assert rows[0]["HasOptedOutOfEmail"] == "true"
    assert rows[1]["HasOptedOutOfEmail"] == "false"


def test_bulk2_query_result_headers(sf: Salesforce, sf_server: Any) -> None:
    sf_server.seed("Contact", [{"LastName": f"H{index}"} for index in range(3)])
    headers = {"Authorization": f"Bearer {sf.session_id}"}
    base = f"{sf_server.url}/services/data/v59.0/jobs/query"
    job = requests.post(
        base,
        json={"operation": "query", "query": "SELECT Id, Account.Name FROM Contact"},
        headers=headers,
        timeout=10,
    ).json()
    assert requests.get(f"{base}/{job['id']}", headers=headers, timeout=10).json()["state"] == (
        "JobComplete"
    )
    first = requests.get(
        f"{base}/{job['id']}/results", params={"maxRecords": 2}, headers=headers, timeout=10
    )
    assert first.headers["Sforce-NumberOfRecords"] == "2"
    assert first.headers["Sforce-Locator"] != "null"
    assert first.text.splitlines()[0] == '"Id","Account.Name"' or first.text.startswith(
        "Id,Account.Name"
    )
    last = requests.get(
        f"{base}/{job['id']}/results",
        params={"maxRecords": 2, "locator": first.headers["Sforce-Locator"]},
        headers=headers,
        timeout=10,
    )
    assert last.headers["Sforce-NumberOfRecords"] == "1"
    assert last.headers["Sforce-Locator"] == "null"


def test_bulk2_ingest_unknown_column_fails_job(sf: Salesforce, sf_server: Any) -> None:
    headers = {"Authorization": f"Bearer {sf.session_id}", "Content-Type": "application/json"}
    base = f"{sf_server.url}/services/data/v59.0/jobs/ingest"
    job = requests.post(
        base,
        json={"object": "Contact", "operation": "insert", "contentType": "CSV"},
        headers=headers,
        timeout=10,
    ).json()
    assert job["state"] == "Open"
    upload = requests.put(
        f"{base}/{job['id']}/batches",
        data=b"LastName,Bogus__c\nX,1\n",
        headers={**headers, "Content-Type": "text/csv"},
        timeout=10,
    )
    assert upload.status_code == 201
    closed = requests.patch(
        f"{base}/{job['id']}", json={"state": "UploadComplete"}, headers=headers, timeout=10
    ).json()
    assert closed["state"] == "Failed"
    assert "Bogus__c" in closed["errorMessage"]


def _ingest_update(
    sf: Salesforce, sf_server: Any, data: bytes
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Create an update job, upload ``data`` and close it.

    :return: the job URL, the request headers and the close response.
    """
    headers = {"Authorization": f"Bearer {sf.session_id}", "Content-Type": "application/json"}
    base = f"{sf_server.url}/services/data/v59.0/jobs/ingest"
    job = requests.post(
        base,
        json={"object": "Contact", "operation": "update", "contentType": "CSV"},
        headers=headers,
        timeout=10,
    ).json()
    url = f"{base}/{job['id']}"
    upload = requests.put(
        f"{url}/batches", data=data, headers={**headers, "Content-Type": "text/csv"}, timeout=10
    )
    assert upload.status_code == 201
    closed = requests.patch(url, json={"state": "UploadComplete"}, headers=headers, timeout=10)
    return url, headers, closed.json()


def test_bulk2_job_in_progress_for_set_polls(sf: Salesforce, sf_server: Any) -> None:
    (record_id,) = sf_server.seed("Contact", [{"LastName": "Before"}])
    sf_server.control("PUT", "bulk_ingest", {"in_progress_polls": 2})

    url, headers, closed = _ingest_update(
        sf, sf_server, f"Id,LastName\n{record_id},After\n".encode()
    )

    assert closed["state"] == "UploadComplete"
    states = [requests.get(url, headers=headers, timeout=10).json()["state"] for _ in range(3)]
    assert states == ["InProgress", "InProgress", "JobComplete"]
    assert sf.Contact.get(record_id)["LastName"] == "After"


def test_bulk2_abort_in_progress_leaves_unprocessed(sf: Salesforce, sf_server: Any) -> None:
    (record_id,) = sf_server.seed("Contact", [{"LastName": "Before"}])
    sf_server.control("PUT", "bulk_ingest", {"in_progress_polls": 1})
    url, headers, _ = _ingest_update(sf, sf_server, f"Id,LastName\n{record_id},After\n".encode())

    assert requests.get(url, headers=headers, timeout=10).json()["state"] == "InProgress"
    aborted = requests.patch(url, json={"state": "Aborted"}, headers=headers, timeout=10).json()

    assert aborted["state"] == "Aborted"
    unprocessed = _rows(requests.get(f"{url}/unprocessedrecords", headers=headers, timeout=10).text)
    assert [row["Id"] for row in unprocessed] == [record_id]
    assert requests.get(url, headers=headers, timeout=10).json()["state"] == "Aborted"
    assert sf.Contact.get(record_id)["LastName"] == "Before"


def test_bulk2_results_in_reversed_order(sf: Salesforce, sf_server: Any) -> None:
    ids = sf_server.seed("Contact", [{"LastName": f"R{index}"} for index in range(3)])
    sf_server.control("PUT", "bulk_ingest", {"result_order": "reversed"})
    data = "Id,Email\n" + "".join(
        f"{record_id},r{n}@example.com\n" for n, record_id in enumerate(ids)
    )
    data += f"{ids[0]},broken\n{ids[1]},also broken\n"

    url, headers, closed = _ingest_update(sf, sf_server, data.encode())

    assert closed["state"] == "JobComplete"
    successes = _rows(requests.get(f"{url}/successfulResults", headers=headers, timeout=10).text)
    failures = _rows(requests.get(f"{url}/failedResults", headers=headers, timeout=10).text)
    assert [row["sf__Id"] for row in successes] == list(reversed(ids))
    assert [row["Email"] for row in failures] == ["also broken", "broken"]


def test_bulk2_controls_reset_and_validate(sf_server: Any) -> None:
    assert sf_server.control(
        "PUT", "bulk_ingest", {"in_progress_polls": 3, "result_order": "reversed"}
    ) == {"in_progress_polls": 3, "result_order": "reversed"}

    sf_server.control("POST", "reset")

    assert sf_server.control("GET", "bulk_ingest") == {
        "in_progress_polls": 0,
        "result_order": "input",
    }
    for body in ({"in_progress_polls": -1}, {"in_progress_polls": True}, {"result_order": "x"}):
        response = requests.put(f"{sf_server.url}/__sandbox__/bulk_ingest", json=body, timeout=10)
        assert response.status_code == 400
        assert response.json()[0]["errorCode"] == "INVALID_CONTROL_REQUEST"
