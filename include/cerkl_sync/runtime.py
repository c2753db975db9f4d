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
from include.cerkl_sync.flows.common import RunInfo, api_calls_dict

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


def _is_configuration_error(exc: BaseException) -> bool:
    from cerkl.exceptions import CerklConfigError

    from include.cerkl_sync.config import ConfigError

    return isinstance(exc, ConfigError | CerklConfigError)


@contextmanager
def task_clients(run_info: dict[str, Any], context: Any = None) -> Iterator[TaskClients]:
    """Yield the task's clients; push their API call counts to XCom when the task ends."""
    clients = TaskClients(RunInfo.from_dict(run_info))
    try:
        yield clients
    except BaseException as exc:
        if context is not None:
            context["ti"].xcom_push(key=ERROR_KEY, value=type(exc).__name__)
        if _is_configuration_error(exc):
            from airflow.sdk.exceptions import AirflowFailException

            # A retry cannot fix a bad setting: fail now so the alert goes out at once.
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
