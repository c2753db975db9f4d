"""Plans of several Contact batches of one run never create one address twice."""

from __future__ import annotations

from include.cerkl_sync.flows.contacts import _defer_repeated_creates
from include.cerkl_sync.planning.plan import FlowPlan


def _plan_with_create(contact_id: str, email: str) -> FlowPlan:
    plan = FlowPlan("contacts_to_subscribers")
    plan.add("create", contact_id=contact_id, subscriber={"email": email})
    return plan


def test_second_batch_create_of_same_email_waits():
    planned: set[str] = set()
    first = _plan_with_create("003000000000001AAA", "Ann.Lee@example.org")
    second = _plan_with_create("003000000000002AAA", " ann.lee@EXAMPLE.org ")
    _defer_repeated_creates(first, planned)
    _defer_repeated_creates(second, planned)
    assert [a["contact_id"] for a in first.actions] == ["003000000000001AAA"]
    assert second.actions == []
    assert second.pending == [
        {
            "record_type": "Contact",
            "record_id": "003000000000002AAA",
            "reason": "EMAIL_CREATED_FOR_OTHER_CONTACT",
        }
    ]


def test_other_actions_and_emails_are_kept():
    planned: set[str] = set()
    plan = _plan_with_create("003000000000001AAA", "a@example.org")
    plan.add("update", contact_id="003000000000002AAA", subscriber_id=7, changes={})
    _defer_repeated_creates(plan, planned)
    other = _plan_with_create("003000000000003AAA", "b@example.org")
    _defer_repeated_creates(other, planned)
    assert len(plan.actions) == 2
    assert len(other.actions) == 1
    assert planned == {"a@example.org", "b@example.org"}
