"""Tests of ``parse_config``: defaults, accepted values and the errors for bad ones."""

from __future__ import annotations

import json
from typing import Any

import pytest

from include.cerkl_sync.config import (
    CONFLICT_RULES,
    ConfigError,
    SyncConfig,
    config_to_dict,
    parse_config,
)


@pytest.mark.parametrize("values", [None, "", {}, "{}"])
def test_parse_config_empty_gives_defaults(values: object) -> None:
    assert parse_config(values) == SyncConfig()


def test_parse_config_defaults_match_rules() -> None:
    config = parse_config(None)

    assert config.lookback_minutes == 15
    assert config.conflict_rule == "latest_wins"
    assert config.opt_out_fields == ("Cerkl_Unsubscribe__c", "HasOptedOutOfEmail")
    assert config.set_has_opted_out_of_email is False
    assert config.segment_external_id_prefix == "SF_"
    assert len(config.contact_fields.interests) == 5


def test_parse_config_round_trips_defaults() -> None:
    assert parse_config(json.dumps(config_to_dict(SyncConfig()))) == SyncConfig()


def test_parse_config_accepts_json_text() -> None:
    config = parse_config('{"lookback_minutes": 30, "campaign_types": ["Board", "Ünion \\"A\\""]}')

    assert config.lookback_minutes == 30
    assert config.campaign_types == ("Board", 'Ünion "A"')


@pytest.mark.parametrize("rule", CONFLICT_RULES)
def test_parse_config_accepts_each_conflict_rule(rule: str) -> None:
    assert parse_config({"conflict_rule": rule}).conflict_rule == rule


def test_parse_config_nested_contact_fields() -> None:
    config = parse_config({"contact_fields": {"email": "Work_Email__c"}})

    assert config.contact_fields.email == "Work_Email__c"
    assert config.contact_fields.first_name == "FirstName"


def test_parse_config_lists_become_tuples() -> None:
    config = parse_config({"opt_out_fields": ["Cerkl_Unsubscribe__c"], "campaign_types": []})

    assert config.opt_out_fields == ("Cerkl_Unsubscribe__c",)
    assert config.campaign_types == ()


@pytest.mark.parametrize(
    ("values", "key", "shown_value", "fix"),
    [
        ({"lookback_minutes": -1}, "lookback_minutes", "-1", "whole number of 0 or more"),
        ({"lookback_minutes": 1.5}, "lookback_minutes", "1.5", "whole number of 0 or more"),
        ({"lookback_minutes": "15"}, "lookback_minutes", "'15'", "whole number of 0 or more"),
        ({"lookback_minutes": True}, "lookback_minutes", "True", "whole number of 0 or more"),
        ({"max_manual_window_hours": None}, "max_manual_window_hours", "None", "whole number"),
        ({"reject_share_threshold": 1.5}, "reject_share_threshold", "1.5", "between 0 and 1"),
        ({"reject_share_threshold": "5%"}, "reject_share_threshold", "'5%'", "between 0 and 1"),
        ({"set_has_opted_out_of_email": "yes"}, "set_has_opted_out_of_email", "'yes'", "true or"),
        ({"set_has_opted_out_of_email": 1}, "set_has_opted_out_of_email", "1", "true or false"),
        ({"conflict_rule": 3}, "conflict_rule", "3", "must be a string"),
        ({"conflict_rule": "newest"}, "conflict_rule", "'newest'", "latest_wins"),
        ({"conflict_rule": "Latest_Wins"}, "conflict_rule", "'Latest_Wins'", "latest_wins"),
        ({"campaign_types": "Board"}, "campaign_types", "'Board'", "list of strings"),
        ({"opt_out_fields": ["A__c", 1]}, "opt_out_fields", "1", "list of strings"),
        ({"contact_fields": "Email"}, "contact_fields", "'Email'", "JSON object"),
        ({"contact_fields": {"email": 5}}, "contact_fields.email", "5", "must be a string"),
        ({"batch_size": 0}, "batch_size", "0", "at least 1"),
        ({"cerkl_workers": 0}, "cerkl_workers", "0", "at least 1"),
        ({"missing_last_name": "  "}, "missing_last_name", "'  '", "must not be empty"),
        (
            {"contact_fields": {"last_name": ""}},
            "contact_fields.last_name",
            "''",
            "must not be empty",
        ),
    ],
)
def test_parse_config_bad_value_names_key_value_fix(
    values: dict[str, Any], key: str, shown_value: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(values)

    message = str(caught.value)
    assert f"cerkl_sync_config.{key} " in message
    assert shown_value in message
    assert fix in message


@pytest.mark.parametrize(
    ("values", "unknown"),
    [
        ({"look_back_minutes": 15}, "look_back_minutes"),
        ({"contact_fields": {"mail": "Email"}}, "contact_fields.mail"),
        ({"lookback_minutes%_\\": 1}, "lookback_minutes%_\\"),
    ],
)
def test_parse_config_unknown_key_lists_valid(values: dict[str, Any], unknown: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(values)

    message = str(caught.value)
    assert unknown in message
    assert "Valid keys:" in message


def test_parse_config_unknown_key_lists_valid_names() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"lookback": 1})

    assert "lookback_minutes" in str(caught.value)


@pytest.mark.parametrize("text", ["{lookback_minutes: 15}", "{'a': 1}", '{"a": 1,}'])
def test_parse_config_invalid_json_shows_example(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)

    message = str(caught.value)
    assert "not valid JSON" in message
    assert "line 1" in message
    assert '{"lookback_minutes": 15}' in message


@pytest.mark.parametrize(("text", "kind"), [("[1, 2]", "list"), ('"x"', "str"), ("7", "int")])
def test_parse_config_non_object_json(text: str, kind: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)

    assert f"got {kind}" in str(caught.value)


def test_parse_config_nan_threshold_rejected() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config('{"reject_share_threshold": NaN}')

    assert "reject_share_threshold" in str(caught.value)


@pytest.mark.parametrize(
    "values",
    [
        {"opt_out_fields": []},
        {"opt_out_fields": ["HasOptedOutOfEmail"]},
        {"contact_fields": {"unsubscribe": "Newsletter_Opt_Out__c"}},
    ],
)
def test_parse_config_opt_out_fields_need_unsubscribe(values: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(values)

    message = str(caught.value)
    assert "cerkl_sync_config.opt_out_fields is" in message
    assert "must include contact_fields.unsubscribe" in message


def test_parse_config_custom_unsubscribe_in_opt_out_fields() -> None:
    config = parse_config(
        {
            "contact_fields": {"unsubscribe": "Newsletter_Opt_Out__c"},
            "opt_out_fields": ["Newsletter_Opt_Out__c"],
        }
    )

    assert config.opt_out_fields == ("Newsletter_Opt_Out__c",)
