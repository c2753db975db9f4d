"""Shared parts of the sync's tasks: the run's settings, flow results and client helpers."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from include.cerkl_sync.config import SyncConfig, config_to_dict, parse_config
from include.cerkl_sync.planning.plan import FlowPlan
from include.cerkl_sync.windows import SyncWindow

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Contact fields every Contact query reads, besides the configured ones.
CONTACT_SYSTEM_FIELDS = (
    "Id",
    "AccountId",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "IsDeleted",
    "MasterRecordId",
)


@dataclass
class RunInfo:
    """Settings of one DAG run, computed by the first task and passed to the others."""

    dag_id: str
    run_id: str
    windows: dict[str, SyncWindow]
    dry_run: bool
    full_sync: bool
    new_subscriber_cap: int
    organization_id: str
    config: SyncConfig
    started_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "windows": {flow: window.to_dict() for flow, window in self.windows.items()},
            "dry_run": self.dry_run,
            "full_sync": self.full_sync,
            "new_subscriber_cap": self.new_subscriber_cap,
            "organization_id": self.organization_id,
            "config": config_to_dict(self.config),
            "started_at": self.started_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunInfo:
        return cls(
            dag_id=data["dag_id"],
            run_id=data["run_id"],
            windows={f: SyncWindow.from_dict(w) for f, w in data["windows"].items()},
            dry_run=bool(data["dry_run"]),
            full_sync=bool(data["full_sync"]),
            new_subscriber_cap=int(data["new_subscriber_cap"]),
            organization_id=data["organization_id"],
            config=parse_config(data["config"]),
            started_at=data["started_at"],
        )


@dataclass
class FlowResult:
    """Outcome of one flow's step, reported through XCom and summed in the run report."""

    flow: str
    counts: Counter[str] = field(default_factory=Counter)
    rejected: list[dict[str, str]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    #: Records handled (planned), the denominator of the rejected share.
    records: int = 0
    completed: bool = False

    def __post_init__(self) -> None:
        recorded = _recorded_results.get()
        if recorded is not None:
            recorded.append(self)

    def reject(self, record_type: str, record_id: object, reason: str) -> None:
        self.counts["rejected"] += 1
        self.rejected.append(
            {
                "flow": self.flow,
                "record_type": record_type,
                "record_id": str(record_id),
                "reason": reason,
            }
        )

    def absorb_plan(self, plan: FlowPlan) -> None:
        """Count a plan's skips, rejects and pending records, and keep its conflicts and notes."""
        self.records += (
            len(plan.actions) + len(plan.skipped) + len(plan.rejected) + len(plan.pending)
        )
        self.counts["skipped"] += len(plan.skipped)
        self.counts["pending"] += len(plan.pending)
        for item in plan.rejected:
            self.reject(item["record_type"], item["record_id"], item["reason"])
        self.conflicts.extend(plan.conflicts)
        self.notes.extend(plan.notes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "counts": dict(self.counts),
            "rejected": self.rejected,
            "conflicts": self.conflicts,
            "notes": self.notes,
            "records": self.records,
            "completed": self.completed,
        }


_recorded_results: ContextVar[list[FlowResult] | None] = ContextVar(
    "cerkl_sync_recorded_flow_results", default=None
)


@contextmanager
def recording_flow_results() -> Iterator[list[FlowResult]]:
    """Collect every :class:`FlowResult` created in this thread until the block ends.

    A task that fails part-way reports these results, with the counts of the writes done
    before the failure, as incomplete flows.
    """
    results: list[FlowResult] = []
    token = _recorded_results.set(results)
    try:
        yield results
    finally:
        _recorded_results.reset(token)


def api_calls_dict(salesforce: Counter[str] | None, cerkl: Counter[str] | None) -> dict[str, Any]:
    """Return API call counts of one task in the report's shape."""
    calls: dict[str, Any] = {}
    for system, counter in (("salesforce", salesforce), ("cerkl", cerkl)):
        by_endpoint = dict(counter or {})
        calls[system] = {"total": sum(by_endpoint.values()), "by_endpoint": by_endpoint}
    return calls


def format_soql_datetime(value: datetime) -> str:
    """Return a SOQL datetime literal (UTC, whole seconds), e.g. ``2024-01-02T03:04:05Z``."""
    from datetime import UTC

    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def contact_field_list(config: SyncConfig) -> str:
    """Return the comma-separated Contact fields the sync reads."""
    fields = config.contact_fields
    names: list[str] = list(CONTACT_SYSTEM_FIELDS)
    for name in (
        fields.first_name,
        fields.last_name,
        fields.email,
        fields.has_opted_out,
        fields.unsubscribe,
        fields.subscriber_id,
        fields.engagement_score,
        *fields.interests,
        *config.opt_out_fields,
    ):
        if name not in names:
            names.append(name)
    return ", ".join(names)


def contact_writes(changes: Mapping[str, Any], config: SyncConfig) -> dict[str, Any]:
    """Map record-named Contact changes to configured Salesforce field names."""
    fields = config.contact_fields
    mapping = {
        "first_name": fields.first_name,
        "last_name": fields.last_name,
        "email": fields.email,
        "engagement_score": fields.engagement_score,
        "subscriber_id": fields.subscriber_id,
        "account_id": "AccountId",
        "unsubscribe_flag": fields.unsubscribe,
        "has_opted_out": fields.has_opted_out,
    }
    out: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "interests":
            for slot, interest in zip(fields.interests, value, strict=True):
                out[slot] = interest
        elif name == "subscriber_id":
            out[mapping[name]] = str(value) if value is not None else None
        elif name == "last_name" and not value:
            out[mapping[name]] = config.missing_last_name
        else:
            out[mapping[name]] = value
    return out


def run_in_threads(
    func: Callable[[T], R], items: Sequence[T], *, workers: int
) -> list[tuple[T, R | None, BaseException | None]]:
    """Call ``func`` on every item with a bounded thread pool.

    :return: ``(item, result, error)`` per item, in input order; an exception raised for one
        item is returned, not raised, so that the others finish.
    """

    def call(item: T) -> tuple[T, R | None, BaseException | None]:
        try:
            return item, func(item), None
        except Exception as exc:  # noqa: BLE001 - returned to the caller, which classifies it
            return item, None, exc

    if not items:
        return []
    if workers <= 1 or len(items) == 1:
        return [call(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cerkl") as pool:
        return list(pool.map(call, items))


def chunked(items: Iterable[T], size: int) -> Iterable[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def make_link(
    contact_id: str,
    subscriber_id: int,
    synced_values: Mapping[str, str],
    *,
    opted_out: bool | None,
    salesforce_seen_at: str | datetime | None = None,
    cerkl_seen_at: str | datetime | None = None,
    previous: Any = None,
) -> Any:
    """Build a state-DB link after a sync of the pair.

    The seen-at times are the records' own change timestamps (``SystemModstamp`` and
    ``date_modified_utc``), never the wall clock, so that they compare with what the systems
    report later. A time not known here keeps the previous link's.
    """
    from include.cerkl_sync.planning.pairs import field_digest
    from include.cerkl_sync.records import parse_timestamp
    from include.cerkl_sync.state import Link

    values = dict(previous.synced_values) if previous is not None else {}
    values.update(synced_values)
    if opted_out is not None:
        values["opted_out"] = field_digest("opted_out", opted_out)
    sf_seen = parse_timestamp(salesforce_seen_at)
    cerkl_seen = parse_timestamp(cerkl_seen_at)
    if previous is not None:
        sf_seen = max(filter(None, (sf_seen, previous.salesforce_seen_at)), default=None)
        cerkl_seen = max(filter(None, (cerkl_seen, previous.cerkl_seen_at)), default=None)
    return Link(
        contact_id=contact_id,
        subscriber_id=int(subscriber_id),
        synced_values=values,
        salesforce_seen_at=sf_seen,
        cerkl_seen_at=cerkl_seen,
    )


def link_to_json(link: Any) -> dict[str, Any]:
    """Return a state-DB link as JSON values, to keep beside a spooled write."""
    from include.cerkl_sync.records import iso

    return {
        "contact_id": link.contact_id,
        "subscriber_id": link.subscriber_id,
        "synced_values": dict(link.synced_values),
        "salesforce_seen_at": iso(link.salesforce_seen_at),
        "cerkl_seen_at": iso(link.cerkl_seen_at),
    }


def link_from_json(data: Mapping[str, Any]) -> Any:
    """Rebuild a state-DB link from :func:`link_to_json`'s form."""
    from include.cerkl_sync.records import parse_timestamp
    from include.cerkl_sync.state import Link

    return Link(
        contact_id=data["contact_id"],
        subscriber_id=int(data["subscriber_id"]),
        synced_values=dict(data["synced_values"]),
        salesforce_seen_at=parse_timestamp(data["salesforce_seen_at"]),
        cerkl_seen_at=parse_timestamp(data["cerkl_seen_at"]),
    )


def raise_if_systemic(error: BaseException) -> None:
    """Re-raise Cerkl errors that no single record causes: auth, retries spent, configuration.

    A 4xx response about one record (not found, conflict, validation) returns, so the caller
    quarantines that record and goes on.
    """
    from cerkl.exceptions import CerklApiError, CerklAuthError

    if isinstance(error, CerklAuthError) or not isinstance(error, CerklApiError):
        raise error
