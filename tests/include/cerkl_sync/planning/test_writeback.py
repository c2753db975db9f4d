"""Tests of the flows that write Cerkl changes back to Contacts: opt-outs, changes, interests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest

from include.cerkl_sync.planning.pairs import field_digest
from include.cerkl_sync.planning.plan import FlowPlan
from include.cerkl_sync.planning.writeback import (
    opt_out_cleared_after,
    plan_subscriber_changes_to_contacts,
    plan_unsubscribes_to_contacts,
    top_interests,
)
from include.cerkl_sync.records import parse_timestamp
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

CONTACT_ID = "003000000000001AAA"


def _unsubscribes(
    unsubscribe_records: Iterable[Mapping[str, Any]],
    *,
    links: Iterable[Link] = (),
    contacts: Iterable[Mapping[str, Any]] = (),
    matches: Mapping[int, str] | None = None,
    set_has_opted_out: bool = False,
) -> FlowPlan:
    return plan_unsubscribes_to_contacts(
        list(unsubscribe_records),
        links_by_subscriber={item.subscriber_id: item for item in links},
        contacts={c["id"]: c for c in contacts},
        matches=matches or {},
        set_has_opted_out=set_has_opted_out,
    )


def _changes(
    subscribers: Iterable[Mapping[str, Any]],
    *,
    links: Iterable[Link] = (),
    contacts: Iterable[Mapping[str, Any]] = (),
    changed_contact_ids: Iterable[str] = (),
    interests: Mapping[int, Sequence[Mapping[str, Any]]] | None = None,
    conflict_rule: str = "latest_wins",
) -> tuple[FlowPlan, FlowPlan]:
    return plan_subscriber_changes_to_contacts(
        list(subscribers),
        links_by_subscriber={item.subscriber_id: item for item in links},
        contacts={c["id"]: c for c in contacts},
        changed_contact_ids=set(changed_contact_ids),
        interests=interests or {},
        conflict_rule=conflict_rule,
    )


def _interest(description: str | None, rank: object) -> dict[str, Any]:
    return {"category": {"id": 1, "description": description}, "rank": rank}


# opt_out_cleared_after


@pytest.mark.parametrize(
    ("contact_fields", "unsubscribe_fields", "was_opted_out", "expected"),
    [
        ({"opted_out": False, "modified": T3}, {"unsubscribed_at": T1}, True, True),
        ({"opted_out": False, "modified": T0}, {"unsubscribed_at": T1}, True, False),
        ({"opted_out": False, "modified": T1}, {"unsubscribed_at": T1}, True, False),
        ({"opted_out": True, "modified": T3}, {"unsubscribed_at": T1}, True, False),
        ({"opted_out": False, "modified": T3}, {"unsubscribed_at": T1}, False, False),
        (
            {"opted_out": False, "modified": T3},
            {"unsubscribed_at": T1, "self_unsubscribed": True},
            True,
            False,
        ),
        ({"opted_out": False, "modified": None}, {"unsubscribed_at": T1}, True, False),
        ({"opted_out": False, "modified": T3}, {"unsubscribed_at": None}, True, False),
    ],
)
def test_opt_out_cleared_after_cases(
    contact_fields: dict[str, Any],
    unsubscribe_fields: dict[str, Any],
    was_opted_out: bool,
    expected: bool,
) -> None:
    cleared = opt_out_cleared_after(
        contact(**contact_fields),
        unsubscribe(**unsubscribe_fields),
        digests(opted_out=was_opted_out),
    )

    assert cleared is expected


@pytest.mark.parametrize(("seen_at", "expected"), [(T1, True), (T2, False), (T3, False)])
def test_opt_out_cleared_after_stale_read(seen_at: str, expected: bool) -> None:
    # A Contact not changed since the sync saw it opted out shows flags read before the
    # opt-out, so they do not count as cleared.
    cleared = opt_out_cleared_after(
        contact(opted_out=False, modified=T3, modstamp=T2),
        unsubscribe(unsubscribed_at=T0),
        digests(opted_out=True),
        parse_timestamp(seen_at),
    )

    assert cleared is expected


# plan_unsubscribes_to_contacts


def test_plan_unsubscribes_linked_sets_checkbox() -> None:
    plan = _unsubscribes([unsubscribe()], links=[link()], contacts=[contact()])

    assert plan.actions == [
        {
            "action": "mark_opted_out",
            "subscriber_id": 101,
            "contact_id": CONTACT_ID,
            "unsubscribe_flag": True,
            "has_opted_out": False,
            "link": False,
        }
    ]


def test_plan_unsubscribes_configured_has_opted_out() -> None:
    plan = _unsubscribes(
        [unsubscribe()], links=[link()], contacts=[contact()], set_has_opted_out=True
    )

    assert plan.actions[0]["unsubscribe_flag"] is True
    assert plan.actions[0]["has_opted_out"] is True


def test_plan_unsubscribes_missing_has_opted_out_only() -> None:
    plan = _unsubscribes(
        [unsubscribe()],
        links=[link()],
        contacts=[contact(unsubscribe_flag=True, opted_out=True)],
        set_has_opted_out=True,
    )

    assert plan.actions[0]["unsubscribe_flag"] is False
    assert plan.actions[0]["has_opted_out"] is True


@pytest.mark.parametrize("set_has_opted_out", [False, True])
def test_plan_unsubscribes_already_opted_out_skipped(set_has_opted_out: bool) -> None:
    plan = _unsubscribes(
        [unsubscribe()],
        links=[link()],
        contacts=[contact(unsubscribe_flag=True, has_opted_out=True, opted_out=True)],
        set_has_opted_out=set_has_opted_out,
    )

    assert plan.actions == []
    assert plan.skipped[0]["reason"] == "ALREADY_OPTED_OUT"


def test_plan_unsubscribes_other_checkbox_counts_as_opted_out() -> None:
    # HasOptedOutOfEmail alone is an opt-out, so a second checkbox would only echo it.
    plan = _unsubscribes(
        [unsubscribe()], links=[link()], contacts=[contact(has_opted_out=True, opted_out=True)]
    )

    assert plan.actions == []
    assert plan.skipped[0]["reason"] == "ALREADY_OPTED_OUT"


def test_plan_unsubscribes_unlinked_matched_links() -> None:
    plan = _unsubscribes([unsubscribe()], contacts=[contact()], matches={101: CONTACT_ID})

    assert plan.actions[0]["contact_id"] == CONTACT_ID
    assert plan.actions[0]["link"] is True


def test_plan_unsubscribes_unlinked_flagged_still_links() -> None:
    plan = _unsubscribes(
        [unsubscribe()],
        contacts=[contact(unsubscribe_flag=True, opted_out=True)],
        matches={101: CONTACT_ID},
    )

    assert plan.actions[0]["link"] is True
    assert plan.actions[0]["unsubscribe_flag"] is False


def test_plan_unsubscribes_no_contact_skipped() -> None:
    plan = _unsubscribes([unsubscribe()])

    assert plan.actions == []
    assert plan.skipped[0]["reason"] == "NO_MATCHING_CONTACT"


@pytest.mark.parametrize("contacts", [[], [contact(is_deleted=True)]])
def test_plan_unsubscribes_deleted_contact_skipped(contacts: list[dict[str, Any]]) -> None:
    plan = _unsubscribes([unsubscribe()], links=[link()], contacts=contacts)

    assert plan.actions == []
    assert plan.skipped[0]["reason"] == "CONTACT_DELETED"


def test_plan_unsubscribes_cleared_opt_out_skipped() -> None:
    plan = _unsubscribes(
        [unsubscribe(unsubscribed_at=T1)],
        links=[link(synced_values=digests(opted_out=True))],
        contacts=[contact(modified=T3)],
    )

    assert plan.actions == []
    assert plan.skipped[0]["reason"] == "OPT_OUT_CLEARED_IN_SALESFORCE"


def test_plan_unsubscribes_self_unsubscribe_overrides_cleared() -> None:
    plan = _unsubscribes(
        [unsubscribe(unsubscribed_at=T1, self_unsubscribed=True, source="subscriber")],
        links=[link(synced_values=digests(opted_out=True))],
        contacts=[contact(modified=T3)],
    )

    assert plan.actions[0]["action"] == "mark_opted_out"


def test_plan_unsubscribes_every_record_accounted_once() -> None:
    records = [unsubscribe(i, email=f"u{i}@example.com") for i in range(1, 6)]
    links = [link(f"003{i:015d}", i) for i in (1, 2, 3)]
    contacts = [
        contact("003000000000000001"),  # marked opted out
        contact("003000000000000002", unsubscribe_flag=True, opted_out=True),  # skipped
        contact("003000000000000003", is_deleted=True),  # skipped
        contact("003000000000000004"),  # matched by email, marked and linked
    ]

    plan = _unsubscribes(records, links=links, contacts=contacts, matches={4: "003000000000000004"})

    placed = Counter(str(action["subscriber_id"]) for action in plan.actions)
    for outcome in plan.skipped + plan.rejected + plan.pending:
        placed[outcome["record_id"]] += 1
    assert placed == Counter(str(u["id"]) for u in records)
    assert len(plan.actions) == 2
    assert len(plan.skipped) == 3


# top_interests


def test_top_interests_fewer_than_five_padded() -> None:
    names = top_interests([_interest("Golf", 2), _interest("Art", 1)])

    assert names == ["Art", "Golf", None, None, None]


def test_top_interests_none_all_blank() -> None:
    assert top_interests([]) == [None] * 5


def test_top_interests_best_five_by_rank() -> None:
    ranked = [_interest(f"Topic {rank}", rank) for rank in (7, 3, 1, 6, 2, 5, 4)]

    names = top_interests(ranked)

    assert names == ["Topic 1", "Topic 2", "Topic 3", "Topic 4", "Topic 5"]


def test_top_interests_rank_as_text_sorts_numerically() -> None:
    names = top_interests([_interest("Ten", "10"), _interest("Two", "2")])

    assert names[:2] == ["Two", "Ten"]


def test_top_interests_unranked_left_out() -> None:
    names = top_interests([_interest("Unranked", None), _interest("Ranked", 1)])

    assert names == ["Ranked", None, None, None, None]


def test_top_interests_rank_tie_by_name() -> None:
    names = top_interests([_interest("Zoology", 1), _interest("Art", 1)])

    assert names[:2] == ["Art", "Zoology"]


def test_top_interests_flat_description_and_trimming() -> None:
    names = top_interests([{"description": "  Golf  ", "rank": 1}, _interest("x" * 300, 2)])

    assert names[0] == "Golf"
    assert names[1] == "x" * 255


@pytest.mark.parametrize(
    "description",
    ['O\'Brien "quotes"', "back\\slash", "100% _off_", "Café\u0301 🎉", "كرة القدم"],
)
def test_top_interests_hostile_descriptions_kept(description: str) -> None:
    assert top_interests([_interest(description, 1)])[0] == description


# plan_subscriber_changes_to_contacts


def test_plan_subscriber_changes_not_linked_skipped() -> None:
    changes, interests = _changes([subscriber()])

    assert changes.actions == []
    assert changes.skipped[0]["reason"] == "NOT_LINKED"
    assert interests.actions == []


def test_plan_subscriber_changes_deleted_contact_skipped() -> None:
    changes, _ = _changes([subscriber()], links=[link()], contacts=[contact(is_deleted=True)])

    assert changes.actions == []
    assert changes.skipped[0]["reason"] == "CONTACT_DELETED"


# A linked Contact outside the window's extract is compared with the link's digests.


def test_plan_subscriber_changes_unread_contact_name_written() -> None:
    changes, _ = _changes([subscriber(first_name="Augusta", modified=T2)], links=[link()])

    assert changes.actions[0]["contact_id"] == CONTACT_ID
    assert changes.actions[0]["changes"] == {"first_name": "Augusta"}
    assert changes.actions[0]["synced_values"]["first_name"] == field_digest(
        "first_name", "Augusta"
    )


def test_plan_subscriber_changes_unread_contact_unchanged() -> None:
    changes, _ = _changes([subscriber(modified=T2)], links=[link()])

    assert changes.actions == []
    assert changes.skipped[0]["reason"] == "UNCHANGED"


def test_plan_subscriber_changes_unread_score_compared_with_digest() -> None:
    synced = {**digests(), "engagement_score": field_digest("engagement_score", 10.0)}

    same, _ = _changes(
        [subscriber(engagement_score=10, modified=T2)], links=[link(synced_values=synced)]
    )
    moved, _ = _changes(
        [subscriber(engagement_score=11.5, modified=T2)], links=[link(synced_values=synced)]
    )

    assert same.actions == []
    assert same.skipped[0]["reason"] == "UNCHANGED"
    assert moved.actions[0]["changes"] == {"engagement_score": 11.5}


def test_plan_subscriber_changes_unsynced_score_written() -> None:
    changes, _ = _changes([subscriber(engagement_score=10, modified=T2)], links=[link()])

    assert changes.actions[0]["changes"] == {"engagement_score": 10.0}
    expected = field_digest("engagement_score", 10.0)
    assert changes.actions[0]["synced_values"]["engagement_score"] == expected


def test_plan_subscriber_changes_unchanged_skip_carries_digests() -> None:
    changes, _ = _changes(
        [subscriber(engagement_score=10, modified=T2)],
        links=[link()],
        contacts=[contact(engagement_score=10.0)],
    )

    assert changes.skipped[0]["reason"] == "UNCHANGED"
    expected = field_digest("engagement_score", 10.0)
    assert changes.skipped[0]["synced_values"]["engagement_score"] == expected


def test_plan_subscriber_changes_unread_interests_compared_with_digest() -> None:
    ranked = [_interest("Art", 1), _interest("Golf", 2)]
    wanted = ["Art", "Golf", None, None, None]
    synced = {**digests(), "interests": field_digest("interests", wanted)}

    _, same = _changes(
        [subscriber(modified=T2)], links=[link(synced_values=synced)], interests={101: ranked}
    )
    _, moved = _changes(
        [subscriber(modified=T2)],
        links=[link(synced_values=synced)],
        interests={101: [_interest("Chess", 1)]},
    )

    assert same.actions == []
    assert same.skipped[0]["reason"] == "UNCHANGED"
    assert same.skipped[0]["synced_values"] == {"interests": field_digest("interests", wanted)}
    assert moved.actions[0]["changes"] == {"interests": ["Chess", None, None, None, None]}
    expected = field_digest("interests", ["Chess", None, None, None, None])
    assert moved.actions[0]["synced_values"] == {"interests": expected}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("first_name", "Augusta"),
        ("last_name", "King-Noël"),
        ("email", "ada.king@example.com"),
        ("last_name", 'O\'Brien \\ "x" 100%_ 🎉'),
        ("first_name", "محمد"),
    ],
)
def test_plan_subscriber_changes_field_to_contact(field: str, value: str) -> None:
    changes, _ = _changes(
        [subscriber(modified=T2, **{field: value})], links=[link()], contacts=[contact()]
    )

    assert len(changes.actions) == 1
    action = changes.actions[0]
    assert action["action"] == "update_contact"
    assert action["contact_id"] == CONTACT_ID
    assert action["changes"] == {field: value}


def test_plan_subscriber_changes_email_variant_unchanged() -> None:
    changes, _ = _changes(
        [subscriber(email=" ADA@Example.COM", modified=T2)], links=[link()], contacts=[contact()]
    )

    assert changes.actions == []
    assert changes.skipped[0]["reason"] == "UNCHANGED"


def test_plan_subscriber_changes_engagement_score() -> None:
    changes, _ = _changes(
        [subscriber(engagement_score=42.5, modified=T2)],
        links=[link()],
        contacts=[contact(engagement_score=10.0)],
    )

    assert changes.actions[0]["changes"] == {"engagement_score": 42.5}


def test_plan_subscriber_changes_same_score_skipped() -> None:
    changes, _ = _changes(
        [subscriber(engagement_score=10, modified=T2)],
        links=[link()],
        contacts=[contact(engagement_score=10.0)],
    )

    assert changes.actions == []
    assert changes.skipped[0]["reason"] == "UNCHANGED"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"email": "ada@@example.com"}, "INVALID_EMAIL"),
        ({"email": "x" * 70 + "@example.com"}, "EMAIL_TOO_LONG"),
        ({"first_name": "Å" * 41}, "FIRST_NAME_TOO_LONG"),
        ({"last_name": "😀" * 81}, "LAST_NAME_TOO_LONG"),
    ],
)
def test_plan_subscriber_changes_bad_value_rejected(fields: dict[str, Any], code: str) -> None:
    changes, _ = _changes([subscriber(modified=T2, **fields)], links=[link()], contacts=[contact()])

    assert changes.actions == []
    assert changes.rejected[0]["record_id"] == "101"
    assert changes.rejected[0]["reason"].startswith(code + ":")


def test_plan_subscriber_changes_later_contact_wins() -> None:
    changes, _ = _changes(
        [subscriber(first_name="Augusta", modified=T2)],
        links=[link()],
        contacts=[contact(first_name="Ada Augusta", modstamp=T3, modified=T3)],
        changed_contact_ids=[CONTACT_ID],
    )

    assert changes.actions == []


def test_plan_subscriber_changes_later_cerkl_wins() -> None:
    changes, _ = _changes(
        [subscriber(first_name="Augusta", modified=T3)],
        links=[link()],
        contacts=[contact(first_name="Ada Augusta", modstamp=T2, modified=T2)],
        changed_contact_ids=[CONTACT_ID],
    )

    assert changes.actions[0]["changes"] == {"first_name": "Augusta"}


def test_plan_subscriber_changes_backfill_never_overwrites() -> None:
    changes, _ = _changes(
        [subscriber(first_name="Old", modified=T0)],
        links=[link(cerkl_seen_at=T2)],
        contacts=[contact()],
    )

    assert changes.actions == []
    assert changes.skipped[0]["reason"] == "UNCHANGED"


def test_plan_subscriber_changes_interests_written() -> None:
    _, interests = _changes(
        [subscriber(modified=T2)],
        links=[link()],
        contacts=[contact(interests=["Golf", None, None, None, None])],
        interests={101: [_interest("Art", 1), _interest("Golf", 2)]},
    )

    assert interests.actions == [
        {
            "action": "update_contact",
            "subscriber_id": 101,
            "contact_id": CONTACT_ID,
            "changes": {"interests": ["Art", "Golf", None, None, None]},
            "synced_values": {
                "interests": field_digest("interests", ["Art", "Golf", None, None, None])
            },
        }
    ]


def test_plan_subscriber_changes_interests_blanked_when_none() -> None:
    _, interests = _changes(
        [subscriber(modified=T2)],
        links=[link()],
        contacts=[contact(interests=["Golf", "Art", None, None, None])],
        interests={101: []},
    )

    assert interests.actions[0]["changes"] == {"interests": [None] * 5}


def test_plan_subscriber_changes_same_interests_skipped() -> None:
    _, interests = _changes(
        [subscriber(modified=T2)],
        links=[link()],
        contacts=[contact(interests=["Art", None, None, None, None])],
        interests={101: [_interest("Art", 1)]},
    )

    assert interests.actions == []
    assert interests.skipped[0]["reason"] == "UNCHANGED"


def test_plan_subscriber_changes_interests_not_fetched_untouched() -> None:
    _, interests = _changes(
        [subscriber(modified=T2)],
        links=[link()],
        contacts=[contact(interests=["Art", None, None, None, None])],
    )

    assert interests.actions == []
    assert interests.skipped == []


def test_plan_subscriber_changes_every_record_accounted_once() -> None:
    subscribers = [
        subscriber(1, first_name="Augusta", modified=T2),  # update
        subscriber(2, modified=T2),  # unchanged
        subscriber(3, email="bad@", modified=T2),  # reject
        subscriber(4, modified=T2),  # not linked
        subscriber(5, modified=T2),  # Contact deleted
    ]
    links = [link(f"003{i:015d}", i) for i in (1, 2, 3, 5)]
    contacts = [contact(f"003{i:015d}") for i in (1, 2, 3)]

    changes, _ = _changes(subscribers, links=links, contacts=contacts)

    placed = Counter(str(action["subscriber_id"]) for action in changes.actions)
    for outcome in changes.skipped + changes.rejected + changes.pending:
        placed[outcome["record_id"]] += 1
    assert placed == Counter(str(s["id"]) for s in subscribers)
