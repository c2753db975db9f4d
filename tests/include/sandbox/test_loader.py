"""Tests of the Salesforce export loader on small export-shaped files."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from include.sandbox.generator import case_safe_id
from include.sandbox.loader import ExportLoadError, LoadedExport, load_export

FIXTURES = Path(__file__).parent / "fixtures"


def by_field(records: list[dict[str, Any]], name: str) -> dict[Any, dict[str, Any]]:
    return {record.get(name): record for record in records}


def warnings_with(result: LoadedExport, text: str) -> list[str]:
    return [warning for warning in result.warnings if text in warning]


# -- SFDX data tree ----------------------------------------------------------------------


def test_load_plan_resolves_references():
    result = load_export([FIXTURES / "tree_plan" / "plan.json"])
    accounts = by_field(result.records["Account"], "Name")
    contacts = by_field(result.records["Contact"], "LastName")

    assert result.counts() == {"Account": 2, "Contact": 3, "Campaign": 1, "CampaignMember": 2}
    assert contacts["Lee"]["AccountId"] == accounts["Harbor Choir"]["Id"]
    assert contacts["Ström"]["AccountId"] == accounts["Ridge Library"]["Id"]
    assert "AccountId" not in contacts["Okafor"]
    assert accounts["Harbor Choir"]["NumberOfEmployees"] == 12


def test_load_plan_reads_lowercase_field_names():
    result = load_export([FIXTURES / "tree_plan" / "plan.json"])
    contact = by_field(result.records["Contact"], "LastName")["Ström"]

    assert contact["FirstName"] == "Bo"
    assert contact["Email"] == "bo.strom@example.net"
    assert contact["HasOptedOutOfEmail"] is True


def test_load_plan_nested_campaign_members():
    result = load_export([FIXTURES / "tree_plan" / "plan.json"])
    campaign = result.records["Campaign"][0]
    contacts = by_field(result.records["Contact"], "LastName")
    members = by_field(result.records["CampaignMember"], "ContactId")

    assert set(members) == {contacts["Lee"]["Id"], contacts["Okafor"]["Id"]}
    for member in members.values():
        assert member["CampaignId"] == campaign["Id"]
    assert members[contacts["Lee"]["Id"]]["Status"] == "Responded"


def test_load_plan_skips_unmodeled_object_with_warning():
    result = load_export([FIXTURES / "tree_plan" / "plan.json"])

    assert result.skipped_objects == {"Opportunity": 2}
    assert warnings_with(result, "skipped 2 Opportunity records")


def test_load_plan_drops_unmodeled_field_once():
    result = load_export([FIXTURES / "tree_plan" / "plan.json"])

    assert result.dropped_fields == {"Contact.Picture__c": 2}
    assert len(warnings_with(result, "Picture__c")) == 1
    for contact in result.records["Contact"]:
        assert "Picture__c" not in contact


def test_load_single_files_resolve_across_files():
    folder = FIXTURES / "tree_single"
    result = load_export([folder / "Contacts.json", folder / "Accounts.json"])
    account = result.records["Account"][0]
    contacts = by_field(result.records["Contact"], "LastName")

    assert contacts["Reyes"]["AccountId"] == account["Id"]
    assert contacts["Wei"]["AccountId"] == account["Id"]
    assert result.skipped_objects == {"Opportunity": 1}


def test_load_single_file_with_unresolved_reference_fails():
    with pytest.raises(ExportLoadError) as error:
        load_export([FIXTURES / "tree_single" / "Contacts.json"])

    message = str(error.value)
    assert "'@AccountRef1'" in message
    assert "Contacts.json, record 1" in message
    assert "AccountId" in message


def test_load_assigns_case_safe_unique_ids():
    result = load_export([FIXTURES / "tree_plan" / "plan.json"])
    prefixes = {"Account": "001", "Contact": "003", "Campaign": "701", "CampaignMember": "00v"}
    ids = []

    for sobject, records in result.records.items():
        for record in records:
            assert record["Id"].startswith(prefixes[sobject])
            assert case_safe_id(record["Id"][:15]) == record["Id"]
            ids.append(record["Id"])
    assert len(ids) == len(set(ids))


def test_load_same_files_gives_same_ids():
    first = load_export([FIXTURES / "tree_plan" / "plan.json"])
    second = load_export([FIXTURES / "tree_plan" / "plan.json"])
    other = load_export([FIXTURES / "tree_single" / "Accounts.json"])

    assert first.records == second.records
    assert first.records["Account"][0]["Id"] != other.records["Account"][0]["Id"]


# -- CSV ---------------------------------------------------------------------------------


def npsp_files() -> list[Path]:
    folder = FIXTURES / "npsp"
    return [
        folder / "test_data.CampaignMember.csv",
        folder / "test_data.Contact.csv",
        folder / "test_data.Account.csv",
        folder / "test_data.Campaign.csv",
    ]


def test_load_npsp_column_map_takes_email():
    result = load_export(npsp_files(), column_map={"Email": "npe01__HomeEmail__c"})
    contacts = by_field(result.records["Contact"], "LastName")

    assert contacts["Lee"]["Email"] == "ann.lee@example.org"
    assert contacts["Ström"]["Email"] == "bo.strom@example.net"
    assert "Email" not in contacts["Park"]
    assert "Contact.npe01__HomeEmail__c" not in result.dropped_fields
    assert result.dropped_fields["Contact.npe01__WorkEmail__c"] == 2


def test_load_npsp_without_column_map_has_no_email():
    result = load_export(npsp_files())

    for contact in result.records["Contact"]:
        assert "Email" not in contact
    assert result.dropped_fields["Contact.npe01__HomeEmail__c"] == 2


def test_load_npsp_remaps_old_org_ids():
    result = load_export(npsp_files(), column_map={"Email": "npe01__HomeEmail__c"})
    accounts = by_field(result.records["Account"], "Name")
    contacts = by_field(result.records["Contact"], "LastName")
    campaigns = by_field(result.records["Campaign"], "Name")
    members = by_field(result.records["CampaignMember"], "ContactId")

    assert contacts["Lee"]["AccountId"] == accounts["Lee Household"]["Id"]
    assert campaigns["Finance Committee"]["ParentId"] == campaigns["2026 Committees"]["Id"]
    assert set(members) == {contacts["Lee"]["Id"], contacts["Ström"]["Id"]}
    for member in members.values():
        assert member["CampaignId"] == campaigns["Finance Committee"]["Id"]
    assert result.id_map["0036g000006Jced"] == contacts["Lee"]["Id"]
    assert contacts["Ström"]["HasOptedOutOfEmail"] is True
    assert campaigns["2026 Committees"]["IsActive"] is True


def test_load_npsp_clears_reference_outside_export():
    result = load_export(npsp_files(), column_map={"Email": "npe01__HomeEmail__c"})
    contacts = by_field(result.records["Contact"], "LastName")

    # Cy Park's Account and the third member's Contact are not in the export.
    assert "AccountId" not in contacts["Park"]
    assert result.cleared_references == 2
    assert result.skipped_rows == {"test_data.CampaignMember.csv": 1}
    assert warnings_with(result, "set AccountId to null")
    assert warnings_with(result, "ContactId and LeadId are missing")


def test_load_label_headers_with_byte_order_mark():
    folder = FIXTURES / "labels"
    result = load_export([folder / "Contacts.csv", folder / "Accounts.csv"])
    contacts = by_field(result.records["Contact"], "LastName")
    account = result.records["Account"][0]

    assert contacts["Zola"]["FirstName"] == "Émile"
    assert contacts["Zola"]["HasOptedOutOfEmail"] is True
    assert contacts["Ng"]["HasOptedOutOfEmail"] is False
    assert contacts["Zola"]["MailingCity"] == "Paris"
    assert contacts["Zola"]["AccountId"] == account["Id"]
    assert account["Name"] == "Paris Reading Circle"
    assert account["Type"] == "Other"
    assert result.id_map["0035e00000ABCde"] == contacts["Zola"]["Id"]
    assert result.dropped_fields == {"Contact.Full Name": 2}


def test_load_relationship_id_header(tmp_path):
    (tmp_path / "Accounts.csv").write_text("Id,Name\n001000000000001AAA,North Club\n")
    (tmp_path / "Contacts.csv").write_text(
        "Id,LastName,Account.Id\n003000000000001AAA,Vu,001000000000001\n"
    )
    result = load_export([tmp_path / "Contacts.csv", tmp_path / "Accounts.csv"])

    assert result.records["Contact"][0]["AccountId"] == result.records["Account"][0]["Id"]


def test_load_report_export_splits_objects():
    result = load_export([FIXTURES / "report" / "Accounts-Contacts.csv"])
    accounts = by_field(result.records["Account"], "Name")
    contacts = by_field(result.records["Contact"], "LastName")

    assert set(accounts) == {"Alpine Trust", "Coastal Fund"}
    assert set(contacts) == {"Bauer", "Kim"}
    for contact in contacts.values():
        assert contact["AccountId"] == accounts["Alpine Trust"]["Id"]
    assert contacts["Bauer"]["Email"] == "iris.bauer@example.org"


@pytest.mark.parametrize(
    ("file_name", "sobject"),
    [
        ("Contacts.csv", "Contact"),
        ("test_data.Contact.csv", "Contact"),
        ("Contact_Data.csv", "Contact"),
        ("campaign_members.csv", "CampaignMember"),
        ("Lead_Data.csv", "Lead"),
    ],
)
def test_load_csv_object_from_file_name(tmp_path, file_name, sobject):
    columns = {
        "Contact": "LastName\nLee\n",
        "Lead": "LastName,Company\nLee,Self\n",
        "CampaignMember": "CampaignId,ContactId\n",
    }
    (tmp_path / file_name).write_text(columns[sobject])
    result = load_export([tmp_path / file_name])

    assert result.counts() == ({sobject: 1} if sobject != "CampaignMember" else {})
    assert not result.skipped_objects


def test_load_csv_object_name_overrides_file_name(tmp_path):
    (tmp_path / "people.csv").write_text("LastName,Company\nLee,Self\n")
    result = load_export([tmp_path / "people.csv"], object_name="Lead")

    assert result.counts() == {"Lead": 1}


def test_load_csv_unmodeled_object_skipped(tmp_path):
    (tmp_path / "Opportunities.csv").write_text("Name,StageName\nGala,Prospecting\nFund,Closed\n")
    result = load_export([tmp_path / "Opportunities.csv"])

    assert result.counts() == {}
    assert result.skipped_objects == {"Opportunity": 2}
    assert warnings_with(result, "skipped 2 Opportunity records")


def test_load_column_map_limited_to_object():
    result = load_export(npsp_files(), column_map={"Contact.Email": "npe01__WorkEmail__c"})
    contacts = by_field(result.records["Contact"], "LastName")

    assert contacts["Lee"]["Email"] == "ann.work@example.com"
    assert contacts["Park"]["Email"] == "cy.park@example.com"


def test_load_column_map_names_old_id_column(tmp_path):
    (tmp_path / "Accounts.csv").write_text("Legacy_Id,Name\nACC000000000001,North Club\n")
    (tmp_path / "Contacts.csv").write_text("LastName,AccountId\nVu,ACC000000000001\n")
    result = load_export(
        [tmp_path / "Accounts.csv", tmp_path / "Contacts.csv"],
        column_map={"Account.Id": "Legacy_Id"},
    )
    account = result.records["Account"][0]

    assert account["Id"].startswith("001")
    assert result.records["Contact"][0]["AccountId"] == account["Id"]


def test_load_csv_references_json_in_same_folder(tmp_path):
    shutil.copy(FIXTURES / "tree_plan" / "Accounts.json", tmp_path / "Accounts.json")
    (tmp_path / "Contacts.csv").write_text("LastName,AccountId\nVu,@AccountRef2\n")
    result = load_export([tmp_path / "Contacts.csv", tmp_path / "Accounts.json"])
    accounts = by_field(result.records["Account"], "Name")

    assert result.records["Contact"][0]["AccountId"] == accounts["Ridge Library"]["Id"]


# -- bad input ---------------------------------------------------------------------------


def test_load_missing_file_fails(tmp_path):
    missing = tmp_path / "Contacts.csv"

    with pytest.raises(ExportLoadError, match="export file not found") as error:
        load_export([missing])
    assert str(missing) in str(error.value)


def test_load_no_files_fails():
    with pytest.raises(ExportLoadError, match="no export files"):
        load_export([])


def test_load_plan_missing_file_fails():
    with pytest.raises(ExportLoadError, match="Missing.json") as error:
        load_export([FIXTURES / "bad" / "plan_missing_file.json"])
    assert "step 1" in str(error.value)


def test_load_malformed_json_names_line():
    with pytest.raises(ExportLoadError, match="malformed.json, line 2") as error:
        load_export([FIXTURES / "bad" / "malformed.json"])
    assert "column" in str(error.value)


def test_load_json_without_records_fails():
    with pytest.raises(ExportLoadError, match='"records" list'):
        load_export([FIXTURES / "bad" / "no_records.json"])


def test_load_unknown_object_from_file_name_fails():
    with pytest.raises(ExportLoadError, match="Widgets.csv") as error:
        load_export([FIXTURES / "bad" / "Widgets.csv"])
    assert "object_name" in str(error.value)


def test_load_unknown_object_name_fails():
    with pytest.raises(ExportLoadError, match="'Contcat'") as error:
        load_export([FIXTURES / "labels" / "Contacts.csv"], object_name="Contcat")
    assert "Contact" in str(error.value)


def test_load_ambiguous_file_name_fails(tmp_path):
    (tmp_path / "Accounts-Contacts.csv").write_text("Name,LastName\nA,B\n")

    with pytest.raises(ExportLoadError, match="Account and Contact"):
        load_export([tmp_path / "Accounts-Contacts.csv"])


def test_load_unresolved_reference_fails():
    with pytest.raises(ExportLoadError, match="'@AccountRef99'") as error:
        load_export([FIXTURES / "bad" / "unresolved.json"])
    assert "unresolved.json, record 1" in str(error.value)


def test_load_column_map_unknown_field_fails():
    with pytest.raises(ExportLoadError, match="'Emial'"):
        load_export(npsp_files(), column_map={"Emial": "npe01__HomeEmail__c"})


def test_load_column_map_unknown_object_fails():
    with pytest.raises(ExportLoadError, match="'Contcat'"):
        load_export(npsp_files(), column_map={"Contcat.Email": "npe01__HomeEmail__c"})


def test_load_duplicate_ids_fail(tmp_path):
    (tmp_path / "Contacts.csv").write_text("Id,LastName\n003000000000001AAA,A\n003000000000001,B\n")

    with pytest.raises(ExportLoadError, match="duplicate record key '003000000000001'"):
        load_export([tmp_path / "Contacts.csv"])


def test_load_malformed_rows_skipped_and_counted():
    result = load_export([FIXTURES / "bad" / "Contacts.csv"])
    loaded = {contact["LastName"] for contact in result.records["Contact"]}

    assert loaded == {"Long", "Ok"}
    assert result.skipped_rows == {"Contacts.csv": 5}
    assert warnings_with(result, "invalid HasOptedOutOfEmail 'maybe'")
    assert warnings_with(result, "row 2")
    assert warnings_with(result, "LastName is missing")
    assert warnings_with(result, "invalid Birthdate 'not-a-date'")
    assert warnings_with(result, "more than the header's 5 columns")
    assert warnings_with(result, "LastName has 81 characters, more than its 80")


def test_load_warnings_contain_no_personal_data():
    results = [
        load_export([FIXTURES / "bad" / "Contacts.csv"]),
        load_export(npsp_files(), column_map={"Email": "npe01__HomeEmail__c"}),
        load_export([FIXTURES / "tree_plan" / "plan.json"]),
    ]

    for result in results:
        for warning in result.warnings:
            assert "@example" not in warning
            assert "LLLLLLLL" not in warning
            assert "Lee" not in warning


def test_load_reference_to_skipped_record_cleared(tmp_path):
    (tmp_path / "Accounts.csv").write_text("Id,Name\n001000000000001AAA,\n")
    (tmp_path / "Contacts.csv").write_text("LastName,AccountId\nVu,001000000000001AAA\n")
    result = load_export([tmp_path / "Accounts.csv", tmp_path / "Contacts.csv"])

    assert result.counts() == {"Contact": 1}
    assert "AccountId" not in result.records["Contact"][0]
    assert result.cleared_references == 1
    assert warnings_with(result, "refers to a skipped record")


def test_load_bad_reference_value_skips_row(tmp_path):
    (tmp_path / "Contacts.csv").write_text("LastName,AccountId\nVu,not an id\nXi,\n")
    result = load_export([tmp_path / "Contacts.csv"])

    assert result.counts() == {"Contact": 1}
    assert warnings_with(result, "invalid AccountId 'not an id'")


def test_load_unreadable_encoding_fails(tmp_path):
    (tmp_path / "Contacts.csv").write_bytes("LastName\nM\xfcller\n".encode("latin-1"))

    with pytest.raises(ExportLoadError, match="not UTF-8"):
        load_export([tmp_path / "Contacts.csv"])


# -- seeding the store -------------------------------------------------------------------


def test_loaded_export_seeds_salesforce_store(tmp_path):
    from include.sandbox.salesforce.store import SalesforceStore

    export = tmp_path / "export"
    shutil.copytree(FIXTURES / "npsp", export)
    result = load_export(sorted(export.glob("*.csv")), column_map={"Email": "npe01__HomeEmail__c"})
    counts = result.seed(tmp_path / "data", reset=True)
    store = SalesforceStore(tmp_path / "data" / "salesforce.sqlite3", lambda: datetime.now(UTC))

    assert counts == result.counts()
    for sobject, count in counts.items():
        assert store.count(sobject) == count
    lee = by_field(result.records["Contact"], "LastName")["Lee"]
    row = store.fetch_row("Contact", lee["Id"])
    assert row["Email"] == "ann.lee@example.org"
    assert row["AccountId"] == lee["AccountId"]


def test_loaded_plan_seeds_campaign_members(tmp_path):
    from include.sandbox.salesforce.store import SalesforceStore

    result = load_export([FIXTURES / "tree_plan" / "plan.json"])
    counts = result.seed(tmp_path, reset=True)
    store = SalesforceStore(tmp_path / "salesforce.sqlite3", lambda: datetime.now(UTC))
    lee = by_field(result.records["Contact"], "LastName")["Lee"]
    member = by_field(result.records["CampaignMember"], "ContactId")[lee["Id"]]

    assert counts == {"Account": 2, "Campaign": 1, "Contact": 3, "CampaignMember": 2}
    assert store.fetch_row("CampaignMember", member["Id"])["Email"] == "ann.lee@example.org"
