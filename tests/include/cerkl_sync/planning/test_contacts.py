"""Tests of ``plan_contacts_to_subscribers``: the rules of flow contacts_to_subscribers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from include.cerkl_sync.planning.contacts import plan_contacts_to_subscribers
from include.cerkl_sync.planning.pairs import field_digest
from include.cerkl_sync.planning.plan import FlowPlan
from include.cerkl_sync.records import normalize_email
from include.cerkl_sync.state import Link
from tests.include.cerkl_sync.planning.factories import (
    T0,
    T1,
    T2,
    T3,
    contact,
    digests,
    link,
    subscriber,
    unsubscribe,
)

HOSTILE_NAMES = [
    ("O'Brien", 'Dwayne "The Rock"'),
    ("Back\\slash", "100% _under_"),
    ("Jose\u0301", "Zoë 🎉"),
    ("محمد", "שָׁלוֹם"),
]


def _plan(
    contacts: Iterable[Mapping[str, Any]],
    *,
    links: Iterable[Link] = (),
    subscribers: Iterable[Mapping[str, Any]] = (),
    changed_subscriber_ids: Iterable[int] = (),
    by_email: Iterable[Mapping[str, Any]] = (),
    unsubscribes: Iterable[Mapping[str, Any]] = (),
    linked_subscriber_ids: Iterable[int] = (),
    conflict_rule: str = "latest_wins",
    cap: int = 100,
) -> FlowPlan:
    unsubscribe_list = list(unsubscribes)
    return plan_contacts_to_subscribers(
        list(contacts),
        links={item.contact_id: item for item in links},
        subscribers={int(s["id"]): s for s in subscribers},
        changed_subscriber_ids=set(changed_subscriber_ids),
        subscribers_by_email={normalize_email(s["email"]): s for s in by_email},
        unsubscribes_by_id={int(u["id"]): u for u in unsubscribe_list},
        unsubscribes_by_email={normalize_email(u["email"]): u for u in unsubscribe_list},
        linked_subscriber_ids=set(linked_subscriber_ids),
        conflict_rule=conflict_rule,
        new_subscriber_cap=cap,
    )


def _actions(plan: FlowPlan, name: str) -> list[dict[str, Any]]:
    return [action for action in plan.actions if action["action"] == name]


def _only_skip_reason(plan: FlowPlan) -> str:
    assert plan.actions == []
    assert plan.rejected == []
    assert plan.pending == []
    assert len(plan.skipped) == 1
    return plan.skipped[0]["reason"]


# Linked Contacts.


def test_plan_contacts_linked_unchanged_skipped() -> None:
    plan = _plan([contact(modstamp=T2)], links=[link()], subscribers=[subscriber(modified=T0)])

    assert _only_skip_reason(plan) == "UNCHANGED"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_name", "Augusta"),
        ("last_name", "King"),
        ("email", "ada.king@example.com"),
        ("first_name", 'O\'Brien "Jr" \\ 100%_'),
        ("last_name", "Jose\u0301 🎉 محمد"),
    ],
)
def test_plan_contacts_linked_field_change_updates(field: str, value: str) -> None:
    plan = _plan(
        [contact(modstamp=T2, **{field: value})],
        links=[link()],
        subscribers=[subscriber(modified=T0)],
    )

    updates = _actions(plan, "update")
    assert len(updates) == 1
    assert updates[0]["subscriber_id"] == 101
    assert updates[0]["changes"] == {field: value}
    assert updates[0]["synced_values"][field] == field_digest(field, value)
    assert updates[0]["adopt"] is False


@pytest.mark.parametrize("variant", ["ADA@EXAMPLE.COM", "  Ada@Example.com "])
def test_plan_contacts_linked_email_variant_unchanged(variant: str) -> None:
    plan = _plan(
        [contact(email=variant, modstamp=T2)],
        links=[link()],
        subscribers=[subscriber(modified=T0)],
    )

    assert _only_skip_reason(plan) == "UNCHANGED"


def test_plan_contacts_linked_value_equal_to_subscriber_skipped() -> None:
    # The Contact changed since the last sync, but Cerkl already has the same value.
    plan = _plan(
        [contact(first_name="Augusta", modstamp=T2)],
        links=[link()],
        subscribers=[subscriber(first_name="Augusta", modified=T0)],
    )

    assert _only_skip_reason(plan) == "UNCHANGED"


def test_plan_contacts_linked_backfill_never_overwrites() -> None:
    plan = _plan(
        [contact(first_name="Old", modstamp=T0, modified=T0)],
        links=[link(salesforce_seen_at=T2)],
        subscribers=[subscriber(modified=T0)],
    )

    assert _only_skip_reason(plan) == "UNCHANGED"


def test_plan_contacts_linked_invalid_new_email_rejected() -> None:
    plan = _plan(
        [contact(email="ada@@example.com", modstamp=T2)],
        links=[link()],
        subscribers=[subscriber(modified=T0)],
    )

    assert plan.actions == []
    assert len(plan.rejected) == 1
    assert plan.rejected[0]["reason"].startswith("INVALID_EMAIL:")
    assert "ada@@example.com" not in plan.rejected[0]["reason"]


def test_plan_contacts_linked_conflict_recorded() -> None:
    plan = _plan(
        [contact(first_name="Augusta", modstamp=T2, modified=T3)],
        links=[link()],
        subscribers=[subscriber(first_name="Ada Augusta", modified=T2)],
        changed_subscriber_ids=[101],
    )

    assert _actions(plan, "update")[0]["changes"] == {"first_name": "Augusta"}
    assert len(plan.conflicts) == 1
    assert plan.conflicts[0]["contact_id"] == "003000000000001AAA"
    assert plan.conflicts[0]["subscriber_id"] == 101
    assert plan.conflicts[0]["field"] == "first_name"
    assert plan.conflicts[0]["winner"] == "salesforce"
    assert plan.conflicts[0]["flow"] == "contacts_to_subscribers"


def test_plan_contacts_linked_conflict_cerkl_later_no_write() -> None:
    plan = _plan(
        [contact(first_name="Augusta", modstamp=T2, modified=T2)],
        links=[link()],
        subscribers=[subscriber(first_name="Ada Augusta", modified=T3)],
        changed_subscriber_ids=[101],
    )

    assert _actions(plan, "update") == []
    assert plan.conflicts[0]["winner"] == "cerkl"


@pytest.mark.parametrize(
    "flags",
    [
        {"opted_out": True, "unsubscribe_flag": True},
        {"opted_out": True, "has_opted_out": True},
    ],
)
def test_plan_contacts_linked_opted_out_unsubscribes(flags: dict[str, bool]) -> None:
    plan = _plan([contact(**flags)], links=[link()], subscribers=[subscriber()])

    assert len(plan.actions) == 1
    assert plan.actions[0]["action"] == "unsubscribe"
    assert plan.actions[0]["subscriber_id"] == 101
    assert plan.actions[0]["adopt"] is False


def test_plan_contacts_opt_out_wins_over_name_change() -> None:
    plan = _plan(
        [contact(opted_out=True, first_name="Augusta", modstamp=T2)],
        links=[link()],
        subscribers=[subscriber(modified=T0)],
    )

    assert [action["action"] for action in plan.actions] == ["unsubscribe"]


def test_plan_contacts_opted_out_already_unsubscribed() -> None:
    plan = _plan([contact(opted_out=True)], links=[link()], unsubscribes=[unsubscribe()])

    assert _only_skip_reason(plan) == "ALREADY_UNSUBSCRIBED"


def test_plan_contacts_linked_subscriber_unknown_rejected() -> None:
    plan = _plan([contact()], links=[link()])

    assert plan.actions == []
    assert plan.rejected[0]["reason"].startswith("SUBSCRIBER_NOT_FOUND:")


def test_plan_contacts_subscriber_id_without_link_adopted() -> None:
    plan = _plan([contact(subscriber_id=101)], subscribers=[subscriber()])

    assert len(plan.actions) == 1
    assert plan.actions[0]["action"] == "adopt_link"
    assert plan.actions[0]["subscriber_id"] == 101
    assert plan.actions[0]["salesforce_changes"] == {}
    assert plan.actions[0]["synced_values"]["email"] == field_digest("email", "ada@example.com")


def test_plan_contacts_adopted_link_updates_difference() -> None:
    plan = _plan(
        [contact(subscriber_id=101, first_name="Augusta", modified=T3)],
        subscribers=[subscriber(modified=T2)],
    )

    assert plan.actions[0]["action"] == "update"
    assert plan.actions[0]["changes"] == {"first_name": "Augusta"}
    assert plan.actions[0]["adopt"] is True


def test_plan_contacts_adopted_link_takes_cerkl_newer() -> None:
    plan = _plan(
        [contact(subscriber_id=101, first_name="Ada", modified=T1)],
        subscribers=[subscriber(first_name="Augusta", modified=T3)],
    )

    assert plan.actions[0]["action"] == "adopt_link"
    assert plan.actions[0]["salesforce_changes"] == {"first_name": "Augusta"}


def test_plan_contacts_actions_carry_seen_at() -> None:
    plan = _plan(
        [contact(first_name="Augusta", modstamp=T2)],
        links=[link()],
        subscribers=[subscriber(modified=T0)],
    )

    assert plan.actions[0]["salesforce_seen_at"] == T2
    assert plan.actions[0]["cerkl_seen_at"] == T0


# Re-subscribing after a Cerkl unsubscribe.


def test_plan_contacts_self_unsubscribed_never_resubscribed() -> None:
    plan = _plan(
        [contact(modified=T3)],
        links=[link(synced_values=digests(opted_out=True))],
        unsubscribes=[unsubscribe(self_unsubscribed=True, source="subscriber", unsubscribed_at=T1)],
    )

    assert _only_skip_reason(plan) == "SELF_UNSUBSCRIBED"


def test_plan_contacts_admin_unsubscribe_cleared_after_resubscribes() -> None:
    plan = _plan(
        [contact(modified=T3)],
        links=[link(synced_values=digests(opted_out=True))],
        unsubscribes=[unsubscribe(unsubscribed_at=T1)],
    )

    resubscribes = _actions(plan, "resubscribe")
    assert len(resubscribes) == 1
    assert resubscribes[0]["old_subscriber_id"] == 101
    assert resubscribes[0]["subscriber"] == {
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
    }


def test_plan_contacts_admin_unsubscribe_cleared_before_skipped() -> None:
    plan = _plan(
        [contact(modified=T0)],
        links=[link(synced_values=digests(opted_out=True))],
        unsubscribes=[unsubscribe(unsubscribed_at=T1)],
    )

    assert _only_skip_reason(plan) == "UNSUBSCRIBED_IN_CERKL"


def test_plan_contacts_admin_unsubscribe_never_opted_out_skipped() -> None:
    # The Contact was never seen opted out, so no opt-out was cleared.
    plan = _plan(
        [contact(modified=T3)],
        links=[link(synced_values=digests(opted_out=False))],
        unsubscribes=[unsubscribe(unsubscribed_at=T1)],
    )

    assert _only_skip_reason(plan) == "UNSUBSCRIBED_IN_CERKL"


def test_plan_contacts_stale_cleared_read_not_resubscribed() -> None:
    # The Contact's modstamp is not newer than the link saw, so its cleared flags are stale.
    plan = _plan(
        [contact(modified=T3, modstamp=T1)],
        links=[link(synced_values=digests(opted_out=True), salesforce_seen_at=T1)],
        unsubscribes=[unsubscribe(unsubscribed_at=T0)],
    )

    assert _only_skip_reason(plan) == "UNSUBSCRIBED_IN_CERKL"


# Contacts without a link.


def test_plan_contacts_new_contact_creates_subscriber() -> None:
    plan = _plan([contact(first_name="Zoë", last_name="Noël")])

    creates = _actions(plan, "create")
    assert len(creates) == 1
    assert creates[0]["contact_id"] == "003000000000001AAA"
    assert creates[0]["subscriber"] == {
        "email": "ada@example.com",
        "first_name": "Zoë",
        "last_name": "Noël",
    }
    assert creates[0]["synced_values"]["last_name"] == field_digest("last_name", "Noël")


@pytest.mark.parametrize(("first_name", "last_name"), HOSTILE_NAMES)
def test_plan_contacts_hostile_names_created_verbatim(first_name: str, last_name: str) -> None:
    plan = _plan([contact(first_name=first_name, last_name=last_name)])

    payload = _actions(plan, "create")[0]["subscriber"]
    assert payload["first_name"] == first_name
    assert payload["last_name"] == last_name


@pytest.mark.parametrize("email", ["ADA@EXAMPLE.COM", "  Ada@Example.com "])
def test_plan_contacts_existing_subscriber_linked(email: str) -> None:
    plan = _plan([contact(email=email)], by_email=[subscriber(email="ada@example.com")])

    assert _actions(plan, "create") == []
    links = _actions(plan, "link")
    assert len(links) == 1
    assert links[0]["subscriber_id"] == 101
    assert links[0]["changes"] == {}


def test_plan_contacts_link_existing_copies_newer_name() -> None:
    plan = _plan(
        [contact(first_name="Augusta", modified=T3)],
        by_email=[subscriber(first_name="Ada", modified=T2)],
    )

    assert _actions(plan, "link")[0]["changes"] == {"first_name": "Augusta"}


def test_plan_contacts_subscriber_linked_elsewhere_not_taken() -> None:
    plan = _plan([contact()], by_email=[subscriber()], linked_subscriber_ids=[101])

    assert _only_skip_reason(plan) == "EMAIL_LINKED_TO_OTHER_CONTACT"


def test_plan_contacts_duplicate_contacts_one_link() -> None:
    first = contact("003000000000001AAA")
    second = contact("003000000000002AAA", email="ADA@example.com")

    plan = _plan([first, second], by_email=[subscriber()])

    assert len(_actions(plan, "link")) == 1
    assert _actions(plan, "create") == []
    assert plan.skipped == [
        {
            "record_type": "Contact",
            "record_id": "003000000000002AAA",
            "reason": "EMAIL_LINKED_TO_OTHER_CONTACT",
        }
    ]


def test_plan_contacts_duplicate_new_contacts_one_create() -> None:
    first = contact("003000000000001AAA")
    second = contact("003000000000002AAA", email=" Ada@Example.com")

    plan = _plan([first, second])

    creates = _actions(plan, "create")
    assert len(creates) == 1
    assert creates[0]["contact_id"] == "003000000000001AAA"
    assert [item["record_id"] for item in plan.pending] == ["003000000000002AAA"]


def test_plan_contacts_opted_out_active_subscriber_unsubscribed() -> None:
    plan = _plan([contact(opted_out=True)], by_email=[subscriber()])

    assert len(plan.actions) == 1
    assert plan.actions[0]["action"] == "link_and_unsubscribe"
    assert plan.actions[0]["subscriber_id"] == 101


def test_plan_contacts_opted_out_not_in_cerkl_skipped() -> None:
    plan = _plan([contact(opted_out=True)])

    assert _only_skip_reason(plan) == "OPTED_OUT_NOT_IN_CERKL"


@pytest.mark.parametrize(
    ("self_unsubscribed", "reason"),
    [(True, "SELF_UNSUBSCRIBED"), (False, "UNSUBSCRIBED_IN_CERKL")],
)
def test_plan_contacts_unsubscribed_email_not_subscribed(
    self_unsubscribed: bool, reason: str
) -> None:
    plan = _plan(
        [contact(email="Ada@Example.com")],
        unsubscribes=[unsubscribe(self_unsubscribed=self_unsubscribed)],
    )

    assert _only_skip_reason(plan) == reason
    assert plan.deferred == [
        {
            "flow": "unsubscribes_to_contacts",
            "record_type": "unsubscribe",
            "record_id": "101",
            "reason": "EMAIL_UNSUBSCRIBED_IN_CERKL",
        }
    ]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"email": "not-an-address"}, "INVALID_EMAIL"),
        ({"email": 'a"b@example.com'}, "INVALID_EMAIL"),
        ({"email": "back\\slash@example.com"}, "INVALID_EMAIL"),
        ({"email": None}, "MISSING_EMAIL"),
        ({"email": "a" * 75 + "@example.com"}, "EMAIL_TOO_LONG"),
        ({"first_name": "É" * 41}, "FIRST_NAME_TOO_LONG"),
        ({"last_name": "🎉" * 81}, "LAST_NAME_TOO_LONG"),
    ],
)
def test_plan_contacts_bad_record_rejected(fields: dict[str, Any], code: str) -> None:
    plan = _plan([contact(**fields)])

    assert plan.actions == []
    assert len(plan.rejected) == 1
    assert plan.rejected[0]["record_id"] == "003000000000001AAA"
    assert plan.rejected[0]["reason"].startswith(code + ":")


def test_plan_contacts_cap_leaves_rest_pending() -> None:
    contacts = [contact(f"003{i:015d}", email=f"person{i}@example.com") for i in range(5)]

    plan = _plan(contacts, cap=3)

    assert len(_actions(plan, "create")) == 3
    assert len(plan.pending) == 2
    assert {item["reason"] for item in plan.pending} == {"NEW_SUBSCRIBER_CAP_REACHED"}


def test_plan_contacts_zero_cap_still_links() -> None:
    plan = _plan(
        [contact(), contact("003000000000002AAA", email="other@example.com")],
        by_email=[subscriber()],
        cap=0,
    )

    assert len(_actions(plan, "link")) == 1
    assert _actions(plan, "create") == []
    assert [item["record_id"] for item in plan.pending] == ["003000000000002AAA"]


# Deleted and merged Contacts.


def test_plan_contacts_deleted_linked_unlinked() -> None:
    plan = _plan([contact(is_deleted=True)], links=[link()])

    assert plan.actions == [
        {
            "action": "unlink",
            "contact_id": "003000000000001AAA",
            "subscriber_id": 101,
            "salesforce_seen_at": T2,
            "cerkl_seen_at": None,
        }
    ]


def test_plan_contacts_merged_moves_link_to_master() -> None:
    plan = _plan([contact(is_deleted=True, master_record_id="003000000000009AAA")], links=[link()])

    assert len(plan.actions) == 1
    assert plan.actions[0]["action"] == "move_link"
    assert plan.actions[0]["master_id"] == "003000000000009AAA"
    assert plan.actions[0]["subscriber_id"] == 101


def test_plan_contacts_deleted_not_linked_skipped() -> None:
    plan = _plan([contact(is_deleted=True, master_record_id="003000000000009AAA")])

    assert _only_skip_reason(plan) == "DELETED_NOT_LINKED"


# Every input record ends up in exactly one place.


def test_plan_contacts_every_record_accounted_once() -> None:
    linked = [link(f"003L{i:014d}", 200 + i) for i in range(4)]
    contacts = [
        contact("003L00000000000000", modstamp=T2),  # unchanged
        contact("003L00000000000001", first_name="Augusta", modstamp=T2),  # update
        contact("003L00000000000002", opted_out=True),  # unsubscribe
        contact("003L00000000000003", is_deleted=True),  # unlink
        contact("003N00000000000000", email="new0@example.com"),  # create
        contact("003N00000000000001", email="new1@example.com"),  # pending (cap)
        contact("003N00000000000002", email="bad@@example.com"),  # reject
        contact("003N00000000000003", email="found@example.com"),  # link
        contact("003N00000000000004", email="gone@example.com"),  # skip: unsubscribed
        contact("003N00000000000005", email="out@example.com", opted_out=True),  # skip
        contact("003N00000000000006", email="dup@example.com", opted_out=True),  # link, unsubscribe
    ]

    plan = _plan(
        contacts,
        links=linked,
        subscribers=[subscriber(200 + i, modified=T0) for i in range(4)],
        by_email=[
            subscriber(300, email="found@example.com"),
            subscriber(301, email="dup@example.com"),
        ],
        unsubscribes=[unsubscribe(400, email="gone@example.com")],
        cap=1,
    )

    placed = Counter(action["contact_id"] for action in plan.actions)
    for outcome in plan.skipped + plan.rejected + plan.pending:
        placed[outcome["record_id"]] += 1
    assert placed == Counter(c["id"] for c in contacts)
    assert len(plan.actions) == 6
    assert len(plan.skipped) == 3
    assert len(plan.rejected) == 1
    assert len(plan.pending) == 1
