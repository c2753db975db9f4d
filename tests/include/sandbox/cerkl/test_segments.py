"""Segments and segment members of the Cerkl sandbox."""

from __future__ import annotations

import pytest

from include.sandbox.client import SandboxControlClient

from .api_client import CerklApi, data_of, error_code

CAMPAIGN_EXTERNAL_ID = "SF_701000000000001AAA"


def create_segment(api: CerklApi, description: str, external_id: str | None) -> dict:
    response = api.call(
        "POST", "segment", data=[{"description": description, "external_id": external_id}]
    )
    assert response.status_code == 200, response.text
    return data_of(response)[0]


def test_create_and_get_segment(cerkl_api: CerklApi) -> None:
    created = create_segment(cerkl_api, "Board", CAMPAIGN_EXTERNAL_ID)

    assert created["description"] == "Board"
    assert created["external_id"] == CAMPAIGN_EXTERNAL_ID
    assert created["subscriber_count"] == 0
    fetched = cerkl_api.call("GET", f"segment/{created['id']}")
    assert data_of(fetched) == [created]


def test_create_segment_requires_description(cerkl_api: CerklApi) -> None:
    response = cerkl_api.call("POST", "segment", data=[{"external_id": "SF_1"}])

    assert response.status_code == 422
    assert error_code(response) == "MISSING_REQUIRED_FIELD"


def test_create_segment_duplicate_external_id_is_409(cerkl_api: CerklApi) -> None:
    create_segment(cerkl_api, "First", CAMPAIGN_EXTERNAL_ID)

    response = cerkl_api.call(
        "POST", "segment", data=[{"description": "Second", "external_id": CAMPAIGN_EXTERNAL_ID}]
    )

    assert response.status_code == 409
    assert error_code(response) == "DUPLICATE_EXTERNAL_ID"


def test_list_segments_filters_external_id_and_date(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    cerkl_controls.set_clock("2026-04-01T00:00:00Z", frozen=True)
    cerkl_api.authenticate()
    first = create_segment(cerkl_api, "A", "SF_A")
    cerkl_controls.advance_clock(3600)
    second = create_segment(cerkl_api, "B", "SF_B")

    by_external = cerkl_api.call("GET", "segment", filters={"external_id": {"eq": "SF_B"}})
    by_date = cerkl_api.call(
        "GET", "segment", filters={"date_modified_utc": {"gt": "2026-04-01 00:00:00"}}
    )
    everything = cerkl_api.call("GET", "segment")

    assert [row["id"] for row in data_of(by_external)] == [second["id"]]
    assert [row["id"] for row in data_of(by_date)] == [second["id"]]
    assert [row["id"] for row in data_of(everything)] == [first["id"], second["id"]]


def test_update_segment_renames_and_moves_date(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    created = create_segment(cerkl_api, "Old name", "SF_R")
    cerkl_controls.advance_clock(60)

    response = cerkl_api.call("PUT", f"segment/{created['id']}", data=[{"description": "New name"}])

    assert response.status_code == 200
    updated = data_of(response)[0]
    assert updated["description"] == "New name"
    assert updated["external_id"] == "SF_R"
    assert updated["date_modified_utc"] > created["date_modified_utc"]


def test_update_segment_sets_external_id(cerkl_api: CerklApi) -> None:
    created = create_segment(cerkl_api, "No link", None)

    response = cerkl_api.call("PUT", f"segment/{created['id']}", data=[{"external_id": "SF_L"}])

    assert data_of(response)[0]["external_id"] == "SF_L"


def test_update_segment_without_fields_is_422(cerkl_api: CerklApi) -> None:
    created = create_segment(cerkl_api, "Same", None)

    response = cerkl_api.call("PUT", f"segment/{created['id']}", data=[{"other": 1}])

    assert response.status_code == 422


def test_unknown_segment_is_404(cerkl_api: CerklApi) -> None:
    response = cerkl_api.call("GET", "segment/404")

    assert response.status_code == 404
    assert error_code(response) == "SEGMENT_NOT_FOUND"


def test_add_member_then_again_is_noop(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    segment = create_segment(cerkl_api, "Members", "SF_M")
    subscriber = cerkl_api.create(email="m@example.org")
    cerkl_controls.advance_clock(60)

    first = cerkl_api.call(
        "POST", f"segment/{segment['id']}/subscriber", data=[{"id": subscriber["id"]}]
    )
    cerkl_controls.advance_clock(60)
    after_first = data_of(cerkl_api.call("GET", f"segment/{segment['id']}"))[0]
    second = cerkl_api.call(
        "POST", f"segment/{segment['id']}/subscriber", data=[{"id": subscriber["id"]}]
    )
    after_second = data_of(cerkl_api.call("GET", f"segment/{segment['id']}"))[0]

    assert first.status_code == 200
    assert data_of(first)[0]["added"] is True
    assert second.status_code == 200
    assert data_of(second)[0]["added"] is False
    assert after_first["subscriber_count"] == 1
    assert after_first["date_modified_utc"] > segment["date_modified_utc"]
    assert after_second["date_modified_utc"] == after_first["date_modified_utc"]


def test_add_member_takes_one_per_request(cerkl_api: CerklApi) -> None:
    segment = create_segment(cerkl_api, "One", None)
    first = cerkl_api.create(email="one1@example.org")
    second = cerkl_api.create(email="one2@example.org")

    response = cerkl_api.call(
        "POST",
        f"segment/{segment['id']}/subscriber",
        data=[{"id": first["id"]}, {"id": second["id"]}],
    )

    assert response.status_code == 400
    assert error_code(response) == "INVALID_TEMPLATE"


@pytest.mark.parametrize(
    ("segment_exists", "subscriber_id", "expected_code"),
    [
        (True, 9999, "SUBSCRIBER_NOT_FOUND"),
        (False, None, "SEGMENT_NOT_FOUND"),
    ],
)
def test_add_member_unknown_ids_are_404(
    cerkl_api: CerklApi, segment_exists: bool, subscriber_id: int | None, expected_code: str
) -> None:
    segment_id = create_segment(cerkl_api, "S", None)["id"] if segment_exists else 9999
    member_id = subscriber_id or cerkl_api.create(email="x@example.org")["id"]

    response = cerkl_api.call("POST", f"segment/{segment_id}/subscriber", data=[{"id": member_id}])

    assert response.status_code == 404
    assert error_code(response) == expected_code


def test_add_member_rejects_non_integer_id(cerkl_api: CerklApi) -> None:
    segment = create_segment(cerkl_api, "S", None)

    response = cerkl_api.call("POST", f"segment/{segment['id']}/subscriber", data=[{"id": "12"}])

    assert response.status_code == 422


def test_list_members_pages(cerkl_api: CerklApi, cerkl_controls: SandboxControlClient) -> None:
    subscriber_ids = cerkl_controls.seed(
        {"subscribers": [{"email": f"p{index}@example.org"} for index in range(5)]}
    )["subscribers"]
    segment_id = cerkl_controls.seed(
        {"segments": [{"description": "Paged", "members": subscriber_ids[:4]}]}
    )["segments"][0]

    pages = [
        data_of(
            cerkl_api.call(
                "GET", f"segment/{segment_id}/subscriber", params={"page": page, "page_size": 2}
            )
        )
        for page in (1, 2, 3)
    ]

    assert [row["id"] for row in pages[0]] == subscriber_ids[:2]
    assert [row["id"] for row in pages[1]] == subscriber_ids[2:4]
    assert pages[2] == []
    assert pages[0][0]["email"] == "p0@example.org"


def test_remove_member(cerkl_api: CerklApi, cerkl_controls: SandboxControlClient) -> None:
    subscriber_id = cerkl_api.create(email="r@example.org")["id"]
    segment_id = cerkl_controls.seed(
        {"segments": [{"description": "R", "members": [subscriber_id]}]}
    )["segments"][0]

    removed = cerkl_api.call("DELETE", f"segment/{segment_id}/subscriber/{subscriber_id}")
    again = cerkl_api.call("DELETE", f"segment/{segment_id}/subscriber/{subscriber_id}")

    assert removed.status_code == 200
    assert data_of(cerkl_api.call("GET", f"segment/{segment_id}/subscriber")) == []
    assert again.status_code == 404
    assert error_code(again) == "SEGMENT_MEMBER_NOT_FOUND"


def test_unknown_route_and_method_errors(cerkl_api: CerklApi) -> None:
    missing = cerkl_api.call("GET", "no_such_thing")
    wrong_method = cerkl_api.call("PATCH", "segment")

    assert missing.status_code == 404
    assert error_code(missing) == "NOT_FOUND"
    assert wrong_method.status_code == 405
    assert error_code(wrong_method) == "METHOD_NOT_ALLOWED"


def test_id_beyond_64_bits_is_400(cerkl_api: CerklApi) -> None:
    segment = create_segment(cerkl_api, "Big", None)

    in_path = cerkl_api.call("GET", f"subscriber/{2**70}")
    in_body = cerkl_api.call("POST", f"segment/{segment['id']}/subscriber", data=[{"id": 2**70}])

    assert in_path.status_code == 400
    assert error_code(in_path) == "INVALID_ID"
    assert in_body.status_code == 400
    assert error_code(in_body) == "INVALID_ID"
