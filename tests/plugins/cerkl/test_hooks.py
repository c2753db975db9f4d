"""CerklHook methods against the Cerkl sandbox: subscribers, unsubscribes, segments, paging."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cerkl.exceptions import (
    CerklConfigError,
    CerklConflictError,
    CerklNotFoundError,
    CerklRetryError,
)
from cerkl.hooks import CerklHook

from tests.plugins.cerkl.helpers import set_connection, subscriber


def seed_subscribers(controls, *records) -> list[int]:
    return controls.seed({"subscribers": list(records)})["subscribers"]


# -- connection ---------------------------------------------------------------------------


def test_uri_form_connection_is_rejected(monkeypatch):
    set_connection(monkeypatch, "cerkl_uri", "https://client:secret-value@api.cerkl.com/v3")
    hook = CerklHook(cerkl_conn_id="cerkl_uri")

    with pytest.raises(CerklConfigError) as info:
        hook.find_subscriber_by_email("someone@example.com")

    message = str(info.value)
    assert "conn_type 'https'" in message
    assert '"host": "https://api.cerkl.com/v3"' in message
    assert "secret-value" not in message


def test_https_base_url_stays_https(monkeypatch):
    set_connection(
        monkeypatch,
        "cerkl_https",
        {"conn_type": "http", "host": "https://api.cerkl.com/v3", "login": "a", "password": "b"},
    )
    hook = CerklHook(cerkl_conn_id="cerkl_https")

    assert hook.settings.page_size == 1000
    assert hook.base_url == "https://api.cerkl.com/v3"


def test_unknown_extra_is_rejected_before_any_request(make_hook, cerkl_controls):
    hook = make_hook(extras={"Accept-Language": "en_US"})

    with pytest.raises(CerklConfigError, match="Accept-Language"):
        hook.list_privacy_levels()
    assert cerkl_controls.counters()["total"] == 0


def test_missing_credentials_are_rejected(monkeypatch, sandbox):
    set_connection(monkeypatch, "cerkl_nologin", {"conn_type": "http", "host": sandbox.cerkl_url})

    with pytest.raises(CerklConfigError, match="client id as login"):
        CerklHook(cerkl_conn_id="cerkl_nologin").list_privacy_levels()


def test_test_connection_reports_success(hook, sandbox):
    ok, message = hook.test_connection()

    assert ok is True
    assert sandbox.cerkl_url in message


def test_test_connection_reports_bad_secret(make_hook):
    hook = make_hook(secret="wrong-secret-value")

    ok, message = hook.test_connection()

    assert ok is False
    assert "CerklAuthError" in message
    assert "401" in message
    assert "wrong-secret-value" not in message


# -- subscribers --------------------------------------------------------------------------


def test_create_subscribers_results_in_input_order(hook):
    records = [
        {"email": "new1@example.com", "first_name": "New", "last_name": "One"},
        {"email": "NEW1@example.com ", "first_name": "Again"},
        {"email": "not-an-email", "first_name": "Bad"},
        {"email": "new2@example.com", "first_name": "New", "last_name": "Two"},
    ]

    results = hook.create_subscribers(records)

    assert [result.ok for result in results] == [True, False, False, True]
    assert results[0].subscriber["email"] == "new1@example.com"
    assert results[1].error_code == "DUPLICATE_EMAIL"
    assert results[1].found_after_retry is False
    assert results[2].error_code == "INVALID_EMAIL"
    assert results[3].subscriber["last_name"] == "Two"
    assert results[0].subscriber["subscriber_status"]["id"] == 1
    assert results[0].subscriber["subscriber_privacy_level"]["id"] == 1


def test_create_subscribers_splits_batches(make_hook, cerkl_controls):
    hook = make_hook(extras={"create_batch_size": 2, "new_subscriber_status_id": 1})
    records = [{"email": f"batch{i}@example.com", "first_name": "B"} for i in range(5)]

    results = hook.create_subscribers(records)

    assert all(result.ok for result in results)
    assert [r.subscriber["email"] for r in results] == [r["email"] for r in records]
    assert hook.api_calls["POST subscriber"] == 3
    assert cerkl_controls.counters()["by_endpoint"]["POST subscriber"] == 3


def test_create_subscribers_single_record_error_is_result(hook, cerkl_controls):
    seed_subscribers(cerkl_controls, subscriber(1))

    results = hook.create_subscribers([{"email": "person1@example.com", "first_name": "X"}])

    assert results[0].ok is False
    assert results[0].error_code == "DUPLICATE_EMAIL"
    assert "person1@example.com" not in (results[0].error_message or "")


def test_create_subscribers_status_looked_up_by_description(make_hook, cerkl_controls):
    hook = make_hook(extras={"new_subscriber_status_description": "News Digests Only"})

    results = hook.create_subscribers([{"email": "digest@example.com", "first_name": "D"}])

    assert results[0].subscriber["subscriber_status"]["id"] == 2
    assert hook.api_calls["GET subscriber_status"] == 1


def test_create_subscribers_configured_ids_skip_lookup(make_hook):
    hook = make_hook(extras={"new_subscriber_status_id": 3, "new_subscriber_privacy_level_id": 2})

    results = hook.create_subscribers([{"email": "blast@example.com", "first_name": "E"}])

    assert results[0].subscriber["subscriber_status"]["id"] == 3
    assert results[0].subscriber["subscriber_privacy_level"]["id"] == 2
    assert hook.api_calls["GET subscriber_status"] == 0


def test_create_subscribers_unknown_status_description(make_hook):
    hook = make_hook(extras={"new_subscriber_status_description": "Everything"})

    with pytest.raises(CerklConfigError, match="'Everything'"):
        hook.create_subscribers([{"email": "x@example.com", "first_name": "X"}])


def test_create_subscribers_rejects_record_without_email(hook):
    with pytest.raises(ValueError, match="record 1 has no 'email'"):
        hook.create_subscribers([{"email": "a@example.com"}, {"first_name": "NoMail"}])

    assert hook.api_calls["POST subscriber"] == 0


def test_create_subscribers_duplicate_after_retry_is_found(hook, cerkl_controls):
    # The seeded subscriber plays the one that a lost first attempt created.
    [existing_id] = seed_subscribers(cerkl_controls, subscriber(7))
    cerkl_controls.add_fault(path="^/v3/subscriber$", method="POST", status=503, count=1)

    results = hook.create_subscribers(
        [
            {"email": "person7@example.com", "first_name": "First7"},
            {"email": "fresh@example.com", "first_name": "Fresh"},
        ]
    )

    assert results[0].ok is True
    assert results[0].found_after_retry is True
    assert results[0].subscriber["id"] == existing_id
    assert results[1].ok is True
    assert results[1].found_after_retry is False
    assert hook.api_calls["POST subscriber"] == 2


def test_create_subscribers_failed_batch_keeps_partial_results(make_hook, cerkl_controls):
    hook = make_hook(extras={"create_batch_size": 2, "max_attempts": 2})
    added: list[int] = []

    def fail_later_batches(response, **_):
        if response.request.method == "POST" and response.request.path_url == "/v3/subscriber":
            if not added:
                added.append(cerkl_controls.add_fault(path="^/v3/subscriber$", method="POST"))

    hook.get_conn().hooks["response"].append(fail_later_batches)
    records = [{"email": f"part{i}@example.com", "first_name": "P"} for i in range(5)]

    with pytest.raises(CerklRetryError) as info:
        hook.create_subscribers(records)

    partial = info.value.partial_results
    assert [result.subscriber["email"] for result in partial] == [
        "part0@example.com",
        "part1@example.com",
    ]
    assert hook.api_calls["POST subscriber"] == 3


def test_get_subscriber_returns_record(hook, cerkl_controls):
    [subscriber_id] = seed_subscribers(cerkl_controls, subscriber(1, engagement_score=42))

    record = hook.get_subscriber(subscriber_id)

    assert record["id"] == subscriber_id
    assert record["engagement_score"] == 42


def test_get_subscriber_missing_raises_not_found(hook):
    with pytest.raises(CerklNotFoundError) as info:
        hook.get_subscriber(999)

    assert info.value.status == 404
    assert info.value.path == "subscriber/999"
    assert info.value.method == "GET"
    assert info.value.code


def test_find_subscriber_by_email_ignores_case_and_spaces(hook, cerkl_controls):
    [subscriber_id] = seed_subscribers(cerkl_controls, subscriber(3))

    found = hook.find_subscriber_by_email("  PERSON3@Example.com ")
    missing = hook.find_subscriber_by_email("nobody@example.com")

    assert found["id"] == subscriber_id
    assert missing is None


def test_update_subscriber_resends_current_status(hook, cerkl_controls):
    [subscriber_id] = seed_subscribers(
        cerkl_controls, subscriber(1, subscriber_status_id=2, subscriber_privacy_level_id=3)
    )

    updated = hook.update_subscriber(subscriber_id, {"first_name": "Renamed"})

    assert updated["first_name"] == "Renamed"
    assert updated["subscriber_status"]["id"] == 2
    assert updated["subscriber_privacy_level"]["id"] == 3
    assert hook.api_calls["GET subscriber/{id}"] == 1


def test_update_subscriber_uses_given_current(hook, cerkl_controls):
    [subscriber_id] = seed_subscribers(
        cerkl_controls, subscriber(1, subscriber_status_id=3, subscriber_privacy_level_id=2)
    )
    current = hook.get_subscriber(subscriber_id)

    updated = hook.update_subscriber(subscriber_id, {"last_name": "New"}, current=current)

    assert updated["subscriber_status"]["id"] == 3
    assert updated["subscriber_privacy_level"]["id"] == 2
    assert hook.api_calls["GET subscriber/{id}"] == 1


def test_update_subscriber_sets_explicit_status(hook, cerkl_controls):
    [subscriber_id] = seed_subscribers(cerkl_controls, subscriber(1))

    updated = hook.update_subscriber(
        subscriber_id, {"subscriber_status": 3, "subscriber_privacy_level": {"id": 2}}
    )

    assert updated["subscriber_status"]["id"] == 3
    assert updated["subscriber_privacy_level"]["id"] == 2
    assert hook.api_calls["GET subscriber/{id}"] == 0


def test_update_subscriber_duplicate_email_raises_conflict(hook, cerkl_controls):
    first, second = seed_subscribers(cerkl_controls, subscriber(1), subscriber(2))

    with pytest.raises(CerklConflictError) as info:
        hook.update_subscriber(second, {"email": "person1@example.com"})

    assert info.value.code == "DUPLICATE_EMAIL"
    assert "person1@example.com" not in str(info.value)
    assert hook.api_calls["PUT subscriber/{id}"] == 1


def test_update_subscriber_rejects_empty_changes(hook):
    with pytest.raises(ValueError, match="at least one change"):
        hook.update_subscriber(1, {})


def test_iter_subscribers_modified_since(hook, cerkl_controls):
    seed_subscribers(
        cerkl_controls,
        subscriber(1, date_modified_utc="2026-01-01 00:00:00"),
        subscriber(2, date_modified_utc="2026-02-01 12:00:00"),
        subscriber(3, date_modified_utc="2026-03-01 00:00:00"),
    )

    since = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
    emails = [record["email"] for record in hook.iter_subscribers(modified_since=since)]

    assert emails == ["person2@example.com", "person3@example.com"]


def test_iter_subscribers_created_since(hook, cerkl_controls):
    seed_subscribers(
        cerkl_controls,
        subscriber(1, date_created_utc="2025-01-01 00:00:00"),
        subscriber(2, date_created_utc="2026-06-01 00:00:00"),
    )

    since = datetime(2026, 1, 1, tzinfo=UTC)
    emails = [record["email"] for record in hook.iter_subscribers(created_since=since)]

    assert emails == ["person2@example.com"]


def test_iter_subscribers_rejects_naive_datetime(hook):
    with pytest.raises(ValueError, match="no time zone"):
        list(hook.iter_subscribers(modified_since=datetime(2026, 1, 1)))


def test_field_names_extra_translates_both_ways(make_hook):
    # Swapping two names shows the mapping on the way out and on the way back.
    swapped = make_hook(
        extras={"field_names": {"first_name": "last_name", "last_name": "first_name"}},
        conn_id="cerkl_swapped",
    )
    plain = make_hook()

    [result] = swapped.create_subscribers(
        [{"email": "swap@example.com", "first_name": "Given", "last_name": "Family"}]
    )
    stored = plain.get_subscriber(result.subscriber["id"])

    assert result.subscriber["first_name"] == "Given"
    assert stored["first_name"] == "Family"
    assert stored["last_name"] == "Given"


# -- paging -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "page_sizes", "requests"),
    [(0, [], 1), (3, [3], 2), (4, [3, 1], 2), (7, [3, 3, 1], 3)],
    ids=["empty", "exactly-one-page", "one-over", "several"],
)
def test_iter_subscriber_pages_edges(hook, cerkl_controls, count, page_sizes, requests):
    if count:
        seed_subscribers(cerkl_controls, *[subscriber(i) for i in range(count)])

    pages = list(hook.iter_subscriber_pages(page_size=3))

    assert [len(page) for page in pages] == page_sizes
    assert hook.api_calls["GET subscriber"] == requests
    ids = [record["id"] for page in pages for record in page]
    assert len(set(ids)) == count


def test_iter_subscriber_pages_uses_page_size_extra(make_hook, cerkl_controls):
    seed_subscribers(cerkl_controls, *[subscriber(i) for i in range(5)])
    hook = make_hook(extras={"page_size": 2})

    pages = list(hook.iter_subscriber_pages())

    assert [len(page) for page in pages] == [2, 2, 1]


@pytest.mark.parametrize("page_size", [0, 1001, True])
def test_iter_subscriber_pages_rejects_page_size(hook, page_size):
    with pytest.raises(ValueError, match="page_size"):
        list(hook.iter_subscriber_pages(page_size=page_size))


# -- unsubscribes and interests -----------------------------------------------------------


def test_unsubscribe_marks_integration_source(hook, cerkl_controls):
    [subscriber_id] = seed_subscribers(cerkl_controls, subscriber(1))

    hook.unsubscribe_subscriber(subscriber_id)

    record = hook.get_unsubscribe(subscriber_id)
    assert record["source"] == "integration"
    assert record["self_unsubscribed"] is False
    with pytest.raises(CerklNotFoundError):
        hook.get_subscriber(subscriber_id)


def test_unsubscribe_missing_subscriber_raises(hook):
    with pytest.raises(CerklNotFoundError):
        hook.unsubscribe_subscriber(4242)


def test_unsubscribe_after_lost_response_is_done(hook, cerkl_controls):
    [subscriber_id] = seed_subscribers(cerkl_controls, subscriber(1))
    hook.unsubscribe_subscriber(subscriber_id)
    # A second call whose first attempt fails with 503 ends in 404 on the retry, as a
    # retry after a lost response would.
    cerkl_controls.add_fault(path="^/v3/subscriber/", method="DELETE", status=503, count=1)

    hook.unsubscribe_subscriber(subscriber_id)

    assert hook.api_calls["DELETE subscriber/{id}"] == 3
    assert hook.get_unsubscribe(subscriber_id)["source"] == "integration"


def test_get_unsubscribe_missing_returns_none(hook):
    assert hook.get_unsubscribe(31337) is None


def test_iter_unsubscribes_since(hook, cerkl_controls):
    cerkl_controls.seed(
        {
            "unsubscribes": [
                {"id": 50, "email": "old@example.com", "first_name": "O",
                 "date_unsubscribed_utc": "2026-01-01 00:00:00"},
                {"id": 51, "email": "new@example.com", "first_name": "N",
                 "date_unsubscribed_utc": "2026-05-01 00:00:00", "self_unsubscribed": True},
            ]
        }
    )  # fmt: skip

    all_ids = [record["id"] for record in hook.iter_unsubscribes()]
    recent = list(hook.iter_unsubscribes(since=datetime(2026, 3, 1, tzinfo=UTC)))

    assert sorted(all_ids) == [50, 51]
    assert [record["id"] for record in recent] == [51]
    assert recent[0]["self_unsubscribed"] is True


def test_get_subscriber_interests_by_rank(hook, cerkl_controls):
    [subscriber_id] = seed_subscribers(cerkl_controls, subscriber(1))
    cerkl_controls.seed(
        {
            "categories": [
                {"id": 1, "description": "Sports"},
                {"id": 2, "description": "Finance"},
                {"id": 3, "description": "Travel"},
            ],
            "interests": [
                {"subscriber_id": subscriber_id, "category_id": 1, "rank": 3, "score": 10},
                {"subscriber_id": subscriber_id, "category_id": 2, "rank": 1, "score": 90},
                {"subscriber_id": subscriber_id, "category_id": 3, "rank": 2, "score": 50},
            ],
        }
    )

    interests = hook.get_subscriber_interests(subscriber_id)

    assert [interest["rank"] for interest in interests] == [1, 2, 3]
    assert [interest["category"]["description"] for interest in interests] == [
        "Finance",
        "Travel",
        "Sports",
    ]


# -- segments -----------------------------------------------------------------------------


def test_segment_lifecycle(hook, cerkl_controls):
    first, second = seed_subscribers(cerkl_controls, subscriber(1), subscriber(2))
    external_id = "SF_701000000000001AAA"

    assert hook.find_segment_by_external_id(external_id) is None
    segment = hook.create_segment("Spring Campaign", external_id)
    found = hook.find_segment_by_external_id(external_id)
    renamed = hook.rename_segment(segment["id"], "Spring Campaign 2026")
    hook.add_segment_member(segment["id"], first)
    hook.add_segment_member(segment["id"], first)
    hook.add_segment_member(segment["id"], second)
    members = [member["id"] for member in hook.iter_segment_members(segment["id"])]
    hook.remove_segment_member(segment["id"], first)
    remaining = [member["id"] for member in hook.iter_segment_members(segment["id"])]

    assert found["id"] == segment["id"]
    assert segment["external_id"] == external_id
    assert renamed["description"] == "Spring Campaign 2026"
    assert sorted(members) == sorted([first, second])
    assert remaining == [second]
    assert hook.api_calls["POST segment/{id}/subscriber"] == 3


def test_remove_segment_member_absent_raises(hook, cerkl_controls):
    [subscriber_id] = seed_subscribers(cerkl_controls, subscriber(1))
    segment = hook.create_segment("Empty", "SF_701000000000002AAA")

    with pytest.raises(CerklNotFoundError):
        hook.remove_segment_member(segment["id"], subscriber_id)


def test_iter_segment_members_missing_segment_raises(hook):
    with pytest.raises(CerklNotFoundError):
        list(hook.iter_segment_members(777))


def test_create_segment_retry_finds_existing(hook, cerkl_controls):
    # The seeded segment plays the one that a lost first attempt created.
    external_id = "SF_701000000000003AAA"
    [segment_id] = cerkl_controls.seed(
        {"segments": [{"description": "Lost", "external_id": external_id}]}
    )["segments"]
    cerkl_controls.add_fault(path="^/v3/segment$", method="POST", status=502, count=1)

    segment = hook.create_segment("Lost", external_id)

    assert segment["id"] == segment_id
    assert hook.api_calls["POST segment"] == 1
    assert hook.api_calls["GET segment"] == 1


def test_create_segment_rejects_empty_external_id(hook):
    with pytest.raises(ValueError, match="external_id"):
        hook.create_segment("Name", " ")


# -- reference lists ----------------------------------------------------------------------


def test_list_subscriber_statuses(hook):
    statuses = hook.list_subscriber_statuses()

    assert {status["description"] for status in statuses} == {
        "Email Blasts & News Digests",
        "News Digests Only",
        "Email Blasts Only",
    }


def test_list_privacy_levels(hook):
    levels = hook.list_privacy_levels()

    assert [level["id"] for level in levels] == [1, 2, 3]
