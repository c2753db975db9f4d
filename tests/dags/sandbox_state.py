"""Read and change both sandboxes through their public APIs, for end-to-end assertions."""

from __future__ import annotations

from collections import Counter
from typing import Any

from simple_salesforce import Salesforce

from include.cerkl_sync.records import normalize_email
from include.cerkl_sync.salesforce_transport import build_salesforce_session
from include.sandbox.local_airflow import (
    SALESFORCE_PASSWORD,
    SALESFORCE_TOKEN,
    SALESFORCE_USERNAME,
)
from tests.include.sandbox.cerkl.api_client import CerklApi, data_of

CONTACT_FIELDS = (
    "Id, FirstName, LastName, Email, HasOptedOutOfEmail, Cerkl_Unsubscribe__c, "
    "Cerkl_Subscriber_Id__c, Engagement_Score__c, Interest_1__c, Interest_2__c, "
    "Interest_3__c, Interest_4__c, Interest_5__c, AccountId, IsDeleted"
)
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
LOGIN_KEYS = {"POST /services/Soap/u/{version}", "POST /services/oauth2/token", "POST oauth/Token"}


def salesforce_client(salesforce_url: str) -> Salesforce:
    return Salesforce(
        username=SALESFORCE_USERNAME,
        password=SALESFORCE_PASSWORD,
        security_token=SALESFORCE_TOKEN,
        session=build_salesforce_session(salesforce_url),
    )


def contacts(sf: Salesforce) -> dict[str, dict[str, Any]]:
    rows = sf.query_all(f"SELECT {CONTACT_FIELDS} FROM Contact")["records"]
    return {row["Id"]: row for row in rows}


def paged(api: CerklApi, path: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    page = 1
    while True:
        response = api.call("GET", path, params={"page": page, "page_size": 1000})
        if response.status_code == 401:
            # The tests move the sandbox clock by days, past the token's lifetime.
            api.authenticate()
            response = api.call("GET", path, params={"page": page, "page_size": 1000})
        response.raise_for_status()
        batch = data_of(response)
        records.extend(batch)
        if len(batch) < 1000:
            return records
        page += 1


def subscribers(api: CerklApi) -> dict[int, dict[str, Any]]:
    return {int(s["id"]): s for s in paged(api, "subscriber")}


def unsubscribes(api: CerklApi) -> dict[int, dict[str, Any]]:
    return {int(u["id"]): u for u in paged(api, "unsubscribe")}


def segments(api: CerklApi) -> dict[str, dict[str, Any]]:
    found = {}
    for segment in paged(api, "segment"):
        if segment.get("external_id"):
            members = paged(api, f"segment/{segment['id']}/subscriber")
            found[segment["external_id"]] = {**segment, "members": {int(m["id"]) for m in members}}
    return found


def write_calls(counters: dict[str, Any]) -> Counter[str]:
    """Return the counted requests that change data (logins and token requests excluded)."""
    return Counter(
        {
            key: count
            for key, count in counters["by_endpoint"].items()
            if key.split(" ", 1)[0] in WRITE_METHODS
            and key not in LOGIN_KEYS
            and "/query" not in key
            and not key.endswith("/jobs/query")
        }
    )


def same_email(left: object, right: object) -> bool:
    return normalize_email(left) == normalize_email(right)
