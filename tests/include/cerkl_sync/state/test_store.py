"""Tests of SyncStateStore's data methods on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from include.cerkl_sync.state import Link, SegmentLink, SyncStateStore, value_digest
from include.cerkl_sync.state.models import REASON_MAX_LENGTH

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def contact(number: int) -> str:
    return f"003{number:015d}"


def campaign(number: int) -> str:
    return f"701{number:015d}"


# -- value_digest ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (None, ""),
        (None, "   "),
        (" Acme ", "Acme"),
        ("e\u0301", "\u00e9"),  # NFD and NFC forms of the same letter
        (True, "true"),
        (False, "false"),
        (1, 1.0),
        (1, Decimal("1.00")),
        (2.5, Decimal("2.5")),
        (42, "42"),
        (1e-7, Decimal("0.00000010")),
        (0.1, "0.1"),
        (1e20, 100000000000000000000),
    ],
)
def test_value_digest_equal_after_normalization(left: object, right: object) -> None:
    assert value_digest(left) == value_digest(right)


@pytest.mark.parametrize(
    ("left", "right"), [("Acme", "acme"), (1, 2), (True, False), ("", "0"), (1.5, 1)]
)
def test_value_digest_distinct_values_differ(left: object, right: object) -> None:
    assert value_digest(left) != value_digest(right)


def test_value_digest_is_sha256_hex() -> None:
    digest = value_digest("x")

    assert len(digest) == 64
    assert digest == digest.lower()
    assert int(digest, 16) >= 0


def test_value_digest_rejects_unsupported_type() -> None:
    with pytest.raises(TypeError, match="list"):
        value_digest(["a"])


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), Decimal("NaN"), Decimal("-Infinity")]
)
def test_value_digest_rejects_non_finite(value: float | Decimal) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        value_digest(value)


# -- windows -----------------------------------------------------------------------------------


def test_window_end_none_before_first_completion(store: SyncStateStore) -> None:
    assert store.get_window_end("contacts_to_cerkl") is None


def test_window_end_moves_forward(store: SyncStateStore) -> None:
    store.complete_window("contacts_to_cerkl", T0)
    store.complete_window("contacts_to_cerkl", T0 + timedelta(days=1))

    assert store.get_window_end("contacts_to_cerkl") == T0 + timedelta(days=1)


def test_window_end_never_moves_backwards(store: SyncStateStore) -> None:
    store.complete_window("contacts_to_cerkl", T0)
    store.complete_window("contacts_to_cerkl", T0 - timedelta(hours=1))
    store.complete_window("contacts_to_cerkl", T0)

    assert store.get_window_end("contacts_to_cerkl") == T0


def test_window_end_per_flow(store: SyncStateStore) -> None:
    store.complete_window("contacts_to_cerkl", T0)
    store.complete_window("cerkl_to_contacts", T0 - timedelta(days=2))

    assert store.get_window_end("contacts_to_cerkl") == T0
    assert store.get_window_end("cerkl_to_contacts") == T0 - timedelta(days=2)


def test_window_end_converted_to_utc(store: SyncStateStore) -> None:
    eastern = timezone(timedelta(hours=-5))
    store.complete_window("contacts_to_cerkl", datetime(2026, 3, 1, 7, 0, tzinfo=eastern))

    window_end = store.get_window_end("contacts_to_cerkl")

    assert window_end == T0
    assert window_end is not None
    assert window_end.tzinfo == UTC


def test_window_end_naive_rejected(store: SyncStateStore) -> None:
    with pytest.raises(ValueError, match="no time zone"):
        store.complete_window("contacts_to_cerkl", datetime(2026, 3, 1))


@pytest.mark.parametrize("flow", ["", "has space", "x" * 65, None])
def test_window_invalid_flow_rejected(store: SyncStateStore, flow: object) -> None:
    with pytest.raises(ValueError, match="Invalid flow name"):
        store.get_window_end(flow)  # type: ignore[arg-type]


# -- links -------------------------------------------------------------------------------------


def test_links_round_trip(store: SyncStateStore) -> None:
    synced = {"Email": value_digest("a@example.com"), "FirstName": value_digest("Ann")}
    link = Link(contact(1), 101, synced, T0, T0 - timedelta(minutes=5))
    store.save_links([link, Link(contact(2), 102)])

    by_contact = store.get_links_by_contact([contact(1), contact(2), contact(3)])
    by_subscriber = store.get_links_by_subscriber([101, 102, 103])

    assert by_contact[contact(1)] == link
    assert by_contact[contact(2)] == Link(contact(2), 102, {}, None, None)
    assert contact(3) not in by_contact
    assert by_subscriber[101] == link
    assert set(by_subscriber) == {101, 102}


def test_links_subscriber_relinked_replaces_old_contact(
    store: SyncStateStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.save_links([Link(contact(1), 101)])

    with caplog.at_level(logging.WARNING, logger="include.cerkl_sync.state.store"):
        store.save_links([Link(contact(2), 101)])

    assert store.get_links_by_contact([contact(1)]) == {}
    assert store.get_links_by_subscriber([101])[101].contact_id == contact(2)
    assert store.count_links() == 1
    assert f"Subscriber 101 re-linked from contact {contact(1)} to {contact(2)}" in caplog.text


def test_links_contact_relinked_replaces_old_subscriber(
    store: SyncStateStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.save_links([Link(contact(1), 101)])

    with caplog.at_level(logging.WARNING, logger="include.cerkl_sync.state.store"):
        store.save_links([Link(contact(1), 202)])

    assert store.get_links_by_subscriber([101]) == {}
    assert store.get_links_by_contact([contact(1)])[contact(1)].subscriber_id == 202
    assert store.count_links() == 1
    assert f"Contact {contact(1)} re-linked from subscriber 101 to 202" in caplog.text


def test_links_swap_between_two_contacts(store: SyncStateStore) -> None:
    store.save_links([Link(contact(1), 101), Link(contact(2), 102)])

    store.save_links([Link(contact(1), 102), Link(contact(2), 101)])

    links = store.get_links_by_contact([contact(1), contact(2)])
    assert links[contact(1)].subscriber_id == 102
    assert links[contact(2)].subscriber_id == 101


def test_links_later_input_wins_within_call(store: SyncStateStore) -> None:
    store.save_links(
        [
            Link(contact(1), 101),
            Link(contact(2), 101),  # takes subscriber 101 from contact 1
            Link(contact(3), 103),
            Link(contact(3), 104),  # replaces contact 3's first link
        ]
    )

    links = store.get_links_by_contact([contact(1), contact(2), contact(3)])
    assert set(links) == {contact(2), contact(3)}
    assert links[contact(2)].subscriber_id == 101
    assert links[contact(3)].subscriber_id == 104
    assert store.get_links_by_subscriber([103]) == {}


def test_links_replace_synced_values(store: SyncStateStore) -> None:
    store.save_links([Link(contact(1), 101, {"Email": value_digest("a")})])

    store.save_links([Link(contact(1), 101, {"FirstName": value_digest("b")}, T0)])

    link = store.get_links_by_contact([contact(1)])[contact(1)]
    assert link.synced_values == {"FirstName": value_digest("b")}
    assert link.salesforce_seen_at == T0


def test_links_raw_value_rejected_without_echo(store: SyncStateStore) -> None:
    with pytest.raises(ValueError, match="value_digest") as raised:
        store.save_links([Link(contact(1), 101, {"Email": "ann@example.com"})])

    assert "ann@example.com" not in str(raised.value)
    assert store.count_links() == 0


@pytest.mark.parametrize(
    ("link", "message"),
    [
        (Link("003ABC", 101), "contact_id"),
        (Link(contact(1), 0), "subscriber_id"),
        (Link(contact(1), True), "subscriber_id"),  # type: ignore[arg-type]
        (Link(contact(1), 101, {}, datetime(2026, 1, 1)), "no time zone"),
    ],
)
def test_links_invalid_input_rejected(store: SyncStateStore, link: Link, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        store.save_links([link])


def test_links_saved_across_chunks(store: SyncStateStore) -> None:
    links = [Link(contact(number), 1000 + number) for number in range(1, 1201)]

    store.save_links(links)

    assert store.count_links() == 1200
    fetched = store.get_links_by_subscriber(range(1001, 2201))
    assert len(fetched) == 1200
    assert fetched[2200].contact_id == contact(1200)


def test_delete_links_counts_deleted(store: SyncStateStore) -> None:
    store.save_links([Link(contact(1), 101), Link(contact(2), 102)])

    deleted = store.delete_links([contact(1), contact(3)])

    assert deleted == 1
    assert set(store.get_links_by_contact([contact(1), contact(2)])) == {contact(2)}


def test_move_link_to_unlinked_contact(store: SyncStateStore) -> None:
    synced = {"Email": value_digest("x")}
    store.save_links([Link(contact(1), 101, synced, T0)])

    moved = store.move_link(contact(1), contact(2))

    assert moved == Link(contact(2), 101, synced, T0, None)
    assert store.get_links_by_contact([contact(1)]) == {}
    assert store.get_links_by_subscriber([101])[101].contact_id == contact(2)


def test_move_link_to_linked_contact_keeps_target(store: SyncStateStore) -> None:
    store.save_links([Link(contact(1), 101), Link(contact(2), 102)])

    result = store.move_link(contact(1), contact(2))

    assert result == Link(contact(2), 102)
    assert store.get_links_by_subscriber([101]) == {}
    assert store.count_links() == 1


def test_move_link_from_unlinked_contact(store: SyncStateStore) -> None:
    store.save_links([Link(contact(2), 102)])

    assert store.move_link(contact(1), contact(2)) is None
    assert store.get_links_by_contact([contact(2)])[contact(2)].subscriber_id == 102


def test_iter_links_batches_in_order(store: SyncStateStore) -> None:
    store.save_links([Link(contact(number), 100 + number) for number in (5, 3, 1, 4, 2)])

    batches = list(store.iter_links(batch_size=2))

    assert [len(batch) for batch in batches] == [2, 2, 1]
    ids = [link.contact_id for batch in batches for link in batch]
    assert ids == [contact(number) for number in range(1, 6)]


def test_iter_links_exact_multiple_of_batch(store: SyncStateStore) -> None:
    store.save_links([Link(contact(number), 100 + number) for number in range(1, 5)])

    assert [len(batch) for batch in store.iter_links(batch_size=2)] == [2, 2]
    assert [len(batch) for batch in store.iter_links(batch_size=10)] == [4]


def test_iter_links_rejects_zero_batch(store: SyncStateStore) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        next(store.iter_links(batch_size=0))


# -- segment links -----------------------------------------------------------------------------


def test_segment_links_upsert_and_filter(store: SyncStateStore) -> None:
    store.save_segment_link(SegmentLink(campaign(1), 11))
    store.save_segment_link(SegmentLink(campaign(2), 12))
    store.save_segment_link(SegmentLink(campaign(1), 21, in_scope=False))

    every_link = store.get_segment_links()
    selected = store.get_segment_links([campaign(2), campaign(3)])

    assert every_link == {
        campaign(1): SegmentLink(campaign(1), 21, in_scope=False),
        campaign(2): SegmentLink(campaign(2), 12, in_scope=True),
    }
    assert selected == {campaign(2): SegmentLink(campaign(2), 12)}
    assert store.get_segment_links([]) == {}


def test_segment_link_invalid_rejected(store: SyncStateStore) -> None:
    with pytest.raises(ValueError, match="campaign_id"):
        store.save_segment_link(SegmentLink("701", 11))
    with pytest.raises(ValueError, match="segment_id"):
        store.save_segment_link(SegmentLink(campaign(1), -1))


# -- work items --------------------------------------------------------------------------------


def test_work_items_added_once_per_record(store: SyncStateStore) -> None:
    store.add_work_items("contacts", "pending", [("Contact", contact(1), "http_500")])

    items = store.open_work_items()

    assert len(items) == 1
    assert items[0].flow == "contacts"
    assert items[0].kind == "pending"
    assert items[0].record_type == "Contact"
    assert items[0].record_id == contact(1)
    assert items[0].reason == "http_500"
    assert items[0].attempts == 1
    assert items[0].first_seen == items[0].last_seen
    assert items[0].first_seen.tzinfo == UTC


def test_work_items_repeat_counts_attempts(store: SyncStateStore) -> None:
    store.add_work_items("contacts", "pending", [("Contact", contact(1), "http_500")])
    store.add_work_items("contacts", "pending", [("Contact", contact(1), "http_429")])
    store.add_work_items("contacts", "pending", [("Contact", contact(1), "timeout")])

    (item,) = store.open_work_items()

    assert item.attempts == 3
    assert item.reason == "timeout"
    assert item.last_seen >= item.first_seen


def test_work_items_duplicate_in_call_counts_once(store: SyncStateStore) -> None:
    store.add_work_items(
        "contacts",
        "pending",
        [("Contact", contact(1), "first"), ("Contact", contact(1), "second")],
    )

    (item,) = store.open_work_items()

    assert item.attempts == 1
    assert item.reason == "second"


def test_work_items_quarantine_is_sticky(store: SyncStateStore) -> None:
    store.add_work_items("contacts", "pending", [("Contact", contact(1), "http_500")])
    store.add_work_items("contacts", "quarantined", [("Contact", contact(1), "too_many_attempts")])
    store.add_work_items("contacts", "pending", [("Contact", contact(1), "http_500")])

    (item,) = store.open_work_items()

    assert item.kind == "quarantined"
    assert item.attempts == 3


def test_work_items_filter_by_flow_and_kind(store: SyncStateStore) -> None:
    store.add_work_items("contacts", "pending", [("Contact", contact(1), "a")])
    store.add_work_items("contacts", "quarantined", [("Contact", contact(2), "b")])
    store.add_work_items("campaigns", "pending", [("Campaign", campaign(1), "c")])

    assert [item.record_id for item in store.open_work_items(flow="contacts")] == [
        contact(1),
        contact(2),
    ]
    assert [item.record_id for item in store.open_work_items(kind="quarantined")] == [contact(2)]
    assert [item.record_id for item in store.open_work_items("campaigns", "pending")] == [
        campaign(1)
    ]


def test_work_items_reason_truncated(store: SyncStateStore) -> None:
    store.add_work_items("contacts", "pending", [("Contact", contact(1), "x" * 2000)])

    (item,) = store.open_work_items()

    assert len(item.reason) == REASON_MAX_LENGTH
    assert item.reason.endswith("...")


@pytest.mark.parametrize(
    ("kind", "item", "message"),
    [
        ("failed", ("Contact", "003", "r"), "kind"),
        ("pending", ("", "003", "r"), "record_type"),
        ("pending", ("Contact", "x" * 65, "r"), "record_id"),
        ("pending", ("Contact", "003", None), "reason"),
    ],
)
def test_work_items_invalid_rejected(
    store: SyncStateStore, kind: str, item: tuple[str, str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        store.add_work_items("contacts", kind, [item])


def test_resolve_work_items_both_kinds(store: SyncStateStore) -> None:
    store.add_work_items("contacts", "pending", [("Contact", contact(1), "a")])
    store.add_work_items("contacts", "quarantined", [("Contact", contact(2), "b")])
    store.add_work_items("contacts", "pending", [("Contact", contact(3), "c")])
    store.add_work_items("other", "pending", [("Contact", contact(1), "d")])

    resolved = store.resolve_work_items("contacts", "Contact", [contact(1), contact(2)])

    assert resolved == 2
    remaining = {(item.flow, item.record_id) for item in store.open_work_items()}
    assert remaining == {("contacts", contact(3)), ("other", contact(1))}


def test_clear_work_items_by_id_flow_and_all(store: SyncStateStore) -> None:
    store.add_work_items("contacts", "quarantined", [("Contact", contact(n), "a") for n in (1, 2)])
    store.add_work_items("campaigns", "pending", [("Campaign", campaign(n), "b") for n in (1, 2)])
    first_id = store.open_work_items()[0].id

    assert store.clear_work_items([first_id]) == 1
    assert store.clear_work_items([]) == 0
    assert store.clear_work_items(flow="contacts") == 1
    assert store.clear_work_items() == 2
    assert store.open_work_items() == []


def test_requeue_work_items_resets_attempts(store: SyncStateStore) -> None:
    store.add_work_items("contacts", "pending", [("Contact", contact(1), "a")])
    store.add_work_items("contacts", "quarantined", [("Contact", contact(1), "a")])
    store.add_work_items("contacts", "quarantined", [("Contact", contact(2), "b")])
    store.add_work_items("campaigns", "quarantined", [("Campaign", campaign(1), "c")])
    store.add_work_items("campaigns", "pending", [("Campaign", campaign(2), "d")])

    assert store.requeue_work_items(flow="contacts") == 2
    contact_items = store.open_work_items(flow="contacts")
    assert [item.kind for item in contact_items] == ["pending", "pending"]
    assert [item.attempts for item in contact_items] == [0, 0]

    campaign_ids = [item.id for item in store.open_work_items(flow="campaigns")]
    assert store.requeue_work_items(campaign_ids) == 1
    assert store.open_work_items(kind="quarantined") == []
    assert store.requeue_work_items() == 0


def test_requeued_item_counts_from_zero(store: SyncStateStore) -> None:
    store.add_work_items("contacts", "quarantined", [("Contact", contact(1), "a")])
    store.requeue_work_items()

    store.add_work_items("contacts", "pending", [("Contact", contact(1), "a")])

    (item,) = store.open_work_items()
    assert item.kind == "pending"
    assert item.attempts == 1


def test_work_item_ids_must_be_positive(store: SyncStateStore) -> None:
    with pytest.raises(ValueError, match="work item id"):
        store.clear_work_items([0])
