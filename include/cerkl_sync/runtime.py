"""Clients a task of the sync DAG needs, built from Airflow connections once per task.

``task_clients`` opens the state DB, the Salesforce client and the Cerkl hook lazily and, when
the task ends (also when it fails), pushes the API calls it made to XCom under the key
``api_calls``, so that the run report counts every call, including those of failed tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from include.cerkl_sync.batches import BatchStore
from include.cerkl_sync.flows.common import (
    FlowResult,
    RunInfo,
    api_calls_dict,
    recording_flow_results,
)

if TYPE_CHECKING:
    from cerkl.hooks import CerklHook

    from include.cerkl_sync.salesforce_io import SalesforceClient
    from include.cerkl_sync.state import SyncStateStore

log = logging.getLogger(__name__)

SALESFORCE_CONN_ID = "salesforce_default"
CERKL_CONN_ID = "cerkl_default"
STATE_CONN_ID = "cerkl_sync_state"
API_CALLS_KEY = "api_calls"
FLOWS_KEY = "flows"
ERROR_KEY = "error"


class TaskClients:
    """Lazily built clients of one task."""

    def __init__(self, run: RunInfo) -> None:
        self.run = run

    @cached_property
    def state(self) -> SyncStateStore:
        from include.cerkl_sync.state import SyncStateStore

        return SyncStateStore.from_connection(STATE_CONN_ID)

    @cached_property
    def salesforce(self) -> SalesforceClient:
        from include.cerkl_sync.salesforce_io import SalesforceClient

        return SalesforceClient(SALESFORCE_CONN_ID)

    @cached_property
    def cerkl(self) -> CerklHook:
        from cerkl.hooks import CerklHook

        return CerklHook(cerkl_conn_id=CERKL_CONN_ID)

    @cached_property
    def batches(self) -> BatchStore:
        return BatchStore(self.run.run_id, inline_max_bytes=self.run.config.xcom_inline_max_bytes)

    def api_calls(self) -> dict[str, Any]:
        salesforce = self.__dict__.get("salesforce")
        cerkl = self.__dict__.get("cerkl")
        return api_calls_dict(
            salesforce.api_calls if salesforce is not None else None,
            cerkl.api_calls if cerkl is not None else None,
        )

    def close(self) -> None:
        cerkl = self.__dict__.get("cerkl")
        if cerkl is not None:
            cerkl.close()
        state = self.__dict__.get("state")
        if state is not None:
            state.dispose()


def _is_retry_useless(exc: BaseException) -> bool:
    """Tell whether a retry of the task minutes later cannot succeed either."""
    from cerkl.exceptions import CerklAuthError, CerklConfigError

    from include.cerkl_sync.config import ConfigError
    from include.cerkl_sync.salesforce_io import SalesforceApiLimitError, SalesforceAuthError

    # The Salesforce API allowance is a rolling 24-hour count, so a retry only spends more.
    # Rejected credentials stay rejected, and each retry's login counts toward the lockout
    # of the integration user that orgs set after a few failed logins.
    if isinstance(exc, CerklAuthError) and getattr(exc, "status", None) == 401:
        return "oauth/Token" in str(getattr(exc, "path", ""))
    return isinstance(
        exc, ConfigError | CerklConfigError | SalesforceApiLimitError | SalesforceAuthError
    )


def _push_partial_results(context: Any, results: list[FlowResult]) -> None:
    """Push the flow results of a failed task, so the report counts the writes it made."""
    if not results:
        return
    flows = {result.flow: result.to_dict() for result in results}
    context["ti"].xcom_push(key=FLOWS_KEY, value=flows)
    log.warning(
        "Task failed part-way; reporting flows %s: %s",
        ", ".join(sorted(flows)),
        {flow: dict(sorted(r["counts"].items())) for flow, r in flows.items()},
    )


@contextmanager
def fail_fast_on_bad_settings() -> Iterator[None]:
    """Turn a settings error into a failure without retries, so the alert goes out at once.

    Settings errors: an invalid Variable or connection, a state DB that is not migrated or
    not configured, a batch storage URL without a scheme, and missing Salesforce fields
    (raised as a plain ``SalesforceSyncError``). An unreachable state DB or API is retried.
    """
    from include.cerkl_sync.salesforce_io import SalesforceSyncError
    from include.cerkl_sync.state import StateStoreError, StateStoreUnavailableError

    try:
        yield
    except Exception as exc:
        bad_setting = (
            _is_retry_useless(exc)
            or type(exc) is SalesforceSyncError
            or (
                isinstance(exc, StateStoreError) and not isinstance(exc, StateStoreUnavailableError)
            )
            or type(exc) is ValueError
        )
        if not bad_setting:
            raise
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


@contextmanager
def task_clients(run_info: dict[str, Any], context: Any = None) -> Iterator[TaskClients]:
    """Yield the task's clients; push their API call counts to XCom when the task ends.

    When the task fails, the flow results created in it so far are pushed under the
    ``flows`` key with ``completed`` false, so the run report lists those flows as
    incomplete with the writes they made.
    """
    clients = TaskClients(RunInfo.from_dict(run_info))
    with recording_flow_results() as results:
        try:
            yield clients
        except BaseException as exc:
            if context is not None:
                context["ti"].xcom_push(key=ERROR_KEY, value=type(exc).__name__)
                _push_partial_results(context, results)
            if _is_retry_useless(exc):
                from airflow.sdk.exceptions import AirflowFailException

                # A retry cannot fix a bad setting or a spent API allowance: fail now so the
                # alert goes out at once.
                raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
            raise
        finally:
            calls = clients.api_calls()
            if context is not None:
                context["ti"].xcom_push(key=API_CALLS_KEY, value=calls)
            log.info(
                "API calls of this task: Salesforce %d, Cerkl %d",
                calls["salesforce"]["total"],
                calls["cerkl"]["total"],
            )
            clients.close()
