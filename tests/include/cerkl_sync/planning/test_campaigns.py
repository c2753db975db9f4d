"""Tests of flow campaigns_to_segments: ``in_scope`` and ``plan_campaign``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from include.cerkl_sync.planning.campaigns import in_scope, plan_campaign, segment_external_id
from include.cerkl_sync.planning.plan import FlowPlan

CAMPAIGN_ID = "701000000000001AAA"
TYPES = ("Distribution List", "Committee", "Board")


def _campaign(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "Id": CAMPAIGN_ID,
        "Name": "Board 2026",
        "Type": "Board",
        "IsDeleted": False,
    }
    record.update(fields)
    return record


def _member(number: int, *, contact: bool = True) -> dict[str, Any]:
    member: dict[str, Any] = {"Id": f"00v{number:015d}", "ContactId": None, "LeadId": None}
    if contact:
        member["ContactId"] = f"003{number:015d}"
    else:
        member["LeadId"] = f"00Q{number:015d}"
    return member


def _plan(
    campaign: Mapping[str, Any],
    *,
    segment: Mapping[str, Any] | None = None,
    members: Iterable[Mapping[str, Any]] = (),
    segment_member_ids: set[int] | None = None,
    linked: Mapping[int, int] | None = None,
    was_in_scope: bool = False,
    prefix: str = "SF_",
) -> FlowPlan:
    """Plan one Campaign; ``linked`` maps member numbers to subscriber ids."""
    return plan_campaign(
        campaign,
        segment=segment,
        members=list(members),
        segment_member_ids=segment_member_ids,
        subscriber_by_contact={f"003{n:015d}": sid for n, sid in (linked or {}).items()},
        campaign_types=TYPES,
        was_in_scope=was_in_scope,
        prefix=prefix,
    )


def _actions(plan: FlowPlan, name: str) -> list[dict[str, Any]]:
    return [action for action in plan.actions if action["action"] == name]


# in_scope


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"Type": "Board"}, True),
        ({"Type": "distribution list"}, True),
        ({"Type": "  COMMITTEE "}, True),
        ({"Type": "Webinar"}, False),
        ({"Type": None}, False),
        ({"Type": ""}, False),
        ({"Type": "Board", "IsDeleted": True}, False),
        ({"Type": "Board%"}, False),
        ({"Type": "B_ard"}, False),
    ],
)
def test_in_scope_configured_types(fields: dict[str, Any], expected: bool) -> None:
    assert in_scope(_campaign(**fields), TYPES) is expected


def test_in_scope_no_types_configured() -> None:
    assert in_scope(_campaign(), ()) is False


def test_segment_external_id_prefixes_campaign_id() -> None:
    assert segment_external_id(CAMPAIGN_ID) == "SF_701000000000001AAA"
    assert segment_external_id(CAMPAIGN_ID, "ORG1_") == "ORG1_701000000000001AAA"


# plan_campaign: segments


def test_plan_campaign_new_segment_created_with_members() -> None:
    plan = _plan(_campaign(), members=[_member(1), _member(2)], linked={1: 11, 2: 12})

    assert plan.actions[0] == {
        "action": "create_segment",
        "campaign_id": CAMPAIGN_ID,
        "description": "Board 2026",
        "external_id": "SF_701000000000001AAA",
    }
    adds = _actions(plan, "add_member")
    assert [action["subscriber_id"] for action in adds] == [11, 12]
    assert {action["segment_id"] for action in adds} == {None}


def test_plan_campaign_custom_prefix() -> None:
    plan = _plan(_campaign(), prefix="ACME_")

    assert plan.actions[0]["external_id"] == "ACME_701000000000001AAA"


@pytest.mark.parametrize(
    "name",
    [
        'Board "Inner" Circle',
        "O'Brien's list",
        "Back\\slash",
        "100% _members_",
        "Café\u0301 🎉",
        "لجنة المجلس",
        "ועדה",
    ],
)
def test_plan_campaign_hostile_name_kept(name: str) -> None:
    plan = _plan(_campaign(Name=name))

    assert plan.actions[0]["description"] == name


def test_plan_campaign_name_trimmed_or_id() -> None:
    trimmed = _plan(_campaign(Name="  Board 2026  "))
    unnamed = _plan(_campaign(Name=None))

    assert trimmed.actions[0]["description"] == "Board 2026"
    assert unnamed.actions[0]["description"] == CAMPAIGN_ID


def test_plan_campaign_rename_renames_segment() -> None:
    plan = _plan(
        _campaign(Name="Board 2027"),
        segment={"id": 5, "description": "Board 2026"},
        segment_member_ids=set(),
        was_in_scope=True,
    )

    assert plan.actions == [
        {
            "action": "rename_segment",
            "campaign_id": CAMPAIGN_ID,
            "segment_id": 5,
            "description": "Board 2027",
        }
    ]


def test_plan_campaign_same_name_no_rename() -> None:
    plan = _plan(
        _campaign(),
        segment={"id": 5, "description": "Board 2026"},
        segment_member_ids=set(),
        was_in_scope=True,
    )

    assert plan.actions == []


# plan_campaign: members


def test_plan_campaign_joined_added_left_removed() -> None:
    plan = _plan(
        _campaign(),
        segment={"id": 5, "description": "Board 2026"},
        members=[_member(1), _member(2)],
        segment_member_ids={11, 13},
        linked={1: 11, 2: 12},
        was_in_scope=True,
    )

    assert [a["subscriber_id"] for a in _actions(plan, "add_member")] == [12]
    assert [a["subscriber_id"] for a in _actions(plan, "remove_member")] == [13]
    assert {a["segment_id"] for a in plan.actions} == {5}


def test_plan_campaign_member_already_in_segment() -> None:
    plan = _plan(
        _campaign(),
        segment={"id": 5, "description": "Board 2026"},
        members=[_member(1)],
        segment_member_ids={11},
        linked={1: 11},
        was_in_scope=True,
    )

    assert plan.actions == []
    assert plan.skipped == [
        {"record_type": "CampaignMember", "record_id": "00v000000000000001", "reason": "UNCHANGED"}
    ]


def test_plan_campaign_lead_member_skipped() -> None:
    plan = _plan(_campaign(), members=[_member(1, contact=False)])

    assert _actions(plan, "add_member") == []
    assert plan.skipped == [
        {
            "record_type": "CampaignMember",
            "record_id": "00v000000000000001",
            "reason": "LEAD_MEMBER",
        }
    ]


def test_plan_campaign_unlinked_contact_pending() -> None:
    plan = _plan(_campaign(), members=[_member(1)])

    assert _actions(plan, "add_member") == []
    assert plan.pending == [
        {
            "record_type": "CampaignMember",
            "record_id": f"{CAMPAIGN_ID}:003000000000000001",
            "reason": "CONTACT_NOT_LINKED",
        }
    ]


def test_plan_campaign_every_member_accounted_once() -> None:
    members = [
        _member(1),  # added
        _member(2),  # already in the segment
        _member(3, contact=False),  # Lead: skipped
        _member(4),  # not linked: pending
    ]
    linked = {1: 11, 2: 12}

    plan = _plan(
        _campaign(),
        segment={"id": 5, "description": "Board 2026"},
        members=members,
        segment_member_ids={12},
        linked=linked,
        was_in_scope=True,
    )

    # A member appears as its Id, its "<CampaignId>:<ContactId>" key or its subscriber id.
    keys_by_member = {
        member["Id"]: {
            member["Id"],
            f"{CAMPAIGN_ID}:{member['ContactId']}",
            str(linked.get(number, "")),
        }
        for number, member in enumerate(members, start=1)
    }
    references = [str(a["subscriber_id"]) for a in _actions(plan, "add_member")]
    references += [item["record_id"] for item in plan.skipped + plan.rejected + plan.pending]
    for member_id, keys in keys_by_member.items():
        assert sum(reference in keys for reference in references) == 1, member_id
    assert len(references) == len(members)


# plan_campaign: scope


@pytest.mark.parametrize(
    ("fields", "reason"),
    [({"Type": "Webinar"}, "TYPE_OUT_OF_SCOPE"), ({"IsDeleted": True}, "DELETED")],
)
def test_plan_campaign_leaving_scope_keeps_segment(fields: dict[str, Any], reason: str) -> None:
    plan = _plan(
        _campaign(**fields),
        segment={"id": 5, "description": "Board 2026"},
        members=[_member(1)],
        linked={1: 11},
        was_in_scope=True,
    )

    assert plan.actions == [
        {"action": "leave_scope", "campaign_id": CAMPAIGN_ID, "segment_id": 5, "reason": reason}
    ]


def test_plan_campaign_left_scope_without_segment() -> None:
    plan = _plan(_campaign(Type="Webinar"), was_in_scope=True)

    assert plan.actions[0]["action"] == "leave_scope"
    assert plan.actions[0]["segment_id"] is None


def test_plan_campaign_never_in_scope_skipped() -> None:
    plan = _plan(_campaign(Type="Webinar"), members=[_member(1)], linked={1: 11})

    assert plan.actions == []
    assert plan.skipped == [
        {"record_type": "Campaign", "record_id": CAMPAIGN_ID, "reason": "OUT_OF_SCOPE"}
    ]


def test_plan_campaign_back_in_scope_resyncs() -> None:
    plan = _plan(
        _campaign(Type="Committee"),
        segment={"id": 5, "description": "Board 2026"},
        members=[_member(1)],
        segment_member_ids=set(),
        linked={1: 11},
        was_in_scope=False,
    )

    assert [a["action"] for a in plan.actions] == ["add_member"]
