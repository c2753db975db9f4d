"""Fixtures of the end-to-end DAG runs: one migrated Airflow home and the shared sandbox."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from include.sandbox.client import SandboxControlClient
from include.sandbox.local_airflow import configure_environment, migrate_airflow_db
from include.sandbox.runner import RunningSandbox


@dataclass
class SyncEnvironment:
    """The sandbox, its control clients and the DAG's settings for one test session."""

    sandbox: RunningSandbox
    salesforce: SandboxControlClient
    cerkl: SandboxControlClient
    work_dir: Path
    state_url: str

    def set_clocks(self, when: datetime) -> None:
        """Set both sandbox clocks to ``when``; they keep running from there."""
        for client in (self.salesforce, self.cerkl):
            client.set_clock(when)

    def reset(self) -> None:
        """Empty both sandboxes, their counters and faults, and the sync-state DB."""
        from include.cerkl_sync.state import SyncStateStore

        for client in (self.salesforce, self.cerkl):
            client.reset()
        db_path = Path(self.state_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(str(db_path) + suffix).unlink(missing_ok=True)
        store = SyncStateStore(self.state_url)
        store.migrate()
        store.dispose()

    def reset_counters(self) -> None:
        for client in (self.salesforce, self.cerkl):
            client.reset_counters()


@pytest.fixture(scope="session")
def sync_environment(
    sandbox: RunningSandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SyncEnvironment]:
    """Point the DAG's connections at the sandbox and migrate the metadata DB, once."""
    if sandbox.salesforce_url is None:
        pytest.skip("the Salesforce sandbox app is missing")
    work_dir = tmp_path_factory.mktemp("sync-work")
    state_url = f"sqlite:///{work_dir / 'state.db'}"
    previous = dict(os.environ)
    # Task retries stay on, as in production, but wait one second instead of minutes.
    os.environ["CERKL_SYNC_RETRY_DELAY_SECONDS"] = "1"
    os.environ["CERKL_SYNC_TASK_RETRIES"] = "1"
    configure_environment(
        salesforce_url=sandbox.salesforce_url,
        cerkl_url=sandbox.cerkl_url,
        state_url=state_url,
        work_dir=work_dir,
        config={"xcom_inline_max_bytes": 4096},
    )
    migrate_airflow_db()
    environment = SyncEnvironment(
        sandbox=sandbox,
        salesforce=SandboxControlClient(sandbox.salesforce_url),
        cerkl=SandboxControlClient(sandbox.cerkl_root_url),
        work_dir=work_dir,
        state_url=state_url,
    )
    try:
        yield environment
    finally:
        environment.salesforce.close()
        environment.cerkl.close()
        os.environ.clear()
        os.environ.update(previous)


@pytest.fixture(scope="session")
def sync_dag(sync_environment: SyncEnvironment):
    from include.sandbox.local_airflow import load_dag

    return load_dag()
