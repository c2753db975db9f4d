"""End-to-end runs of the sync DAG against the sandbox, with the end state read back from both
systems through their APIs.

The runs share one migrated Airflow home and one sandbox, and build on each other in order.
They are a full sync of a generated org, an idempotent re-run, a dry run, daily runs with
changes on both sides, a quiet day, and a day whose run is skipped and covered by the next.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from include.cerkl_sync.report import validate_report
from include.sandbox.generator import OrgSpec, generate_org
from include.sandbox.local_airflow import RunOutcome, run_dag
from tests.dags import sandbox_state as sb
from tests.include.sandbox.cerkl.api_client import CerklApi

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ORG_NOW = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)
FIRST_DAY = datetime(2026, 11, 1, tzinfo=UTC)
ACCOUNT_ID_PREFIX = "001C000001aTtMa"


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(record, default=lambda v: v.isoformat()))


def _seed_generated_org(env, spec: OrgSpec) -> None:
    org = generate_org(spec)
    env.salesforce.seed(
        {
            name: [_jsonable(r) for r in org.salesforce_records(name)]
            for name in ("Account", "Contact", "Lead", "Campaign", "CampaignMember")
        }
    )
    env.cerkl.seed(
        {
            name: [_jsonable(r) for r in org.cerkl_records(name)]
            for name in ("categories", "subscribers", "unsubscribes", "interests", "segments")
        }
    )


def _run(env, dag, day: datetime, **conf: Any) -> RunOutcome:
    """Run the DAG for ``day`` after the day ended, with fresh sandbox counters."""
    env.set_clocks(day + timedelta(days=1, minutes=5))
    env.reset_counters()
    # dag.test() makes a manual run, whose data interval ends at its logical date.
    outcome = run_dag(dag, day + timedelta(days=1), conf)
    assert outcome.report is not None, outcome.task_states
    validate_report(outcome.report)
    # Taken before the tests read the sandboxes, which the counters would count too.
    outcome.counters = {"salesforce": env.salesforce.counters(), "cerkl": env.cerkl.counters()}
    return outcome


def _assert_counts_match_sandbox(outcome: RunOutcome) -> None:
    for system in ("salesforce", "cerkl"):
        counters = outcome.counters[system]
        assert outcome.report["api_calls"][system]["total"] == counters["total"], system
        assert outcome.report["api_calls"][system]["by_endpoint"] == counters["by_endpoint"]


@pytest.fixture(scope="module")
def world(sync_environment, sync_dag):
    """A generated org, fully synced once; the module's tests then run day by day."""
    from include.cerkl_sync.batches import BatchStore

    stored_files: list[str] = []
    original_put = BatchStore.put

    def counting_put(self, records, *, label):
        ref = original_put(self, records, label=label)
        if "path" in ref:
            stored_files.append(ref["path"])
        return ref

    patcher = pytest.MonkeyPatch()
    patcher.setattr(BatchStore, "put", counting_put)
    env = sync_environment
    env.reset()
    env.set_clocks(ORG_NOW)
    _seed_generated_org(
        env, OrgSpec(seed=7, contacts=120, subscribers=90, campaigns=6, leads=10, now=ORG_NOW)
    )
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    api = CerklApi(env.sandbox.cerkl_url)
    first = _run(env, sync_dag, FIRST_DAY - timedelta(days=1), full_sync=True)
    patcher.undo()
    return {
        "env": env,
        "dag": sync_dag,
        "sf": sf,
        "api": api,
        "first": first,
        "batch_files": stored_files,
    }


def test_large_batches_stored_then_deleted(world):
    # The tests' settings keep batches over 4 KiB out of XCom.
    assert world["batch_files"], "no batch was written to the shared storage"
    for path in world["batch_files"]:
        assert not Path(path.removeprefix("file://")).exists(), path


def test_full_sync_links_every_subscriber(world):
    outcome = world["first"]
    assert outcome.state == "success", outcome.task_states
    contacts = sb.contacts(world["sf"])
    subscribers = sb.subscribers(world["api"])
    linked = {
        str(c["Cerkl_Subscriber_Id__c"]): c
        for c in contacts.values()
        if c["Cerkl_Subscriber_Id__c"]
    }
    for subscriber_id, subscriber in subscribers.items():
        contact = linked.get(str(subscriber_id))
        assert contact is not None, f"subscriber {subscriber_id} has no Contact"
        assert sb.same_email(contact["Email"], subscriber["email"])


def test_full_sync_pairs_agree_on_names_and_email(world):
    contacts = sb.contacts(world["sf"])
    subscribers = sb.subscribers(world["api"])
    for contact in contacts.values():
        subscriber_id = contact["Cerkl_Subscriber_Id__c"]
        if not subscriber_id or int(subscriber_id) not in subscribers:
            continue
        subscriber = subscribers[int(subscriber_id)]
        assert sb.same_email(contact["Email"], subscriber["email"]), contact["Id"]
        assert (contact["FirstName"] or None) == (subscriber["first_name"] or None), contact["Id"]
        if subscriber.get("last_name"):
            assert contact["LastName"] == subscriber["last_name"], contact["Id"]


def test_full_sync_subscribes_every_eligible_contact(world):
    report = world["first"].report
    contacts = sb.contacts(world["sf"])
    subscribers = sb.subscribers(world["api"])
    unsubscribed = sb.unsubscribes(world["api"])
    quarantined = {r["record_id"] for r in report["rejected"]}
    by_email = {sb.normalize_email(s["email"]): s for s in subscribers.values()}
    gone = {sb.normalize_email(u["email"]) for u in unsubscribed.values()}
    for contact in contacts.values():
        opted_out = contact["HasOptedOutOfEmail"] or contact["Cerkl_Unsubscribe__c"]
        key = sb.normalize_email(contact["Email"])
        if opted_out or not key or contact["Id"] in quarantined or key in gone:
            continue
        assert key in by_email, f"Contact {contact['Id']} has no subscriber"


def test_full_sync_opted_out_contacts_are_not_subscribed(world):
    contacts = sb.contacts(world["sf"])
    subscribers = sb.subscribers(world["api"])
    for contact in contacts.values():
        if contact["HasOptedOutOfEmail"] or contact["Cerkl_Unsubscribe__c"]:
            subscriber_id = contact["Cerkl_Subscriber_Id__c"]
            assert not subscriber_id or int(subscriber_id) not in subscribers, contact["Id"]


def test_full_sync_unsubscribes_reach_contacts(world):
    contacts = sb.contacts(world["sf"])
    for unsubscribe in sb.unsubscribes(world["api"]).values():
        for contact in contacts.values():
            if str(contact["Cerkl_Subscriber_Id__c"]) == str(unsubscribe["id"]):
                opted_out = contact["Cerkl_Unsubscribe__c"] or contact["HasOptedOutOfEmail"]
                assert opted_out is True, contact["Id"]


def test_full_sync_segments_equal_campaign_members(world):
    sf = world["sf"]
    segments = sb.segments(world["api"])
    campaigns = sf.query_all(
        "SELECT Id, Name FROM Campaign WHERE Type IN ('Distribution List', 'Committee', 'Board')"
    )["records"]
    assert campaigns, "the generated org has no in-scope Campaign"
    contacts = sb.contacts(sf)
    active = set(sb.subscribers(world["api"]))
    for campaign in campaigns:
        segment = segments.get(f"SF_{campaign['Id']}")
        assert segment is not None, campaign["Id"]
        assert segment["description"] == campaign["Name"]
        members = sf.query_all(
            f"SELECT ContactId FROM CampaignMember WHERE CampaignId = '{campaign['Id']}'"
        )["records"]
        linked = [
            contacts[m["ContactId"]]["Cerkl_Subscriber_Id__c"]
            for m in members
            if m["ContactId"] and contacts[m["ContactId"]]["Cerkl_Subscriber_Id__c"]
        ]
        wanted = {int(sid) for sid in linked if int(sid) in active}
        assert segment["members"] == wanted, campaign["Id"]


def test_full_sync_report_counts_match_sandbox(world):
    report = world["first"].report
    assert report["full_sync"] is True
    assert report["flows"]["new_subscribers_to_contacts"].get("created_contact", 0) > 0
    assert report["flows"]["campaigns_to_segments"].get("created_segment", 0) > 0
    # The counters were reset before the run, so both sides counted the same requests.
    _assert_counts_match_sandbox(world["first"])


def test_second_run_writes_nothing(world):
    env, dag = world["env"], world["dag"]
    outcome = _run(env, dag, FIRST_DAY)
    assert outcome.state == "success", outcome.task_states
    assert sb.write_calls(outcome.counters["salesforce"]) == {}, outcome.report["flows"]
    assert sb.write_calls(outcome.counters["cerkl"]) == {}, outcome.report["flows"]
    _assert_counts_match_sandbox(outcome)


def test_dry_run_plans_but_writes_nothing(world):
    env, dag, sf, api = world["env"], world["dag"], world["sf"], world["api"]
    day = FIRST_DAY + timedelta(days=1)
    env.set_clocks(day + timedelta(hours=9))
    new_contact = sf.Contact.create(
        {"LastName": "Okafor", "FirstName": "Ada", "Email": "ada.okafor@example.org"}
    )
    before = len(sb.subscribers(api))
    outcome = _run(env, dag, day, dry_run=True)
    assert outcome.state == "success", outcome.task_states
    assert outcome.report["dry_run"] is True
    assert outcome.report["flows"]["contacts_to_subscribers"].get("create") == 1
    assert sb.write_calls(outcome.counters["salesforce"]) == {}, outcome.report["flows"]
    assert sb.write_calls(outcome.counters["cerkl"]) == {}, outcome.report["flows"]
    assert len(sb.subscribers(api)) == before
    world["dry_run_contact"] = new_contact["id"]


def test_daily_run_applies_changes_on_both_sides(world):
    env, dag, sf, api = world["env"], world["dag"], world["sf"], world["api"]
    day = FIRST_DAY + timedelta(days=1)
    contacts = sb.contacts(sf)
    subscribers = sb.subscribers(api)
    linked = [
        c
        for c in contacts.values()
        if c["Cerkl_Subscriber_Id__c"] and int(c["Cerkl_Subscriber_Id__c"]) in subscribers
    ]
    renamed, edited, opting_out, leaving = linked[0], linked[1], linked[2], linked[3]

    env.set_clocks(day + timedelta(hours=10))
    sf.Contact.update(renamed["Id"], {"FirstName": "Renamed"})
    sf.Contact.update(opting_out["Id"], {"Cerkl_Unsubscribe__c": True})
    env.cerkl.edit_subscriber(
        int(edited["Cerkl_Subscriber_Id__c"]), last_name="Edited-in-Cerkl", engagement_score=77
    )
    env.cerkl.self_unsubscribe(int(leaving["Cerkl_Subscriber_Id__c"]))
    api.authenticate()
    newcomer = api.create(email="newcomer@example.net", first_name="Nia", last_name="Newcomer")

    outcome = _run(env, dag, day)
    assert outcome.state == "success", outcome.task_states
    contacts = sb.contacts(sf)
    subscribers = sb.subscribers(api)

    # The Contact created before the dry run of this day is subscribed now.
    created = contacts[world["dry_run_contact"]]
    assert created["Cerkl_Subscriber_Id__c"]
    assert subscribers[int(created["Cerkl_Subscriber_Id__c"])]["email"] == "ada.okafor@example.org"
    assert subscribers[int(renamed["Cerkl_Subscriber_Id__c"])]["first_name"] == "Renamed"
    assert int(opting_out["Cerkl_Subscriber_Id__c"]) not in subscribers
    assert contacts[edited["Id"]]["LastName"] == "Edited-in-Cerkl"
    assert contacts[edited["Id"]]["Engagement_Score__c"] == 77
    assert contacts[leaving["Id"]]["Cerkl_Unsubscribe__c"] is True
    newcomer_contacts = [
        c for c in contacts.values() if str(c["Cerkl_Subscriber_Id__c"]) == str(newcomer["id"])
    ]
    assert len(newcomer_contacts) == 1
    assert newcomer_contacts[0]["AccountId"].startswith(ACCOUNT_ID_PREFIX)
    _assert_counts_match_sandbox(outcome)


def test_daily_run_syncs_campaign_joins_and_departures(world):
    env, dag, sf, api = world["env"], world["dag"], world["sf"], world["api"]
    day = FIRST_DAY + timedelta(days=2)
    contacts = sb.contacts(sf)
    subscribers = sb.subscribers(api)
    linked = [
        c
        for c in contacts.values()
        if c["Cerkl_Subscriber_Id__c"] and int(c["Cerkl_Subscriber_Id__c"]) in subscribers
    ]
    env.set_clocks(day + timedelta(hours=11))
    campaign = sf.Campaign.create({"Name": "Board 2027", "Type": "Board"})
    joined = [
        sf.CampaignMember.create({"CampaignId": campaign["id"], "ContactId": c["Id"]})
        for c in linked[5:8]
    ]
    outcome = _run(env, dag, day)
    assert outcome.state == "success", outcome.task_states
    segment = sb.segments(api)[f"SF_{campaign['id']}"]
    assert segment["description"] == "Board 2027"
    assert segment["members"] == {int(c["Cerkl_Subscriber_Id__c"]) for c in linked[5:8]}

    next_day = day + timedelta(days=1)
    env.set_clocks(next_day + timedelta(hours=11))
    sf.CampaignMember.delete(joined[0]["id"])
    sf.Campaign.update(campaign["id"], {"Name": "Board of 2027"})
    outcome = _run(env, dag, next_day)
    assert outcome.state == "success", outcome.task_states
    segment = sb.segments(api)[f"SF_{campaign['id']}"]
    assert segment["description"] == "Board of 2027"
    assert segment["members"] == {int(c["Cerkl_Subscriber_Id__c"]) for c in linked[6:8]}


def test_quiet_day_writes_nothing(world):
    env, dag = world["env"], world["dag"]
    outcome = _run(env, dag, FIRST_DAY + timedelta(days=4))
    assert outcome.state == "success", outcome.task_states
    assert sb.write_calls(outcome.counters["salesforce"]) == {}, outcome.report["flows"]
    assert sb.write_calls(outcome.counters["cerkl"]) == {}, outcome.report["flows"]


def test_skipped_day_is_covered_by_next_run(world):
    env, dag, sf, api = world["env"], world["dag"], world["sf"], world["api"]
    skipped = FIRST_DAY + timedelta(days=5)
    contacts = sb.contacts(sf)
    subscribers = sb.subscribers(api)
    target = next(
        c
        for c in contacts.values()
        if c["Cerkl_Subscriber_Id__c"] and int(c["Cerkl_Subscriber_Id__c"]) in subscribers
    )
    env.set_clocks(skipped + timedelta(hours=15))
    sf.Contact.update(target["Id"], {"FirstName": "Skipped-Day"})
    outcome = _run(env, dag, skipped + timedelta(days=1))
    assert outcome.state == "success", outcome.task_states
    window_start = outcome.report["windows"]["contacts_to_subscribers"]["start"]
    assert datetime.fromisoformat(window_start) <= skipped
    subscriber = sb.subscribers(api)[int(target["Cerkl_Subscriber_Id__c"])]
    assert subscriber["first_name"] == "Skipped-Day"
