"""Steps of the ``contacts_to_subscribers`` flow: extract, plan and apply.

Each step takes its clients as arguments so that tests call it without a scheduler; the DAG's
tasks build the clients from Airflow connections and pass XCom values in and out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from include.cerkl_sync.batches import BatchRef, BatchStore
from include.cerkl_sync.flows.common import (
    FlowResult,
    RunInfo,
    contact_field_list,
    contact_writes,
    format_soql_datetime,
    link_from_json,
    link_to_json,
    make_link,
    raise_if_systemic,
    run_in_threads,
)
from include.cerkl_sync.flows.subscribers import SUBSCRIBER_EXTRACT_FLOWS
from include.cerkl_sync.planning.contacts import FLOW, plan_contacts_to_subscribers
from include.cerkl_sync.planning.pairs import field_digest
from include.cerkl_sync.planning.plan import FlowPlan
from include.cerkl_sync.records import (
    contact_from_salesforce,
    normalize_email,
    parse_timestamp,
    subscriber_from_cerkl,
    unsubscribe_from_cerkl,
)
from include.cerkl_sync.subscriber_index import SubscriberIndex
from include.cerkl_sync.windows import EPOCH
from include.cerkl_sync.write_spool import WriteSpool

if TYPE_CHECKING:
    from cerkl.hooks import CerklHook

    from include.cerkl_sync.salesforce_io import SalesforceClient, WriteResult
    from include.cerkl_sync.state import Link, SyncStateStore

log = logging.getLogger(__name__)


def extract_contacts(
    run: RunInfo, *, salesforce: SalesforceClient, state: SyncStateStore, batches: BatchStore
) -> dict[str, Any]:
    """Read Contacts in scope changed in the window, plus those pending from earlier runs.

    Deleted Contacts come too (``queryAll``), so that their links can be dropped or moved.

    :return: ``{"batches": [BatchRef], "count": n, "contact_ids_changed": n}``.
    """
    config = run.config
    window = run.windows[FLOW]
    fields = contact_field_list(config)
    soql = (
        f"SELECT {fields} FROM Contact "
        f"WHERE SystemModstamp > {format_soql_datetime(window.start)} "
        f"AND SystemModstamp <= {format_soql_datetime(window.end)} "
        f"AND ({config.contact_scope_condition}) ORDER BY SystemModstamp, Id"
    )
    seen: set[str] = set()

    def records():
        for page in salesforce.iter_query_pages(soql, include_deleted=True):
            for row in page:
                seen.add(row["Id"])
                yield contact_from_salesforce(row, config)
        pending = [
            item.record_id
            for item in state.open_work_items(FLOW)
            if item.record_type == "Contact" and item.record_id not in seen
        ]
        if pending:
            template = f"SELECT {fields} FROM Contact WHERE Id IN {{values}}"
            for page in salesforce.query_in_batches(template, pending, include_deleted=True):
                for row in page:
                    if row["Id"] not in seen:
                        seen.add(row["Id"])
                        yield contact_from_salesforce(row, config)

    refs = batches.put_all(records(), label="contacts", batch_size=config.batch_size)
    count = sum(ref["count"] for ref in refs)
    log.info("Extracted %d Contacts for window %s to %s", count, window.start, window.end)
    return {"batches": refs, "count": count}


def _fetch_subscriber(cerkl: CerklHook, subscriber_id: int) -> tuple[str, dict | None]:
    from cerkl.exceptions import CerklNotFoundError

    try:
        return "subscriber", subscriber_from_cerkl(cerkl.get_subscriber(subscriber_id))
    except CerklNotFoundError:
        unsubscribe = cerkl.get_unsubscribe(subscriber_id)
        return "unsubscribe", unsubscribe_from_cerkl(unsubscribe) if unsubscribe else None


def _needs_cerkl_read(contact: Mapping[str, Any], link: Link | None) -> bool:
    """Tell whether a linked Contact may need a Cerkl write, so its subscriber must be read."""
    if link is None:
        return True
    synced = link.synced_values
    if field_digest("opted_out", bool(contact.get("opted_out"))) != synced.get("opted_out"):
        return True
    return any(
        field_digest(name, contact.get(name)) != synced.get(name)
        for name in ("first_name", "last_name", "email")
    )


def plan_contact_changes(
    run: RunInfo,
    contact_refs: Sequence[BatchRef],
    changed_subscriber_refs: Sequence[BatchRef],
    *,
    cerkl: CerklHook,
    state: SyncStateStore,
    batches: BatchStore,
) -> dict[str, Any]:
    """Plan the Cerkl writes for the extracted Contacts, batch by batch.

    Runs after new subscribers were linked, so a person new on both sides is linked once.
    The subscriber of an unlinked Contact's email comes from the subscribers changed in the
    window where that is enough, and from one Cerkl look-up per email otherwise (see
    :func:`_prepare_email_index`).
    A Contact whose look-up fails with a record-level Cerkl error is rejected.

    :return: ``{"plans": [BatchRef of plan dicts], "result": FlowResult dict}``.
    """
    # The window's subscribers go to a disk-backed index, and each batch reads back only
    # those it needs, so memory does not grow with the window.
    with SubscriberIndex() as changed:
        changed.add(BatchStore.iter_records(changed_subscriber_refs), in_window=True)
        return _plan_contact_batches(
            run, contact_refs, changed, cerkl=cerkl, state=state, batches=batches
        )


def _plan_contact_batches(
    run: RunInfo,
    contact_refs: Sequence[BatchRef],
    changed_index: SubscriberIndex,
    *,
    cerkl: CerklHook,
    state: SyncStateStore,
    batches: BatchStore,
) -> dict[str, Any]:
    config = run.config
    workers = config.cerkl_workers
    # NOTE: every Cerkl unsubscribe is held here at once when a batch needs them, so memory
    # grows with the number of unsubscribes (ids, emails and names).
    unsubscribes: list[dict[str, Any]] | None = None
    email_index_ready = False
    plan_refs: list[BatchRef] = []
    result = FlowResult(FLOW)
    created_so_far = 0
    planned_emails: set[str] = set()

    for ref in contact_refs:
        contacts = BatchStore.get(ref)
        links = state.get_links_by_contact(c["id"] for c in contacts)
        linked_ids = {
            c["id"]: (links[c["id"]].subscriber_id if c["id"] in links else c["subscriber_id"])
            for c in contacts
            if not c["is_deleted"]
        }
        changed = changed_index.get_in_window(
            int(sid) for sid in linked_ids.values() if sid is not None
        )
        by_id = {c["id"]: c for c in contacts}
        # Linked Contacts whose values all equal the last-synced ones have nothing to send,
        # so their subscribers are not read and they are not planned.
        unchanged = {
            cid
            for cid, sid in linked_ids.items()
            if sid is not None
            and int(sid) not in changed
            and cid in links
            and not _needs_cerkl_read(by_id[cid], links[cid])
        }
        to_read = sorted(
            {
                int(sid)
                for cid, sid in linked_ids.items()
                if sid is not None
                and int(sid) not in changed
                and _needs_cerkl_read(by_id[cid], links.get(cid))
            }
        )
        subscribers: dict[int, dict[str, Any]] = dict(changed)
        unsubscribes_by_id: dict[int, dict[str, Any]] = {}
        for sid, (kind, record), error in run_in_threads(
            lambda s: _fetch_subscriber(cerkl, s), to_read, workers=workers
        ):
            if error is not None:
                raise_if_systemic(error)
                result.reject("subscriber", sid, f"CERKL_READ_FAILED: {type(error).__name__}")
                continue
            if kind == "subscriber" and record is not None:
                subscribers[sid] = record
            elif record is not None:
                unsubscribes_by_id[sid] = record

        unlinked = [
            c
            for c in contacts
            if not c["is_deleted"]
            and linked_ids.get(c["id"]) is None
            and normalize_email(c.get("email"))
        ]
        unsubscribes_by_email: dict[str, dict[str, Any]] = {}
        if unlinked or any(sid not in subscribers for sid in to_read):
            if unsubscribes is None:
                unsubscribes = [unsubscribe_from_cerkl(u) for u in cerkl.iter_unsubscribes()]
            for unsubscribe in unsubscribes:
                unsubscribes_by_id.setdefault(unsubscribe["id"], unsubscribe)
                key = normalize_email(unsubscribe.get("email"))
                if key:
                    unsubscribes_by_email[key] = unsubscribe

        keys = sorted({normalize_email(c["email"]) for c in unlinked})
        subscribers_by_email: dict[str, dict[str, Any]] = {}
        failed_emails: dict[str, str] = {}
        if keys:
            if not email_index_ready:
                unsubscribed_ids = {u["id"] for u in unsubscribes or []}
                _prepare_email_index(
                    run, changed_index, unsubscribed_ids=unsubscribed_ids, cerkl=cerkl
                )
                email_index_ready = True
            by_email, shared = changed_index.by_emails(keys)
            email_index = _EmailIndex(
                by_email=by_email, shared=shared, complete=subscriber_extract_is_complete(run)
            )
            subscribers_by_email, failed_emails = _match_emails(
                keys, email_index, cerkl=cerkl, workers=workers
            )
        lookup_failures = {
            c["id"]: failed_emails[normalize_email(c["email"])]
            for c in unlinked
            if normalize_email(c["email"]) in failed_emails
        }
        linked_elsewhere = set(
            state.get_links_by_subscriber(s["id"] for s in subscribers_by_email.values())
        )

        plan = plan_contacts_to_subscribers(
            [c for c in contacts if c["id"] not in unchanged and c["id"] not in lookup_failures],
            links=links,
            subscribers=subscribers,
            changed_subscriber_ids=set(changed),
            subscribers_by_email=subscribers_by_email,
            unsubscribes_by_id=unsubscribes_by_id,
            unsubscribes_by_email=unsubscribes_by_email,
            linked_subscriber_ids=linked_elsewhere,
            conflict_rule=config.conflict_rule,
            new_subscriber_cap=max(0, run.new_subscriber_cap - created_so_far),
        )
        for contact_id in sorted(unchanged):
            plan.skip("Contact", contact_id, "UNCHANGED")
        for contact_id, reason in sorted(lookup_failures.items()):
            plan.reject("Contact", contact_id, reason)
        _defer_repeated_creates(plan, planned_emails)
        _attach_cerkl_current(plan, {**subscribers_by_email, **subscribers})
        created_so_far += sum(1 for a in plan.actions if a["action"] == "create")
        plan_refs.append(batches.put([plan.to_dict()], label="contacts-plan"))
        result.absorb_plan(plan)
        for action, count in plan.action_counts().items():
            result.counts[f"planned_{action}"] += count
    return {"plans": plan_refs, "result": result.to_dict()}


def subscriber_extract_is_complete(run: RunInfo) -> bool:
    """Tell whether the run's subscriber extract read every subscriber in Cerkl.

    The rule: the extract is complete when the earliest window of
    :data:`SUBSCRIBER_EXTRACT_FLOWS` starts at :data:`EPOCH`, which only a ``full_sync`` run
    does. It then contains every subscriber modified up to the latest window end, so an email
    missing from it has no subscriber, except one modified after that end.
    :func:`_prepare_email_index` reads those few subscribers again before relying on the rule.

    NOTE: a subscriber without ``date_modified_utc`` is outside every extract, so its email
    is then matched only by the duplicate-email check on create. The sandbox sets the field on
    every subscriber; whether Cerkl always does is not checked.
    """
    return min(run.windows[flow].start for flow in SUBSCRIBER_EXTRACT_FLOWS) <= EPOCH


@dataclass
class _EmailIndex:
    """Subscribers by normalized email, built from the subscribers the run has already read."""

    by_email: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Emails of more than one subscriber. They are looked up, so that the hook raises its
    #: error about an email that is not unique.
    shared: set[str] = field(default_factory=set)
    #: True when an email missing from ``by_email`` has no subscriber in Cerkl.
    complete: bool = False


def _prepare_email_index(
    run: RunInfo,
    index: SubscriberIndex,
    *,
    unsubscribed_ids: set[int],
    cerkl: CerklHook,
) -> None:
    """Make the window's subscribers in ``index`` ready for matching unlinked Contacts by email.

    Each record is current as of the extract. When the extract was complete
    (:func:`subscriber_extract_is_complete`), the subscribers modified since the window end
    are read now, one ``GET subscriber`` request per page, and replace their older records.
    An id in ``unsubscribed_ids`` (read after the extract) is left out, because Cerkl turns an
    unsubscribed subscriber into an unsubscribe record with the same id. A subscriber created
    after this read is found by the duplicate-email check on create (``_claim_existing``).
    """
    complete = subscriber_extract_is_complete(run)
    if complete:
        # The hook sends the bound in whole seconds. One second earlier also brings back the
        # end's own second when the ``since_filter_operator`` extra is ``gt``.
        since = max(run.windows[flow].end for flow in SUBSCRIBER_EXTRACT_FLOWS)
        since -= timedelta(seconds=1)
        for page in cerkl.iter_subscriber_pages(modified_since=since):
            index.add((subscriber_from_cerkl(raw) for raw in page), in_window=False)
    index.mark_unsubscribed(unsubscribed_ids)
    log.info(
        "Indexed %d subscribers of the window for matching Contacts by email (complete: %s)",
        index.count_in_window(),
        complete,
    )


def _match_emails(
    keys: Iterable[str], index: _EmailIndex, *, cerkl: CerklHook, workers: int
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Find the subscriber of each normalized email, from ``index`` or by a Cerkl look-up.

    An email is looked up when the index lacks it and is not complete, or when several
    subscribers share it.

    :return: subscribers by email, and a reject reason by email for each look-up that failed
        with a record-level error.
    :raises CerklError: for a systemic error (see ``raise_if_systemic``).
    """
    found: dict[str, dict[str, Any]] = {}
    to_look_up: list[str] = []
    for key in keys:
        subscriber = index.by_email.get(key)
        if key in index.shared:
            to_look_up.append(key)
        elif subscriber is not None:
            found[key] = subscriber
        elif not index.complete:
            to_look_up.append(key)
    from_index = len(found)
    failed: dict[str, str] = {}
    for key, record, error in run_in_threads(
        cerkl.find_subscriber_by_email, to_look_up, workers=workers
    ):
        if error is not None:
            raise_if_systemic(error)
            code = getattr(error, "code", None) or type(error).__name__
            failed[key] = f"CERKL_LOOKUP_FAILED: {code}"
            continue
        if record is not None:
            found[key] = subscriber_from_cerkl(record)
    if from_index or to_look_up:
        log.info(
            "Matched %d emails from subscribers already read; looked up %d, of which %d failed",
            from_index,
            len(to_look_up),
            len(failed),
        )
    return found, failed


def _attach_cerkl_current(plan: FlowPlan, subscribers: Mapping[Any, Mapping[str, Any]]) -> None:
    """Give update and link actions the status and privacy level of the subscriber just read.

    Cerkl needs both on every update; with them, ``update_subscriber`` skips its own
    ``GET subscriber/{id}``, one Cerkl call per update.
    """
    by_id = {int(s["id"]): s for s in subscribers.values()}
    for action in plan.actions:
        if action["action"] not in ("update", "link") or not action.get("changes"):
            continue
        subscriber = by_id.get(int(action["subscriber_id"]))
        if subscriber is None or None in (subscriber["status_id"], subscriber["privacy_level_id"]):
            continue
        action["cerkl_current"] = {
            "subscriber_status": subscriber["status_id"],
            "subscriber_privacy_level": subscriber["privacy_level_id"],
        }


def _defer_repeated_creates(plan: FlowPlan, planned_emails: set[str]) -> None:
    """Leave a create for the next run when an earlier batch of this run creates the address.

    Cerkl keeps one subscriber per email; the next run links this Contact's duplicate
    address as a Contact linked elsewhere instead of creating it twice.
    """
    kept = []
    for action in plan.actions:
        key = (
            normalize_email(action["subscriber"]["email"]) if action["action"] == "create" else None
        )
        if key is not None and key in planned_emails:
            plan.pend("Contact", action["contact_id"], "EMAIL_CREATED_FOR_OTHER_CONTACT")
            continue
        if key is not None:
            planned_emails.add(key)
        kept.append(action)
    plan.actions = kept


def apply_contact_changes(
    run: RunInfo,
    plan_refs: Sequence[BatchRef],
    *,
    salesforce: SalesforceClient,
    cerkl: CerklHook,
    state: SyncStateStore,
    plan_result: Mapping[str, Any],
) -> FlowResult:
    """Carry out the planned Cerkl writes and record links; in a dry run, count them only.

    Creating links holds the state DB's link lock, so that only one task creates links at a
    time. Creates are idempotent across task retries: a ``DUPLICATE_EMAIL`` response turns into
    a look-up, and the subscriber found is linked when no other Contact is linked to it.
    """
    result = FlowResult(FLOW)
    result.counts.update(plan_result.get("counts", {}))
    result.rejected.extend(plan_result.get("rejected", []))
    result.conflicts.extend(plan_result.get("conflicts", []))
    result.records = int(plan_result.get("records", 0))
    for key in [k for k in result.counts if k.startswith("planned_")]:
        del result.counts[key]
    owner = f"{run.run_id}:{FLOW}"
    applier = _ContactApplier(run, salesforce, cerkl, state, result)
    # The Contact updates of all batches go out together at the end, as one call per
    # 50,000 rows (a Bulk API 2.0 job above 1,000). A link whose Contact update is spooled
    # is saved with the update's outcome, as it would be if the update were sent at once.
    with WriteSpool(
        salesforce,
        "update",
        "Contact",
        settle=applier.settle_updates,
        guard=lambda: state.link_lock(owner),
    ) as updates:
        applier.updates = updates
        for ref in plan_refs:
            for data in BatchStore.get(ref):
                plan = FlowPlan.from_dict(data)
                if run.dry_run:
                    for action in plan.actions:
                        result.counts[action["action"]] += 1
                    continue
                with state.link_lock(owner):
                    applier.apply(plan)
                state.add_work_items(
                    FLOW,
                    "pending",
                    [(p["record_type"], p["record_id"], p["reason"]) for p in plan.pending],
                )
                for item in plan.deferred:
                    state.add_work_items(
                        item["flow"],
                        "pending",
                        [(item["record_type"], item["record_id"], item["reason"])],
                    )
                if updates.full:
                    updates.flush()
    return result


class _ContactApplier:
    def __init__(
        self,
        run: RunInfo,
        salesforce: SalesforceClient,
        cerkl: CerklHook,
        state: SyncStateStore,
        result: FlowResult,
    ) -> None:
        self.run = run
        self.config = run.config
        self.salesforce = salesforce
        self.cerkl = cerkl
        self.state = state
        self.result = result
        self.now = datetime.now(UTC)
        self.updates: WriteSpool | None = None

    def apply(self, plan: FlowPlan) -> None:

        by_kind: dict[str, list[dict[str, Any]]] = {}
        for action in plan.actions:
            by_kind.setdefault(action["action"], []).append(action)

        # Links and done work items of Contacts that need no update. The others are saved and
        # resolved by settle_updates, once their update's outcome is known.
        links_to_save: list[Link] = []
        resolved: list[str] = []

        def write(row: dict[str, Any] | None, link: Link | None, *, resolve: bool = False) -> None:
            """Save or spool the link, and resolve the Contact's work item with it."""
            if row is None:
                if link is not None:
                    links_to_save.append(link)
                    if resolve:
                        resolved.append(link.contact_id)
                return
            context = {
                "contact_id": row["Id"],
                "link": link and link_to_json(link),
                "resolve": resolve,
            }
            self.updates.add(row, context)

        # Subscribers to create: new Contacts, and Contacts whose opt-out was cleared.
        creates = by_kind.get("create", []) + by_kind.get("resubscribe", [])
        if creates:
            results = self.cerkl.create_subscribers([a["subscriber"] for a in creates])
            for action, outcome in zip(creates, results, strict=True):
                subscriber = outcome.subscriber
                if subscriber is None and outcome.error_code == "DUPLICATE_EMAIL":
                    subscriber = self._claim_existing(action)
                if subscriber is None:
                    if outcome.error_code == "SELF_UNSUBSCRIBED":
                        self.result.counts["skipped"] += 1
                        resolved.append(action["contact_id"])
                    else:
                        self.result.reject(
                            "Contact",
                            action["contact_id"],
                            f"CERKL_CREATE_FAILED: {outcome.error_code}",
                        )
                    continue
                self.result.counts[
                    "created" if action["action"] == "create" else "resubscribed"
                ] += 1
                # Cerkl may fill a field the Contact lacks (a first name taken from the
                # address); the Contact takes that value so that the pair agrees.
                filled = _values_filled_by_cerkl(action["subscriber"], subscriber)
                synced = dict(action.get("synced_values", {}))
                synced.update({name: field_digest(name, value) for name, value in filled.items()})
                write(
                    {
                        "Id": action["contact_id"],
                        **contact_writes(
                            {
                                "subscriber_id": subscriber["id"],
                                **filled,
                                # A new subscriber's score and (empty) interests, written with
                                # the link so that the next run has nothing left to copy.
                                "engagement_score": subscriber.get("engagement_score"),
                                "interests": [None] * len(self.config.contact_fields.interests),
                            },
                            self.config,
                        ),
                    },
                    self._link(
                        action["contact_id"],
                        int(subscriber["id"]),
                        synced,
                        opted_out=False,
                        action=action,
                        subscriber=subscriber,
                    ),
                    resolve=True,
                )

        # Existing subscribers to link, possibly with an update or an unsubscribe.
        for action in by_kind.get("link", []) + by_kind.get("link_and_unsubscribe", []):
            unsubscribe = action["action"] == "link_and_unsubscribe"
            if not unsubscribe and action.get("changes"):
                if not self._cerkl_call(
                    action,
                    lambda a: self.cerkl.update_subscriber(
                        a["subscriber_id"], a["changes"], current=a.get("cerkl_current")
                    ),
                ):
                    continue
            if unsubscribe and not self._cerkl_call(
                action, lambda a: self._unsubscribe(a["subscriber_id"])
            ):
                continue
            self.result.counts["linked"] += 1
            if unsubscribe:
                self.result.counts["unsubscribed"] += 1
            writes = {
                "subscriber_id": action["subscriber_id"],
                **action.get("salesforce_changes", {}),
            }
            write(
                {"Id": action["contact_id"], **contact_writes(writes, self.config)},
                self._link(
                    action["contact_id"],
                    action["subscriber_id"],
                    action.get("synced_values", {}),
                    opted_out=unsubscribe,
                    action=action,
                ),
                resolve=True,
            )

        # Linked pairs: updates and unsubscribes, several at once.
        def update(action: dict[str, Any]) -> Any:
            return self.cerkl.update_subscriber(
                action["subscriber_id"], action["changes"], current=action.get("cerkl_current")
            )

        def unsubscribe(action: dict[str, Any]) -> Any:
            return self._unsubscribe(action["subscriber_id"])

        for kind, func, counter, opted_out in (
            ("update", update, "updated", False),
            ("unsubscribe", unsubscribe, "unsubscribed", True),
        ):
            actions = by_kind.get(kind, [])
            for action, answer, error in run_in_threads(
                func, actions, workers=self.config.cerkl_workers
            ):
                if error is not None and not self._record_error(action, error):
                    continue
                self.result.counts[counter] += 1
                write(
                    self._salesforce_changes(action),
                    self._link(
                        action["contact_id"],
                        action["subscriber_id"],
                        action.get("synced_values", {}),
                        opted_out=opted_out,
                        action=action,
                        subscriber=answer if isinstance(answer, dict) else None,
                    ),
                    resolve=True,
                )

        for action in by_kind.get("adopt_link", []):
            self.result.counts["linked"] += 1
            write(
                self._salesforce_changes(action),
                self._link(
                    action["contact_id"],
                    action["subscriber_id"],
                    action.get("synced_values", {}),
                    opted_out=False,
                    action=action,
                ),
            )

        for action in by_kind.get("unlink", []):
            self.state.delete_links([action["contact_id"]])
            self.result.counts["unlinked"] += 1
        for action in by_kind.get("move_link", []):
            self.state.move_link(action["contact_id"], action["master_id"])
            write(
                {
                    "Id": action["master_id"],
                    **contact_writes({"subscriber_id": action["subscriber_id"]}, self.config),
                },
                None,
            )
            self.result.counts["link_moved"] += 1

        if links_to_save:
            self.state.save_links(links_to_save)
        if resolved:
            self.state.resolve_work_items(FLOW, "Contact", resolved)

    def settle_updates(self, outcomes: Sequence[tuple[dict[str, Any], WriteResult]]) -> None:
        """Quarantine the Contacts whose update failed, and save the links of all of them.

        A link is saved, and its Contact's work item resolved, whatever the Contact update's
        outcome: the pair is linked in Cerkl, and a failed update is retried from the
        quarantine.
        """
        links = []
        resolved = []
        for context, outcome in outcomes:
            if context.get("resolve"):
                resolved.append(context["contact_id"])
            if not outcome.success:
                self.result.reject(
                    "Contact",
                    context["contact_id"],
                    f"SALESFORCE_UPDATE_FAILED: {outcome.error_code}",
                )
            if context["link"] is not None:
                links.append(link_from_json(context["link"]))
        if links:
            self.state.save_links(links)
        if resolved:
            self.state.resolve_work_items(FLOW, "Contact", resolved)

    def _salesforce_changes(self, action: Mapping[str, Any]) -> dict[str, Any] | None:
        """Return the Contact update an adopted link carries, or None."""
        changes = action.get("salesforce_changes")
        if not changes:
            return None
        return {"Id": action["contact_id"], **contact_writes(changes, self.config)}

    def _link(
        self,
        contact_id: str,
        subscriber_id: int,
        synced: Mapping[str, str],
        *,
        opted_out: bool,
        action: Mapping[str, Any],
        subscriber: Mapping[str, Any] | None = None,
    ) -> Link:
        previous = self.state.get_links_by_contact([contact_id]).get(contact_id)
        if previous is not None and previous.subscriber_id != int(subscriber_id):
            previous = None
        cerkl_seen = action.get("cerkl_seen_at")
        if subscriber is not None:
            cerkl_seen = subscriber.get("date_modified_utc") or subscriber.get("modified")
        return make_link(
            contact_id,
            subscriber_id,
            synced,
            opted_out=opted_out,
            salesforce_seen_at=action.get("salesforce_seen_at"),
            cerkl_seen_at=cerkl_seen,
            previous=previous,
        )

    def _unsubscribe(self, subscriber_id: int) -> None:
        """Unsubscribe a subscriber; one that is an unsubscribe already counts as done.

        An earlier try of this step may have unsubscribed it and then stopped (killed, or the
        state DB lost) before recording the link, so Cerkl answers the retry with a conflict.
        The unsubscribe record confirms that the opt-out holds.
        """
        from cerkl.exceptions import CerklConflictError

        try:
            self.cerkl.unsubscribe_subscriber(subscriber_id)
        except CerklConflictError:
            if self.cerkl.get_unsubscribe(subscriber_id) is None:
                raise
            log.info("Subscriber %s was already unsubscribed; recording the opt-out", subscriber_id)

    def _claim_existing(self, action: Mapping[str, Any]) -> dict[str, Any] | None:
        """Find the subscriber a create collided with; claim it unless another Contact has it."""
        found = self.cerkl.find_subscriber_by_email(action["subscriber"]["email"])
        if found is None:
            return None
        holder = self.state.get_links_by_subscriber([int(found["id"])]).get(int(found["id"]))
        if holder is not None and holder.contact_id != action["contact_id"]:
            return None
        log.info(
            "Contact %s: subscriber %s already existed; linking it",
            action["contact_id"],
            found["id"],
        )
        return found

    def _cerkl_call(self, action: Mapping[str, Any], func) -> bool:
        try:
            func(action)
        except Exception as exc:  # noqa: BLE001 - classified by _record_error
            return self._record_error(action, exc)
        return True

    def _record_error(self, action: Mapping[str, Any], error: BaseException) -> bool:
        """Quarantine a record-level Cerkl error; re-raise a systemic one. Returns False."""
        raise_if_systemic(error)
        code = getattr(error, "code", None) or type(error).__name__
        log.warning(
            "Contact %s: Cerkl rejected %s (%s)", action["contact_id"], action["action"], code
        )
        self.result.reject(
            "Contact", action["contact_id"], f"CERKL_{action['action'].upper()}_FAILED: {code}"
        )
        return False


def _values_filled_by_cerkl(sent: Mapping[str, Any], created: Mapping[str, Any]) -> dict[str, Any]:
    """Return shared fields that were blank in the create but are filled in Cerkl's response."""
    filled = {}
    for name in ("first_name", "last_name"):
        value = created.get(name)
        if not sent.get(name) and isinstance(value, str) and value.strip():
            filled[name] = value
    return filled


def parse_window_time(value: str) -> datetime:
    parsed = parse_timestamp(value)
    if parsed is None:
        raise ValueError(f"Missing window time {value!r}")
    return parsed
