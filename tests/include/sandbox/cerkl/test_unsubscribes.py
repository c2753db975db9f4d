"""Unsubscribe flows of the Cerkl sandbox: admin, integration and self-unsubscribes."""

from __future__ import annotations

import pytest

from include.sandbox.client import SandboxControlClient

from .api_client import CerklApi, data_of, error_code

STATUS_AND_PRIVACY = {"subscriber_status": {"id": 1}, "subscriber_privacy_level": {"id": 1}}


def test_delete_turns_subscriber_into_admin_unsubscribe(cerkl_api: CerklApi) -> None:
    created = cerkl_api.create(email="gone@example.org", first_name="G", last_name="One")

    response = cerkl_api.call("DELETE", f"subscriber/{created['id']}")

    assert response.status_code == 200
    unsubscribe = data_of(response)[0]
    assert unsubscribe["id"] == created["id"]
    assert unsubscribe["source"] == "admin"
    assert unsubscribe["self_unsubscribed"] is False
    assert unsubscribe["email"] == "gone@example.org"
    assert unsubscribe["first_name"] == "G"
    assert unsubscribe["last_name"] == "One"
    assert cerkl_api.call("GET", f"subscriber/{created['id']}").status_code == 404
    fetched = cerkl_api.call("GET", f"unsubscribe/{created['id']}")
    assert fetched.status_code == 200
    assert data_of(fetched) == [unsubscribe]


def test_delete_with_integration_source(cerkl_api: CerklApi) -> None:
    created = cerkl_api.create(email="sync@example.org")

    response = cerkl_api.call(
        "DELETE", f"subscriber/{created['id']}", params={"source": "integration"}
    )

    assert response.status_code == 200
    assert data_of(response)[0]["source"] == "integration"


def test_delete_rejects_unknown_source(cerkl_api: CerklApi) -> None:
    created = cerkl_api.create(email="src@example.org")

    response = cerkl_api.call("DELETE", f"subscriber/{created['id']}", params={"source": "me"})

    assert response.status_code == 400
    assert error_code(response) == "INVALID_SOURCE"
    assert cerkl_api.call("GET", f"subscriber/{created['id']}").status_code == 200


def test_delete_twice_is_already_unsubscribed(cerkl_api: CerklApi) -> None:
    created = cerkl_api.create(email="twice@example.org")
    cerkl_api.call("DELETE", f"subscriber/{created['id']}")

    response = cerkl_api.call("DELETE", f"subscriber/{created['id']}")

    assert response.status_code == 409
    assert error_code(response) == "ALREADY_UNSUBSCRIBED"


def test_delete_unknown_subscriber_is_404(cerkl_api: CerklApi) -> None:
    response = cerkl_api.call("DELETE", "subscriber/31337")

    assert response.status_code == 404
    assert error_code(response) == "SUBSCRIBER_NOT_FOUND"


def test_self_unsubscribed_email_cannot_return(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    created = cerkl_api.create(email="left@example.org")

    unsubscribe = cerkl_controls.self_unsubscribe(created["id"])
    response = cerkl_api.call(
        "POST", "subscriber", data=[{"email": " LEFT@example.org", **STATUS_AND_PRIVACY}]
    )

    assert unsubscribe["self_unsubscribed"] is True
    assert unsubscribe["source"] == "subscriber"
    assert response.status_code == 409
    assert error_code(response) == "SELF_UNSUBSCRIBED"


def test_update_email_to_self_unsubscribed_is_409(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    left = cerkl_api.create(email="optout@example.org")
    other = cerkl_api.create(email="other@example.org")
    cerkl_controls.self_unsubscribe(left["id"])

    response = cerkl_api.call(
        "PUT",
        f"subscriber/{other['id']}",
        data=[{"email": "optout@example.org", **STATUS_AND_PRIVACY}],
    )

    assert response.status_code == 409
    assert error_code(response) == "SELF_UNSUBSCRIBED"


@pytest.mark.parametrize("source", ["admin", "integration"])
def test_resubscribe_after_admin_unsubscribe_keeps_id(cerkl_api: CerklApi, source: str) -> None:
    created = cerkl_api.create(email="back@example.org")
    cerkl_api.create(email="later@example.org")
    cerkl_api.call("DELETE", f"subscriber/{created['id']}", params={"source": source})

    again = cerkl_api.create(email="Back@example.org")

    assert again["id"] == created["id"]
    assert again["email"] == "Back@example.org"
    assert cerkl_api.call("GET", f"unsubscribe/{created['id']}").status_code == 404


def test_unsubscribe_removes_segment_membership(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    created = cerkl_api.create(email="member@example.org")
    segment = cerkl_controls.seed(
        {"segments": [{"description": "S", "external_id": "SF_X", "members": [created["id"]]}]}
    )["segments"][0]

    cerkl_api.call("DELETE", f"subscriber/{created['id']}")

    members = cerkl_api.call("GET", f"segment/{segment}/subscriber")
    assert data_of(members) == []


def test_list_unsubscribes_filters_by_date(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    ids = cerkl_controls.seed(
        {
            "unsubscribes": [
                {"email": "u1@example.org", "date_unsubscribed_utc": "2026-03-01 00:00:00"},
                {
                    "email": "u2@example.org",
                    "date_unsubscribed_utc": "2026-03-02 00:00:00",
                    "self_unsubscribed": True,
                },
            ]
        }
    )["unsubscribes"]

    everything = cerkl_api.call("GET", "unsubscribe")
    later = cerkl_api.call(
        "GET", "unsubscribe", filters={"date_unsubscribed_utc": {"gt": "2026-03-01 00:00:00"}}
    )

    assert [row["id"] for row in data_of(everything)] == ids
    assert [row["id"] for row in data_of(later)] == [ids[1]]
    assert data_of(later)[0]["self_unsubscribed"] is True
    assert data_of(later)[0]["source"] == "subscriber"


def test_list_unsubscribes_rejects_other_filter(cerkl_api: CerklApi) -> None:
    response = cerkl_api.call(
        "GET", "unsubscribe", filters={"date_modified_utc": {"gt": "2026-03-01 00:00:00"}}
    )

    assert response.status_code == 400
    assert "date_modified_utc" in response.json()["error"]["message"]


def test_get_unknown_unsubscribe_is_404(cerkl_api: CerklApi) -> None:
    response = cerkl_api.call("GET", "unsubscribe/77")

    assert response.status_code == 404
    assert error_code(response) == "UNSUBSCRIBE_NOT_FOUND"


def test_new_subscriber_id_skips_unsubscribe_ids(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    cerkl_controls.seed({"unsubscribes": [{"id": 500, "email": "old@example.org"}]})

    created = cerkl_api.create(email="fresh@example.org")

    assert created["id"] == 501
