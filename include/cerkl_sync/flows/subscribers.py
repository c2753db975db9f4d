"""Steps of the Cerkl-to-Salesforce flows.

- ``extract_subscriber_changes``: subscribers changed in the window, unsubscribes in the
  window, and the pending ones of earlier runs;
- ``link_new_subscribers``: flow ``new_subscribers_to_contacts``;
- ``apply_unsubscribes``: flow ``unsubscribes_to_contacts``;
- ``apply_subscriber_changes``: flows ``subscriber_changes_to_contacts`` and
  ``interests_to_contacts`` (one Contact update carries both).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from include.cerkl_sync.batches import BatchRef, BatchStore
from include.cerkl_sync.flows.common import (
    FlowResult,
    RunInfo,
    contact_field_list,
    contact_writes,
    make_link,
    raise_if_systemic,
    run_in_threads,
)
from include.cerkl_sync.planning import subscribers as new_subscribers
from include.cerkl_sync.planning import writeback
from include.cerkl_sync.planning.contacts import FLOW as CONTACTS_FLOW
from include.cerkl_sync.planning.pairs import reconcile_pair
from include.cerkl_sync.planning.subscribers import match_subscribers_to_contacts
from include.cerkl_sync.records import (
    contact_from_salesforce,
    normalize_email,
    parse_timestamp,
    subscriber_from_cerkl,
    unsubscribe_from_cerkl,
)
from include.cerkl_sync.write_spool import WriteSpool

if TYPE_CHECKING:
    from cerkl.hooks import CerklHook

    from include.cerkl_sync.salesforce_io import SalesforceClient, WriteResult
    from include.cerkl_sync.state import SyncStateStore

log = logging.getLogger(__name__)

NEW_FLOW = new_subscribers.FLOW
UNSUBSCRIBES_FLOW = writeback.UNSUBSCRIBES_FLOW
CHANGES_FLOW = writeback.CHANGES_FLOW
INTERESTS_FLOW = writeback.INTERESTS_FLOW
#: Flows whose windows bound ``extract_subscriber_changes``, which reads the subscribers
#: modified after the earliest start of these windows, up to the latest end.
SUBSCRIBER_EXTRACT_FLOWS = (NEW_FLOW, CHANGES_FLOW, INTERESTS_FLOW)


def _within(value: str | None, start: datetime, end: datetime) -> bool:
    when = parse_timestamp(value)
    return when is not None and start < when <= end


def extract_subscriber_changes(
    run: RunInfo, *, cerkl: CerklHook, state: SyncStateStore, batches: BatchStore
) -> dict[str, Any]:
    """Read Cerkl's changes of the window and the pending work of earlier runs.

    :return: ``{"changed": [BatchRef], "unlinked": [BatchRef], "unsubscribes": [BatchRef]}``
        with counts; ``changed`` contains every subscriber modified in the window, ``unlinked``
        those of them (and the pending ones) that no Contact is linked to.
    """
    from cerkl.exceptions import CerklNotFoundError

    config = run.config
    windows = [run.windows[f] for f in SUBSCRIBER_EXTRACT_FLOWS]
    start = min(w.start for w in windows)
    end = max(w.end for w in windows)

    changed_refs: list[BatchRef] = []
    unlinked_refs: list[BatchRef] = []
    seen_unlinked: set[int] = set()
    # Pages are gathered into batches of ``batch_size`` records, so that the steps downstream
    # send full Salesforce look-ups and writes instead of a partial one per page.
    changed_buffer: list[dict[str, Any]] = []
    unlinked_buffer: list[dict[str, Any]] = []
    for page in cerkl.iter_subscriber_pages(modified_since=start):
        records = [subscriber_from_cerkl(s) for s in page]
        records = [r for r in records if _within(r["modified"], start, end)]
        if not records:
            continue
        links = state.get_links_by_subscriber(r["id"] for r in records)
        unlinked = [r for r in records if r["id"] not in links]
        seen_unlinked.update(r["id"] for r in unlinked)
        changed_buffer.extend(records)
        unlinked_buffer.extend(unlinked)
        changed_buffer = _store_full_batches(
            batches, changed_buffer, changed_refs, "subscribers-changed", config.batch_size
        )
        unlinked_buffer = _store_full_batches(
            batches, unlinked_buffer, unlinked_refs, "subscribers-unlinked", config.batch_size
        )
    if changed_buffer:
        changed_refs.append(batches.put(changed_buffer, label="subscribers-changed"))
    if unlinked_buffer:
        unlinked_refs.append(batches.put(unlinked_buffer, label="subscribers-unlinked"))

    pending_ids = sorted(
        {
            int(item.record_id)
            for item in state.open_work_items(NEW_FLOW)
            if item.record_type == "subscriber" and int(item.record_id) not in seen_unlinked
        }
    )
    pending: list[dict[str, Any]] = []
    gone: list[str] = []
    for subscriber_id, found, error in run_in_threads(
        cerkl.get_subscriber, pending_ids, workers=config.cerkl_workers
    ):
        if isinstance(error, CerklNotFoundError):
            gone.append(str(subscriber_id))
        elif error is not None:
            raise error
        else:
            pending.append(subscriber_from_cerkl(found))
    if gone:
        state.resolve_work_items(NEW_FLOW, "subscriber", gone)
    links = state.get_links_by_subscriber(p["id"] for p in pending)
    pending = [p for p in pending if p["id"] not in links]
    if pending:
        unlinked_refs.extend(
            batches.put_all(pending, label="subscribers-pending", batch_size=config.batch_size)
        )

    window = run.windows[UNSUBSCRIBES_FLOW]
    unsubscribes = [
        u
        for u in (unsubscribe_from_cerkl(r) for r in cerkl.iter_unsubscribes(since=window.start))
        if _within(u["unsubscribed_at"], window.start, window.end)
    ]
    known = {u["id"] for u in unsubscribes}
    pending_unsubscribes = sorted(
        {
            int(item.record_id)
            for item in state.open_work_items(UNSUBSCRIBES_FLOW)
            if item.record_type == "unsubscribe" and int(item.record_id) not in known
        }
    )
    for unsubscribe_id, found, error in run_in_threads(
        cerkl.get_unsubscribe, pending_unsubscribes, workers=config.cerkl_workers
    ):
        if error is not None:
            raise error
        if found is None:
            state.resolve_work_items(UNSUBSCRIBES_FLOW, "unsubscribe", [str(unsubscribe_id)])
        else:
            unsubscribes.append(unsubscribe_from_cerkl(found))
    unsubscribe_refs = batches.put_all(
        unsubscribes, label="unsubscribes", batch_size=config.batch_size
    )
    summary = {
        "changed": changed_refs,
        "unlinked": unlinked_refs,
        "unsubscribes": unsubscribe_refs,
        "counts": {
            "changed": sum(r["count"] for r in changed_refs),
            "unlinked": sum(r["count"] for r in unlinked_refs),
            "unsubscribes": len(unsubscribes),
        },
    }
    log.info("Extracted Cerkl changes: %s", summary["counts"])
    return summary


def _store_full_batches(
    batches: BatchStore,
    buffer: list[dict[str, Any]],
    refs: list[BatchRef],
    label: str,
    batch_size: int,
) -> list[dict[str, Any]]:
    """Store every full batch of ``buffer`` in ``refs`` and return the records left over."""
    while len(buffer) >= batch_size:
        refs.append(batches.put(buffer[:batch_size], label=label))
        buffer = buffer[batch_size:]
    return buffer


def _query_contacts(
    salesforce: SalesforceClient, run: RunInfo, column: str, values: Iterable[str]
) -> list[dict[str, Any]]:
    values = sorted(set(values))
    if not values:
        return []
    template = f"SELECT {contact_field_list(run.config)} FROM Contact WHERE {column} IN {{values}}"
    return [
        contact_from_salesforce(row, run.config)
        for page in salesforce.query_in_batches(template, values)
        for row in page
    ]


def link_new_subscribers(
    run: RunInfo,
    unlinked_refs: Sequence[BatchRef],
    *,
    salesforce: SalesforceClient,
    cerkl: CerklHook,
    state: SyncStateStore,
    contact_refs: Sequence[BatchRef] = (),
) -> FlowResult:
    """Link unlinked subscribers to Contacts, creating Contacts where none matches.

    Contacts are created by upsert on the subscriber-id external Id, so a retried task never
    creates a second Contact for the same subscriber.

    :param contact_refs: the Contacts extracted in this run. They are candidates too, because
        a SOQL ``IN`` compares emails without trimming, so it misses a Contact whose Email
        has surrounding spaces.
    """
    config = run.config
    fields = config.contact_fields
    result = FlowResult(NEW_FLOW)
    owner = f"{run.run_id}:{NEW_FLOW}"
    # Subscribers planned, and Contacts that a planned link takes, by earlier batches. Their
    # links are saved only when the spooled writes are sent, so later batches skip them. A
    # subscriber listed twice is planned once, because Cerkl's pages can shift while they
    # are read. A Contact is not offered to a second subscriber.
    planned: set[int] = set()
    claimed: set[str] = set()
    # The writes of all batches go out together at the end: the creates first, because the
    # spool entered last is sent first.
    with (
        WriteSpool(
            salesforce,
            "update",
            "Contact",
            settle=lambda outcomes: _settle_links(outcomes, cerkl, state, result),
            guard=lambda: state.link_lock(owner),
        ) as link_updates,
        WriteSpool(
            salesforce,
            "upsert",
            "Contact",
            key_field=fields.subscriber_id,
            settle=lambda outcomes: _settle_created_contacts(outcomes, state, result),
            guard=lambda: state.link_lock(owner),
        ) as creates,
    ):
        for ref in unlinked_refs:
            batch = []
            for subscriber in BatchStore.get(ref):
                if subscriber["id"] not in planned:
                    planned.add(subscriber["id"])
                    batch.append(subscriber)
            # The extract is streamed again for each batch, so that only the Contacts this
            # batch may link to are held in memory.
            extracted, extracted_holders = _index_extracted_contacts(batch, contact_refs)
            if contact_refs:
                holding = _contacts_holding_new_subscribers(
                    salesforce, run, batch, extracted_holders
                )
            else:
                # Without the window's extract every subscriber is looked up by id.
                holding = _contacts_holding_link(salesforce, run, batch)
            subscribers = [s for s in batch if s["id"] not in holding]
            keys = [k for k in (normalize_email(s.get("email")) for s in subscribers) if k]
            found = _query_contacts(salesforce, run, fields.email, keys)
            found_ids = {c["id"] for c in found}
            for key in keys:
                found.extend(c for c in extracted.get(key, ()) if c["id"] not in found_ids)
            # A Contact found by email that already contains the subscriber's id is its link,
            # written by an earlier attempt of this step that stopped before saving it.
            batch_ids = {s["id"] for s in subscribers}
            for contact in found:
                subscriber_id = contact["subscriber_id"]
                if subscriber_id in batch_ids and not contact["is_deleted"]:
                    holding.setdefault(subscriber_id, contact)
            adopted = [
                _adopt_action(holding[s["id"]], s, config.conflict_rule)
                for s in batch
                if s["id"] in holding
            ]
            subscribers = [s for s in subscribers if s["id"] not in holding]
            holders = state.get_links_by_contact(c["id"] for c in found)
            candidates = [
                c
                for c in found
                if not c["is_deleted"]
                and c["id"] not in holders
                and c["id"] not in claimed
                and c["subscriber_id"] is None
            ]
            plan = new_subscribers.plan_new_subscriber_links(
                subscribers,
                candidates=candidates,
                account_id=run.organization_id,
                missing_last_name=config.missing_last_name,
                conflict_rule=config.conflict_rule,
            )
            plan.actions.extend(adopted)
            result.absorb_plan(plan)
            claimed.update(a["contact_id"] for a in plan.actions if a["action"] == "link")
            if run.dry_run:
                for action in plan.actions:
                    result.counts[action["action"]] += 1
                continue
            _spool_new_subscriber_plan(plan.actions, config, creates, link_updates)
            state.add_work_items(
                NEW_FLOW,
                "pending",
                [(p["record_type"], p["record_id"], p["reason"]) for p in plan.pending],
            )
            for spool in (creates, link_updates):
                if spool.full:
                    spool.flush()
    return result


def _extracted_contacts_by_email(
    unlinked_refs: Sequence[BatchRef], contact_refs: Sequence[BatchRef]
) -> dict[str, list[dict[str, Any]]]:
    """Return extracted, unlinked Contacts by normalized email, for the given Cerkl records.

    :param unlinked_refs: batches of subscribers or unsubscribes (records with ``email``).
    """
    return _index_extracted_contacts(BatchStore.iter_records(unlinked_refs), contact_refs)[0]


def _index_extracted_contacts(
    records: Iterable[Mapping[str, Any]], contact_refs: Sequence[BatchRef]
) -> tuple[dict[str, list[dict[str, Any]]], dict[int, dict[str, Any]]]:
    """Index the live extracted Contacts that the given Cerkl records may link to.

    Only Contacts that match one of those records are kept, so a full sync's extract is
    streamed and not held in memory. Callers pass one batch of records at a time, so that
    the index follows the batch size and not the org.

    :param records: subscribers or unsubscribes (records with ``id`` and ``email``).
    :return: the unlinked Contacts by normalized email, and the Contacts whose
        subscriber-id field contains one of the records' ids, by that id.
    """
    if not contact_refs:
        return {}, {}
    keys: set[str] = set()
    ids: set[int] = set()
    for record in records:
        ids.add(record["id"])
        key = normalize_email(record.get("email"))
        if key is not None:
            keys.add(key)
    by_email: dict[str, list[dict[str, Any]]] = {}
    by_subscriber: dict[int, dict[str, Any]] = {}
    for contact in BatchStore.iter_records(contact_refs):
        if contact["is_deleted"]:
            continue
        subscriber_id = contact["subscriber_id"]
        if subscriber_id is None:
            key = normalize_email(contact.get("email"))
            if key in keys:
                by_email.setdefault(key, []).append(contact)
        elif subscriber_id in ids:
            by_subscriber[subscriber_id] = contact
    return by_email, by_subscriber


def _contacts_holding_new_subscribers(
    salesforce: SalesforceClient,
    run: RunInfo,
    subscribers: Sequence[Mapping[str, Any]],
    extracted_holders: Mapping[int, dict[str, Any]],
) -> dict[int, dict[str, Any]]:
    """Find the Contacts whose subscriber-id field already contains one of these subscribers.

    A Contact gets a subscriber's id only after the subscriber exists, and writing it moves
    the Contact's ``SystemModstamp``. So for a subscriber created at or after the start of
    the Contact extract's window, a Contact that took its id by the window's end is in the
    extract, and Salesforce is not asked. Older subscribers, and those without a creation
    time, are looked up by id.

    NOTE: a Contact outside ``contact_scope_condition`` is not in the extract, so for a new
    subscriber such a Contact is not adopted. A Contact that took the id after the window's
    end is found by the email look-up when its email matches (see ``link_new_subscribers``).
    """
    window_start = run.windows[CONTACTS_FLOW].start
    holding: dict[int, dict[str, Any]] = {}
    older = []
    for subscriber in subscribers:
        created = parse_timestamp(subscriber.get("created"))
        if created is None or created < window_start:
            older.append(subscriber)
        elif subscriber["id"] in extracted_holders:
            holding[subscriber["id"]] = extracted_holders[subscriber["id"]]
    holding.update(_contacts_holding_link(salesforce, run, older))
    return holding


def _contacts_holding_link(
    salesforce: SalesforceClient, run: RunInfo, subscribers: Sequence[Mapping[str, Any]]
) -> dict[int, dict[str, Any]]:
    """Return Contacts whose subscriber-id field already contains one of these subscribers.

    Such a link exists in Salesforce but not yet in the state DB (an org where the
    integration ran before, or a rebuilt state DB); it is adopted, never duplicated.
    """
    field = run.config.contact_fields.subscriber_id
    found = _query_contacts(salesforce, run, field, [str(s["id"]) for s in subscribers])
    return {c["subscriber_id"]: c for c in found if not c["is_deleted"] and c["subscriber_id"]}


def _adopt_action(
    contact: Mapping[str, Any], subscriber: Mapping[str, Any], conflict_rule: str
) -> dict[str, Any]:
    decision = reconcile_pair(
        contact=contact,
        subscriber=subscriber,
        synced_values={},
        salesforce_seen_at=None,
        cerkl_seen_at=None,
        conflict_rule=conflict_rule,
    )
    return {
        "action": "link",
        "subscriber_id": int(subscriber["id"]),
        "contact_id": contact["id"],
        "salesforce_changes": decision.to_salesforce,
        "cerkl_changes": decision.to_cerkl,
        "synced_values": decision.synced_values,
        "salesforce_seen_at": contact.get("modstamp"),
        "cerkl_seen_at": subscriber.get("modified"),
    }


def _spool_new_subscriber_plan(
    actions: Sequence[Mapping[str, Any]],
    config: Any,
    creates: WriteSpool,
    link_updates: WriteSpool,
) -> None:
    """Spool the Contact upserts and link updates of one batch's plan, each with its action."""
    fields = config.contact_fields
    for action in actions:
        if action["action"] == "create_contact":
            row = {
                **contact_writes(action["contact"], config),
                fields.subscriber_id: str(action["subscriber_id"]),
            }
            creates.add(row, action)
        elif action["action"] == "link":
            writes = {
                "subscriber_id": action["subscriber_id"],
                **action.get("salesforce_changes", {}),
            }
            link_updates.add({"Id": action["contact_id"], **contact_writes(writes, config)}, action)


def _settle_created_contacts(
    outcomes: Sequence[tuple[dict[str, Any], WriteResult]],
    state: SyncStateStore,
    result: FlowResult,
) -> None:
    """Link each subscriber to its new Contact, or quarantine it when the upsert failed."""
    links = []
    done: list[str] = []
    for action, outcome in outcomes:
        if not outcome.success:
            result.reject(
                "subscriber",
                action["subscriber_id"],
                f"SALESFORCE_CREATE_FAILED: {outcome.error_code}",
            )
            continue
        result.counts["created_contact"] += 1
        if action.get("last_name_fallback"):
            result.counts["last_name_fallback"] += 1
        links.append(
            make_link(
                outcome.id,
                action["subscriber_id"],
                action["synced_values"],
                opted_out=False,
                cerkl_seen_at=action.get("cerkl_seen_at"),
            )
        )
        done.append(str(action["subscriber_id"]))
    if links:
        state.save_links(links)
    if done:
        state.resolve_work_items(NEW_FLOW, "subscriber", done)


def _settle_links(
    outcomes: Sequence[tuple[dict[str, Any], WriteResult]],
    cerkl: CerklHook,
    state: SyncStateStore,
    result: FlowResult,
) -> None:
    """Save the links whose Contact took the subscriber's id, after the Cerkl side's update.

    A subscriber whose Contact update failed is quarantined.
    """
    links = []
    done: list[str] = []
    for action, outcome in outcomes:
        if not outcome.success:
            result.reject(
                "subscriber",
                action["subscriber_id"],
                f"SALESFORCE_LINK_FAILED: {outcome.error_code}",
            )
            continue
        if action.get("cerkl_changes"):
            try:
                cerkl.update_subscriber(action["subscriber_id"], action["cerkl_changes"])
            except Exception as exc:  # noqa: BLE001 - classified below
                raise_if_systemic(exc)
                result.reject(
                    "subscriber",
                    action["subscriber_id"],
                    f"CERKL_UPDATE_FAILED: {getattr(exc, 'code', type(exc).__name__)}",
                )
        result.counts["linked"] += 1
        links.append(
            make_link(
                action["contact_id"],
                action["subscriber_id"],
                action["synced_values"],
                opted_out=False,
                salesforce_seen_at=action.get("salesforce_seen_at"),
                cerkl_seen_at=action.get("cerkl_seen_at"),
            )
        )
        done.append(str(action["subscriber_id"]))
    if links:
        state.save_links(links)
    if done:
        state.resolve_work_items(NEW_FLOW, "subscriber", done)


def apply_unsubscribes(
    run: RunInfo,
    unsubscribe_refs: Sequence[BatchRef],
    *,
    salesforce: SalesforceClient,
    state: SyncStateStore,
    contact_refs: Sequence[BatchRef] = (),
) -> FlowResult:
    """Mark the Contacts of Cerkl unsubscribes as opted out.

    :param contact_refs: the Contacts extracted in this run, matched by email too, because a
        SOQL ``IN`` misses a Contact whose Email has surrounding spaces.
    """
    config = run.config
    fields = config.contact_fields
    result = FlowResult(UNSUBSCRIBES_FLOW)
    extracted = _extracted_contacts_by_email(unsubscribe_refs, contact_refs)
    for ref in unsubscribe_refs:
        unsubscribes = BatchStore.get(ref)
        links = state.get_links_by_subscriber(u["id"] for u in unsubscribes)
        held = _contacts_holding_link(
            salesforce, run, [u for u in unsubscribes if u["id"] not in links]
        )
        unlinked = [
            u
            for u in unsubscribes
            if u["id"] not in links and u["id"] not in held and normalize_email(u.get("email"))
        ]
        keys = [normalize_email(u["email"]) for u in unlinked]
        found = _query_contacts(salesforce, run, fields.email, keys)
        found_ids = {c["id"] for c in found}
        for key in keys:
            found.extend(c for c in extracted.get(key, ()) if c["id"] not in found_ids)
        holders = state.get_links_by_contact(c["id"] for c in found)
        candidates = [c for c in found if c["id"] not in holders and c["subscriber_id"] is None]
        matches = {
            sid: match["contact_id"]
            for sid, match in match_subscribers_to_contacts(unlinked, candidates).items()
        }
        matches.update({sid: contact["id"] for sid, contact in held.items()})
        linked_contacts = _query_contacts(
            salesforce, run, "Id", [link.contact_id for link in links.values()]
        )
        contacts = {c["id"]: c for c in linked_contacts + candidates + list(held.values())}
        plan = writeback.plan_unsubscribes_to_contacts(
            unsubscribes,
            links_by_subscriber=links,
            contacts=contacts,
            matches=matches,
            set_has_opted_out=config.set_has_opted_out_of_email,
        )
        result.absorb_plan(plan)
        if run.dry_run:
            for action in plan.actions:
                result.counts[action["action"]] += 1
            continue
        rows = []
        for action in plan.actions:
            changes: dict[str, Any] = {"unsubscribe_flag": True}
            if config.set_has_opted_out_of_email:
                changes["has_opted_out"] = True
            if action["link"]:
                changes["subscriber_id"] = action["subscriber_id"]
            rows.append({"Id": action["contact_id"], **contact_writes(changes, config)})
        new_links = []
        done = [item["record_id"] for item in plan.skipped]
        with state.link_lock(f"{run.run_id}:{UNSUBSCRIBES_FLOW}"):
            outcomes = salesforce.update("Contact", rows) if rows else []
            for action, outcome in zip(plan.actions, outcomes, strict=True):
                if not outcome.success:
                    result.reject(
                        "unsubscribe",
                        action["subscriber_id"],
                        f"SALESFORCE_UPDATE_FAILED: {outcome.error_code}",
                    )
                    continue
                result.counts["opted_out"] += 1
                existing = links.get(action["subscriber_id"])
                if existing is not None and existing.contact_id != action["contact_id"]:
                    existing = None
                new_links.append(
                    make_link(
                        action["contact_id"],
                        action["subscriber_id"],
                        {},
                        opted_out=True,
                        salesforce_seen_at=contacts[action["contact_id"]].get("modstamp"),
                        previous=existing,
                    )
                )
                done.append(str(action["subscriber_id"]))
            if new_links:
                state.save_links(new_links)
        if done:
            state.resolve_work_items(UNSUBSCRIBES_FLOW, "unsubscribe", done)
    return result


def apply_subscriber_changes(
    run: RunInfo,
    changed_refs: Sequence[BatchRef],
    contact_refs: Sequence[BatchRef],
    *,
    salesforce: SalesforceClient,
    cerkl: CerklHook,
    state: SyncStateStore,
) -> tuple[FlowResult, FlowResult]:
    """Write subscriber name, email, score and interest changes to linked Contacts.

    Linked Contacts are not read from Salesforce again. The window's Contact extract has the
    ones that changed in the window, and the others still have the values whose digests
    the state DB keeps. A Contact deleted since the extract makes its update fail with
    ``ENTITY_IS_DELETED``, and the subscriber is skipped as ``CONTACT_DELETED``.
    """
    changes_result = FlowResult(CHANGES_FLOW)
    interests_result = FlowResult(INTERESTS_FLOW)
    changed_contact_ids = _refresh_contact_value_digests(contact_refs, state)
    # Subscribers of earlier batches. Their digests are saved only when the spooled updates
    # are sent, so a subscriber listed twice would be planned and counted twice.
    planned: set[int] = set()
    # The Contact updates of all batches go out together at the end, as one call per
    # 50,000 rows (a Bulk API 2.0 job above 1,000).
    with WriteSpool(
        salesforce,
        "update",
        "Contact",
        settle=lambda outcomes: _settle_contact_updates(
            outcomes, state, changes_result, interests_result
        ),
    ) as updates:
        for ref in changed_refs:
            _spool_subscriber_changes(
                run,
                ref,
                contact_refs,
                changed_contact_ids,
                planned,
                updates,
                salesforce=salesforce,
                cerkl=cerkl,
                state=state,
                results=(changes_result, interests_result),
            )
    return changes_result, interests_result


def _spool_subscriber_changes(
    run: RunInfo,
    ref: BatchRef,
    contact_refs: Sequence[BatchRef],
    changed_contact_ids: set[str],
    planned: set[int],
    updates: WriteSpool,
    *,
    salesforce: SalesforceClient,
    cerkl: CerklHook,
    state: SyncStateStore,
    results: tuple[FlowResult, FlowResult],
) -> None:
    """Plan one batch of changed subscribers and spool its Contact updates.

    A function of its own, so that the batch's records are freed when it returns, before
    the next batch or the final send.
    """
    from cerkl.exceptions import CerklNotFoundError

    config = run.config
    changes_result, interests_result = results
    subscribers = []
    for subscriber in BatchStore.get(ref):
        if subscriber["id"] not in planned:
            planned.add(subscriber["id"])
            subscribers.append(subscriber)
    by_id = {s["id"]: s for s in subscribers}
    links = state.get_links_by_subscriber(s["id"] for s in subscribers)
    linked = [s for s in subscribers if s["id"] in links]
    # The extract is streamed again for each batch, so that only this batch's Contacts
    # are held in memory.
    needed_ids = {links[s["id"]].contact_id for s in linked} & changed_contact_ids
    contacts = {c["id"]: c for c in BatchStore.iter_records(contact_refs) if c["id"] in needed_ids}
    interests: dict[int, list[dict[str, Any]]] = {}
    for subscriber_id, ranked, error in run_in_threads(
        cerkl.get_subscriber_interests,
        [s["id"] for s in linked],
        workers=config.cerkl_workers,
    ):
        if isinstance(error, CerklNotFoundError):
            # Unsubscribed since it was read (perhaps by this run): no interests to copy.
            interests_result.counts["skipped"] += 1
            continue
        if error is not None:
            raise_if_systemic(error)
            interests_result.reject(
                "subscriber",
                subscriber_id,
                f"CERKL_READ_FAILED: {getattr(error, 'code', type(error).__name__)}",
            )
            continue
        interests[subscriber_id] = ranked
    changes_plan, interests_plan = writeback.plan_subscriber_changes_to_contacts(
        linked,
        links_by_subscriber=links,
        contacts=contacts,
        changed_contact_ids=changed_contact_ids,
        interests=interests,
        conflict_rule=config.conflict_rule,
    )
    for item in subscribers:
        if item["id"] not in links:
            changes_plan.skip("subscriber", str(item["id"]), "NOT_LINKED")
    _reject_emails_held_elsewhere(salesforce, run, changes_plan)
    changes_result.absorb_plan(changes_plan)
    interests_result.absorb_plan(interests_plan)
    if run.dry_run:
        changes_result.counts["updated"] += len(changes_plan.actions)
        interests_result.counts["updated"] += len(interests_plan.actions)
        return

    merged: dict[str, dict[str, Any]] = {}
    owners: dict[str, list[list[Any]]] = {}
    for plan, kind in ((changes_plan, "changes"), (interests_plan, "interests")):
        for action in plan.actions:
            sid = action["subscriber_id"]
            merged.setdefault(action["contact_id"], {}).update(action["changes"])
            # What settling the outcome needs: the flow, the subscriber, the digests to
            # keep, and for a name or email change the subscriber's change time.
            modified = by_id[sid].get("modified") if kind == "changes" else None
            owners.setdefault(action["contact_id"], []).append(
                [kind, sid, action["synced_values"], modified]
            )
    for contact_id, changes in merged.items():
        row = {"Id": contact_id, **contact_writes(changes, config)}
        log.info("Contact %s: updating %s", contact_id, ", ".join(sorted(set(row) - {"Id"})))
        updates.add(row, owners[contact_id])
    # An unchanged subscriber counts as seen. An interest list alone, written or
    # unchanged, does not: it must not mark a failed or rejected name or email update
    # as seen, or the next run would not retry it.
    digests: dict[int, dict[str, str]] = {}
    seen: dict[int, Any] = {}
    for plan, marks_seen in ((changes_plan, True), (interests_plan, False)):
        for skipped in plan.skipped:
            sid = int(skipped["record_id"])
            if skipped["reason"] != "UNCHANGED" or sid not in links:
                continue
            digests.setdefault(sid, {}).update(skipped.get("synced_values", {}))
            if marks_seen:
                seen[sid] = by_id[sid].get("modified")
    _save_link_digests(state, links, digests, seen)
    if updates.full:
        updates.flush()


def _settle_contact_updates(
    outcomes: Sequence[tuple[list[list[Any]], WriteResult]],
    state: SyncStateStore,
    changes_result: FlowResult,
    interests_result: FlowResult,
) -> None:
    """Count each Contact update for its flows, and keep the digests of the values written.

    A Contact deleted after the extract makes its update fail with ``ENTITY_IS_DELETED``:
    the subscriber is skipped, because the next run's extract has the delete and the
    Salesforce-to-Cerkl flow ends the link then. Other failures are quarantined.
    """
    digests: dict[int, dict[str, str]] = {}
    seen: dict[int, Any] = {}
    for owners, outcome in outcomes:
        for kind, sid, synced_values, modified in owners:
            result = changes_result if kind == "changes" else interests_result
            if not outcome.success and outcome.error_code == "ENTITY_IS_DELETED":
                result.counts["skipped"] += 1
                continue
            if not outcome.success:
                result.reject("subscriber", sid, f"SALESFORCE_UPDATE_FAILED: {outcome.error_code}")
                continue
            result.counts["updated"] += 1
            digests.setdefault(sid, {}).update(synced_values)
            if kind == "changes":
                seen[sid] = modified
    # The links are read again here: the batch's unchanged values may have been saved since.
    _save_link_digests(state, state.get_links_by_subscriber(digests), digests, seen)


def _save_link_digests(
    state: SyncStateStore,
    links: Mapping[int, Any],
    digests: Mapping[int, Mapping[str, str]],
    seen: Mapping[int, Any],
) -> None:
    """Save the given digests and seen times into the subscribers' links, where they exist."""
    new_links = [
        make_link(
            links[sid].contact_id,
            sid,
            values,
            opted_out=None,
            cerkl_seen_at=seen.get(sid),
            previous=links[sid],
        )
        for sid, values in digests.items()
        if sid in links
    ]
    if new_links:
        state.save_links(new_links)


def _refresh_contact_value_digests(
    contact_refs: Sequence[BatchRef], state: SyncStateStore
) -> set[str]:
    """Record the score and interests of each linked Contact in the extract in its link.

    A person may edit those fields in Salesforce. The link's digests then describe the
    edited values, so the next Cerkl change of them is written even when that Contact is not
    read again.

    :return: the Ids of every Contact in the extract.
    """
    contact_ids: set[str] = set()
    for ref in contact_refs:
        contacts = BatchStore.get(ref)
        contact_ids.update(c["id"] for c in contacts)
        contacts = [c for c in contacts if not c["is_deleted"]]
        links = state.get_links_by_contact(c["id"] for c in contacts)
        refreshed = []
        for contact in contacts:
            link = links.get(contact["id"])
            if link is None:
                continue
            digests = writeback.contact_value_digests(contact)
            if any(link.synced_values.get(name) != value for name, value in digests.items()):
                refreshed.append(
                    make_link(
                        link.contact_id, link.subscriber_id, digests, opted_out=None, previous=link
                    )
                )
        if refreshed:
            state.save_links(refreshed)
            log.info(
                "Recorded the Salesforce score and interests of %d linked Contacts", len(refreshed)
            )
    return contact_ids


def _reject_emails_held_elsewhere(salesforce: SalesforceClient, run: RunInfo, plan: Any) -> None:
    """Reject planned email changes to an address that another Contact already has.

    Writing it would give two Contacts one address while Cerkl keeps one subscriber per
    address, so the other Contact's opt-out or link would stop holding. The subscriber is
    quarantined instead, for a person to decide whether the two Contacts are one person.
    """
    moving = [a for a in plan.actions if a["changes"].get("email")]
    if not moving:
        return
    keys = [normalize_email(a["changes"]["email"]) for a in moving]
    holders: dict[str, list[str]] = {}
    for contact in _query_contacts(salesforce, run, run.config.contact_fields.email, keys):
        if not contact["is_deleted"]:
            holders.setdefault(normalize_email(contact["email"]), []).append(contact["id"])
    kept = []
    for action in plan.actions:
        email = action["changes"].get("email")
        others = [
            contact_id
            for contact_id in holders.get(normalize_email(email), [])
            if contact_id != action["contact_id"]
        ]
        if email and others:
            plan.reject(
                "subscriber",
                str(action["subscriber_id"]),
                f"EMAIL_HELD_BY_OTHER_CONTACT: Contact {others[0]} has the address",
            )
        else:
            kept.append(action)
    plan.actions[:] = kept
