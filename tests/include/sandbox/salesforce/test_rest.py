"""REST contract: sObject CRUD, upsert, describe, collections, paging, limits and controls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from include.sandbox.salesforce.app import endpoint_key


def _contacts(count: int, prefix: str = "Person") -> list[dict[str, Any]]:
    return [
        {"LastName": f"{prefix}{index:04d}", "Email": f"p{index}@example.com"}
        for index in range(count)
    ]


def _error_code(error: Exception) -> str:
    return error.content[0]["errorCode"]  # type: ignore[attr-defined]


# Single records


def test_create_read_update_delete(sf: Salesforce, sf_server: Any) -> None:
    created = sf.Contact.create({"LastName": "Lovelace", "FirstName": "Ada", "Email": "a@b.io"})
    assert created["success"] is True
    record_id = created["id"]
    assert len(record_id) == 18
    assert record_id.startswith("003")

    record = sf.Contact.get(record_id)
    assert record["Name"] == "Ada Lovelace"
    assert record["HasOptedOutOfEmail"] is False
    assert record["CreatedDate"].endswith("+0000")
    assert sf.Contact.get(record_id[:15])["Id"] == record_id

    sf_server.control("POST", "clock/advance", {"seconds": 60})
    assert sf.Contact.update(record_id, {"Title": "Countess"}) == 204
    updated = sf.Contact.get(record_id)
    assert updated["Title"] == "Countess"
    assert updated["SystemModstamp"] > record["SystemModstamp"]
    assert updated["CreatedDate"] == record["CreatedDate"]

    assert sf.Contact.delete(record_id) == 204
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 0
    deleted = sf.query_all(
        f"SELECT Id, IsDeleted FROM Contact WHERE Id = '{record_id}'", include_deleted=True
    )
    assert deleted["records"][0]["IsDeleted"] is True
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Contact.update(record_id, {"Title": "x"})
    assert _error_code(caught.value) == "ENTITY_IS_DELETED"


def test_get_unknown_record_not_found(sf: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound) as caught:
        sf.Contact.get("003000000000001AAA")
    assert _error_code(caught.value) == "NOT_FOUND"


@pytest.mark.parametrize(
    ("body", "error_code"),
    [
        ({"FirstName": "NoLast"}, "REQUIRED_FIELD_MISSING"),
        ({"LastName": "X", "Email": "not-an-email"}, "INVALID_EMAIL_ADDRESS"),
        ({"LastName": "X", "Email": "a b@example.com"}, "INVALID_EMAIL_ADDRESS"),
        ({"LastName": "X" * 81}, "STRING_TOO_LONG"),
        ({"LastName": "X", "Interest_1__c": "y" * 256}, "STRING_TOO_LONG"),
        ({"LastName": "X", "Foo__c": 1}, "INVALID_FIELD"),
        ({"LastName": "X", "Name": "Full Name"}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
        ({"LastName": "X", "AccountId": "001000000000001AAA"}, "INVALID_CROSS_REFERENCE_KEY"),
        ({"LastName": "X", "AccountId": "garbage"}, "INVALID_CROSS_REFERENCE_KEY"),
        ({"LastName": "X", "HasOptedOutOfEmail": "maybe"}, "JSON_PARSER_ERROR"),
        ({"LastName": "X", "Id": "003000000000001AAA"}, "INVALID_FIELD"),
    ],
)
def test_create_validation_error(sf: Salesforce, body: dict[str, Any], error_code: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Contact.create(body)
    assert _error_code(caught.value) == error_code


def test_create_email_rule_accepts_common_forms(sf: Salesforce) -> None:
    for email in ("first.last+tag@sub.example.co.uk", "o'hara@example.ie", "X_Y@EXAMPLE.COM"):
        assert sf.Contact.create({"LastName": "Ok", "Email": email})["success"] is True


def test_upsert_by_external_id(sf: Salesforce) -> None:
    path = "Cerkl_Subscriber_Id__c/sub-1"
    response = sf.Contact.upsert(path, {"LastName": "First"}, raw_response=True)
    assert response.status_code == 201
    assert response.json()["success"] is True
    created_id = response.json()["id"]

    assert sf.Contact.upsert(path, {"LastName": "Second"}) == 204
    record = sf.Contact.get_by_custom_id("Cerkl_Subscriber_Id__c", "sub-1")
    assert record["Id"] == created_id
    assert record["LastName"] == "Second"
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 1


def test_duplicate_external_id_rejected(sf: Salesforce) -> None:
    sf.Contact.create({"LastName": "A", "Cerkl_Subscriber_Id__c": "dup"})
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Contact.create({"LastName": "B", "Cerkl_Subscriber_Id__c": "DUP"})
    assert _error_code(caught.value) == "DUPLICATE_VALUE"


def test_duplicate_campaign_member_rejected(sf: Salesforce) -> None:
    contact_id = sf.Contact.create({"LastName": "Member", "Email": "m@example.com"})["id"]
    campaign_id = sf.Campaign.create({"Name": "Launch", "Type": "Email"})["id"]
    member = sf.CampaignMember.create({"CampaignId": campaign_id, "ContactId": contact_id})
    assert member["id"].startswith("00v")
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.CampaignMember.create({"CampaignId": campaign_id, "ContactId": contact_id})
    assert _error_code(caught.value) == "DUPLICATE_VALUE"
    copied = sf.query(f"SELECT Email, Status FROM CampaignMember WHERE Id = '{member['id']}'")
    assert copied["records"][0]["Email"] == "m@example.com"
    assert copied["records"][0]["Status"] == "Sent"


def test_describe_contact_fields(sf: Salesforce) -> None:
    description = sf.Contact.describe()
    assert description["keyPrefix"] == "003"
    fields = {field["name"]: field for field in description["fields"]}
    external = fields["Cerkl_Subscriber_Id__c"]
    assert external["externalId"] is True
    assert external["unique"] is True
    assert external["length"] == 255
    assert fields["Name"]["createable"] is False
    assert fields["Name"]["updateable"] is False
    assert fields["LastName"]["nillable"] is False
    assert fields["Email"]["type"] == "email"
    assert fields["Cerkl_Unsubscribe__c"]["type"] == "boolean"
    assert fields["Engagement_Score__c"]["type"] == "double"
    for name in ("Interest_1__c", "Interest_5__c", "MasterRecordId", "SystemModstamp"):
        assert name in fields
    for key in ("name", "type", "length", "nillable", "externalId", "unique", "createable"):
        assert key in fields["Email"]
    assert sf.Account.describe()["keyPrefix"] == "001"


def test_unknown_sobject_not_found(sf: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound):
        sf.Foo.describe()


# Collections


def test_collection_create_200_records(sf: Salesforce) -> None:
    body = {
        "allOrNone": False,
        "records": [{"attributes": {"type": "Contact"}, **c} for c in _contacts(200)],
    }
    results = sf.restful("composite/sobjects", method="POST", json=body)
    assert len(results) == 200
    assert all(result["success"] for result in results)
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 200


def test_collection_rejects_201_records(sf: Salesforce) -> None:
    body = {"records": [{"attributes": {"type": "Contact"}, **c} for c in _contacts(201)]}
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.restful("composite/sobjects", method="POST", json=body)
    assert _error_code(caught.value) == "EXCEEDED_ID_LIMIT"
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 0


def test_collection_partial_success_in_order(sf: Salesforce) -> None:
    records = [
        {"attributes": {"type": "Contact"}, "LastName": "Good1"},
        {"attributes": {"type": "Contact"}, "Email": "no-last-name@example.com"},
        {"attributes": {"type": "Account"}, "Name": "Mixed Types Ltd"},
    ]
    results = sf.restful(
        "composite/sobjects", method="POST", json={"allOrNone": False, "records": records}
    )
    assert [result["success"] for result in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert results[2]["id"].startswith("001")


def test_collection_all_or_none_rolls_back(sf: Salesforce) -> None:
    records = [
        {"attributes": {"type": "Contact"}, "LastName": "Good1"},
        {"attributes": {"type": "Contact"}, "LastName": "Bad", "Email": "bad"},
        {"attributes": {"type": "Contact"}, "LastName": "Good2"},
    ]
    results = sf.restful(
        "composite/sobjects", method="POST", json={"allOrNone": True, "records": records}
    )
    codes = [result["errors"][0]["statusCode"] for result in results]
    assert codes == [
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "INVALID_EMAIL_ADDRESS",
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    ]
    assert [result["id"] for result in results] == [None, None, None]
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 0


def test_collection_update_retrieve_delete(sf: Salesforce) -> None:
    ids = [sf.Contact.create(c)["id"] for c in _contacts(3)]
    update = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Contact"}, "id": record_id, "Title": f"T{index}"}
            for index, record_id in enumerate(ids)
        ],
    }
    results = sf.restful("composite/sobjects", method="PATCH", json=update)
    assert all(result["success"] for result in results)

    fetched = sf.restful(
        "composite/sobjects/Contact",
        params={"ids": ",".join([ids[0], "003000000000009AAA", ids[2]]), "fields": "Id,Title"},
    )
    assert fetched[0]["Title"] == "T0"
    assert fetched[1] is None
    assert fetched[2]["Title"] == "T2"

    deleted = sf.restful(
        "composite/sobjects",
        method="DELETE",
        params={"ids": ",".join(ids[:2]), "allOrNone": "false"},
    )
    assert [result["id"] for result in deleted] == ids[:2]
    assert all(result["success"] for result in deleted)
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 1


def test_collection_upsert_by_external_id(sf: Salesforce) -> None:
    sf.Contact.create({"LastName": "Existing", "Cerkl_Subscriber_Id__c": "s-1"})
    body = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Contact"}, "Cerkl_Subscriber_Id__c": "s-1", "Title": "U"},
            {"attributes": {"type": "Contact"}, "Cerkl_Subscriber_Id__c": "s-2", "LastName": "N"},
            {"attributes": {"type": "Contact"}, "Cerkl_Subscriber_Id__c": "s-3"},
        ],
    }
    results = sf.restful(
        "composite/sobjects/Contact/Cerkl_Subscriber_Id__c", method="PATCH", json=body
    )
    assert [result["success"] for result in results] == [True, True, False]
    assert [result.get("created") for result in results[:2]] == [False, True]
    assert results[2]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"


# Record faults and merge


def test_record_fault_fails_writes_given_times(sf: Salesforce, sf_server: Any) -> None:
    record_id = sf.Contact.create({"LastName": "Locked"})["id"]
    sf_server.control(
        "POST",
        "record_faults",
        {"sobject": "Contact", "ids": [record_id], "error_code": "UNABLE_TO_LOCK_ROW", "times": 2},
    )
    body = {"records": [{"attributes": {"type": "Contact"}, "id": record_id, "Title": "A"}]}
    first = sf.restful("composite/sobjects", method="PATCH", json=body)
    assert first[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Contact.update(record_id, {"Title": "B"})
    assert _error_code(caught.value) == "UNABLE_TO_LOCK_ROW"
    assert sf.Contact.update(record_id, {"Title": "C"}) == 204


def test_merge_sets_master_record_id(sf: Salesforce, sf_server: Any) -> None:
    master = sf.Contact.create({"LastName": "Master"})["id"]
    duplicate = sf.Contact.create({"LastName": "Duplicate"})["id"]
    campaign = sf.Campaign.create({"Name": "C"})["id"]
    sf.CampaignMember.create({"CampaignId": campaign, "ContactId": duplicate})
    sf_server.control(
        "POST", "merge", {"sobject": "Contact", "master_id": master, "merged_ids": [duplicate]}
    )
    merged = sf.query_all(
        f"SELECT IsDeleted, MasterRecordId FROM Contact WHERE Id = '{duplicate}'",
        include_deleted=True,
    )["records"][0]
    assert merged["IsDeleted"] is True
    assert merged["MasterRecordId"] == master
    members = sf.query("SELECT ContactId FROM CampaignMember")["records"]
    assert [member["ContactId"] for member in members] == [master]


# getUpdated and getDeleted


def test_updated_and_deleted_windows(sf: Salesforce, sf_server: Any) -> None:
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    sf_server.control("PUT", "clock", {"now": start.isoformat(), "frozen": True})
    kept_id = sf.Contact.create({"LastName": "Kept"})["id"]
    deleted_id = sf.Contact.create({"LastName": "Gone"})["id"]
    sf_server.control("POST", "clock/advance", {"seconds": 120})
    sf.Contact.delete(deleted_id)
    sf_server.control("POST", "clock/advance", {"seconds": 120})

    updated = sf.Contact.updated(start - timedelta(minutes=1), start + timedelta(minutes=10))
    assert updated["ids"] == [kept_id]
    assert updated["latestDateCovered"] == "2026-03-01T12:04:00.000+0000"
    deleted = sf.Contact.deleted(start - timedelta(minutes=1), start + timedelta(minutes=10))
    assert deleted["deletedRecords"] == [
        {"id": deleted_id, "deletedDate": "2026-03-01T12:02:00.000+0000"}
    ]

    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Contact.deleted(start - timedelta(days=16), start)
    assert _error_code(caught.value) == "INVALID_REPLICATION_DATE"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Contact.updated(start, start + timedelta(seconds=30))
    assert _error_code(caught.value) == "INVALID_REPLICATION_DATE"
    sf_server.control("PUT", "clock", {})


# Query paging


def test_query_all_iter_pages(sf: Salesforce, sf_server: Any) -> None:
    sf_server.seed("Contact", _contacts(4500))
    first = sf.query("SELECT Id FROM Contact ORDER BY LastName")
    assert len(first["records"]) == 2000
    assert first["done"] is False
    assert first["totalSize"] == 4500
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    names = [
        r["LastName"] for r in sf.query_all_iter("SELECT LastName FROM Contact ORDER BY LastName")
    ]
    assert len(names) == 4500
    assert names == sorted(names)


def test_query_batch_size_header(sf: Salesforce, sf_server: Any) -> None:
    sf_server.seed("Contact", _contacts(450))
    headers = {"Sforce-Query-Options": "batchSize=200"}
    page = sf.query("SELECT Id FROM Contact", headers=headers)
    assert len(page["records"]) == 200
    records = list(sf.query_all_iter("SELECT Id FROM Contact", headers=headers))
    assert len(records) == 450
    assert len({record["Id"] for record in records}) == 450


def test_query_unknown_locator(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query_more("01gUNKNOWN-2000")
    assert _error_code(caught.value) == "INVALID_QUERY_LOCATOR"


def test_query_respects_limit_across_pages(sf: Salesforce, sf_server: Any) -> None:
    sf_server.seed("Contact", _contacts(2500))
    records = list(sf.query_all_iter("SELECT Id FROM Contact LIMIT 2100"))
    assert len(records) == 2100


# Limits


def test_api_usage_header_and_allowance(sf: Salesforce, sf_server: Any) -> None:
    sf.query("SELECT COUNT() FROM Contact")
    usage = sf.api_usage["api-usage"]
    assert usage.total == 100_000
    sf_server.control("PUT", "api_limit", {"max": 5, "used": 3})
    sf.query("SELECT COUNT() FROM Contact")
    assert sf.api_usage["api-usage"].used == 4
    sf.query("SELECT COUNT() FROM Contact")
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.query("SELECT COUNT() FROM Contact")
    assert _error_code(caught.value) == "REQUEST_LIMIT_EXCEEDED"
    # Logins do not count against the allowance.
    sf_server.client()
    assert sf_server.control("GET", "api_limit")["used"] == 5


def test_limits_resource(sf: Salesforce, sf_server: Any) -> None:
    sf_server.control("PUT", "api_limit", {"max": 1000, "used": 10})
    limits = sf.limits()
    assert limits["DailyApiRequests"] == {"Max": 1000, "Remaining": 989}


def test_uri_over_16384_bytes_is_414(sf: Salesforce, sf_server: Any) -> None:
    ids = ",".join(["003000000000001AAA"] * 1000)
    response = requests.get(
        f"{sf_server.url}/services/data/v59.0/composite/sobjects/Contact",
        params={"ids": ids, "fields": "Id"},
        headers={"Authorization": f"Bearer {sf.session_id}"},
        timeout=10,
    )
    assert response.status_code == 414
    assert response.json()[0]["errorCode"] == "URI_TOO_LONG"


def test_long_statement_is_malformed_query(sf: Salesforce, sf_server: Any) -> None:
    statement = "SELECT Id FROM Contact WHERE LastName IN (" + ",".join(["'x'"] * 30_000) + ")"
    response = requests.post(
        f"{sf_server.url}/services/data/v59.0/jobs/query",
        json={"operation": "query", "query": statement},
        headers={"Authorization": f"Bearer {sf.session_id}"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "MALFORMED_QUERY"


def test_old_api_version_not_found(sf_server: Any, sf: Salesforce) -> None:
    response = requests.get(
        f"{sf_server.url}/services/data/v58.0/limits",
        headers={"Authorization": f"Bearer {sf.session_id}"},
        timeout=10,
    )
    assert response.status_code == 404
    assert response.json()[0]["errorCode"] == "NOT_FOUND"
    versions = requests.get(f"{sf_server.url}/services/data/", timeout=10).json()
    assert versions[0]["version"] == "59.0"


def test_controls_fault_uses_salesforce_error_shape(sf: Salesforce, sf_server: Any) -> None:
    sf_server.control(
        "POST",
        "faults",
        {
            "path": "/query",
            "action": "error",
            "status": 503,
            "error_code": "SERVER_UNAVAILABLE",
            "count": 1,
        },
    )
    with pytest.raises(SalesforceGeneralError) as caught:
        sf.query("SELECT COUNT() FROM Contact")
    assert caught.value.content[0]["errorCode"] == "SERVER_UNAVAILABLE"
    sf.query("SELECT COUNT() FROM Contact")
    sf_server.control("DELETE", "faults")


def test_counters_use_endpoint_keys(sf: Salesforce, sf_server: Any) -> None:
    sf_server.control("DELETE", "counters")
    record_id = sf.Contact.create({"LastName": "Counted"})["id"]
    sf.Contact.update(record_id, {"Title": "x"})
    sf.query("SELECT Id FROM Contact")
    counters = sf_server.control("GET", "counters")["by_endpoint"]
    assert counters == {
        "POST /services/data/vXX.X/sobjects/Contact": 1,
        "PATCH /services/data/vXX.X/sobjects/Contact/{id}": 1,
        "GET /services/data/vXX.X/query": 1,
    }


@pytest.mark.parametrize(
    ("method", "path", "key"),
    [
        ("GET", "/services/data/v59.0/query/", "GET /services/data/vXX.X/query"),
        ("GET", "/services/data/v60.0/query/01gABC-2000", "GET /services/data/vXX.X/query/{id}"),
        (
            "PATCH",
            "/services/data/v59.0/composite/sobjects/Contact/Cerkl_Subscriber_Id__c",
            "PATCH /services/data/vXX.X/composite/sobjects/Contact/Cerkl_Subscriber_Id__c",
        ),
        (
            "PATCH",
            "/services/data/v59.0/sobjects/Contact/Cerkl_Subscriber_Id__c/abc",
            "PATCH /services/data/vXX.X/sobjects/Contact/Cerkl_Subscriber_Id__c/{id}",
        ),
        (
            "GET",
            "/services/data/v59.0/sobjects/Contact/describe/",
            "GET /services/data/vXX.X/sobjects/Contact/describe",
        ),
        ("POST", "/services/oauth2/token", "POST /services/oauth2/token"),
        ("POST", "/services/Soap/u/59.0", "POST /services/Soap/u/{version}"),
        (
            "PUT",
            "/services/data/v59.0/jobs/ingest/7508d0000000001AAA/batches",
            "PUT /services/data/vXX.X/jobs/ingest/{id}/batches",
        ),
        ("GET", "/favicon.ico", None),
    ],
)
def test_endpoint_key(method: str, path: str, key: str | None) -> None:
    assert endpoint_key(method, path) == key


def test_retrieve_selected_fields(sf: Salesforce) -> None:
    record_id = sf.Contact.create({"LastName": "Fields", "Title": "Chief"})["id"]
    record = sf.restful(f"sobjects/Contact/{record_id}", params={"fields": "Title,LastName"})
    assert set(record) == {"attributes", "Title", "LastName"}
    assert record["Title"] == "Chief"


def test_query_all_pages_include_deleted(sf: Salesforce, sf_server: Any) -> None:
    contacts = _contacts(2100)
    for contact in contacts[:50]:
        contact["IsDeleted"] = True
    sf_server.seed("Contact", contacts)
    live = list(sf.query_all_iter("SELECT Id FROM Contact"))
    everything = list(sf.query_all_iter("SELECT Id, IsDeleted FROM Contact", include_deleted=True))
    assert len(live) == 2050
    assert len(everything) == 2100
    assert sum(record["IsDeleted"] for record in everything) == 50


def test_seed_and_reset_control_routes(sf: Salesforce, sf_server: Any) -> None:
    seeded = sf_server.control("POST", "seed", {"records": {"Account": [{"Name": "Seeded"}]}})
    (account_id,) = seeded["ids"]["Account"]
    assert sf.Account.get(account_id)["Name"] == "Seeded"
    sf_server.control("POST", "reset")
    assert sf_server.sandbox.store.count("Account") == 0


def test_api_usage_restarts_each_sandbox_day(sf: Salesforce, sf_server: Any) -> None:
    sf_server.control("PUT", "api_limit", {"max": 10, "used": 10})
    with pytest.raises(SalesforceRefusedRequest):
        sf.query("SELECT COUNT() FROM Contact")
    sf_server.control("POST", "clock/advance", {"seconds": 86_400})
    sf = sf_server.client()
    sf.query("SELECT COUNT() FROM Contact")
    assert sf.api_usage["api-usage"].used == 1
    sf_server.control("PUT", "clock", {})


def test_limit_header_on_error_response(sf: Salesforce, sf_server: Any) -> None:
    response = requests.get(
        f"{sf_server.url}/services/data/v59.0/query",
        params={"q": "SELECT Nope FROM Contact"},
        headers={"Authorization": f"Bearer {sf.session_id}"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.headers["Sforce-Limit-Info"].startswith("api-usage=")


def test_control_route_rejects_invalid_body(sf_server: Any) -> None:
    response = requests.put(f"{sf_server.url}/__sandbox__/api_limit", json={"max": -1}, timeout=10)
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "INVALID_CONTROL_REQUEST"


def test_version_root_lists_resources(sf: Salesforce, sf_server: Any) -> None:
    headers = {"Authorization": f"Bearer {sf.session_id}"}
    for path in ("/services/data/v59.0", "/services/data/v59.0/"):
        response = requests.get(f"{sf_server.url}{path}", headers=headers, timeout=10)
        assert response.status_code == 200
        assert response.json()["query"] == "/services/data/v59.0/query"
