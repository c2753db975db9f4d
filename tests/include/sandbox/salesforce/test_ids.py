"""Salesforce Ids: the case-safe suffix and 15-character input."""

from __future__ import annotations

from include.sandbox.salesforce.ids import KEY_PREFIXES, make_id, normalize_id, sobject_for_id


def test_ids_case_safe_suffix_known_values() -> None:
    assert normalize_id("0015000000Gv7qJ") == "0015000000Gv7qJAAR"
    assert normalize_id("001A0000006Vm9r") == "001A0000006Vm9rIAC"


def test_ids_reject_bad_suffix_and_length() -> None:
    assert normalize_id("0015000000Gv7qJAAA") is None
    assert normalize_id("0015000000Gv7qJaar") == "0015000000Gv7qJAAR"
    assert normalize_id("short") is None
    assert normalize_id("0015000000Gv7q-") is None


def test_ids_generated_are_valid_and_prefixed() -> None:
    for sobject, prefix in KEY_PREFIXES.items():
        record_id = make_id(prefix, 123_456)
        assert len(record_id) == 18
        assert normalize_id(record_id) == record_id
        assert sobject_for_id(record_id) == sobject
    assert make_id("003", 1) != make_id("003", 2)
