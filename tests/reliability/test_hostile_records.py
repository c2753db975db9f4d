"""Hostile records on both sides, run through the whole DAG, each with its expected outcome.

The corpus below seeds Contacts, Leads, Campaigns and CampaignMembers in the Salesforce
sandbox and subscribers and unsubscribes in the Cerkl sandbox. A full sync runs once over
all of it; a second daily run then changes one subscriber's email to another Contact's.
Every record must end as written beside it: synced (both systems agree), quarantined with a
reason code the report lists, or skipped with a reason code. No record may be lost and no
record may fail the run.

Run with ``-s`` to see the figure line printed at the end.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from include.cerkl_sync.report import validate_report
from include.sandbox.generator import ORGANIZATION_ACCOUNT_ID, generated_id
from include.sandbox.local_airflow import RunOutcome, run_dag
from tests.dags import sandbox_state as sb
from tests.include.sandbox.cerkl.api_client import CerklApi

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ORG_NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
FIRST_DAY = datetime(2026, 6, 2, tzinfo=UTC)
MISSING_LAST_NAME = "[not provided]"

CONTACTS = "contacts_to_subscribers"
SUBSCRIBERS = "new_subscribers_to_contacts"
UNSUBSCRIBES = "unsubscribes_to_contacts"
CHANGES = "subscriber_changes_to_contacts"
SEGMENTS = "campaigns_to_segments"


@dataclass(frozen=True)
class Case:
    """One hostile record and the outcome expected for it.

    ``outcome`` is ``synced``, ``quarantined`` or ``skipped``; ``reason`` is the reason code
    that the report (quarantined) or the flow (skipped) gives.
    """

    key: str
    kind: str
    record: dict[str, Any]
    outcome: str
    reason: str | None = None
    flow: str = CONTACTS
    extra: dict[str, Any] = field(default_factory=dict)


def _contact(number: int, email: str | None, first: str | None, last: str, **more: Any) -> dict:
    record = {
        "Id": generated_id("Contact", 700_000 + number),
        "AccountId": ORGANIZATION_ACCOUNT_ID,
        "FirstName": first,
        "LastName": last,
        "Email": email,
        "HasOptedOutOfEmail": False,
        "Cerkl_Unsubscribe__c": False,
    }
    record.update(more)
    return record


def _subscriber(number: int, email: str, first: str | None, last: str | None) -> dict:
    return {"id": 300_000 + number, "email": email, "first_name": first, "last_name": last}


def _unsubscribe(number: int, email: str, *, self_unsubscribed: bool) -> dict:
    return {
        "id": 400_000 + number,
        "email": email,
        "first_name": None,
        "last_name": None,
        "self_unsubscribed": self_unsubscribed,
    }


LONG_LOCAL = "l" * 64
LONG_NAME = "Maximiliane-Theodora-Wilhelmina-Konstanze-von-Hohenberg"  # 55 characters

CORPUS: list[Case] = [
    # Quotes, backslashes, % and _ in names and emails: nothing in a record changes a query.
    Case(
        "apostrophe", "contact", _contact(1, "o'brien@example.org", "Siobhán", "O'Brien"), "synced"
    ),
    Case(
        "soql-injection-email",
        "contact",
        _contact(2, "x'or'1'='1@example.org", "Robert'); --", "Tables"),
        "synced",
    ),
    Case(
        "double-quote",
        "contact",
        _contact(3, "ann.quote@example.org", 'Ann "Nan"', "Quote"),
        "synced",
    ),
    Case(
        "backslash-name",
        "contact",
        _contact(4, "back.slash@example.org", "Back\\", "Sla\\sh"),
        "synced",
    ),
    Case(
        "percent-email", "contact", _contact(5, "100%real@example.org", "Per%", "Cent%"), "synced"
    ),
    Case(
        "underscore-email",
        "contact",
        _contact(6, "under_score@example.org", "_", "Under_"),
        "synced",
    ),
    # A LIKE would match this address for the one above if "_" were a wildcard.
    Case(
        "underscore-lookalike",
        "contact",
        _contact(7, "underXscore@example.org", "X", "Lookalike"),
        "synced",
    ),
    Case(
        "soql-injection-name",
        "contact",
        _contact(8, "name.injection@example.org", "' OR Name != '", "x' OR Id != null OR Id = '"),
        "synced",
    ),
    Case(
        "backslash-email",
        "contact",
        _contact(9, "back\\slash@example.org", "Esc", "Aped"),
        "quarantined",
        "INVALID_EMAIL",
    ),
    Case(
        "injection-with-spaces",
        "contact",
        _contact(10, "' OR Email != null OR Email = '", "Drop", "Table"),
        "quarantined",
        "INVALID_EMAIL",
    ),
    # Non-ASCII, combining characters, emoji and right-to-left names.
    Case("accented", "contact", _contact(11, "zoe.nunez@example.org", "Zoë", "Núñez"), "synced"),
    Case(
        "combining",
        "contact",
        _contact(12, "nfd.name@example.org", "Zoe\u0308", "Nun\u0303ez"),
        "synced",
    ),
    Case("emoji", "contact", _contact(13, "party@example.org", "🎉 Party", "Ünicorn 🦄"), "synced"),
    Case("arabic", "contact", _contact(14, "maryam@example.org", "مريم", "الحسيني"), "synced"),
    Case(
        "hebrew-mixed",
        "contact",
        _contact(15, "rtl.mixed@example.org", "שרה", "Levi \u200fכהן"),
        "synced",
    ),
    Case("cjk", "contact", _contact(16, "cjk.name@example.org", "太郎", "山田"), "synced"),
    Case(
        "unicode-local-part", "contact", _contact(17, "josé@example.org", "José", "Local"), "synced"
    ),
    # The same email in different case or with spaces syncs once.
    Case(
        "mixed-case", "contact", _contact(18, "MiXeD.Case@Example.ORG", "Mixed", "Case"), "synced"
    ),
    Case(
        "spaces", "contact", _contact(19, "  spaced.out@example.org  ", "Spaced", "Out"), "synced"
    ),
    Case(
        "case-matches-subscriber",
        "contact",
        _contact(20, "Case.Match@EXAMPLE.org", "Case", "Match"),
        "synced",
        extra={"subscriber": 20},
    ),
    Case(
        "spaces-match-subscriber",
        "contact",
        _contact(21, " space.match@example.org ", "Space", "Match"),
        "synced",
        extra={"subscriber": 21},
    ),
    # Missing names and invalid addresses.
    Case("no-first-name", "contact", _contact(22, "no.first@example.org", None, "Solo"), "synced"),
    Case("no-email", "contact", _contact(23, None, "No", "Email"), "skipped", "OUT_OF_SCOPE"),
    Case(
        "not-an-email",
        "contact",
        _contact(24, "not-an-email", "Not", "Email"),
        "quarantined",
        "INVALID_EMAIL",
    ),
    Case(
        "no-tld",
        "contact",
        _contact(25, "user@localhost", "No", "Tld"),
        "quarantined",
        "INVALID_EMAIL",
    ),
    Case(
        "leading-dot",
        "contact",
        _contact(26, ".dot@example.org", "Lead", "Dot"),
        "quarantined",
        "INVALID_EMAIL",
    ),
    Case(
        "two-at-signs",
        "contact",
        _contact(27, "a@b@example.org", "Two", "At"),
        "quarantined",
        "INVALID_EMAIL",
    ),
    Case(
        "opted-out-new",
        "contact",
        _contact(28, "opted.out@example.org", "Opted", "Out", HasOptedOutOfEmail=True),
        "skipped",
        "OPTED_OUT_NOT_IN_CERKL",
    ),
    # Subscribers without a Contact: a Contact is created, or the subscriber is quarantined.
    Case(
        "sub-quotes",
        "subscriber",
        _subscriber(1, "d'arcy@example.org", 'D"Arcy', "O'Neil\\"),
        "synced",
        flow=SUBSCRIBERS,
    ),
    Case(
        "sub-wildcards",
        "subscriber",
        _subscriber(2, "o_o%@example.org", "%", "_"),
        "synced",
        flow=SUBSCRIBERS,
    ),
    Case(
        "sub-no-last-name",
        "subscriber",
        _subscriber(3, "no.last@example.org", "Nolast", None),
        "synced",
        flow=SUBSCRIBERS,
    ),
    Case(
        "sub-no-names",
        "subscriber",
        _subscriber(4, "nameless@example.org", None, None),
        "synced",
        flow=SUBSCRIBERS,
    ),
    Case(
        "sub-emoji-rtl",
        "subscriber",
        _subscriber(5, "emoji.rtl@example.org", "🌍 عالم", "שלום"),
        "synced",
        flow=SUBSCRIBERS,
    ),
    Case(
        "sub-first-name-too-long",
        "subscriber",
        _subscriber(6, "long.first@example.org", LONG_NAME, "Long"),
        "quarantined",
        "FIRST_NAME_TOO_LONG",
        flow=SUBSCRIBERS,
    ),
    Case(
        "sub-last-name-too-long",
        "subscriber",
        _subscriber(7, "long.last@example.org", "Long", LONG_NAME * 2),
        "quarantined",
        "LAST_NAME_TOO_LONG",
        flow=SUBSCRIBERS,
    ),
    Case(
        "sub-email-too-long",
        "subscriber",
        _subscriber(8, f"{LONG_LOCAL}@a-rather-long-domain-name.example.org", "Long", "Email"),
        "quarantined",
        "EMAIL_TOO_LONG",
        flow=SUBSCRIBERS,
    ),
    Case(
        "sub-double-dot",
        "subscriber",
        _subscriber(9, "double..dot@example.org", "Double", "Dot"),
        "quarantined",
        "INVALID_EMAIL",
        flow=SUBSCRIBERS,
    ),
    Case(
        "sub-case-variant",
        "subscriber",
        _subscriber(20, "case.match@example.org", "Case", "Match"),
        "synced",
        flow=SUBSCRIBERS,
        extra={"contact": 20},
    ),
    Case(
        "sub-space-variant",
        "subscriber",
        _subscriber(21, "SPACE.MATCH@example.org", "Space", "Match"),
        "synced",
        flow=SUBSCRIBERS,
        extra={"contact": 21},
    ),
    Case(
        "sub-email-swap",
        "subscriber",
        _subscriber(10, "swap.me@example.org", "Swap", "Me"),
        "synced",
        flow=SUBSCRIBERS,
    ),
    # Unsubscribes: matched to a Contact by email in any case, never subscribed again.
    Case(
        "unsub-case-variant",
        "unsubscribe",
        _unsubscribe(1, "UnSub.Self@Example.org", self_unsubscribed=True),
        "synced",
        flow=UNSUBSCRIBES,
        extra={"contact": 30},
    ),
    Case(
        "unsub-apostrophe",
        "unsubscribe",
        _unsubscribe(2, "o'unsub@example.org", self_unsubscribed=False),
        "synced",
        flow=UNSUBSCRIBES,
        extra={"contact": 31},
    ),
    Case(
        "unsub-spaced-contact",
        "unsubscribe",
        _unsubscribe(5, "unsub.spaced@example.org", self_unsubscribed=True),
        "synced",
        flow=UNSUBSCRIBES,
        extra={"contact": 32},
    ),
    Case(
        "unsub-no-contact",
        "unsubscribe",
        _unsubscribe(3, "nobody.here@example.org", self_unsubscribed=True),
        "skipped",
        "NO_MATCHING_CONTACT",
        flow=UNSUBSCRIBES,
    ),
    Case(
        "unsub-wildcard",
        "unsubscribe",
        _unsubscribe(4, "%@example.org", self_unsubscribed=True),
        "skipped",
        "NO_MATCHING_CONTACT",
        flow=UNSUBSCRIBES,
    ),
]

# Contacts the unsubscribes above match; they count as part of those cases.
UNSUBSCRIBE_CONTACTS = [
    _contact(30, "unsub.self@example.org", "Un", "Self"),
    _contact(31, "O'Unsub@Example.org", "Un", "Apostrophe"),
    _contact(32, "  Unsub.Spaced@example.org ", "Un", "Spaced"),
]
DELETED_CONTACT = _contact(40, "deleted.member@example.org", "Gone", "Member", IsDeleted=True)
LEAD = {
    "Id": generated_id("Lead", 700_001),
    "FirstName": "Lee",
    "LastName": "Lead",
    "Company": 'Leads\' "Co"',
    "Email": "lee.lead@example.org",
    "HasOptedOutOfEmail": False,
}
MEMBER_CASES = ["apostrophe", "emoji", "mixed-case", "not-an-email"]
CAMPAIGNS = {
    "hostile": {
        "Id": generated_id("Campaign", 700_001),
        "Name": 'Board "Q4" \' % _ \\ 🎉',
        "Type": "Distribution List",
    },
    "empty": {"Id": generated_id("Campaign", 700_002), "Name": "No members", "Type": "Committee"},
    "webinar": {"Id": generated_id("Campaign", 700_003), "Name": "Webinar", "Type": "Webinar"},
}
CAMPAIGN_CASES = [
    Case("campaign-hostile-name", "campaign", CAMPAIGNS["hostile"], "synced", flow=SEGMENTS),
    Case("campaign-no-members", "campaign", CAMPAIGNS["empty"], "synced", flow=SEGMENTS),
    Case(
        "campaign-out-of-scope",
        "campaign",
        CAMPAIGNS["webinar"],
        "skipped",
        "OUT_OF_SCOPE",
        flow=SEGMENTS,
    ),
    Case("member-lead", "member", {"LeadId": LEAD["Id"]}, "skipped", "LEAD_MEMBER", flow=SEGMENTS),
    Case(
        "member-deleted-contact",
        "member",
        {"ContactId": DELETED_CONTACT["Id"]},
        "skipped",
        # Not linked, so the member waits as pending and is never added to the segment.
        "CONTACT_NOT_LINKED",
        flow=SEGMENTS,
    ),
]
CASES = {case.key: case for case in CORPUS + CAMPAIGN_CASES}


def _members() -> list[dict[str, Any]]:
    hostile = CAMPAIGNS["hostile"]["Id"]
    rows = [{"CampaignId": hostile, "ContactId": CASES[key].record["Id"]} for key in MEMBER_CASES]
    rows.append({"CampaignId": hostile, "LeadId": LEAD["Id"]})
    rows.append({"CampaignId": hostile, "ContactId": DELETED_CONTACT["Id"]})
    rows.append(
        {"CampaignId": CAMPAIGNS["webinar"]["Id"], "ContactId": CASES["emoji"].record["Id"]}
    )
    return [
        {"Id": generated_id("CampaignMember", 700_000 + i), "Status": "Sent", **row}
        for i, row in enumerate(rows)
    ]


def _seed(env) -> None:
    contacts = [c.record for c in CORPUS if c.kind == "contact"]
    contacts += UNSUBSCRIBE_CONTACTS + [DELETED_CONTACT]
    env.salesforce.seed(
        {
            "Account": [{"Id": ORGANIZATION_ACCOUNT_ID, "Name": "Sandbox Organization"}],
            "Contact": contacts,
            "Lead": [LEAD],
            "Campaign": list(CAMPAIGNS.values()),
            "CampaignMember": _members(),
        }
    )
    env.cerkl.seed(
        {
            "subscribers": [c.record for c in CORPUS if c.kind == "subscriber"],
            "unsubscribes": [c.record for c in CORPUS if c.kind == "unsubscribe"],
        }
    )


def _run(env, dag, day: datetime, **conf: Any) -> RunOutcome:
    env.set_clocks(day + timedelta(days=1, minutes=5))
    outcome = run_dag(dag, day + timedelta(days=1), conf)
    assert outcome.report is not None, outcome.task_states
    validate_report(outcome.report)
    return outcome


@pytest.fixture(scope="module")
def hostile(sync_environment, sync_dag):
    """The corpus after a full sync; the email swap is made and synced by a second run."""
    env = sync_environment
    env.reset()
    env.set_clocks(ORG_NOW)
    _seed(env)
    first = _run(env, sync_dag, FIRST_DAY - timedelta(days=1), full_sync=True)
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    api = CerklApi(env.sandbox.cerkl_url)
    state = {"first": first, "sf": sf, "api": api, "env": env, "dag": sync_dag}
    state["after_first"] = (sb.contacts(sf), sb.subscribers(api), sb.unsubscribes(api))
    return state


def _nfc(value: object) -> object:
    if isinstance(value, str):
        value = value.strip() or None
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


def _rejected(report: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(r["flow"], r["record_id"]): r["reason"] for r in report["rejected"]}


def _check_contact(case, contacts, subscribers, rejected) -> str:
    contact = contacts[case.record["Id"]]
    by_email = {sb.normalize_email(s["email"]): s for s in subscribers.values()}
    key = sb.normalize_email(case.record["Email"])
    if case.outcome == "synced":
        assert contact["Cerkl_Subscriber_Id__c"], f"{case.key}: Contact was not linked"
        subscriber = subscribers[int(contact["Cerkl_Subscriber_Id__c"])]
        assert sb.same_email(subscriber["email"], case.record["Email"]), case.key
        assert _nfc(subscriber["first_name"]) == _nfc(contact["FirstName"]), case.key
        assert _nfc(subscriber["last_name"]) == _nfc(contact["LastName"]), case.key
        assert (CONTACTS, case.record["Id"]) not in rejected, case.key
        matching = [s for s in subscribers.values() if sb.same_email(s["email"], key)]
        assert len(matching) == 1, f"{case.key}: {len(matching)} subscribers share the email"
        return "synced"
    assert not contact["Cerkl_Subscriber_Id__c"], f"{case.key}: Contact was linked"
    if key is not None:
        assert key not in by_email, f"{case.key}: a subscriber has the email"
    if case.outcome == "quarantined":
        reason = rejected.get((CONTACTS, case.record["Id"]))
        assert reason is not None, f"{case.key}: not in the report's rejected records"
        assert reason.startswith(case.reason), f"{case.key}: {reason}"
        return "quarantined"
    assert (CONTACTS, case.record["Id"]) not in rejected, case.key
    return "skipped"


def _check_subscriber(case, contacts, subscribers, rejected) -> str:
    subscriber_id = case.record["id"]
    holders = [
        c
        for c in contacts.values()
        if not c["IsDeleted"] and str(c["Cerkl_Subscriber_Id__c"] or "") == str(subscriber_id)
    ]
    assert subscriber_id in subscribers, f"{case.key}: the subscriber is gone"
    if case.outcome == "synced":
        assert len(holders) == 1, f"{case.key}: {len(holders)} Contacts hold the subscriber"
        contact = holders[0]
        assert sb.same_email(contact["Email"], case.record["email"]), case.key
        assert _nfc(contact["FirstName"]) == _nfc(subscribers[subscriber_id]["first_name"])
        expected_last = _nfc(case.record["last_name"]) or MISSING_LAST_NAME
        assert _nfc(contact["LastName"]) == expected_last, case.key
        if "contact" in case.extra:
            # The Contact with the same email in another case or with spaces was linked.
            assert contact["Id"] == _contact(case.extra["contact"], None, None, "")["Id"]
        same_email = [c for c in contacts.values() if sb.same_email(c["Email"], contact["Email"])]
        assert len(same_email) == 1, f"{case.key}: the sync created a second Contact"
        assert (SUBSCRIBERS, str(subscriber_id)) not in rejected, case.key
        return "synced"
    assert not holders, f"{case.key}: a Contact holds the subscriber"
    assert not [c for c in contacts.values() if sb.same_email(c["Email"], case.record["email"])]
    reason = rejected.get((SUBSCRIBERS, str(subscriber_id)))
    assert reason is not None, f"{case.key}: not in the report's rejected records"
    assert reason.startswith(case.reason), f"{case.key}: {reason}"
    return "quarantined"


def _check_unsubscribe(case, contacts, subscribers, rejected) -> str:
    email = case.record["email"]
    assert not [s for s in subscribers.values() if sb.same_email(s["email"], email)], case.key
    assert (UNSUBSCRIBES, str(case.record["id"])) not in rejected, case.key
    matching = [c for c in contacts.values() if sb.same_email(c["Email"], email)]
    if case.outcome == "synced":
        assert len(matching) == 1, case.key
        assert matching[0]["Cerkl_Unsubscribe__c"] is True, case.key
        assert not matching[0]["Cerkl_Subscriber_Id__c"] or (
            int(matching[0]["Cerkl_Subscriber_Id__c"]) == case.record["id"]
        ), case.key
        return "synced"
    assert not matching, f"{case.key}: a Contact was created for an unsubscribe"
    return "skipped"


def test_hostile_run_succeeds(hostile):
    outcome = hostile["first"]
    assert outcome.state == "success", outcome.task_states
    assert outcome.report["failed_tasks"] == []


def _observed_outcomes(hostile) -> dict[str, str]:
    """Check every corpus record against both systems and the report; return its outcome."""
    contacts, subscribers, _ = hostile["after_first"]
    rejected = _rejected(hostile["first"].report)
    checks = {
        "contact": _check_contact,
        "subscriber": _check_subscriber,
        "unsubscribe": _check_unsubscribe,
    }
    return {case.key: checks[case.kind](case, contacts, subscribers, rejected) for case in CORPUS}


def test_hostile_records_reach_expected_outcomes(hostile):
    outcomes = _observed_outcomes(hostile)
    for case in CORPUS:
        assert outcomes[case.key] == case.outcome, case.key


def test_hostile_skips_counted_in_report(hostile):
    # The report lists rejected records one by one but counts skips per flow only.
    flows = hostile["first"].report["flows"]
    for flow in (CONTACTS, UNSUBSCRIBES):
        expected = [
            case.key
            for case in CORPUS
            if case.flow == flow and case.outcome == "skipped" and case.reason != "OUT_OF_SCOPE"
        ]
        assert expected, flow
        assert flows[flow].get("skipped", 0) >= len(expected), (flow, expected)


def test_hostile_rejected_records_are_all_expected(hostile):
    expected = {
        (case.flow, str(case.record.get("Id") or case.record.get("id")))
        for case in CORPUS
        if case.outcome == "quarantined"
    }
    assert set(_rejected(hostile["first"].report)) == expected


def test_hostile_campaign_segments(hostile):
    contacts, subscribers, _ = hostile["after_first"]
    api = hostile["api"]
    segments = sb.segments(api)
    hostile_segment = segments.get(f"SF_{CAMPAIGNS['hostile']['Id']}")
    assert hostile_segment is not None
    assert hostile_segment["description"] == CAMPAIGNS["hostile"]["Name"]
    wanted = {
        int(contacts[CASES[key].record["Id"]]["Cerkl_Subscriber_Id__c"])
        for key in MEMBER_CASES
        if CASES[key].outcome == "synced"
    }
    assert hostile_segment["members"] == wanted
    empty = segments.get(f"SF_{CAMPAIGNS['empty']['Id']}")
    assert empty is not None
    assert empty["members"] == set()
    assert f"SF_{CAMPAIGNS['webinar']['Id']}" not in segments
    report = hostile["first"].report
    assert report["flows"][SEGMENTS].get("skipped", 0) >= 1  # the Lead member
    assert report["flows"][SEGMENTS].get("created_segment") == 2
    assert not [r for r in report["rejected"] if r["flow"] == SEGMENTS]


def test_hostile_subscriber_email_swap(hostile):
    """A subscriber whose email changes to another Contact's, and one with a too-long name."""
    env, sf, api = hostile["env"], hostile["sf"], hostile["api"]
    swap = CASES["sub-email-swap"].record
    target = CASES["opted-out-new"].record
    day = FIRST_DAY
    env.set_clocks(day + timedelta(hours=9))
    env.cerkl.edit_subscriber(swap["id"], email=target["Email"].upper())
    renamed = CASES["sub-quotes"].record
    env.cerkl.edit_subscriber(renamed["id"], first_name=LONG_NAME)
    outcome = _run(env, hostile["dag"], day)
    assert outcome.state == "success", outcome.task_states
    contacts = sb.contacts(sf)
    subscribers = sb.subscribers(api)
    holder = next(
        c for c in contacts.values() if str(c["Cerkl_Subscriber_Id__c"]) == str(swap["id"])
    )
    rejected = _rejected(outcome.report)
    hostile["swap"] = (holder, rejected, subscribers, contacts)
    assert (CHANGES, str(swap["id"])) in rejected, rejected
    assert rejected[(CHANGES, str(swap["id"]))].startswith("EMAIL_HELD_BY_OTHER_CONTACT")
    assert sb.same_email(holder["Email"], "swap.me@example.org")
    # A name edited in Cerkl past Salesforce's FirstName length is quarantined, not cut.
    assert rejected[(CHANGES, str(renamed["id"]))].startswith("FIRST_NAME_TOO_LONG")
    renamed_contact = next(
        c for c in contacts.values() if str(c["Cerkl_Subscriber_Id__c"]) == str(renamed["id"])
    )
    assert renamed_contact["FirstName"] == renamed["first_name"]
    # The opted-out Contact stays opted out and unlinked.
    assert contacts[target["Id"]]["HasOptedOutOfEmail"] is True
    assert not contacts[target["Id"]]["Cerkl_Subscriber_Id__c"]


def test_hostile_figure_line(hostile, capsys):
    outcomes = _observed_outcomes(hostile)
    outcomes.update({case.key: case.outcome for case in CAMPAIGN_CASES})
    synced = sum(1 for o in outcomes.values() if o == "synced")
    quarantined = sum(1 for o in outcomes.values() if o == "quarantined")
    skipped = sum(1 for o in outcomes.values() if o == "skipped")
    lost = len(CASES) - synced - quarantined - skipped
    assert len(CASES) >= 40
    assert lost == 0
    with capsys.disabled():
        print(
            f"\nhostile records: {len(CASES)} (synced {synced}, quarantined {quarantined}, "
            f"skipped {skipped}, lost {lost})"
        )
