"""Run-level steps: prepare a run's settings and windows, and close a flow's step."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from include.cerkl_sync.config import FLOWS, SyncConfig
from include.cerkl_sync.flows.common import FlowResult, RunInfo
from include.cerkl_sync.windows import compute_windows

if TYPE_CHECKING:
    from include.cerkl_sync.state import SyncStateStore

log = logging.getLogger(__name__)


def check_organization_account(salesforce: Any, account_id: str) -> None:
    """Check that the Account new Contacts go under exists, before anything is written.

    :raises ConfigError: naming the ``cerkl_organization_id`` Variable and the fix.
    """
    from include.cerkl_sync.config import ORGANIZATION_VARIABLE, ConfigError

    soql = f"SELECT Id FROM Account WHERE Id = '{account_id}'"
    found = [row for page in salesforce.iter_query_pages(soql) for row in page]
    if not found:
        raise ConfigError(
            f"Variable {ORGANIZATION_VARIABLE} is {account_id!r}, but Salesforce has no Account "
            "with that Id; set it to the Id of the Account new Contacts belong under."
        )


class RejectThresholdExceededError(Exception):
    """A flow rejected so many records that the run must fail and alert."""


def prepare_run(
    *,
    dag_id: str,
    run_id: str,
    interval_start: datetime | None,
    interval_end: datetime | None,
    params: Mapping[str, Any],
    config: SyncConfig,
    organization_id: str,
    state: SyncStateStore,
    now: datetime | None = None,
) -> RunInfo:
    """Check the state DB and compute the run's windows and limits.

    :raises StateStoreError: when the state DB is unreachable or not migrated; nothing has
        been written to either system at that point.
    """
    state.check()
    full_sync = bool(params.get("full_sync", False))
    dry_run = bool(params.get("dry_run", False))
    last_ends = {flow: state.get_window_end(flow) for flow in FLOWS}
    windows = compute_windows(
        interval_start=interval_start,
        interval_end=interval_end,
        last_window_ends=last_ends,
        now=now or datetime.now(UTC),
        config=config,
        full_sync=full_sync,
    )
    cap = config.full_sync_max_new_subscribers if full_sync else config.max_new_subscribers_per_run
    run = RunInfo(
        dag_id=dag_id,
        run_id=run_id,
        windows=windows,
        dry_run=dry_run,
        full_sync=full_sync,
        new_subscriber_cap=cap,
        organization_id=organization_id,
        config=config,
        started_at=datetime.now(UTC).isoformat(),
    )
    for flow, window in windows.items():
        log.info("Flow %s reads changes after %s up to %s", flow, window.start, window.end)
    return run


def finish_flow(run: RunInfo, result: FlowResult, state: SyncStateStore) -> dict[str, Any]:
    """Quarantine the flow's rejected records, complete its window, and check the threshold.

    In a dry run nothing is written to the state DB.

    :return: the result as a dict, with ``completed`` set.
    :raises RejectThresholdExceededError: when rejected records reach both the configured
        share and count; the window is completed first, because the rejected records wait in
        the quarantine and every run retries them.
    """
    config = run.config
    rejected = len(result.rejected)
    if not run.dry_run:
        if result.rejected:
            state.add_work_items(
                result.flow,
                "quarantined",
                [(r["record_type"], r["record_id"], r["reason"]) for r in result.rejected],
            )
        state.complete_window(result.flow, run.windows[result.flow].end)
    result.completed = True
    for item in result.rejected:
        log.warning(
            "Quarantined %s %s in flow %s: %s",
            item["record_type"],
            item["record_id"],
            result.flow,
            item["reason"],
        )
    log.info("Flow %s: %s", result.flow, dict(sorted(result.counts.items())))
    total = max(result.records, rejected)
    if (
        rejected >= config.reject_count_threshold
        and total > 0
        and rejected / total >= config.reject_share_threshold
    ):
        raise RejectThresholdExceededError(
            f"Flow {result.flow} rejected {rejected} of {total} records "
            f"({rejected / total:.1%}), over the thresholds of {config.reject_count_threshold} "
            f"records and {config.reject_share_threshold:.0%}; see the run report and "
            "`python -m include.cerkl_sync.quarantine list`."
        )
    return result.to_dict()
