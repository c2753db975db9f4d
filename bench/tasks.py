"""Run each task of the sync DAG in its own process, as a worker would, and measure it.

Every task runs in a fresh interpreter (``multiprocessing`` with the ``spawn`` start method).
The interpreter calls the task's flow function with clients built from the Airflow
connections, as the DAG's task does. It sends back the task's output (the XCom value), its
API calls, the seconds of its work and its peak resident set size. The tasks run one at a
time in an order that the DAG's dependencies allow.

While a task runs, the Salesforce client's reads and writes are also recorded (rows per
query, keys per look-up, records per write), so that the minimum calls of the same work
can be computed.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

#: Tasks in an order their dependencies allow: (task id, upstream task ids).
TASK_ORDER: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("start_run", ()),
    ("extract_contacts", ("start_run",)),
    ("extract_subscriber_changes", ("start_run",)),
    ("extract_campaigns", ("start_run",)),
    ("link_new_subscribers", ("start_run", "extract_subscriber_changes", "extract_contacts")),
    (
        "plan_contact_changes",
        ("start_run", "extract_contacts", "extract_subscriber_changes", "link_new_subscribers"),
    ),
    (
        "apply_unsubscribes",
        ("start_run", "extract_subscriber_changes", "extract_contacts", "link_new_subscribers"),
    ),
    ("apply_contact_changes", ("start_run", "plan_contact_changes")),
    (
        "apply_subscriber_changes",
        ("start_run", "extract_subscriber_changes", "extract_contacts", "apply_unsubscribes"),
    ),
    (
        "sync_segments",
        (
            "start_run",
            "extract_campaigns",
            "apply_contact_changes",
            "link_new_subscribers",
            "apply_unsubscribes",
        ),
    ),
)


class _Recorder:
    """Recorder of the work each ``SalesforceClient`` call requests: rows, keys, records."""

    _WRAPPED = ("iter_query_pages", "query_in_batches", "create", "update", "delete", "upsert")

    def __init__(self) -> None:
        self.queries: list[dict[str, Any]] = []
        self.lookups: list[dict[str, Any]] = []
        self.writes: list[dict[str, Any]] = []
        self._originals: dict[str, Any] = {}

    def uninstall(self) -> None:
        """Put the client's own methods back."""
        from include.cerkl_sync.salesforce_io import SalesforceClient

        for name, method in self._originals.items():
            setattr(SalesforceClient, name, method)
        self._originals = {}

    def install(self) -> None:
        """Wrap the client's read and write methods; :meth:`uninstall` undoes it."""
        from include.cerkl_sync.salesforce_io import SalesforceClient

        self._originals = {name: getattr(SalesforceClient, name) for name in self._WRAPPED}
        recorder = self
        original_pages = SalesforceClient.iter_query_pages
        original_batches = SalesforceClient.query_in_batches

        def iter_query_pages(client, soql, **kwargs):
            entry = {"soql": soql[:80], "rows": 0}
            if not getattr(client, "_bench_in_batches", False):
                recorder.queries.append(entry)
            for page in original_pages(client, soql, **kwargs):
                entry["rows"] += len(page)
                yield page

        def query_in_batches(client, soql_template, values, **kwargs):
            values = list(dict.fromkeys(values))
            entry = {
                "template": soql_template,
                "keys": values,
                "rows": 0,
                "uri_prefix": client._rest.url(
                    "queryAll" if kwargs.get("include_deleted") else "query"
                )
                + "?q=",
            }
            recorder.lookups.append(entry)
            client._bench_in_batches = True
            try:
                for page in original_batches(client, soql_template, values, **kwargs):
                    entry["rows"] += len(page)
                    yield page
            finally:
                client._bench_in_batches = False

        SalesforceClient.iter_query_pages = iter_query_pages
        SalesforceClient.query_in_batches = query_in_batches
        for name in ("create", "update", "delete"):
            self._wrap_write(SalesforceClient, name)
        original_upsert = SalesforceClient.upsert

        def upsert(client, sobject, external_id_field, records):
            if records:
                recorder.writes.append({"kind": "upsert", "sobject": sobject, "rows": len(records)})
            return original_upsert(client, sobject, external_id_field, records)

        SalesforceClient.upsert = upsert

    def _wrap_write(self, cls: Any, name: str) -> None:
        original = getattr(cls, name)
        recorder = self

        def write(client, *args):
            records = args[-1]
            sobject = args[0] if len(args) > 1 else "any"
            if records:
                recorder.writes.append({"kind": name, "sobject": sobject, "rows": len(records)})
            return original(client, *args)

        setattr(cls, name, write)

    def to_dict(self) -> dict[str, Any]:
        return {"queries": self.queries, "lookups": self.lookups, "writes": self.writes}


def _finish(clients: Any, *results: Any) -> dict[str, Any]:
    from include.cerkl_sync.flows.run import RejectThresholdExceededError, finish_flow

    flows = {}
    for result in results:
        try:
            flows[result.flow] = finish_flow(clients.run, result, clients.state)
        except RejectThresholdExceededError:
            flows[result.flow] = result.to_dict()
    return {"flows": flows}


def _start_run(params: dict[str, Any], upstream: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from include.cerkl_sync.config import load_config_from_environment
    from include.cerkl_sync.flows.common import api_calls_dict
    from include.cerkl_sync.flows.run import check_organization_account, prepare_run
    from include.cerkl_sync.runtime import SALESFORCE_CONN_ID, STATE_CONN_ID
    from include.cerkl_sync.salesforce_io import SalesforceClient
    from include.cerkl_sync.state import SyncStateStore

    config = load_config_from_environment()
    state = SyncStateStore.from_connection(STATE_CONN_ID)
    run = prepare_run(
        dag_id="cerkl_salesforce_sync",
        run_id=params["run_id"],
        interval_start=datetime.fromisoformat(params["interval_start"]),
        interval_end=datetime.fromisoformat(params["interval_end"]),
        params={"full_sync": params["full_sync"], "dry_run": False},
        config=config,
        organization_id=os.environ["AIRFLOW_VAR_CERKL_ORGANIZATION_ID"],
        state=state,
        now=datetime.fromisoformat(params["now"]),
    )
    state.dispose()
    salesforce = SalesforceClient(SALESFORCE_CONN_ID)
    fields = config.contact_fields
    salesforce.check_fields(
        "Contact",
        [fields.subscriber_id, fields.unsubscribe, fields.engagement_score, *fields.interests],
    )
    check_organization_account(salesforce, os.environ["AIRFLOW_VAR_CERKL_ORGANIZATION_ID"])
    return run.to_dict(), api_calls_dict(salesforce.api_calls, None)


def _flow_task(name: str, upstream: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from include.cerkl_sync.flows import campaigns, contacts, subscribers
    from include.cerkl_sync.runtime import task_clients

    run_info = upstream["start_run"]
    with task_clients(run_info) as clients:
        run = clients.run
        if name == "extract_contacts":
            output = contacts.extract_contacts(
                run, salesforce=clients.salesforce, state=clients.state, batches=clients.batches
            )
        elif name == "extract_subscriber_changes":
            output = subscribers.extract_subscriber_changes(
                run, cerkl=clients.cerkl, state=clients.state, batches=clients.batches
            )
        elif name == "extract_campaigns":
            output = campaigns.extract_campaigns(
                run, salesforce=clients.salesforce, state=clients.state
            )
        elif name == "link_new_subscribers":
            result = subscribers.link_new_subscribers(
                run,
                upstream["extract_subscriber_changes"]["unlinked"],
                salesforce=clients.salesforce,
                cerkl=clients.cerkl,
                state=clients.state,
                contact_refs=upstream["extract_contacts"]["batches"],
            )
            output = _finish(clients, result)
        elif name == "plan_contact_changes":
            output = contacts.plan_contact_changes(
                run,
                upstream["extract_contacts"]["batches"],
                upstream["extract_subscriber_changes"]["changed"],
                cerkl=clients.cerkl,
                state=clients.state,
                batches=clients.batches,
            )
        elif name == "apply_unsubscribes":
            result = subscribers.apply_unsubscribes(
                run,
                upstream["extract_subscriber_changes"]["unsubscribes"],
                salesforce=clients.salesforce,
                state=clients.state,
                contact_refs=upstream["extract_contacts"]["batches"],
            )
            output = _finish(clients, result)
        elif name == "apply_contact_changes":
            plan = upstream["plan_contact_changes"]
            result = contacts.apply_contact_changes(
                run,
                plan["plans"],
                salesforce=clients.salesforce,
                cerkl=clients.cerkl,
                state=clients.state,
                plan_result=plan["result"],
            )
            output = _finish(clients, result)
        elif name == "apply_subscriber_changes":
            changes, interests = subscribers.apply_subscriber_changes(
                run,
                upstream["extract_subscriber_changes"]["changed"],
                upstream["extract_contacts"]["batches"],
                salesforce=clients.salesforce,
                cerkl=clients.cerkl,
                state=clients.state,
            )
            output = _finish(clients, changes, interests)
        elif name == "sync_segments":
            result = campaigns.sync_segments(
                run,
                upstream["extract_campaigns"],
                salesforce=clients.salesforce,
                cerkl=clients.cerkl,
                state=clients.state,
            )
            output = _finish(clients, result)
        else:
            raise ValueError(f"unknown task {name!r}: expected one of {[t for t, _ in TASK_ORDER]}")
        calls = clients.api_calls()
    return output, calls


def _import_task_modules() -> None:
    """Import what the tasks import, without building a client.

    The modules that the flows import lazily (pandas among them) are imported here too, so
    that a task's measured seconds hold its work and not the first import of a library.
    """
    import cerkl.hooks  # noqa: F401
    import pandas  # noqa: F401

    import include.cerkl_sync.flows.campaigns  # noqa: F401
    import include.cerkl_sync.flows.contacts  # noqa: F401
    import include.cerkl_sync.flows.run  # noqa: F401
    import include.cerkl_sync.flows.subscribers  # noqa: F401
    import include.cerkl_sync.planning.subscribers  # noqa: F401
    import include.cerkl_sync.runtime  # noqa: F401
    import include.cerkl_sync.salesforce_io  # noqa: F401
    import include.cerkl_sync.state  # noqa: F401
    from include.cerkl_sync.config import load_config_from_environment

    load_config_from_environment()


def _measure(name: str, params: dict[str, Any], upstream: dict[str, Any]) -> dict[str, Any]:
    _import_task_modules()
    recorder = _Recorder()
    recorder.install()
    try:
        started = time.perf_counter()
        if name == "idle":
            output, calls = None, {}
        elif name == "start_run":
            output, calls = _start_run(params, upstream)
        else:
            output, calls = _flow_task(name, upstream)
        seconds = time.perf_counter() - started
    finally:
        recorder.uninstall()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "output": output,
        "api_calls": calls,
        "seconds": seconds,
        "peak_rss_mb": peak_kb / 1024,
        "work": recorder.to_dict(),
    }


def _child(name: str, params: dict[str, Any], upstream: dict[str, Any], pipe: Any) -> None:
    import logging

    logging.basicConfig(level=os.environ.get("BENCH_LOG_LEVEL", "WARNING"))
    try:
        pipe.send(_measure(name, params, upstream))
    except BaseException as exc:
        pipe.send({"error": f"{type(exc).__name__}: {exc}"})
        raise
    finally:
        pipe.close()


def run_task_in_process(
    name: str, params: dict[str, Any], upstream: dict[str, Any]
) -> dict[str, Any]:
    """Run one task in this process; ``peak_rss_mb`` is then the process's peak so far.

    For tests, which need the call counts only: it saves the start of one interpreter per
    task.
    """
    started = time.perf_counter()
    message = _measure(name, params, upstream)
    message["process_seconds"] = time.perf_counter() - started
    return message


def run_task_in_child(
    name: str, params: dict[str, Any], upstream: dict[str, Any]
) -> dict[str, Any]:
    """Run one task in a fresh interpreter and return its measures.

    :param name: a task id of :data:`TASK_ORDER`, or ``"idle"`` to import the task modules
        and do nothing (the footprint of Airflow and the libraries).
    :param params: the run's interval, ``now``, ``run_id`` and ``full_sync``.
    :param upstream: outputs of the tasks run so far, by task id.
    :return: ``output``, ``api_calls``, ``seconds`` (the task's work, imports excluded),
        ``process_seconds``, ``peak_rss_mb`` and ``work``.
    :raises RuntimeError: when the task failed; the message names it and the error.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    started = time.perf_counter()
    process = context.Process(target=_child, args=(name, params, upstream, sender), daemon=True)
    process.start()
    sender.close()
    try:
        message = receiver.recv()
    except EOFError:
        message = {"error": "the task process exited without a result"}
    process.join()
    if "error" in message:
        raise RuntimeError(f"Task {name} failed: {message['error']}")
    message["process_seconds"] = time.perf_counter() - started
    return message


TaskRunner = Callable[[str, dict[str, Any], dict[str, Any]], dict[str, Any]]
