"""Tests of ``FlowPlan``: outcome lists, counts, JSON round trip and merging."""

from __future__ import annotations

import json

from include.cerkl_sync.planning.plan import FlowPlan


def _sample_plan() -> FlowPlan:
    plan = FlowPlan("contacts_to_subscribers")
    plan.add("create", contact_id="003A", subscriber={"email": "zoë@example.com"})
    plan.add("create", contact_id="003B")
    plan.add("unsubscribe", contact_id="003C", subscriber_id=7)
    plan.skip("Contact", "003D", "UNCHANGED")
    plan.reject("Contact", "003E", "INVALID_EMAIL: the address fails the syntax check")
    plan.pend("Contact", "003F", "NEW_SUBSCRIBER_CAP_REACHED")
    plan.defer("unsubscribes_to_contacts", "unsubscribe", 12, "EMAIL_UNSUBSCRIBED_IN_CERKL")
    plan.conflict(contact_id="003G", field="first_name", winner="cerkl", rule="latest_wins")
    plan.notes.append({"kind": "ambiguous_match", "subscriber_id": 3})
    return plan


def test_flow_plan_add_keeps_details() -> None:
    plan = _sample_plan()

    assert plan.actions[2] == {"action": "unsubscribe", "contact_id": "003C", "subscriber_id": 7}


def test_flow_plan_outcomes_store_string_ids() -> None:
    plan = _sample_plan()

    assert plan.skipped == [{"record_type": "Contact", "record_id": "003D", "reason": "UNCHANGED"}]
    assert plan.rejected[0]["record_id"] == "003E"
    assert plan.pending[0]["reason"] == "NEW_SUBSCRIBER_CAP_REACHED"
    assert plan.deferred[0]["record_id"] == "12"
    assert plan.deferred[0]["flow"] == "unsubscribes_to_contacts"


def test_flow_plan_conflict_names_flow() -> None:
    plan = _sample_plan()

    assert plan.conflicts[0]["flow"] == "contacts_to_subscribers"
    assert plan.conflicts[0]["winner"] == "cerkl"


def test_flow_plan_action_counts() -> None:
    counts = _sample_plan().action_counts()

    assert counts["create"] == 2
    assert counts["unsubscribe"] == 1
    assert counts["skipped"] == 1
    assert counts["rejected"] == 1
    assert counts["pending"] == 1


def test_flow_plan_empty_counts_are_zero() -> None:
    assert FlowPlan("x").action_counts() == {"skipped": 0, "rejected": 0, "pending": 0}


def test_flow_plan_json_round_trip() -> None:
    plan = _sample_plan()

    restored = FlowPlan.from_dict(json.loads(json.dumps(plan.to_dict(), ensure_ascii=False)))

    assert restored == plan


def test_flow_plan_from_partial_dict() -> None:
    restored = FlowPlan.from_dict({"flow": "campaigns_to_segments"})

    assert restored == FlowPlan("campaigns_to_segments")


def test_flow_plan_extend_appends_everything() -> None:
    plan = _sample_plan()

    plan.extend(_sample_plan())

    assert len(plan.actions) == 6
    assert len(plan.skipped) == 2
    assert len(plan.rejected) == 2
    assert len(plan.pending) == 2
    assert len(plan.deferred) == 2
    assert len(plan.conflicts) == 2
    assert len(plan.notes) == 2
