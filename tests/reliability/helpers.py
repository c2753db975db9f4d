"""Run the sync's steps against the sandbox with real clients, step by step.

The reliability tests call the flow functions with real clients in the DAG's task order
(:data:`STEP_ORDER`), inject faults before one step, and compare the end state of both
systems with that of a run without faults (:func:`end_state`).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from include.cerkl_sync.flows.common import FlowResult, RunInfo
from include.sandbox.generator import OrgSpec, generate_org
from tests.dags import sandbox_state as sb
from tests.include.sandbox.cerkl.api_client import CerklApi

ORG_NOW = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)
RUN_DAY = datetime(2026, 11, 1, tzinfo=UTC)
DAY_TWO = RUN_DAY + timedelta(days=1)
DAG_ID = "cerkl_salesforce_sync"

#: A small generated org: every flow has work, and a step takes well under a second.
ORG_SPEC = OrgSpec(
    seed=23,
    contacts=40,
    subscribers=30,
    accounts=4,
    leads=2,
    campaigns=3,
    self_unsubscribes=4,
    admin_unsubscribes=2,
    campaign_members_max=12,
    now=ORG_NOW,
)

#: The DAG's tasks in an order that its dependencies allow.
STEP_ORDER = (
    "extract_contacts",
    "extract_subscriber_changes",
    "extract_campaigns",
    "link_new_subscribers",
    "apply_unsubscribes",
    "plan_contact_changes",
    "apply_contact_changes",
    "apply_subscriber_changes",
    "sync_segments",
)
APPLY_STEPS = (
    "link_new_subscribers",
    "apply_unsubscribes",
    "apply_contact_changes",
    "apply_subscriber_changes",
    "sync_segments",
)


class RecordingSleep:
    """A ``sleep`` for the clients that records each requested wait and waits 10 ms at most."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(min(seconds, 0.01))


@dataclass
class StepClients:
    """The clients one step needs, built as ``runtime.TaskClients`` builds them."""

    salesforce: Any
    cerkl: Any
    state: Any
    batches: Any
    sleep: RecordingSleep = field(default_factory=RecordingSleep)

    def close(self) -> None:
        self.cerkl.close()
        self.state.dispose()


def build_clients(
    run: RunInfo, *, state: Any = None, salesforce_session: Any = None
) -> StepClients:
    """Build clients from the Airflow connections, with retry waits of 10 ms at most.

    :param state: a state store to use in place of the ``cerkl_sync_state`` connection's.
    :param salesforce_session: the ``requests.Session`` of the Salesforce client, for tests
        that watch its responses; by default the product builds one.
    """
    from cerkl.hooks import CerklHook

    from include.cerkl_sync.batches import BatchStore
    from include.cerkl_sync.runtime import CERKL_CONN_ID, SALESFORCE_CONN_ID, STATE_CONN_ID
    from include.cerkl_sync.salesforce_io import SalesforceClient
    from include.cerkl_sync.state import SyncStateStore

    sleep = RecordingSleep()
    return StepClients(
        salesforce=SalesforceClient(
            SALESFORCE_CONN_ID,
            session=salesforce_session,
            lock_retry_delays=(2.0, 5.0, 15.0),
            sleep=sleep,
        ),
        cerkl=CerklHook(CERKL_CONN_ID, sleep=sleep),
        state=state if state is not None else SyncStateStore.from_connection(STATE_CONN_ID),
        batches=BatchStore(run.run_id, inline_max_bytes=run.config.xcom_inline_max_bytes),
        sleep=sleep,
    )


def prepare(run_id: str, *, day: datetime = RUN_DAY, full_sync: bool = True) -> RunInfo:
    """Compute the run settings for ``day``, five minutes after it ends, as ``start_run`` does."""
    from include.cerkl_sync.config import load_config_from_environment
    from include.cerkl_sync.flows.run import prepare_run
    from include.cerkl_sync.runtime import STATE_CONN_ID
    from include.cerkl_sync.state import SyncStateStore

    state = SyncStateStore.from_connection(STATE_CONN_ID)
    try:
        return prepare_run(
            dag_id=DAG_ID,
            run_id=run_id,
            interval_start=day,
            interval_end=day + timedelta(days=1),
            params={"full_sync": full_sync},
            config=load_config_from_environment(),
            organization_id=os.environ["AIRFLOW_VAR_CERKL_ORGANIZATION_ID"],
            state=state,
            now=day + timedelta(days=1, minutes=5),
        )
    finally:
        state.dispose()


def step_arguments(step: str, outputs: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON-ready inputs of ``step`` from the outputs of the steps before it."""
    if step in ("extract_contacts", "extract_subscriber_changes", "extract_campaigns"):
        return {}
    changes = outputs["extract_subscriber_changes"]
    contact_refs = outputs["extract_contacts"]["batches"]
    if step == "link_new_subscribers":
        return {"unlinked_refs": changes["unlinked"], "contact_refs": contact_refs}
    if step == "apply_unsubscribes":
        return {"unsubscribe_refs": changes["unsubscribes"], "contact_refs": contact_refs}
    if step == "plan_contact_changes":
        return {
            "contact_refs": outputs["extract_contacts"]["batches"],
            "changed_subscriber_refs": changes["changed"],
        }
    if step == "apply_contact_changes":
        plan = outputs["plan_contact_changes"]
        return {"plan_refs": plan["plans"], "plan_result": plan["result"]}
    if step == "apply_subscriber_changes":
        return {
            "changed_refs": changes["changed"],
            "contact_refs": outputs["extract_contacts"]["batches"],
        }
    if step == "sync_segments":
        return {"campaigns": outputs["extract_campaigns"]}
    raise ValueError(f"unknown step {step!r}: use one of {', '.join(STEP_ORDER)}")


def run_step(step: str, run: RunInfo, arguments: dict[str, Any], clients: StepClients) -> Any:
    """Run one step as its task does, passing an apply step's results through ``finish_flow``."""
    from include.cerkl_sync.flows import campaigns, contacts, subscribers
    from include.cerkl_sync.flows.run import finish_flow

    sf, cerkl, state, batches = clients.salesforce, clients.cerkl, clients.state, clients.batches
    results: tuple[FlowResult, ...]
    if step == "extract_contacts":
        return contacts.extract_contacts(run, salesforce=sf, state=state, batches=batches)
    if step == "extract_subscriber_changes":
        return subscribers.extract_subscriber_changes(
            run, cerkl=cerkl, state=state, batches=batches
        )
    if step == "extract_campaigns":
        return campaigns.extract_campaigns(run, salesforce=sf, state=state)
    if step == "plan_contact_changes":
        return contacts.plan_contact_changes(
            run, **arguments, cerkl=cerkl, state=state, batches=batches
        )
    if step == "link_new_subscribers":
        results = (
            subscribers.link_new_subscribers(
                run, **arguments, salesforce=sf, cerkl=cerkl, state=state
            ),
        )
    elif step == "apply_unsubscribes":
        results = (subscribers.apply_unsubscribes(run, **arguments, salesforce=sf, state=state),)
    elif step == "apply_contact_changes":
        results = (
            contacts.apply_contact_changes(
                run, **arguments, salesforce=sf, cerkl=cerkl, state=state
            ),
        )
    elif step == "apply_subscriber_changes":
        results = subscribers.apply_subscriber_changes(
            run, **arguments, salesforce=sf, cerkl=cerkl, state=state
        )
    elif step == "sync_segments":
        results = (
            campaigns.sync_segments(run, **arguments, salesforce=sf, cerkl=cerkl, state=state),
        )
    else:
        raise ValueError(f"unknown step {step!r}: use one of {', '.join(STEP_ORDER)}")
    return [finish_flow(run, result, state) for result in results]


class Pipeline:
    """One run of the sync's steps, each step with fresh clients as a task would have."""

    def __init__(self, run_id: str, *, day: datetime = RUN_DAY, full_sync: bool = True) -> None:
        self.run = prepare(run_id, day=day, full_sync=full_sync)
        self.outputs: dict[str, Any] = {}
        self.sleeps: list[float] = []

    def arguments(self, step: str) -> dict[str, Any]:
        return step_arguments(step, self.outputs)

    def step(self, step: str, *, state: Any = None, salesforce_session: Any = None) -> Any:
        """Run one step with new clients, which are closed afterwards, also when it raises."""
        clients = build_clients(self.run, state=state, salesforce_session=salesforce_session)
        try:
            output = run_step(step, self.run, self.arguments(step), clients)
        finally:
            self.sleeps.extend(clients.sleep.waits)
            clients.close()
        self.outputs[step] = output
        return output

    def until(self, step: str) -> None:
        """Run every step before ``step`` that has not run yet."""
        for name in STEP_ORDER[: STEP_ORDER.index(step)]:
            if name not in self.outputs:
                self.step(name)

    def rest(self) -> None:
        """Run every step that has not run yet."""
        for name in STEP_ORDER:
            if name not in self.outputs:
                self.step(name)


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(record, default=lambda v: v.isoformat()))


def seed_org(env: Any, spec: OrgSpec = ORG_SPEC) -> None:
    """Empty both sandboxes and the state DB, seed ``spec``'s org, and set the clocks."""
    env.reset()
    env.set_clocks(ORG_NOW)
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
    env.set_clocks(RUN_DAY + timedelta(days=1, minutes=5))
    env.reset_counters()


def change_contacts_on_day_two(env: Any) -> None:
    """Opt three linked Contacts out and rename three others during :data:`DAY_TWO`.

    The next run for that day must unsubscribe three subscribers and update three in Cerkl.
    """
    env.set_clocks(DAY_TWO + timedelta(hours=10))
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    try:
        linked = sorted(
            (
                c
                for c in sb.contacts(sf).values()
                if c["Cerkl_Subscriber_Id__c"]
                and not c["IsDeleted"]
                and not (c["Cerkl_Unsubscribe__c"] or c["HasOptedOutOfEmail"])
            ),
            key=lambda c: c["Id"],
        )
        for contact in linked[:3]:
            sf.Contact.update(contact["Id"], {"Cerkl_Unsubscribe__c": True})
        for contact in linked[3:6]:
            sf.Contact.update(contact["Id"], {"FirstName": "Renamed"})
    finally:
        sf.session.close()
    env.set_clocks(DAY_TWO + timedelta(days=1, minutes=5))


def live_contacts(env: Any) -> dict[str, dict[str, Any]]:
    """Return the sandbox's Contacts that are not deleted, by Id, as the REST API reads them."""
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    try:
        return {cid: c for cid, c in sb.contacts(sf).items() if not c["IsDeleted"]}
    finally:
        sf.session.close()


def end_state(env: Any) -> dict[str, Any]:
    """Describe both systems by email address, so that runs with different ids compare.

    Contains the Contacts per email with their names and opt-out flags, the subscribers'
    emails and first names, the unsubscribe emails, the linked pairs, and each segment's members.
    """
    sf = sb.salesforce_client(env.sandbox.salesforce_url)
    api = CerklApi(env.sandbox.cerkl_url)
    api.authenticate()
    try:
        contacts = [c for c in sb.contacts(sf).values() if not c["IsDeleted"]]
        subscribers = sb.subscribers(api)
        unsubscribes = sb.unsubscribes(api)
        segments = sb.segments(api)
    finally:
        api.session.close()
        sf.session.close()
    email_of = {sid: sb.normalize_email(s["email"]) for sid, s in subscribers.items()}
    email_of.update({uid: sb.normalize_email(u["email"]) for uid, u in unsubscribes.items()})
    contact_rows = Counter(
        (
            sb.normalize_email(c["Email"]),
            c["FirstName"],
            c["LastName"],
            bool(c["Cerkl_Unsubscribe__c"]),
            bool(c["HasOptedOutOfEmail"]),
        )
        for c in contacts
    )
    pairs = Counter(
        (sb.normalize_email(c["Email"]), email_of.get(int(c["Cerkl_Subscriber_Id__c"])))
        for c in contacts
        if c["Cerkl_Subscriber_Id__c"]
    )
    return {
        "contacts": len(contacts),
        "contact_rows": contact_rows,
        "subscribers": sorted(
            (email_of[sid], s.get("first_name") or "") for sid, s in subscribers.items()
        ),
        "unsubscribes": sorted(email_of[uid] for uid in unsubscribes),
        "pairs": pairs,
        "segments": {
            external_id: sorted(email_of.get(m) or str(m) for m in segment["members"])
            for external_id, segment in segments.items()
        },
    }


def write_count(counters: dict[str, Any]) -> int:
    """Return how many counted requests changed data (logins and queries excluded)."""
    return sum(sb.write_calls(counters).values())


def login_count(counters: dict[str, Any]) -> int:
    """Return how many Salesforce logins the counters hold."""
    return sum(n for key, n in counters["by_endpoint"].items() if key in sb.LOGIN_KEYS)
