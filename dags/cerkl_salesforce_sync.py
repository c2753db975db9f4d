"""Daily two-way sync between Salesforce and Cerkl.

``salesforce_to_cerkl`` subscribes, updates and unsubscribes Cerkl subscribers for Contacts
changed in the day; ``cerkl_to_salesforce`` links new subscribers to Contacts (creating
Contacts where none matches) and writes opt-outs, name, email and engagement-score changes and
the top five interests back; ``campaigns_to_segments`` keeps a Cerkl segment per Campaign of
the configured types with the same members.

Reads of both systems run first and in parallel; writes start only once both are read, so the
two-way rules see both sides' changes. The last task writes the run report, also when the run
failed. Settings: the ``cerkl_sync_config`` and ``cerkl_organization_id`` Variables, the
connections ``salesforce_default``, ``cerkl_default`` and ``cerkl_sync_state``, and the
``CERKL_SYNC_*`` environment variables read below (see README.md).
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from airflow.sdk import (
    CronDataIntervalTimetable,
    Param,
    TaskGroup,
    TriggerRule,
    dag,
    get_current_context,
    task,
)

from include.cerkl_sync.alerts import run_failure_notifiers
from include.cerkl_sync.config import env_int, env_schedule

# Task outputs hold batches of records with emails and names, so they are never logged
# (Airflow logs a task's return value by default).
sync_task = functools.partial(task, show_return_value_in_logs=False)

DAG_ID = "cerkl_salesforce_sync"
SCHEDULE, TIMEZONE = env_schedule()
POOL = "cerkl_api"

default_args = {
    "owner": "data-integration",
    "retries": env_int("CERKL_SYNC_TASK_RETRIES", 3),
    "retry_delay": timedelta(seconds=env_int("CERKL_SYNC_RETRY_DELAY_SECONDS", 120, minimum=1)),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(
        minutes=env_int("CERKL_SYNC_TASK_TIMEOUT_MINUTES", 240, minimum=1)
    ),
}


def _flows_output(context, results) -> dict:
    """Push flow results under the ``flows`` key and return them as the task's output."""
    from include.cerkl_sync.runtime import FLOWS_KEY

    flows = {result["flow"]: result for result in results}
    context["ti"].xcom_push(key=FLOWS_KEY, value=flows)
    return {"flows": flows}


def _finish(run, clients, context, *results) -> dict:
    """Close each flow result (quarantine, window, threshold) and push them all."""
    from include.cerkl_sync.flows.run import RejectThresholdExceededError, finish_flow

    closed = []
    over_threshold: list[Exception] = []
    for result in results:
        try:
            closed.append(finish_flow(run, result, clients.state))
        except RejectThresholdExceededError as exc:
            closed.append(result.to_dict())
            over_threshold.append(exc)
    output = _flows_output(context, closed)
    if over_threshold:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException("; ".join(str(exc) for exc in over_threshold))
    return output


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable(SCHEDULE, timezone=TIMEZONE),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    params={
        "dry_run": Param(False, type="boolean", description="Plan everything, write nothing."),
        "full_sync": Param(
            False,
            type="boolean",
            description="Reconcile every record, ignoring windows; raises the new-subscriber cap.",
        ),
    },
    on_failure_callback=run_failure_notifiers(),
    tags=["cerkl", "salesforce", "sync"],
    doc_md=__doc__,
)
def cerkl_salesforce_sync():
    @sync_task
    def start_run():
        """Check the state DB and the Salesforce fields; compute each flow's window."""
        from include.cerkl_sync.batches import BatchStore
        from include.cerkl_sync.config import load_config, load_organization_id
        from include.cerkl_sync.flows.run import check_organization_account, prepare_run
        from include.cerkl_sync.runtime import (
            SALESFORCE_CONN_ID,
            STATE_CONN_ID,
            fail_fast_on_bad_settings,
        )
        from include.cerkl_sync.salesforce_io import SalesforceClient
        from include.cerkl_sync.state import SyncStateStore

        context = get_current_context()
        with fail_fast_on_bad_settings():
            config = load_config()
            organization_id = load_organization_id()
            state = SyncStateStore.from_connection(STATE_CONN_ID)
            BatchStore(context["run_id"], inline_max_bytes=config.xcom_inline_max_bytes)
        run = prepare_run(
            dag_id=DAG_ID,
            run_id=context["run_id"],
            interval_start=context.get("data_interval_start"),
            interval_end=context.get("data_interval_end"),
            params=context["params"],
            config=config,
            organization_id=organization_id,
            state=state,
        )
        salesforce = SalesforceClient(SALESFORCE_CONN_ID)
        fields = config.contact_fields
        with fail_fast_on_bad_settings():
            salesforce.check_fields(
                "Contact",
                [
                    fields.subscriber_id,
                    fields.unsubscribe,
                    fields.engagement_score,
                    *fields.interests,
                ],
            )
            check_organization_account(salesforce, organization_id)
        from include.cerkl_sync.flows.common import api_calls_dict
        from include.cerkl_sync.runtime import API_CALLS_KEY

        context["ti"].xcom_push(key=API_CALLS_KEY, value=api_calls_dict(salesforce.api_calls, None))
        return run.to_dict()

    @sync_task
    def extract_contacts(run_info: dict):
        """Read Contacts in scope changed in the window (and pending ones)."""
        from include.cerkl_sync.flows import contacts
        from include.cerkl_sync.runtime import task_clients

        context = get_current_context()
        with task_clients(run_info, context) as clients:
            return contacts.extract_contacts(
                clients.run,
                salesforce=clients.salesforce,
                state=clients.state,
                batches=clients.batches,
            )

    @sync_task(pool=POOL)
    def extract_subscriber_changes(run_info: dict):
        """Read subscribers and unsubscribes changed in the window (and pending ones)."""
        from include.cerkl_sync.flows import subscribers
        from include.cerkl_sync.runtime import task_clients

        context = get_current_context()
        with task_clients(run_info, context) as clients:
            return subscribers.extract_subscriber_changes(
                clients.run, cerkl=clients.cerkl, state=clients.state, batches=clients.batches
            )

    @sync_task(pool=POOL)
    def link_new_subscribers(run_info: dict, cerkl_changes: dict, contact_batches: dict):
        """Link unlinked subscribers to Contacts, creating Contacts where none matches."""
        from include.cerkl_sync.flows import subscribers
        from include.cerkl_sync.runtime import task_clients

        context = get_current_context()
        with task_clients(run_info, context) as clients:
            result = subscribers.link_new_subscribers(
                clients.run,
                cerkl_changes["unlinked"],
                salesforce=clients.salesforce,
                cerkl=clients.cerkl,
                state=clients.state,
                contact_refs=contact_batches["batches"],
            )
            return _finish(clients.run, clients, context, result)

    @sync_task
    def apply_unsubscribes(run_info: dict, cerkl_changes: dict, contact_batches: dict):
        """Mark the Contacts of Cerkl unsubscribes as opted out."""
        from include.cerkl_sync.flows import subscribers
        from include.cerkl_sync.runtime import task_clients

        context = get_current_context()
        with task_clients(run_info, context) as clients:
            result = subscribers.apply_unsubscribes(
                clients.run,
                cerkl_changes["unsubscribes"],
                salesforce=clients.salesforce,
                state=clients.state,
                contact_refs=contact_batches["batches"],
            )
            return _finish(clients.run, clients, context, result)

    @sync_task(pool=POOL)
    def apply_subscriber_changes(run_info: dict, cerkl_changes: dict, contact_batches: dict):
        """Write subscriber name, email, score and interest changes to linked Contacts."""
        from include.cerkl_sync.flows import subscribers
        from include.cerkl_sync.runtime import task_clients

        context = get_current_context()
        with task_clients(run_info, context) as clients:
            changes, interests = subscribers.apply_subscriber_changes(
                clients.run,
                cerkl_changes["changed"],
                contact_batches["batches"],
                salesforce=clients.salesforce,
                cerkl=clients.cerkl,
                state=clients.state,
            )
            return _finish(clients.run, clients, context, changes, interests)

    @sync_task(pool=POOL)
    def plan_contact_changes(run_info: dict, contact_batches: dict, cerkl_changes: dict):
        """Plan the Cerkl writes for the changed Contacts."""
        from include.cerkl_sync.flows import contacts
        from include.cerkl_sync.runtime import task_clients

        context = get_current_context()
        with task_clients(run_info, context) as clients:
            return contacts.plan_contact_changes(
                clients.run,
                contact_batches["batches"],
                cerkl_changes["changed"],
                cerkl=clients.cerkl,
                state=clients.state,
                batches=clients.batches,
            )

    @sync_task(pool=POOL)
    def apply_contact_changes(run_info: dict, contact_plan: dict):
        """Create, link, update and unsubscribe Cerkl subscribers as planned."""
        from include.cerkl_sync.flows import contacts
        from include.cerkl_sync.runtime import task_clients

        context = get_current_context()
        with task_clients(run_info, context) as clients:
            result = contacts.apply_contact_changes(
                clients.run,
                contact_plan["plans"],
                salesforce=clients.salesforce,
                cerkl=clients.cerkl,
                state=clients.state,
                plan_result=contact_plan["result"],
            )
            return _finish(clients.run, clients, context, result)

    @sync_task
    def extract_campaigns(run_info: dict):
        """Find the Campaigns whose segments need syncing."""
        from include.cerkl_sync.flows import campaigns
        from include.cerkl_sync.runtime import task_clients

        context = get_current_context()
        with task_clients(run_info, context) as clients:
            return campaigns.extract_campaigns(
                clients.run, salesforce=clients.salesforce, state=clients.state
            )

    @sync_task(pool=POOL)
    def sync_segments(run_info: dict, campaign_list: list):
        """Create, rename and fill the segments of the Campaigns."""
        from include.cerkl_sync.flows import campaigns
        from include.cerkl_sync.runtime import task_clients

        context = get_current_context()
        with task_clients(run_info, context) as clients:
            result = campaigns.sync_segments(
                clients.run,
                campaign_list,
                salesforce=clients.salesforce,
                cerkl=clients.cerkl,
                state=clients.state,
            )
            return _finish(clients.run, clients, context, result)

    @sync_task(trigger_rule=TriggerRule.ALL_DONE)
    def write_run_report():
        """Write the run report, log its summary and delete the run's batch files."""
        from include.cerkl_sync.reporting import finish_run

        return finish_run(get_current_context(), DAG_ID)

    run = start_run()
    with TaskGroup("salesforce_to_cerkl") as salesforce_to_cerkl:
        contact_batches = extract_contacts(run)
    with TaskGroup("cerkl_to_salesforce"):
        cerkl_changes = extract_subscriber_changes(run)
        linked = link_new_subscribers(run, cerkl_changes, contact_batches)
        unsubscribed = apply_unsubscribes(run, cerkl_changes, contact_batches)
        changed = apply_subscriber_changes(run, cerkl_changes, contact_batches)
    with salesforce_to_cerkl:
        contact_plan = plan_contact_changes(run, contact_batches, cerkl_changes)
        applied = apply_contact_changes(run, contact_plan)
    with TaskGroup("campaigns_to_segments"):
        campaign_list = extract_campaigns(run)
        segments = sync_segments(run, campaign_list)

    # Writes start once both systems have been read; one step creates links at a time.
    contact_batches >> linked >> [contact_plan, unsubscribed]
    unsubscribed >> changed
    [applied, linked, unsubscribed] >> segments
    [contact_plan, applied, linked, unsubscribed, changed, campaign_list, segments] >> (
        write_run_report()
    )


cerkl_salesforce_sync()
