"""Request envelope, paging and ``filters_json`` of the Cerkl sandbox."""

from __future__ import annotations

import pytest

from include.sandbox.client import SandboxControlClient

from .api_client import CerklApi, data_of, error_code


def seed_subscribers(controls: SandboxControlClient, count: int) -> list[int]:
    records = [{"email": f"person{index}@example.org"} for index in range(count)]
    return controls.seed({"subscribers": records})["subscribers"]


@pytest.mark.parametrize(
    ("body", "expected_code"),
    [
        ({"data": [{}]}, "INVALID_TEMPLATE"),
        ({"template": {"version": "3.0", "data": {}}}, "INVALID_TEMPLATE"),
        ({"template": {"version": "2.0", "data": [{}]}}, "UNSUPPORTED_TEMPLATE_VERSION"),
        ({"template": {"version": "3.0", "data": []}}, "EMPTY_DATA"),
        ([{"email": "a@example.org"}], "INVALID_TEMPLATE"),
    ],
)
def test_write_rejects_bad_envelope(cerkl_api: CerklApi, body: object, expected_code: str) -> None:
    response = cerkl_api.session.post(
        f"{cerkl_api.base_url}/subscriber",
        json=body,
        headers={"Authorization": f"Bearer {cerkl_api.token}"},
        timeout=10,
    )

    assert response.status_code == 400
    assert error_code(response) == expected_code


@pytest.mark.parametrize("raw_body", [b"{not json", b'{"template": "\xff\xfe"}'])
def test_write_rejects_invalid_json(cerkl_api: CerklApi, raw_body: bytes) -> None:
    response = cerkl_api.session.post(
        f"{cerkl_api.base_url}/segment",
        data=raw_body,
        headers={"Authorization": f"Bearer {cerkl_api.token}"},
        timeout=10,
    )

    assert response.status_code == 400
    assert error_code(response) == "INVALID_JSON"


def test_read_answers_in_envelope(cerkl_api: CerklApi) -> None:
    response = cerkl_api.call("GET", "subscriber")

    assert response.status_code == 200
    template = response.json()["template"]
    assert template["version"] == "3.0"
    assert template["data"] == []
    assert template["page"] == 1
    assert template["page_size"] == 100


def test_paging_empty_collection(cerkl_api: CerklApi) -> None:
    response = cerkl_api.call("GET", "subscriber", params={"page": 1, "page_size": 10})

    assert response.status_code == 200
    assert data_of(response) == []


def test_paging_exactly_one_page(cerkl_api: CerklApi, cerkl_controls: SandboxControlClient) -> None:
    ids = seed_subscribers(cerkl_controls, 3)

    first = cerkl_api.call("GET", "subscriber", params={"page": 1, "page_size": 3})
    second = cerkl_api.call("GET", "subscriber", params={"page": 2, "page_size": 3})

    assert [row["id"] for row in data_of(first)] == ids
    assert data_of(second) == []


def test_paging_one_record_over_a_page(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    ids = seed_subscribers(cerkl_controls, 4)

    first = cerkl_api.call("GET", "subscriber", params={"page": 1, "page_size": 3})
    second = cerkl_api.call("GET", "subscriber", params={"page": 2, "page_size": 3})
    third = cerkl_api.call("GET", "subscriber", params={"page": 3, "page_size": 3})

    assert [row["id"] for row in data_of(first)] == ids[:3]
    assert [row["id"] for row in data_of(second)] == ids[3:]
    assert data_of(third) == []


def test_paging_default_size_is_100(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    seed_subscribers(cerkl_controls, 101)

    first = cerkl_api.call("GET", "subscriber")
    second = cerkl_api.call("GET", "subscriber", params={"page": 2})

    assert len(data_of(first)) == 100
    assert len(data_of(second)) == 1


def test_paging_accepts_max_page_size(cerkl_api: CerklApi) -> None:
    response = cerkl_api.call("GET", "subscriber", params={"page_size": 1000})

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("params", "expected_code"),
    [
        ({"page_size": 1001}, "INVALID_PAGE_SIZE"),
        ({"page_size": 0}, "INVALID_PAGE_SIZE"),
        ({"page": 0}, "INVALID_PAGE"),
        ({"page": "two"}, "INVALID_PAGE"),
        ({"page_size": "many"}, "INVALID_PAGE_SIZE"),
    ],
)
def test_paging_rejects_bad_values(
    cerkl_api: CerklApi, params: dict[str, object], expected_code: str
) -> None:
    response = cerkl_api.call("GET", "subscriber", params=params)

    assert response.status_code == 400
    assert error_code(response) == expected_code


def seed_dated_subscribers(controls: SandboxControlClient) -> list[int]:
    records = [
        {
            "email": f"dated{day}@example.org",
            "date_created_utc": f"2026-01-0{day} 00:00:00",
            "date_modified_utc": f"2026-02-0{day} 12:00:00",
        }
        for day in (1, 2, 3)
    ]
    return controls.seed({"subscribers": records})["subscribers"]


@pytest.mark.parametrize(
    ("operator", "expected_positions"),
    [
        ("eq", [1]),
        ("gt", [2]),
        ("gte", [1, 2]),
        ("lt", [0]),
        ("lte", [0, 1]),
    ],
)
def test_filter_operators_on_date_modified(
    cerkl_api: CerklApi,
    cerkl_controls: SandboxControlClient,
    operator: str,
    expected_positions: list[int],
) -> None:
    ids = seed_dated_subscribers(cerkl_controls)

    response = cerkl_api.call(
        "GET", "subscriber", filters={"date_modified_utc": {operator: "2026-02-02 12:00:00"}}
    )

    assert response.status_code == 200
    assert [row["id"] for row in data_of(response)] == [ids[i] for i in expected_positions]


def test_filter_combines_operators_and_fields(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    ids = seed_dated_subscribers(cerkl_controls)

    response = cerkl_api.call(
        "GET",
        "subscriber",
        filters={
            "date_created_utc": {"gte": "2026-01-02 00:00:00"},
            "date_modified_utc": {"lt": "2026-02-03 00:00:00"},
        },
    )

    assert [row["id"] for row in data_of(response)] == [ids[1]]


def test_filter_email_ignores_case_and_spaces(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    ids = cerkl_controls.seed({"subscribers": [{"email": " Ann.Lee@Example.org "}]})
    cerkl_api.create(email="other@example.org")

    response = cerkl_api.call(
        "GET", "subscriber", filters={"email": {"eq": "ann.lee@EXAMPLE.org "}}
    )

    assert [row["id"] for row in data_of(response)] == ids["subscribers"]
    assert data_of(response)[0]["email"] == "Ann.Lee@Example.org"


@pytest.mark.parametrize(
    ("filters_json", "named"),
    [
        ('{"first_name": {"eq": "Ann"}}', "first_name"),
        ('{"date_modified_utc": {"after": "2026-01-01 00:00:00"}}', "after"),
        ('{"date_modified_utc": {"gt": "2026-01-01T00:00:00Z"}}', "date_modified_utc"),
        ('{"date_modified_utc": "2026-01-01 00:00:00"}', "date_modified_utc"),
        ('{"email": {"gt": "a@example.org"}}', "email"),
        ("[1, 2]", "filters_json"),
        ("{broken", "filters_json"),
    ],
)
def test_filter_rejects_bad_filters_naming_field(
    cerkl_api: CerklApi, filters_json: str, named: str
) -> None:
    response = cerkl_api.call("GET", "subscriber", params={"filters_json": filters_json})

    assert response.status_code == 400
    assert error_code(response) == "INVALID_FILTER"
    assert named in response.json()["error"]["message"]
