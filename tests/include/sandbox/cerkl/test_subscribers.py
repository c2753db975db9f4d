"""Subscriber create, read, update and unsubscribe on the Cerkl sandbox."""

from __future__ import annotations

import pytest

from include.sandbox.client import SandboxControlClient

from .api_client import CerklApi, data_of, error_code

STATUS_AND_PRIVACY = {"subscriber_status": {"id": 1}, "subscriber_privacy_level": {"id": 1}}


def test_create_returns_subscriber_fields(cerkl_api: CerklApi) -> None:
    created = cerkl_api.create(
        email=" Ann.Lee@Example.org ",
        first_name="Ann",
        last_name="Lee",
        subscriber_status={"id": 2},
        subscriber_privacy_level={"id": 3},
    )

    assert isinstance(created["id"], int)
    assert created["email"] == "Ann.Lee@Example.org"
    assert created["first_name"] == "Ann"
    assert created["last_name"] == "Lee"
    assert created["subscriber_status"] == {"id": 2, "description": "News Digests Only"}
    assert created["subscriber_privacy_level"]["id"] == 3
    assert created["engagement_score"] == 0
    assert created["date_created_utc"] == created["date_modified_utc"]

    fetched = cerkl_api.call("GET", f"subscriber/{created['id']}")
    assert fetched.status_code == 200
    assert data_of(fetched) == [created]


def test_create_dates_follow_sandbox_clock(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    cerkl_controls.set_clock("2030-05-06T07:08:09Z", frozen=True)
    cerkl_api.authenticate()  # the earlier token expired by the new sandbox time

    created = cerkl_api.create(email="clock@example.org", first_name="C")

    assert created["date_created_utc"] == "2030-05-06 07:08:09"


def test_create_derives_missing_first_name(cerkl_api: CerklApi) -> None:
    created = cerkl_api.create(email="jo.smith@example.org")

    assert created["first_name"] == "jo.smith"


def test_create_batch_returns_result_per_object(cerkl_api: CerklApi) -> None:
    cerkl_api.create(email="taken@example.org", first_name="T")
    batch = [
        {"email": "new1@example.org", "first_name": "N", **STATUS_AND_PRIVACY},
        {"email": "TAKEN@example.org", "first_name": "T", **STATUS_AND_PRIVACY},
        {"email": "not-an-email", "first_name": "X", **STATUS_AND_PRIVACY},
        {"email": "nostatus@example.org", "subscriber_privacy_level": {"id": 1}},
        {"email": "new1@example.org", "first_name": "again", **STATUS_AND_PRIVACY},
        {"email": "new2@example.org", "first_name": "M", **STATUS_AND_PRIVACY},
    ]

    response = cerkl_api.call("POST", "subscriber", data=batch)

    assert response.status_code == 200
    results = data_of(response)
    assert len(results) == 6
    assert results[0]["email"] == "new1@example.org"
    assert results[1]["error"]["code"] == "DUPLICATE_EMAIL"
    assert results[2]["error"]["code"] == "INVALID_EMAIL"
    assert results[3]["error"]["code"] == "MISSING_REQUIRED_FIELD"
    assert "subscriber_status" in results[3]["error"]["message"]
    assert results[4]["error"]["code"] == "DUPLICATE_EMAIL"
    assert results[5]["email"] == "new2@example.org"
    assert results[5]["id"] > results[0]["id"]


def test_create_batch_over_100_rejected(cerkl_api: CerklApi) -> None:
    batch = [{"email": f"bulk{index}@example.org", **STATUS_AND_PRIVACY} for index in range(101)]

    response = cerkl_api.call("POST", "subscriber", data=batch)

    assert response.status_code == 400
    assert error_code(response) == "TOO_MANY_OBJECTS"
    assert data_of(cerkl_api.call("GET", "subscriber")) == []


def test_create_batch_of_100_accepted(cerkl_api: CerklApi) -> None:
    batch = [{"email": f"bulk{index}@example.org", **STATUS_AND_PRIVACY} for index in range(100)]

    response = cerkl_api.call("POST", "subscriber", data=batch)

    assert response.status_code == 200
    assert all("id" in result for result in data_of(response))


def test_create_single_failure_returns_error_status(cerkl_api: CerklApi) -> None:
    cerkl_api.create(email="dup@example.org")

    response = cerkl_api.call(
        "POST", "subscriber", data=[{"email": " Dup@Example.org", **STATUS_AND_PRIVACY}]
    )

    assert response.status_code == 409
    assert error_code(response) == "DUPLICATE_EMAIL"
    assert "dup@example.org" not in response.text.lower()


@pytest.mark.parametrize(
    "email",
    [
        "plain",
        "two@@example.org",
        "a b@example.org",
        "a@example",
        "a@-example.org",
        ".a@example.org",
        "a..b@example.org",
        "a@example.c",
        "x" * 65 + "@example.org",
    ],
)
def test_create_rejects_invalid_email(cerkl_api: CerklApi, email: str) -> None:
    response = cerkl_api.call("POST", "subscriber", data=[{"email": email, **STATUS_AND_PRIVACY}])

    assert response.status_code == 422
    assert error_code(response) == "INVALID_EMAIL"


@pytest.mark.parametrize(
    "email", ["a@example.org", "first.last+tag@mail.example.co.uk", "o'neil@example.net"]
)
def test_create_accepts_valid_email(cerkl_api: CerklApi, email: str) -> None:
    assert cerkl_api.create(email=email)["email"] == email


@pytest.mark.parametrize(
    ("missing", "expected_code"),
    [
        ("subscriber_status", "MISSING_REQUIRED_FIELD"),
        ("subscriber_privacy_level", "MISSING_REQUIRED_FIELD"),
    ],
)
def test_create_requires_status_and_privacy(
    cerkl_api: CerklApi, missing: str, expected_code: str
) -> None:
    fields = {"email": "req@example.org", **STATUS_AND_PRIVACY}
    del fields[missing]

    response = cerkl_api.call("POST", "subscriber", data=[fields])

    assert response.status_code == 422
    assert error_code(response) == expected_code
    assert missing in response.json()["error"]["message"]


def test_create_rejects_unknown_status_id(cerkl_api: CerklApi) -> None:
    response = cerkl_api.call(
        "POST",
        "subscriber",
        data=[
            {
                "email": "s@example.org",
                "subscriber_status": {"id": 9},
                "subscriber_privacy_level": {"id": 1},
            }
        ],
    )

    assert response.status_code == 422
    assert error_code(response) == "INVALID_SUBSCRIBER_STATUS"


def test_get_unknown_subscriber_is_404(cerkl_api: CerklApi) -> None:
    response = cerkl_api.call("GET", "subscriber/999")

    assert response.status_code == 404
    assert error_code(response) == "SUBSCRIBER_NOT_FOUND"


def test_update_name_moves_date_modified(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    created = cerkl_api.create(email="upd@example.org", first_name="Old")
    cerkl_controls.advance_clock(60)

    response = cerkl_api.call(
        "PUT", f"subscriber/{created['id']}", data=[{"first_name": "New", **STATUS_AND_PRIVACY}]
    )

    assert response.status_code == 200
    updated = data_of(response)[0]
    assert updated["first_name"] == "New"
    assert updated["date_modified_utc"] > created["date_modified_utc"]
    assert updated["date_created_utc"] == created["date_created_utc"]


@pytest.mark.parametrize(
    ("changes", "moves"),
    [
        ({"last_name": "Other"}, True),
        ({"email": "changed@example.org"}, True),
        ({"subscriber_status": {"id": 3}}, True),
        ({"subscriber_privacy_level": {"id": 2}}, False),
        ({}, False),
    ],
)
def test_update_moves_date_modified_for_synced_fields(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient, changes: dict, moves: bool
) -> None:
    created = cerkl_api.create(email="fields@example.org", first_name="F", last_name="L")
    cerkl_controls.advance_clock(60)

    body = {**STATUS_AND_PRIVACY, **changes}
    response = cerkl_api.call("PUT", f"subscriber/{created['id']}", data=[body])

    assert response.status_code == 200
    updated = data_of(response)[0]
    assert (updated["date_modified_utc"] > created["date_modified_utc"]) is moves


@pytest.mark.parametrize("missing", ["subscriber_status", "subscriber_privacy_level"])
def test_update_requires_status_and_privacy(cerkl_api: CerklApi, missing: str) -> None:
    created = cerkl_api.create(email="needs@example.org")
    body = {"first_name": "X", **STATUS_AND_PRIVACY}
    del body[missing]

    response = cerkl_api.call("PUT", f"subscriber/{created['id']}", data=[body])

    assert response.status_code == 422
    assert error_code(response) == "MISSING_REQUIRED_FIELD"


def test_update_email_to_another_subscribers_is_409(cerkl_api: CerklApi) -> None:
    cerkl_api.create(email="first@example.org")
    second = cerkl_api.create(email="second@example.org")

    response = cerkl_api.call(
        "PUT",
        f"subscriber/{second['id']}",
        data=[{"email": "FIRST@example.org ", **STATUS_AND_PRIVACY}],
    )

    assert response.status_code == 409
    assert error_code(response) == "DUPLICATE_EMAIL"


def test_update_own_email_case_is_allowed(cerkl_api: CerklApi) -> None:
    created = cerkl_api.create(email="mine@example.org")

    response = cerkl_api.call(
        "PUT",
        f"subscriber/{created['id']}",
        data=[{"email": "Mine@Example.org", **STATUS_AND_PRIVACY}],
    )

    assert response.status_code == 200
    assert data_of(response)[0]["email"] == "Mine@Example.org"


def test_update_rejects_several_objects(cerkl_api: CerklApi) -> None:
    created = cerkl_api.create(email="one@example.org")

    response = cerkl_api.call(
        "PUT", f"subscriber/{created['id']}", data=[STATUS_AND_PRIVACY, STATUS_AND_PRIVACY]
    )

    assert response.status_code == 400
    assert error_code(response) == "INVALID_TEMPLATE"


def test_update_unknown_subscriber_is_404(cerkl_api: CerklApi) -> None:
    response = cerkl_api.call("PUT", "subscriber/4242", data=[STATUS_AND_PRIVACY])

    assert response.status_code == 404
    assert error_code(response) == "SUBSCRIBER_NOT_FOUND"


def test_statuses_and_privacy_levels_listed(cerkl_api: CerklApi) -> None:
    statuses = data_of(cerkl_api.call("GET", "subscriber_status"))
    levels = data_of(cerkl_api.call("GET", "subscriber_privacy_level"))

    assert statuses == [
        {"id": 1, "description": "Email Blasts & News Digests"},
        {"id": 2, "description": "News Digests Only"},
        {"id": 3, "description": "Email Blasts Only"},
    ]
    assert [level["id"] for level in levels] == [1, 2, 3]
    assert levels[0]["description"] == "Personalize the experience"


def test_admin_edit_engagement_moves_date_modified(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    created = cerkl_api.create(email="engaged@example.org")
    cerkl_controls.advance_clock(60)

    edited = cerkl_controls.edit_subscriber(created["id"], engagement_score=77)

    assert edited["engagement_score"] == 77
    assert edited["date_modified_utc"] > created["date_modified_utc"]
    fetched = data_of(cerkl_api.call("GET", f"subscriber/{created['id']}"))[0]
    assert fetched["engagement_score"] == 77


def test_admin_edit_rejects_score_over_100(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    created = cerkl_api.create(email="score@example.org")

    response = cerkl_controls.session.put(
        f"{cerkl_controls.base_url}/__sandbox__/subscriber/{created['id']}",
        json={"engagement_score": 101},
        timeout=10,
    )

    assert response.status_code == 400
    assert "engagement_score" in response.json()["error"]["message"]


def test_admin_edit_email_to_taken_is_409(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    cerkl_api.create(email="a1@example.org")
    second = cerkl_api.create(email="a2@example.org")

    response = cerkl_controls.session.put(
        f"{cerkl_controls.base_url}/__sandbox__/subscriber/{second['id']}",
        json={"email": "A1@example.org"},
        timeout=10,
    )

    assert response.status_code == 409
    assert error_code(response) == "DUPLICATE_EMAIL"


@pytest.mark.parametrize(
    "body",
    [{"first_name": 5}, {"last_name": "x" * 256}, {"engagement_score": True}, {"interests": "a"}],
)
def test_admin_edit_rejects_bad_fields(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient, body: dict
) -> None:
    created = cerkl_api.create(email="badedit@example.org", first_name="Kept")

    response = cerkl_controls.session.put(
        f"{cerkl_controls.base_url}/__sandbox__/subscriber/{created['id']}", json=body, timeout=10
    )

    assert response.status_code == 400
    assert error_code(response) == "INVALID_CONTROL_REQUEST"
    fetched = data_of(cerkl_api.call("GET", f"subscriber/{created['id']}"))[0]
    assert fetched["first_name"] == "Kept"


def test_seed_rejects_repeated_segment_id(cerkl_controls: SandboxControlClient) -> None:
    cerkl_controls.seed({"segments": [{"id": 5, "description": "A"}]})

    response = cerkl_controls.session.post(
        f"{cerkl_controls.base_url}/__sandbox__/seed",
        json={"records": {"segments": [{"id": 5, "description": "B"}]}},
        timeout=10,
    )

    assert response.status_code == 400
    assert error_code(response) == "INVALID_CONTROL_REQUEST"
