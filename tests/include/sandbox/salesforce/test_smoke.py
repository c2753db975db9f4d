from include.sandbox.salesforce.ids import normalize_id


def test_ids_case_safe_suffix_known_values():
    assert normalize_id("0015000000Gv7qJ") == "0015000000Gv7qJAAR"
    assert normalize_id("001A0000006Vm9r") == "001A0000006Vm9rIAC"


def test_query_after_soap_login(sf):
    created = sf.Contact.create({"LastName": "Smith", "Email": "smith@example.com"})
    result = sf.query("SELECT Id, LastName FROM Contact")
    assert result["totalSize"] == 1
    assert result["records"][0]["Id"] == created["id"]
