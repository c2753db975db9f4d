"""Subscriber interests of the Cerkl sandbox and how they move ``date_modified_utc``."""

from __future__ import annotations

from include.sandbox.client import SandboxControlClient

from .api_client import CerklApi, data_of, error_code

CATEGORIES = [{"id": number, "description": f"Topic {number}"} for number in range(1, 8)]


def seed_with_interests(controls: SandboxControlClient, ranks: list[tuple[int, int]]) -> int:
    ids = controls.seed(
        {
            "categories": CATEGORIES,
            "subscribers": [
                {"email": "reader@example.org", "date_modified_utc": "2026-01-01 00:00:00"}
            ],
        }
    )
    subscriber_id = ids["subscribers"][0]
    controls.seed(
        {
            "interests": [
                {
                    "subscriber_id": subscriber_id,
                    "category_id": category,
                    "rank": rank,
                    "score": 10 * rank,
                }
                for category, rank in ranks
            ]
        }
    )
    return subscriber_id


def test_interests_ordered_by_rank(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    subscriber_id = seed_with_interests(cerkl_controls, [(5, 3), (2, 1), (7, 2)])

    response = cerkl_api.call("GET", f"subscriber/{subscriber_id}/subscriber_interest")

    assert response.status_code == 200
    assert data_of(response) == [
        {"category": {"id": 2, "description": "Topic 2"}, "rank": 1, "score": 10},
        {"category": {"id": 7, "description": "Topic 7"}, "rank": 2, "score": 20},
        {"category": {"id": 5, "description": "Topic 5"}, "rank": 3, "score": 30},
    ]


def test_interests_empty_list(cerkl_api: CerklApi) -> None:
    created = cerkl_api.create(email="nointerest@example.org")

    response = cerkl_api.call("GET", f"subscriber/{created['id']}/subscriber_interest")

    assert response.status_code == 200
    assert data_of(response) == []


def test_interests_of_unknown_subscriber_is_404(cerkl_api: CerklApi) -> None:
    response = cerkl_api.call("GET", "subscriber/8080/subscriber_interest")

    assert response.status_code == 404
    assert error_code(response) == "SUBSCRIBER_NOT_FOUND"


def test_top_interest_reorder_moves_date_modified(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    subscriber_id = seed_with_interests(cerkl_controls, [(1, 1), (2, 2)])

    edited = cerkl_controls.edit_subscriber(
        subscriber_id,
        interests=[
            {"category_id": 2, "rank": 1, "score": 50},
            {"category_id": 1, "rank": 2, "score": 40},
        ],
    )

    assert edited["date_modified_utc"] > "2026-01-01 00:00:00"
    ranked = data_of(cerkl_api.call("GET", f"subscriber/{subscriber_id}/subscriber_interest"))
    assert [row["category"]["id"] for row in ranked] == [2, 1]


def test_interest_score_change_keeps_date_modified(cerkl_controls: SandboxControlClient) -> None:
    subscriber_id = seed_with_interests(cerkl_controls, [(1, 1), (2, 2)])

    edited = cerkl_controls.edit_subscriber(
        subscriber_id,
        interests=[
            {"category_id": 1, "rank": 1, "score": 99},
            {"category_id": 2, "rank": 2, "score": 98},
        ],
    )

    assert edited["date_modified_utc"] == "2026-01-01 00:00:00"


def test_change_below_top_five_keeps_date_modified(cerkl_controls: SandboxControlClient) -> None:
    top_five = [(category, category) for category in range(1, 6)]
    subscriber_id = seed_with_interests(cerkl_controls, [*top_five, (6, 6)])

    edited = cerkl_controls.edit_subscriber(
        subscriber_id,
        interests=[
            *({"category_id": c, "rank": r, "score": 1} for c, r in top_five),
            {"category_id": 7, "rank": 6, "score": 1},
        ],
    )

    assert edited["date_modified_utc"] == "2026-01-01 00:00:00"


def test_admin_edit_rejects_unknown_category(
    cerkl_api: CerklApi, cerkl_controls: SandboxControlClient
) -> None:
    subscriber_id = seed_with_interests(cerkl_controls, [(1, 1)])

    response = cerkl_controls.session.put(
        f"{cerkl_controls.base_url}/__sandbox__/subscriber/{subscriber_id}",
        json={"interests": [{"category_id": 99, "rank": 1, "score": 1}]},
        timeout=10,
    )

    assert response.status_code == 422
    assert error_code(response) == "CATEGORY_NOT_FOUND"
    ranked = data_of(cerkl_api.call("GET", f"subscriber/{subscriber_id}/subscriber_interest"))
    assert [row["category"]["id"] for row in ranked] == [1]
