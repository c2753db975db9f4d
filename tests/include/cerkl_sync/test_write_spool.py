"""Tests of the write spool, which sends a task's Salesforce writes as one call, on the sandbox."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from include.cerkl_sync.salesforce_io import (
    SalesforceClient,
    SalesforceRequestError,
    WriteResult,
)
from include.cerkl_sync.salesforce_transport import build_salesforce_session
from include.cerkl_sync.write_spool import WriteSpool
from include.sandbox.client import SandboxControlClient
from include.sandbox.runner import RunningSandbox
from include.sandbox.salesforce.settings import SalesforceSandboxSettings

CONN_ID = "salesforce_spool_test"
SETTINGS = SalesforceSandboxSettings()
JOB_CREATE = "POST /services/data/vXX.X/jobs/ingest"
COLLECTIONS = "PATCH /services/data/vXX.X/composite/sobjects"
EXTERNAL_ID = "Cerkl_Subscriber_Id__c"


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
def client(sandbox: RunningSandbox) -> Iterator[SalesforceClient]:
    session = build_salesforce_session(sandbox.salesforce_url)
    # A low threshold makes a few records a Bulk API 2.0 job, as 1,001 would be.
    yield SalesforceClient(CONN_ID, session=session, bulk_threshold=5, sleep=lambda _s: None)
    session.close()


class Settled(list):
    """The ``settle`` callback: records each chunk of ``(context, outcome)`` pairs."""

    def __call__(self, outcomes: list[tuple[Any, WriteResult]]) -> None:
        self.append(list(outcomes))

    def pairs(self) -> list[tuple[Any, WriteResult]]:
        return [pair for chunk in self for pair in chunk]


def seed_contacts(controls: SandboxControlClient, count: int) -> list[str]:
    records = [{"LastName": f"Person {n}", "Email": f"p{n}@example.com"} for n in range(count)]
    return controls.seed({"Contact": records})["ids"]["Contact"]


def titles(client: SalesforceClient) -> dict[str, Any]:
    pages = client.iter_query_pages("SELECT Id, Title, Department FROM Contact")
    return {r["Id"]: (r["Title"], r["Department"]) for page in pages for r in page}


def test_batches_go_out_as_one_job(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    ids = seed_contacts(salesforce_controls, 30)
    settled = Settled()

    with WriteSpool(client, "update", "Contact", settle=settled, chunk_rows=7) as spool:
        for batch in (ids[:10], ids[10:20], ids[20:]):
            for contact_id in batch:
                spool.add({"Id": contact_id, "Title": "Spooled"}, {"contact": contact_id})
        assert client.api_calls[JOB_CREATE] == 0

    assert client.api_calls[JOB_CREATE] == 1
    assert client.api_calls[COLLECTIONS] == 0
    assert spool.sends == 1
    assert [len(chunk) for chunk in settled] == [7, 7, 7, 7, 2]
    assert [context["contact"] for context, _ in settled.pairs()] == ids
    assert all(outcome.success for _, outcome in settled.pairs())
    assert {title for title, _ in titles(client).values()} == {"Spooled"}


def test_repeated_key_is_merged(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    ids = seed_contacts(salesforce_controls, 8)
    settled = Settled()

    with WriteSpool(client, "update", "Contact", settle=settled) as spool:
        for contact_id in ids:
            spool.add({"Id": contact_id, "Title": "First"}, "title")
        # The 15-character form of an Id is the same record.
        spool.add({"Id": ids[0][:15], "Department": "Later", "Title": "Second"}, "department")

    # A job accepts each Id once: a repeat would have sent the whole call through Collections.
    assert client.api_calls[JOB_CREATE] == 1
    assert client.api_calls[COLLECTIONS] == 0
    pairs = settled.pairs()
    assert [context for context, _ in pairs] == ["title"] * 8 + ["department"]
    assert pairs[0][1] is pairs[-1][1]
    stored = titles(client)
    assert stored[ids[0]] == ("Second", "Later")
    assert stored[ids[1]] == ("First", None)


def test_failed_row_reaches_its_own_context(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    ids = seed_contacts(salesforce_controls, 8)
    salesforce_controls.add_record_fault("Contact", [ids[3]], "FIELD_CUSTOM_VALIDATION_EXCEPTION")
    settled = Settled()

    with WriteSpool(client, "update", "Contact", settle=settled) as spool:
        for contact_id in ids:
            spool.add({"Id": contact_id, "Title": "Spooled"}, contact_id)

    failed = {context: o.error_code for context, o in settled.pairs() if not o.success}
    assert failed == {ids[3]: "FIELD_CUSTOM_VALIDATION_EXCEPTION"}


def test_upsert_spool_returns_created_ids(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    settled = Settled()

    with WriteSpool(client, "upsert", "Contact", key_field=EXTERNAL_ID, settle=settled) as spool:
        for number in range(12):
            spool.add({"LastName": f"New {number}", EXTERNAL_ID: str(9000 + number)}, number)

    assert client.api_calls[JOB_CREATE] == 1
    pairs = settled.pairs()
    assert [context for context, _ in pairs] == list(range(12))
    assert all(o.success and o.created and o.id for _, o in pairs)
    assert len({o.id for _, o in pairs}) == 12


def test_full_spool_flush_empties_it(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    ids = seed_contacts(salesforce_controls, 12)
    settled = Settled()

    with WriteSpool(client, "update", "Contact", settle=settled, max_rows=6) as spool:
        for contact_id in ids:
            spool.add({"Id": contact_id, "Title": "Spooled"}, contact_id)
            if spool.full:
                assert len(spool) == 6
                spool.flush()
                assert len(spool) == 0
        assert spool.sends == 2

    # Nothing was left for the end of the block.
    assert spool.sends == 2
    assert [context for context, _ in settled.pairs()] == ids


def test_nothing_is_sent_when_the_block_raises(
    client: SalesforceClient,
    salesforce_controls: SandboxControlClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = seed_contacts(salesforce_controls, 8)
    settled = Settled()

    with caplog.at_level(logging.WARNING, logger="include.cerkl_sync.write_spool"):
        with pytest.raises(RuntimeError, match="later batch"):
            with WriteSpool(client, "update", "Contact", settle=settled) as spool:
                for contact_id in ids:
                    spool.add({"Id": contact_id, "Title": "Unsent"}, contact_id)
                raise RuntimeError("later batch failed")

    assert settled == []
    assert client.api_calls[JOB_CREATE] == 0
    assert {title for title, _ in titles(client).values()} == {None}
    assert "8 Contact update rows were not sent because the step failed (RuntimeError)" in (
        caplog.text
    )


def test_failed_send_keeps_its_rows_unsettled(
    client: SalesforceClient, salesforce_controls: SandboxControlClient
) -> None:
    ids = seed_contacts(salesforce_controls, 3)
    client.update("Contact", [{"Id": ids[0], "Title": "Logged in"}])
    salesforce_controls.add_fault(path="/composite/sobjects$", method="PATCH", status=400)
    settled = Settled()
    spool = WriteSpool(client, "update", "Contact", settle=settled)
    try:
        for contact_id in ids:
            spool.add({"Id": contact_id, "Title": "Unsent"}, contact_id)
        with pytest.raises(SalesforceRequestError):
            spool.flush()
        assert settled == []
        assert len(spool) == 3
    finally:
        spool.close()


def test_rows_and_contexts_must_be_valid(client: SalesforceClient) -> None:
    with pytest.raises(ValueError, match="'update' or 'upsert'"):
        WriteSpool(client, "delete", "Contact", settle=Settled())
    with pytest.raises(ValueError, match="matches rows on Id"):
        WriteSpool(client, "update", "Contact", settle=Settled(), key_field=EXTERNAL_ID)
    with pytest.raises(ValueError, match="max_rows=0"):
        WriteSpool(client, "update", "Contact", settle=Settled(), max_rows=0)
    with WriteSpool(client, "upsert", "Contact", key_field=EXTERNAL_ID, settle=Settled()) as spool:
        with pytest.raises(
            ValueError, match=f"row 0 of the upsert of Contact has no {EXTERNAL_ID}"
        ):
            spool.add({"LastName": "No key"})
        with pytest.raises(TypeError):
            spool.add({EXTERNAL_ID: "1"}, context=object())
        assert len(spool) == 0


def test_spool_keeps_rows_in_its_file(client: SalesforceClient) -> None:
    spool = WriteSpool(client, "update", "Contact", settle=Settled())
    try:
        for number in range(1000):
            spool.add({"Id": f"003{number:015d}", "Title": "x" * 100}, {"n": number})
        assert len(spool) == 1000
        assert spool._file.tell() > 100_000
    finally:
        spool.close()
